/**
 * The variants `gradcheckCases` runs per backward kernel: inputs, the forward kernel, the backward
 * kernel, and the finite-difference step. Each kernel's variants draw their inputs from the
 * case's seeded stream in the order written here.
 */
import type { AttentionParams, Backend, DeviceBuffer, RotaryParams, UnaryOp, View } from '../backend.js';
import type { DType } from '../dtype.js';
import { type HostTensor, hostTensor } from './harness.js';
import * as ref from './reference.js';
import type { TestRng } from './rng.js';

export interface GradSpec {
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

export const f32 = (values: ArrayLike<number>) => hostTensor('float32', values);

/** Float32 inputs drawn from N(mean, std²). */
const normal =
  (rng: TestRng) =>
  (size: number, mean = 0, std = 1) =>
    f32(rng.normal(size, mean, std));

/** out = a·b and out = a·bᵀ; the backward is two more matmuls. */
function matmulSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** copy through a transposing view and an offset strided one; addInto scatters the gradient back. */
function addIntoSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** Ids with repeats, so that the backward sums rows. */
function embeddingSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** With and without weight and bias. */
function layerNormSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** With and without weight. */
function rmsNormSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** A partial rotary dimension and uneven positions. */
function rotarySpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

function attentionSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** Exact and tanh-approximated, on random inputs and a few fixed ones. */
function geluSpecs(rng: TestRng): GradSpec[] {
  return [false, true].map((approximate) => ({
    inputs: { x: f32([...rng.normal(16, 0, 2), -4, -1, 0, 1, 4]) },
    wrt: { x: 'dx' },
    outputs: { out: { dtype: 'float32', size: 21 } },
    loss: ['out'],
    forward: (b, t) => b.gelu(t.out, t.x, approximate),
    backward: (b, t) => b.geluBackward(t.dx, t.dOut, t.x, approximate),
    eps: 1e-2,
  }));
}

function siluMulSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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
}

/** One row ignored. */
function crossEntropySpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

function dropoutSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
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

/** Rows of 5 features (not a multiple of 4) keyed by device data. */
function rowDropoutSpecs(rng: TestRng): GradSpec[] {
  const n = normal(rng);
  const p = { p: 0.3, rows: 4, features: 5, stream: 1 };
  return [
    {
      inputs: { x: n(20), streamKeys: hostTensor('int32', [3, 9, -7, 12]), rowKeys: hostTensor('int32', [4, 0, 4, 1, 70, 0, 2, 9]) },
      wrt: { x: 'dx' },
      outputs: { out: { dtype: 'float32', size: 20 } },
      loss: ['out'],
      forward: (b, t) => b.rowDropout(t.out, t.x, t.streamKeys, t.rowKeys, p),
      backward: (b, t) => b.rowDropoutBackward(t.dx, t.dOut, t.streamKeys, t.rowKeys, p),
      eps: 1e-2,
    },
  ];
}

/** unaryBackward of one op, on inputs away from its kinks and inside its domain. */
function unarySpecs(rng: TestRng, op: UnaryOp): GradSpec[] {
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

/** Every kernel but unaryBackward, in the order the cases run. */
const SPECS = new Map<string, (rng: TestRng) => GradSpec[]>([
  ['matmul', matmulSpecs],
  ['addInto (backward of copy)', addIntoSpecs],
  ['embeddingBackward', embeddingSpecs],
  ['layerNormBackward', layerNormSpecs],
  ['rmsNormBackward', rmsNormSpecs],
  ['rotaryBackward', rotarySpecs],
  ['attentionBackward', attentionSpecs],
  ['geluBackward', geluSpecs],
  ['siluMulBackward', siluMulSpecs],
  ['crossEntropyBackward', crossEntropySpecs],
  ['dropoutBackward', dropoutSpecs],
  ['rowDropoutBackward', rowDropoutSpecs],
]);

export const GRADCHECK_KERNELS: readonly string[] = [...SPECS.keys(), ...UNARY_OPS.map((op) => `unaryBackward ${op}`)];

/** The variants of `kernel` (one of GRADCHECK_KERNELS), their inputs drawn from `rng`. */
export function gradSpecs(rng: TestRng, kernel: string): GradSpec[] {
  const specs = SPECS.get(kernel);
  return specs ? specs(rng) : unarySpecs(rng, kernel.replace('unaryBackward ', '') as UnaryOp);
}
