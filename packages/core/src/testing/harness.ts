/** Runs one kernel call on a backend from host arrays and compares its outputs with the oracle's. */
import type { Backend, DeviceBuffer } from '../backend.js';
import { type DType, decode, encode } from '../dtype.js';
import { assertClose, assertEqual, type Tolerance } from './assert.js';

/** A host array that holds exactly what a buffer of `dtype` stores (values rounded on creation). */
export interface HostTensor {
  readonly dtype: DType;
  readonly values: Float64Array;
}

/** Rounds `values` to `dtype` through the same bits `write` uploads, so the oracle sees what the backend stores. */
export function hostTensor(dtype: DType, values: ArrayLike<number>): HostTensor {
  return { dtype, values: Float64Array.from(decode(encode(values, dtype), dtype)) };
}

export interface OutputSpec {
  dtype: DType;
  size: number;
  /** Initial content (in-place and accumulating kernels); already representable in `dtype`. */
  init?: HostTensor;
  /** Oracle result (float64, before storage rounding). */
  expected: ArrayLike<number>;
  /** Multiplies the dtype's atol: for reductions, about √(reduction length) · magnitude of the terms. */
  scale?: number;
  /** Elements for which this is false are not compared. */
  care?: (index: number) => boolean;
  /** For messages: renders flat indices as coordinates. */
  shape?: readonly number[];
}

export interface KernelSpec {
  /** Sub-case for messages, e.g. `n=1031`. */
  sub?: string;
  inputs: Record<string, HostTensor | null>;
  outputs: Record<string, OutputSpec>;
  call: (backend: Backend, t: Record<string, DeviceBuffer>) => void;
}

export type ToleranceTable = Record<DType, Tolerance>;

/** Uploads inputs, allocates (and initialises) outputs, calls the kernel, reads outputs back as values; frees everything. */
export async function execute(
  backend: Backend,
  inputs: Record<string, HostTensor | null>,
  outputs: Record<string, { dtype: DType; size: number; init?: HostTensor }>,
  call: (backend: Backend, t: Record<string, DeviceBuffer>) => void,
): Promise<Record<string, Float64Array>> {
  const bufs: Record<string, DeviceBuffer> = {};
  const owned: DeviceBuffer[] = [];
  const alloc = (name: string, dtype: DType, size: number) => {
    const buf = backend.alloc(dtype, size);
    owned.push(buf);
    bufs[name] = buf;
    return buf;
  };
  try {
    for (const [name, t] of Object.entries(inputs)) {
      if (!t) continue;
      backend.write(alloc(name, t.dtype, t.values.length), encode(t.values, t.dtype));
    }
    for (const [name, o] of Object.entries(outputs)) {
      const buf = alloc(name, o.dtype, o.size);
      if (o.init && o.init.values.length !== o.size)
        throw new Error(`conformance suite bug: init of ${name} has ${o.init.values.length} elements, size is ${o.size}`);
      // Without an initial content, outputs start as garbage (NaN, or -7 for int32): kernels must overwrite them.
      const init = o.init?.values ?? new Float64Array(o.size).fill(o.dtype === 'int32' ? -7 : Number.NaN);
      backend.write(buf, encode(init, o.dtype));
    }
    call(backend, bufs);
    const result: Record<string, Float64Array> = {};
    for (const name of Object.keys(outputs)) {
      const buf = bufs[name]!;
      result[name] = Float64Array.from(decode(await backend.read(buf), buf.dtype));
    }
    return result;
  } finally {
    for (const buf of owned) backend.free(buf);
  }
}

/**
 * Runs `spec` on `backend` and checks each output against its oracle value within the output
 * dtype's tolerance (atol × scale); with a second backend, also checks the two agree within twice that.
 */
export async function checkKernel(
  what: string,
  backend: Backend,
  tolerances: ToleranceTable,
  spec: KernelSpec,
  reference?: Backend,
): Promise<void> {
  const prefix = spec.sub ? `${what} (${spec.sub})` : what;
  const actual = await execute(backend, spec.inputs, spec.outputs, spec.call);
  const second = reference ? await execute(reference, spec.inputs, spec.outputs, spec.call) : undefined;
  for (const [name, o] of Object.entries(spec.outputs)) {
    const got = actual[name]!;
    if (o.dtype === 'int32') {
      assertEqual(got, o.expected, `${prefix}: ${name}`, o.shape);
      if (second) assertEqual(got, second[name]!, `${prefix}: ${name} vs reference backend "${reference!.name}"`, o.shape);
      continue;
    }
    const base = tolerances[o.dtype];
    const tol = { atol: base.atol * (o.scale ?? 1), rtol: base.rtol };
    assertClose(got, o.expected, { ...tol, what: `${prefix}: ${name} [${o.dtype}]`, shape: o.shape, care: o.care });
    if (second) {
      assertClose(got, second[name]!, {
        atol: 2 * tol.atol,
        rtol: 2 * tol.rtol,
        what: `${prefix}: ${name} [${o.dtype}] vs reference backend "${reference!.name}"`,
        shape: o.shape,
        care: o.care,
      });
    }
  }
}
