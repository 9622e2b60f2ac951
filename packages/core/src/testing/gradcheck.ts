/**
 * Kernel-level gradient checks: for each backward kernel, L = Σ r ⊙ forward(x) with a fixed random
 * r, and backward(dy = r) must equal central differences of the forward kernel, both run on the
 * backend under test in float32 (L is accumulated in float64 on the host). Framework-free, in the
 * same form as `conformanceCases`.
 *
 * FD error has two parts: truncation ≈ eps²·|f‴|/6 and float32 noise in L ≈ 2⁻²⁴·Σ|r·y| / (2·eps).
 * With eps 1e-2 (1e-3 for the nearly linear kernels) both stay near 1e-4 for the sizes in
 * gradcheck-specs.ts, so the default tolerance is atol 2e-3, rtol 1e-2.
 */
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { assertClose, type Tolerance } from './assert.js';
import { type ConformanceCase, SharedBackend } from './conformance.js';
import { f32, GRADCHECK_KERNELS, type GradSpec, gradSpecs } from './gradcheck-specs.js';
import { execute, type HostTensor, hostTensor } from './harness.js';
import { hashSeed, TestRng } from './rng.js';

export { GRADCHECK_KERNELS } from './gradcheck-specs.js';

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
