/**
 * Kernel-level gradient checks: for each backward kernel, L = Σ r ⊙ forward(x) with a fixed random
 * r, and backward(dy = r) must equal central differences of the forward kernel, both run on the
 * backend under test in float32 (L is accumulated in float64 on the host). Framework-free, in the
 * same form as `conformanceCases`.
 *
 * FD error has two parts: truncation ≈ eps²·|f‴|/6 and float32 noise in L ≈ 2⁻²⁴·Σ|r·y| / (2·eps).
 * With eps 1e-2 (1e-3 for the nearly linear kernels) both stay near 1e-4 for the sizes below, so
 * the default tolerance is atol 2e-3, rtol 1e-2.
 */
import type { AttentionParams, Backend, DeviceBuffer, RotaryParams, UnaryOp, View } from '../backend.js';
import type { DType } from '../dtype.js';
import { assertClose, type Tolerance } from './assert.js';
import { type ConformanceCase, SharedBackend } from './conformance.js';
import { execute, type HostTensor, hostTensor } from './harness.js';
import * as ref from './reference.js';
import { hashSeed, TestRng } from './rng.js';

/**
 * Central differences (f(x + eps·e_i) − f(x − eps·e_i)) / 2eps for every i (or those in `indices`,
 * the others left 0). `f` gets one working copy of x, changed in place between calls.
 */
export function finiteDifference(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  eps = 1e-3,
  indices?: readonly number[],
): Float64Array {
  const xs = Float64Array.from(x);
  const grad = new Float64Array(xs.length);
  for (const i of indices ?? xs.keys()) {
    const orig = xs[i]!;
    xs[i] = orig + eps;
    const plus = f(xs);
    xs[i] = orig - eps;
    const minus = f(xs);
    xs[i] = orig;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

export interface GradcheckOptions {
  create: () => Backend | Promise<Backend>;
  /** Default { atol: 2e-3, rtol: 1e-2 }, multiplied per kernel where its FD noise is larger. */
  tolerance?: Tolerance;
  /** Elements of each input perturbed (a seeded random subset when the input is larger). Default 24. */
  maxElements?: number;
}

interface GradSpec {
  /** Float32 inputs, and int32 side inputs (ids, positions, masks, targets). */
  inputs: Record<string, HostTensor | null>;
  /** Inputs to differentiate, with the name of the gradient buffer the backward kernel writes. */
  wrt: Record<string, string>;
  /** Forward outputs: those in `loss` enter L; all are saved and passed to backward under their names. */
  outputs: Record<string, { dtype: DType; size: number }>;
  loss: string[];
  forward: (b: Backend, t: Record<string, DeviceBuffer>) => void;
  /** Gets the inputs, saved forward outputs and `d<output>` = r for each loss output; writes the gradients. */
  backward: (b: Backend, t: Record<string, DeviceBuffer>) => void;
  /** Gradient buffers' dtypes when not float32, and initial content when the kernel accumulates. */
  gradInit?: Record<string, 'zeros'>;
  eps: number;
  /** Multiplies the tolerance. */
  slack?: number;
}

const f32 = (values: ArrayLike<number>) => hostTensor('float32', values);
const dName = (out: string) => `d${out[0]!.toUpperCase()}${out.slice(1)}`;

async function runGradcheck(
  what: string,
  backend: Backend,
  rng: TestRng,
  spec: GradSpec,
  tol: Tolerance,
  maxElements: number,
): Promise<void> {
  const r: Record<string, Float64Array> = {};
  for (const name of spec.loss) r[name] = rng.normal(spec.outputs[name]!.size);
  const loss = async (inputs: Record<string, HostTensor | null>): Promise<number> => {
    const out = await execute(backend, inputs, spec.outputs, spec.forward);
    let l = 0;
    for (const name of spec.loss) {
      const y = out[name]!;
      for (let i = 0; i < y.length; i++) l += r[name]![i]! * y[i]!;
    }
    return l;
  };

  const saved = await execute(backend, spec.inputs, spec.outputs, spec.forward);
  const backwardInputs: Record<string, HostTensor | null> = { ...spec.inputs };
  for (const [name, o] of Object.entries(spec.outputs)) backwardInputs[name] = hostTensor(o.dtype, saved[name]!);
  for (const name of spec.loss) backwardInputs[dName(name)] = f32(r[name]!);
  const gradOutputs: Record<string, { dtype: DType; size: number; init?: HostTensor }> = {};
  for (const [input, grad] of Object.entries(spec.wrt)) {
    const size = spec.inputs[input]!.values.length;
    gradOutputs[grad] = { dtype: 'float32', size, init: spec.gradInit?.[grad] === 'zeros' ? f32(new Float64Array(size)) : undefined };
  }
  const analytic = await execute(backend, backwardInputs, gradOutputs, spec.backward);

  for (const [input, grad] of Object.entries(spec.wrt)) {
    const x = spec.inputs[input]!.values;
    const indices = x.length <= maxElements ? [...x.keys()] : [...new Set(rng.int(maxElements, 0, x.length))];
    const fd = new Float64Array(indices.length);
    for (const [n, i] of indices.entries()) {
      const plus = Float64Array.from(x);
      const minus = Float64Array.from(x);
      plus[i] = Math.fround(x[i]! + spec.eps);
      minus[i] = Math.fround(x[i]! - spec.eps);
      const lp = await loss({ ...spec.inputs, [input]: f32(plus) });
      const lm = await loss({ ...spec.inputs, [input]: f32(minus) });
      fd[n] = (lp - lm) / (plus[i]! - minus[i]!);
    }
    const got = indices.map((i) => analytic[grad]![i]!);
    const slack = spec.slack ?? 1;
    const picked = indices.length === x.length ? '' : ` (elements ${indices.join(',')})`;
    assertClose(got, fd, {
      atol: tol.atol * slack,
      rtol: tol.rtol * slack,
      what: `${what}: ${grad} = ∂L/∂${input} vs central differences (eps ${spec.eps})${picked}`,
    });
  }
}

// --- the kernels -------------------------------------------------------------------------------------

function gradSpecs(rng: TestRng, kernel: string): GradSpec[] {
  const n = (size: number, mean = 0, std = 1) => f32(rng.normal(size, mean, std));
  switch (kernel) {
    case 'matmul': {
      const [m, nn, k] = [3, 4, 5];
      const mm = (m: number, n: number, k: number, transA: boolean, transB: boolean) => ({
        batch: 1,
        m,
        n,
        k,
        transA,
        transB,
        strideA: m * k,
        strideB: k * n,
        strideOut: m * n,
        alpha: 1,
        accumulate: false,
      });
      return [false, true].map((transB) => ({
        inputs: { a: n(m * k), b: n(k * nn) },
        wrt: { a: 'gradA', b: 'gradB' },
        outputs: { out: { dtype: 'float32', size: m * nn } },
        loss: ['out'],
        forward: (b, t) => b.matmul(t.out, t.a, t.b, mm(m, nn, k, false, transB)),
        backward: (b, t) => {
          if (transB) {
            // out = a·bᵀ with b [n, k]: da = dOut·b, db = dOutᵀ·a
            b.matmul(t.gradA, t.dOut, t.b, mm(m, k, nn, false, false));
            b.matmul(t.gradB, t.dOut, t.a, mm(nn, k, m, true, false));
          } else {
            // out = a·b: da = dOut·bᵀ, db = aᵀ·dOut
            b.matmul(t.gradA, t.dOut, t.b, mm(m, k, nn, false, true));
            b.matmul(t.gradB, t.a, t.dOut, mm(k, nn, m, true, false));
          }
        },
        eps: 1e-2,
      }));
    }
    case 'addInto (backward of copy)': {
      const views: { source: number; view: View }[] = [
        { source: 24, view: { shape: [6, 4], strides: [1, 6], offset: 0 } },
        { source: 30, view: { shape: [2, 3], strides: [6, 2], offset: 7 } },
      ];
      return views.map(({ source, view }) => ({
        inputs: { x: n(source) },
        wrt: { x: 'dX' },
        outputs: { out: { dtype: 'float32', size: ref.viewSize(view.shape) } },
        loss: ['out'],
        forward: (b, t) => b.copy(t.out, t.x, view),
        backward: (b, t) => b.addInto(t.dX, t.dOut, view),
        gradInit: { dX: 'zeros' },
        eps: 1e-2,
      }));
    }
    case 'embeddingBackward': {
      const [rows, dim] = [5, 3];
      const ids = hostTensor('int32', [0, 2, 2, 4, 1, 2]);
      return [
        {
          inputs: { weight: n(rows * dim), ids },
          wrt: { weight: 'dWeight' },
          outputs: { out: { dtype: 'float32', size: 6 * dim } },
          loss: ['out'],
          forward: (b, t) => b.embedding(t.out, t.weight, t.ids, 6, dim),
          backward: (b, t) => b.embeddingBackward(t.dWeight, t.dOut, t.ids, 6, dim),
          eps: 1e-2,
        },
      ];
    }
    case 'layerNormBackward': {
      const p = { rows: 3, dim: 8, eps: 1e-5 };
      const size = p.rows * p.dim;
      return [true, false].map((affine) => ({
        inputs: { x: n(size, 0.5, 1.5), weight: affine ? n(p.dim, 1, 0.5) : null, bias: affine ? n(p.dim, 0, 0.5) : null },
        wrt: (affine ? { x: 'dx', weight: 'dWeight', bias: 'dBias' } : { x: 'dx' }) as Record<string, string>,
        outputs: { out: { dtype: 'float32', size }, mean: { dtype: 'float32', size: p.rows }, rstd: { dtype: 'float32', size: p.rows } },
        loss: ['out'],
        forward: (b, t) => b.layerNorm(t.out, t.mean, t.rstd, t.x, t.weight ?? null, t.bias ?? null, p),
        backward: (b, t) => b.layerNormBackward(t.dx, t.dWeight ?? null, t.dBias ?? null, t.dOut, t.x, t.weight ?? null, t.mean, t.rstd, p),
        eps: 1e-2,
      }));
    }
    case 'rmsNormBackward': {
      const p = { rows: 3, dim: 8, eps: 1e-5 };
      const size = p.rows * p.dim;
      return [true, false].map((affine) => ({
        inputs: { x: n(size, 0.5, 1.5), weight: affine ? n(p.dim, 1, 0.5) : null },
        wrt: (affine ? { x: 'dx', weight: 'dWeight' } : { x: 'dx' }) as Record<string, string>,
        outputs: { out: { dtype: 'float32', size }, rstd: { dtype: 'float32', size: p.rows } },
        loss: ['out'],
        forward: (b, t) => b.rmsNorm(t.out, t.rstd, t.x, t.weight ?? null, p),
        backward: (b, t) => b.rmsNormBackward(t.dx, t.dWeight ?? null, t.dOut, t.x, t.weight ?? null, t.rstd, p),
        eps: 1e-2,
      }));
    }
    case 'rotaryBackward': {
      const p: RotaryParams = { batch: 2, seq: 3, heads: 2, headDim: 6, rotaryDim: 4, base: 10000, positionScale: 1 };
      const size = p.batch * p.seq * p.heads * p.headDim;
      return [
        {
          inputs: { x: n(size), positions: hostTensor('int32', [0, 1, 2, 5, 6, 30]) },
          wrt: { x: 'dx' },
          outputs: { out: { dtype: 'float32', size } },
          loss: ['out'],
          forward: (b, t) => b.rotary(t.out, t.x, t.positions, p),
          backward: (b, t) => b.rotaryBackward(t.dx, t.dOut, t.positions, p),
          eps: 1e-2,
        },
      ];
    }
    case 'attentionBackward': {
      const cases: { p: AttentionParams; mask: number[] | null }[] = [
        // causal, seqQ < seqK, GQA, left padding that leaves row 0 of batch 1 without keys
        { p: { batch: 2, seqQ: 2, seqK: 3, heads: 2, kvHeads: 1, headDim: 4, scale: 0.5, causal: true }, mask: [1, 1, 1, 0, 0, 1] },
        { p: { batch: 1, seqQ: 3, seqK: 3, heads: 2, kvHeads: 2, headDim: 3, scale: 0.7, causal: false }, mask: null },
      ];
      return cases.map(({ p, mask }) => {
        const qSize = p.batch * p.seqQ * p.heads * p.headDim;
        const kSize = p.batch * p.seqK * p.kvHeads * p.headDim;
        return {
          inputs: { q: n(qSize), k: n(kSize), v: n(kSize), mask: mask ? hostTensor('int32', mask) : null },
          wrt: { q: 'dq', k: 'dk', v: 'dv' },
          outputs: { out: { dtype: 'float32', size: qSize }, lse: { dtype: 'float32', size: p.batch * p.heads * p.seqQ } },
          loss: ['out'],
          forward: (b, t) => b.attention(t.out, t.lse, t.q, t.k, t.v, t.mask ?? null, p),
          backward: (b, t) => b.attentionBackward(t.dq, t.dk, t.dv, t.dOut, t.q, t.k, t.v, t.out, t.lse, t.mask ?? null, p),
          eps: 1e-2,
        } satisfies GradSpec;
      });
    }
    case 'geluBackward':
      return [false, true].map((approximate) => ({
        inputs: { x: f32([...rng.normal(16, 0, 2), -4, -1, 0, 1, 4]) },
        wrt: { x: 'dx' },
        outputs: { out: { dtype: 'float32', size: 21 } },
        loss: ['out'],
        forward: (b, t) => b.gelu(t.out, t.x, approximate),
        backward: (b, t) => b.geluBackward(t.dx, t.dOut, t.x, approximate),
        eps: 1e-2,
      }));
    case 'siluMulBackward':
      return [
        {
          inputs: { gate: n(20, 0, 2), up: n(20) },
          wrt: { gate: 'dGate', up: 'dUp' },
          outputs: { out: { dtype: 'float32', size: 20 } },
          loss: ['out'],
          forward: (b, t) => b.siluMul(t.out, t.gate, t.up),
          backward: (b, t) => b.siluMulBackward(t.dGate, t.dUp, t.dOut, t.gate, t.up),
          eps: 1e-2,
        },
      ];
    case 'crossEntropyBackward': {
      const p = { rows: 4, classes: 6, ignoreIndex: -100 };
      return [
        {
          inputs: { logits: n(24, 0, 2), targets: hostTensor('int32', [1, -100, 5, 0]) },
          wrt: { logits: 'dLogits' },
          outputs: { loss: { dtype: 'float32', size: p.rows }, lse: { dtype: 'float32', size: p.rows } },
          loss: ['loss'],
          forward: (b, t) => b.crossEntropy(t.loss, t.lse, t.logits, t.targets, p),
          backward: (b, t) => b.crossEntropyBackward(t.dLogits, t.dLoss, t.logits, t.targets, t.lse, p),
          eps: 1e-2,
        },
      ];
    }
    case 'dropoutBackward': {
      const p = { p: 0.3, seed: 7, offset: 2 };
      return [
        {
          inputs: { x: n(19) },
          wrt: { x: 'dx' },
          outputs: { out: { dtype: 'float32', size: 19 } },
          loss: ['out'],
          forward: (b, t) => b.dropout(t.out, t.x, p),
          backward: (b, t) => b.dropoutBackward(t.dx, t.dOut, p),
          eps: 1e-2,
        },
      ];
    }
  }
  const op = kernel.replace('unaryBackward ', '') as UnaryOp;
  // Inputs away from the kinks (abs, relu) and inside the domains (log, sqrt, rsqrt), by more than eps.
  const x =
    op === 'log' || op === 'sqrt' || op === 'rsqrt'
      ? rng.uniform(20, 0.3, 3)
      : op === 'exp'
        ? rng.normal(20, 0, 1.5)
        : rng.awayFromZero(20, 0.05, 2);
  return [
    {
      inputs: { x: f32(x) },
      wrt: { x: 'dx' },
      outputs: { out: { dtype: 'float32', size: 20 } },
      loss: ['out'],
      forward: (b, t) => b.unary(op, t.out, t.x),
      backward: (b, t) => b.unaryBackward(op, t.dx, t.dOut, t.x, t.out),
      eps: 1e-3,
      // Curvature of rsqrt near 0.3 and exp at 3σ makes truncation error larger.
      slack: op === 'rsqrt' || op === 'exp' ? 4 : 1,
    },
  ];
}

const UNARY_OPS: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'abs', 'silu', 'sigmoid', 'tanh', 'relu'];

export const GRADCHECK_KERNELS: readonly string[] = [
  'matmul',
  'addInto (backward of copy)',
  'embeddingBackward',
  'layerNormBackward',
  'rmsNormBackward',
  'rotaryBackward',
  'attentionBackward',
  'geluBackward',
  'siluMulBackward',
  'crossEntropyBackward',
  'dropoutBackward',
  ...UNARY_OPS.map((op) => `unaryBackward ${op}`),
];

export function gradcheckCases(options: GradcheckOptions): ConformanceCase[] {
  const tol = options.tolerance ?? { atol: 2e-3, rtol: 1e-2 };
  const maxElements = options.maxElements ?? 24;
  const shared = new SharedBackend(options.create);
  const cases: ConformanceCase[] = GRADCHECK_KERNELS.map((kernel) => ({
    name: `gradcheck ${kernel} float32`,
    run: async () => {
      const backend = await shared.get();
      const name = `gradcheck ${kernel} float32`;
      const rng = new TestRng(hashSeed(name));
      const specs = gradSpecs(rng, kernel);
      for (const [i, spec] of specs.entries()) {
        await runGradcheck(`${name} [seed ${rng.seed}] variant ${i + 1}/${specs.length}`, backend, rng, spec, tol, maxElements);
      }
    },
  }));
  cases.push({ name: 'gradcheck: destroy the backend', run: () => shared.destroy() });
  return cases;
}
