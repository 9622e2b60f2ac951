/**
 * The backend conformance suite: every kernel of `Backend`, forward and backward, for every float
 * storage dtype a backend claims, on several shapes each (edge shapes included), checked against
 * the float64 oracle in `reference.ts`; plus memory round trips and the error behaviour every
 * backend must have. Framework-free: a backend package's test does
 *
 *     for (const c of conformanceCases({ create: createCpuBackend })) it(c.name, c.run);
 *
 * Inputs come from a Philox stream seeded by the case name, are rounded to their storage dtype
 * on the host (so the oracle sees exactly what the backend stores), and outputs are compared
 * after the backend's rounding with |actual − expected| ≤ atol·scale + rtol·|expected|, where
 * the per-dtype (atol, rtol) are below and `scale` grows with the length of the kernel's
 * reductions (√k for a k-long dot product):
 *
 *   | output dtype | atol | rtol           | why                                               |
 *   |--------------|------|----------------|---------------------------------------------------|
 *   | float32      | 1e-5 | 1e-5           | float32 accumulation and transcendental functions |
 *   | float16      | 1e-4 | 2⁻¹⁰ ≈ 9.8e-4  | one rounding to 11 significant bits (1 ulp)       |
 *   | bfloat16     | 1e-3 | 2⁻⁸ ≈ 3.9e-3   | one rounding to 8 significant bits (1 ulp)        |
 *
 * Saved statistics (mean, rstd, lse, loss, norm weight gradients, Adam moments) are float32
 * whatever the storage dtype, so they get float32 tolerances.
 */
import type { AttentionParams, Backend, BinaryOp, DeviceBuffer, MatmulParams, RotaryParams, UnaryOp, View } from '../backend.js';
import { bytesPerElement, type DType, decode, encode, isFloatDType, type RawArray } from '../dtype.js';
import { philoxWords } from '../random/philox.js';
import { assertEqual, type Tolerance } from './assert.js';
import { rowDropoutCases } from './conformance-row-dropout.js';
import { checkKernel, hostTensor, type KernelSpec, type ToleranceTable } from './harness.js';
import * as ref from './reference.js';
import { hashSeed, TestRng } from './rng.js';

export interface ConformanceCase {
  name: string;
  run: () => Promise<void>;
}

export interface ConformanceOptions {
  create: () => Backend | Promise<Backend>;
  /**
   * Storage dtypes to test. Default: every float dtype, and a case whose dtype the backend does
   * not claim passes without checking anything; name them to make an unclaimed dtype a failure.
   */
  dtypes?: DType[];
  /** Overrides of the per-dtype tolerances (see `DEFAULT_TOLERANCES`). */
  tolerance?: Partial<Record<DType, Tolerance>>;
  /** A second oracle (e.g. the CPU backend when testing WebGPU): outputs must also agree with it within twice the tolerance. */
  reference?: () => Backend | Promise<Backend>;
}

export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** Per output dtype, before the per-kernel scale of atol. See the table at the top of this file. */
export const DEFAULT_TOLERANCES: Readonly<Record<DType, Tolerance>> = {
  float32: { atol: 1e-5, rtol: 1e-5 },
  float16: { atol: 1e-4, rtol: 2 ** -10 },
  bfloat16: { atol: 1e-3, rtol: 2 ** -8 },
  int32: { atol: 0, rtol: 0 },
};

/** A backend created on first use and shared by the cases of one suite; the last case destroys it. */
export class SharedBackend {
  private pending: Promise<Backend> | null = null;
  constructor(private readonly create: () => Backend | Promise<Backend>) {}
  get(): Promise<Backend> {
    this.pending ??= Promise.resolve().then(() => this.create());
    return this.pending;
  }
  async destroy(): Promise<void> {
    const p = this.pending;
    this.pending = null;
    if (p) (await p).destroy();
  }
}

export interface Ctx {
  name: string;
  backend: Backend;
  rng: TestRng;
  check(spec: KernelSpec): Promise<void>;
}

const sqrtLen = (n: number) => Math.max(1, Math.sqrt(n));
const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const t = hostTensor;

export function conformanceCases(options: ConformanceOptions): ConformanceCase[] {
  const tolerances: ToleranceTable = { ...DEFAULT_TOLERANCES, ...options.tolerance } as ToleranceTable;
  const explicit = options.dtypes !== undefined;
  const dtypes = (options.dtypes ?? FLOAT_DTYPES).filter(isFloatDType);
  const main = new SharedBackend(options.create);
  const second = options.reference ? new SharedBackend(options.reference) : undefined;
  const cases: ConformanceCase[] = [];

  /** `needs`: dtypes that must be claimed (an unclaimed one fails when the dtypes were named); `optional`: skipped when unclaimed. */
  const add = (name: string, needs: DType[], body: (ctx: Ctx) => Promise<void>, optional: DType[] = []) => {
    cases.push({
      name,
      run: async () => {
        const backend = await main.get();
        for (const d of needs) {
          if (backend.dtypes.includes(d)) continue;
          if (explicit) throw new Error(`backend "${backend.name}" does not claim dtype ${d} (it claims ${backend.dtypes.join(', ')})`);
          return;
        }
        for (const d of optional) if (!backend.dtypes.includes(d)) return;
        let reference = second ? await second.get() : undefined;
        if (reference && ![...needs, ...optional].every((d) => reference!.dtypes.includes(d))) reference = undefined;
        const rng = new TestRng(hashSeed(name));
        const what = `${name} [seed ${rng.seed}]`;
        await body({ name, backend, rng, check: (spec) => checkKernel(what, backend, tolerances, spec, reference) });
      },
    });
  };

  memoryCases(add);
  for (const D of dtypes) {
    const mixed = D === 'float32' ? [] : ['float32' as DType];
    dataMovementCases(add, D, dtypes);
    elementwiseCases(add, D, mixed);
    matmulCases(add, D, mixed);
    embeddingCases(add, D, mixed);
    normCases(add, D);
    rotaryCases(add, D);
    attentionCases(add, D);
    activationCases(add, D);
    lossCases(add, D);
    randomCases(add, D);
    rowDropoutCases(add, D);
    adamwCases(add, D);
  }
  cases.push({
    name: 'destroy the backend',
    run: async () => {
      await main.destroy();
      await second?.destroy();
    },
  });
  return cases;
}

export type Add = (name: string, needs: DType[], body: (ctx: Ctx) => Promise<void>, optional?: DType[]) => void;

// --- memory and errors ---------------------------------------------------------------------------

function rawBits(raw: RawArray): Uint32Array | Uint16Array | Int32Array {
  return raw instanceof Float32Array ? new Uint32Array(raw.buffer, raw.byteOffset, raw.length) : raw;
}

/** Raw test patterns: every float16/bfloat16 bit pattern (NaNs as the canonical quiet NaN), random float32 bits plus specials. */
function rawPatterns(dtype: DType, seed: number): RawArray {
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const nan = dtype === 'float16' ? 0x7e00 : 0x7fc0;
    const expMask = dtype === 'float16' ? 0x7c00 : 0x7f80;
    const mantMask = dtype === 'float16' ? 0x03ff : 0x007f;
    return Uint16Array.from({ length: 65536 }, (_, i) => ((i & expMask) === expMask && i & mantMask ? nan : i));
  }
  const words = philoxWords(seed, 0, 1031);
  if (dtype === 'int32') {
    const out = Int32Array.from(words, (w) => w | 0);
    out.set([0, -1, 1, 2147483647, -2147483648], 0);
    return out;
  }
  const bits = Uint32Array.from(words, (w) => ((w & 0x7f800000) === 0x7f800000 && w & 0x7fffff ? 0x7fc00000 : w));
  bits.set([0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x00000001, 0x007fffff, 0x7f7fffff, 0x3f800000], 0);
  return new Float32Array(bits.buffer);
}

async function expectFailure(backend: Backend, what: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch {
    return;
  }
  // Enqueued work may report the error when it runs.
  try {
    await backend.sync();
  } catch {
    return;
  }
  throw new Error(`${what}: expected an error (thrown, or a rejection of the call or of the next sync()), got none`);
}

function memoryCases(add: Add): void {
  for (const dtype of [...FLOAT_DTYPES, 'int32'] as DType[]) {
    add(`memory ${dtype} write/read round trip keeps raw bits`, [dtype], async ({ backend, name }) => {
      const data = rawPatterns(dtype, hashSeed(name));
      for (const size of [1, 7, data.length]) {
        const part = data.subarray(0, size) as RawArray;
        const buf = backend.alloc(dtype, size);
        try {
          if (buf.dtype !== dtype || buf.size !== size)
            throw new Error(`${name}: alloc(${dtype}, ${size}) returned dtype ${buf.dtype}, size ${buf.size}`);
          backend.write(buf, part);
          const back = await backend.read(buf);
          const type = dtype === 'float32' ? Float32Array : dtype === 'int32' ? Int32Array : Uint16Array;
          if (!(back instanceof type))
            throw new Error(`${name}: read of a ${dtype} buffer returned ${back.constructor.name}, expected ${type.name}`);
          assertEqual(rawBits(back), rawBits(part), `${name} (size ${size}): raw bits`);
        } finally {
          backend.free(buf);
        }
      }
    });
    add(`memory ${dtype} write at an offset leaves the rest`, [dtype], async ({ backend, name }) => {
      const size = 11;
      const base = encode(
        Array.from({ length: size }, (_, i) => i + 1),
        dtype,
      );
      const patch = encode([-5, -6, -7], dtype);
      const buf = backend.alloc(dtype, size);
      try {
        backend.write(buf, base);
        backend.write(buf, patch, 6);
        const expected = Array.from({ length: size }, (_, i) => (i >= 6 && i < 9 ? -5 - (i - 6) : i + 1));
        assertEqual(decode(await backend.read(buf), dtype), expected, `${name}: values after write(buf, [-5,-6,-7], 6)`);
      } finally {
        backend.free(buf);
      }
    });
  }

  add('memory accounting: alloc and free move memory(), peak and resetPeak', ['float32'], async ({ backend, name }) => {
    const inUse = () => {
      const m = backend.memory();
      return { ...m, used: m.bytes - m.pooledBytes };
    };
    const size = 4099;
    const bytes = size * bytesPerElement('float32');
    const before = inUse();
    const buf = backend.alloc('float32', size);
    const during = inUse();
    backend.free(buf);
    const after = inUse();
    const fail = (msg: string) => {
      throw new Error(
        `${name}: ${msg} (before ${JSON.stringify(before)}, with the buffer ${JSON.stringify(during)}, after free ${JSON.stringify(after)})`,
      );
    };
    if (during.buffers !== before.buffers + 1) fail(`alloc should add 1 to buffers`);
    if (during.used - before.used < bytes) fail(`alloc of ${bytes} bytes should add at least that to bytes − pooledBytes`);
    if (during.peakBytes < during.bytes) fail('peakBytes below bytes');
    if (after.buffers > during.buffers - 1 && after.pooledBytes <= during.pooledBytes)
      fail('free should take 1 from buffers (or hand the buffer to the pool)');
    if (during.used - after.used < bytes) fail(`free of ${bytes} bytes should take at least that from bytes − pooledBytes`);
    backend.resetPeak();
    const reset = backend.memory();
    if (reset.peakBytes < reset.bytes || reset.peakBytes > during.peakBytes)
      fail(`after resetPeak, peakBytes ${reset.peakBytes} should be between bytes ${reset.bytes} and the old peak`);
    const big = backend.alloc('float32', size);
    backend.free(big);
    if (backend.memory().peakBytes < reset.bytes + bytes - reset.pooledBytes)
      fail('peakBytes should count a buffer allocated after resetPeak');
  });

  add('errors: using a freed buffer throws', ['float32'], async ({ backend }) => {
    const freed = backend.alloc('float32', 4);
    backend.write(freed, new Float32Array(4));
    backend.free(freed);
    const out = backend.alloc('float32', 4);
    try {
      await expectFailure(backend, 'write to a freed buffer', () => backend.write(freed, new Float32Array(4)));
      await expectFailure(backend, 'read of a freed buffer', () => backend.read(freed));
      await expectFailure(backend, 'fill of a freed buffer', () => backend.fill(freed, 1));
      await expectFailure(backend, 'affine reading a freed buffer', () => backend.affine(out, freed, 1, 0));
    } finally {
      backend.free(out);
    }
  });

  add('errors: wrong-size buffers throw', ['float32'], async ({ backend }) => {
    const bufs: DeviceBuffer[] = [];
    const alloc = (n: number) => {
      const b = backend.alloc('float32', n);
      bufs.push(b);
      return b;
    };
    try {
      const four = alloc(4);
      await expectFailure(backend, 'write of 5 values into a buffer of size 4', () => backend.write(four, new Float32Array(5)));
      await expectFailure(backend, 'write of 3 values at offset 2 into a buffer of size 4', () =>
        backend.write(four, new Float32Array(3), 2),
      );
      const p: MatmulParams = {
        batch: 1,
        m: 2,
        n: 3,
        k: 4,
        transA: false,
        transB: false,
        strideA: 8,
        strideB: 12,
        strideOut: 6,
        alpha: 1,
        accumulate: false,
      };
      const a = alloc(8);
      const b = alloc(12);
      await expectFailure(backend, 'matmul [2,4]·[4,3] into an output of size 5 (needs 6)', () => backend.matmul(alloc(5), a, b, p));
      await expectFailure(backend, 'matmul [2,4]·[4,3] with b of size 11 (needs 12)', () => backend.matmul(alloc(6), a, alloc(11), p));
      await expectFailure(backend, 'unary exp of 4 elements into an output of size 3', () => backend.unary('exp', alloc(3), four));
    } finally {
      for (const b of bufs) backend.free(b);
    }
  });
}

// --- data movement ---------------------------------------------------------------------------------

interface ViewCase {
  label: string;
  /** Size of the underlying buffer. */
  source: number;
  view: View;
}

function viewCases(): ViewCase[] {
  const c = ref.contiguousView;
  return [
    { label: 'contiguous [1031]', source: 1031, view: c([1031]) },
    { label: 'size 1 [1]', source: 1, view: c([1]) },
    { label: 'transpose [5,7]→[7,5]', source: 35, view: { shape: [7, 5], strides: [1, 7], offset: 0 } },
    { label: 'permute [2,3,4,5] by (0,2,1,3)', source: 120, view: { shape: [2, 4, 3, 5], strides: [60, 5, 20, 1], offset: 0 } },
    { label: 'slice [1:4, 2:7] of [6,9]', source: 54, view: { shape: [3, 5], strides: [9, 1], offset: 11 } },
    { label: 'every other column of [4,10] from offset 1', source: 40, view: { shape: [4, 5], strides: [10, 2], offset: 1 } },
    { label: 'size-1 dims [1,3,1,5] of [3,5]', source: 15, view: { shape: [1, 3, 1, 5], strides: [0, 5, 0, 1], offset: 0 } },
    {
      label: 'rows longer than a workgroup: [2,1500] transposed [1500,2]',
      source: 3000,
      view: { shape: [1500, 2], strides: [1, 1500], offset: 0 },
    },
  ];
}

/** Views that map no two elements to the same place (for addInto). */
const injectiveViewCases = () => viewCases().filter((v) => !v.view.strides.some((s, d) => s === 0 && v.view.shape[d]! > 1));

function dataMovementCases(add: Add, D: DType, dtypes: readonly DType[]): void {
  add(`fill ${D}`, [D], async ({ check }) => {
    for (const [size, value] of [
      [1, 0],
      [7, 1.5],
      [1031, -3.25],
      [2049, 1 / 3],
    ] as const) {
      await check({
        sub: `size ${size}, value ${value}`,
        inputs: {},
        outputs: { out: { dtype: D, size, expected: ref.fill(size, value) } },
        call: (b, o) => b.fill(o.out, value),
      });
    }
  });

  const broadcastViews: ViewCase[] = [
    { label: 'broadcast a row [7] over [4,7]', source: 7, view: { shape: [4, 7], strides: [0, 1], offset: 0 } },
    { label: 'broadcast a column [4] over [4,6]', source: 4, view: { shape: [4, 6], strides: [1, 0], offset: 0 } },
  ];
  add(`copy ${D} views`, [D], async ({ check, rng }) => {
    for (const v of [...viewCases(), ...broadcastViews]) {
      const x = t(D, rng.normal(v.source, 0, 3));
      const size = prod(v.view.shape);
      await check({
        sub: v.label,
        inputs: { x },
        outputs: { out: { dtype: D, size, expected: ref.copy(x.values, v.view), shape: v.view.shape } },
        call: (b, o) => b.copy(o.out, o.x, v.view),
      });
    }
  });
  for (const E of dtypes) {
    if (E === D) continue;
    add(`copy ${D} → ${E} (cast)`, [D, E], async ({ check, rng }) => {
      for (const v of [viewCases()[0]!, viewCases()[2]!]) {
        const x = t(D, rng.normal(v.source, 0, 3));
        const size = prod(v.view.shape);
        await check({
          sub: v.label,
          inputs: { x },
          outputs: { out: { dtype: E, size, expected: ref.copy(x.values, v.view) } },
          call: (b, o) => b.copy(o.out, o.x, v.view),
        });
      }
    });
  }

  const addIntoCase =
    (dst: DType) =>
    async ({ check, rng }: Ctx) => {
      for (const v of injectiveViewCases()) {
        const size = prod(v.view.shape);
        const init = t(dst, rng.normal(v.source));
        const src = t(D, rng.normal(size));
        await check({
          sub: v.label,
          inputs: { src },
          outputs: { dst: { dtype: dst, size: v.source, init, expected: ref.addInto(init.values, src.values, v.view) } },
          call: (b, o) => b.addInto(o.dst, o.src, v.view),
        });
      }
    };
  add(`addInto ${D}`, [D], addIntoCase(D));
  if (D !== 'float32') add(`addInto ${D} into a float32 dst`, [D], addIntoCase('float32'), ['float32']);
}

// --- elementwise -----------------------------------------------------------------------------------

const UNARY_OPS: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'abs', 'silu', 'sigmoid', 'tanh', 'relu'];
const BINARY_OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min'];
const SIZES = [1, 7, 1031];

function unaryInput(op: UnaryOp, rng: TestRng, n: number): Float64Array {
  if (op === 'log' || op === 'sqrt' || op === 'rsqrt') return rng.uniform(n, 0.05, 5);
  if (op === 'exp') return rng.normal(n, 0, 2);
  // Away from the kinks of abs and relu, so that backward has one answer.
  return rng.awayFromZero(n, 0.01, 3);
}

function elementwiseCases(add: Add, D: DType, mixed: DType[]): void {
  unaryCases(add, D);
  affineCases(add, D);
  binaryCases(add, D, mixed);
  reduceCases(add, D);
}

/** unary and unaryBackward of every op, on each of SIZES. */
function unaryCases(add: Add, D: DType): void {
  for (const op of UNARY_OPS) {
    add(`unary ${op} ${D}`, [D], async ({ check, rng }) => {
      for (const n of SIZES) {
        const x = t(D, unaryInput(op, rng, n));
        await check({
          sub: `n=${n}`,
          inputs: { x },
          outputs: { out: { dtype: D, size: n, expected: ref.unary(op, x.values) } },
          call: (b, o) => b.unary(op, o.out, o.x),
        });
      }
    });
    add(`unaryBackward ${op} ${D}`, [D], async ({ check, rng }) => {
      for (const n of SIZES) {
        const x = t(D, unaryInput(op, rng, n));
        const y = t(D, ref.unary(op, x.values));
        const dy = t(D, rng.normal(n));
        await check({
          sub: `n=${n}`,
          inputs: { dy, x, y },
          outputs: { dx: { dtype: D, size: n, expected: ref.unaryBackward(op, dy.values, x.values, y.values), scale: 2 } },
          call: (b, o) => b.unaryBackward(op, o.dx, o.dy, o.x, o.y),
        });
      }
    });
  }
}

function affineCases(add: Add, D: DType): void {
  add(`affine ${D}`, [D], async ({ check, rng }) => {
    for (const [n, alpha, beta] of [
      [1, 2, 0.5],
      [7, -0.5, 0],
      [1031, 1, -1.25],
      [1031, 0, 3],
    ] as const) {
      const x = t(D, rng.normal(n, 0, 2));
      await check({
        sub: `n=${n} alpha=${alpha} beta=${beta}`,
        inputs: { x },
        outputs: { out: { dtype: D, size: n, expected: ref.affine(x.values, alpha, beta), scale: 2 } },
        call: (b, o) => b.affine(o.out, o.x, alpha, beta),
      });
    }
  });
}

/** Operand views of the binary cases: same shape, broadcasts, a transpose, an offset slice. */
function binaryViews(): { label: string; shape: number[]; a: ViewCase; b: ViewCase }[] {
  const c = ref.contiguousView;
  return [
    {
      label: 'same shape [3,1027]',
      shape: [3, 1027],
      a: { label: '', source: 3081, view: c([3, 1027]) },
      b: { label: '', source: 3081, view: c([3, 1027]) },
    },
    { label: 'size 1', shape: [1], a: { label: '', source: 1, view: c([1]) }, b: { label: '', source: 1, view: c([1]) } },
    {
      label: 'b a row broadcast over [4,7]',
      shape: [4, 7],
      a: { label: '', source: 28, view: c([4, 7]) },
      b: { label: '', source: 7, view: { shape: [4, 7], strides: [0, 1], offset: 0 } },
    },
    {
      label: 'a a column broadcast over [4,7], b transposed from [7,4]',
      shape: [4, 7],
      a: { label: '', source: 4, view: { shape: [4, 7], strides: [1, 0], offset: 0 } },
      b: { label: '', source: 28, view: { shape: [4, 7], strides: [1, 4], offset: 0 } },
    },
    {
      label: 'a a slice at offset 5, b a scalar broadcast',
      shape: [3, 5],
      a: { label: '', source: 40, view: { shape: [3, 5], strides: [8, 1], offset: 5 } },
      b: { label: '', source: 2, view: { shape: [3, 5], strides: [0, 0], offset: 1 } },
    },
  ];
}

/** binary of every op over binaryViews, and with a float32 b and out beside a 16-bit a. */
function binaryCases(add: Add, D: DType, mixed: DType[]): void {
  const binaryCase =
    (op: BinaryOp, bDtype: DType, outDtype: DType) =>
    async ({ check, rng }: Ctx) => {
      for (const v of binaryViews()) {
        const a = t(D, rng.normal(v.a.source, 0, 2));
        const bv = t(bDtype, op === 'div' ? rng.awayFromZero(v.b.source, 0.5) : rng.normal(v.b.source, 0, 2));
        await check({
          sub: v.label,
          inputs: { a, b: bv },
          outputs: {
            out: {
              dtype: outDtype,
              size: prod(v.shape),
              expected: ref.binary(op, a.values, v.a.view, bv.values, v.b.view),
              shape: v.shape,
              scale: 2,
            },
          },
          call: (b, o) => b.binary(op, o.out, o.a, v.a.view, o.b, v.b.view),
        });
      }
    };
  for (const op of BINARY_OPS) {
    add(`binary ${op} ${D}`, [D], binaryCase(op, D, D));
    for (const M of mixed) add(`binary ${op} ${D} with ${M} b and ${M} out`, [D], binaryCase(op, M, M), [M]);
  }
}

/** reduce (sum, max) over the middle of [outer, len, inner], and argmax of rows, ties included. */
function reduceCases(add: Add, D: DType): void {
  for (const op of ['sum', 'max'] as const) {
    add(`reduce ${op} ${D}`, [D], async ({ check, rng }) => {
      for (const [outer, len, inner] of [
        [1, 1, 1],
        [2, 5, 3],
        [1, 1537, 1],
        [4, 1, 7],
        [3, 33, 2],
        [2, 1031, 3],
      ] as const) {
        const x = t(D, rng.normal(outer * len * inner));
        await check({
          sub: `[outer ${outer}, reduce ${len}, inner ${inner}]`,
          inputs: { x },
          outputs: {
            out: {
              dtype: D,
              size: outer * inner,
              expected: ref.reduce(op, x.values, outer, len, inner),
              shape: [outer, inner],
              scale: op === 'sum' ? sqrtLen(len) : 1,
            },
          },
          call: (b, o) => b.reduce(op, o.out, o.x, outer, len, inner),
        });
      }
    });
  }

  add(`argmax ${D}`, [D], async ({ check, rng }) => {
    for (const [rows, cols, ties] of [
      [1, 1, false],
      [3, 7, false],
      [2, 1537, false],
      [5, 9, true],
      [2, 1031, true],
    ] as const) {
      // With ties: small integers (exact in every dtype), so several columns share the maximum.
      const values = ties ? Float64Array.from(rng.int(rows * cols, -3, 3)) : rng.normal(rows * cols);
      const x = t(D, values);
      await check({
        sub: `[${rows}, ${cols}]${ties ? ' with ties' : ''}`,
        inputs: { x },
        outputs: { out: { dtype: 'int32', size: rows, expected: ref.argmax(x.values, rows, cols) } },
        call: (b, o) => b.argmax(o.out, o.x, rows, cols),
      });
    }
  });
}

// --- matmul ----------------------------------------------------------------------------------------

interface MatmulCase {
  label: string;
  p: MatmulParams;
}

function matmulCaseList(): MatmulCase[] {
  const mk = (label: string, q: Partial<MatmulParams> & Pick<MatmulParams, 'm' | 'n' | 'k'>): MatmulCase => {
    const p: MatmulParams = {
      batch: 1,
      transA: false,
      transB: false,
      strideA: q.m * q.k,
      strideB: q.k * q.n,
      strideOut: q.m * q.n,
      alpha: 1,
      accumulate: false,
      ...q,
    };
    const flags = `${p.transA ? 'Aᵀ' : 'A'}·${p.transB ? 'Bᵀ' : 'B'}`;
    return {
      label: `${label}: ${flags} batch=${p.batch} m=${p.m} n=${p.n} k=${p.k} strides=${p.strideA}/${p.strideB}/${p.strideOut} alpha=${p.alpha}${p.accumulate ? ' accumulate' : ''}`,
      p,
    };
  };
  const list: MatmulCase[] = [mk('1×1×1', { m: 1, n: 1, k: 1 })];
  for (const transA of [false, true]) for (const transB of [false, true]) list.push(mk('small odd', { m: 7, n: 5, k: 3, transA, transB }));
  list.push(
    mk('long reduction', { m: 3, n: 4, k: 1025, transB: true }),
    mk('alpha and accumulate', { m: 33, n: 17, k: 65, alpha: 0.5, accumulate: true }),
    mk('alpha and accumulate', { m: 9, n: 130, k: 31, alpha: -2, accumulate: true, transA: true }),
    mk('batched, b broadcast (stride 0)', { batch: 3, m: 5, n: 6, k: 7, strideB: 0, transB: true }),
    mk('batched, a broadcast (stride 0)', { batch: 2, m: 4, n: 3, k: 6, strideA: 0, transA: true }),
    mk('batched with gaps between matrices', { batch: 3, m: 4, n: 5, k: 6, strideA: 4 * 6 + 3, strideB: 6 * 5 + 1 }),
    mk('batched attention-like', { batch: 4, m: 16, n: 16, k: 8, transB: true, alpha: 0.35 }),
    mk('GEMV m=1', { m: 1, n: 257, k: 64, transB: true }),
    mk('n=1', { m: 129, n: 1, k: 33 }),
    mk('k=1 outer product', { m: 6, n: 9, k: 1, transA: true }),
    mk('tile edges', { m: 65, n: 67, k: 129, transB: true }),
  );
  return list;
}

function matmulCases(add: Add, D: DType, mixed: DType[]): void {
  const run =
    (aDtype: DType, bDtype: DType, outDtype: DType, filter?: (c: MatmulCase) => boolean) =>
    async ({ check, rng }: Ctx) => {
      for (const c of matmulCaseList().filter(filter ?? (() => true))) {
        const { p } = c;
        const a = t(aDtype, rng.normal(ref.matmulSpan(p.batch, p.strideA, p.m * p.k)));
        const b = t(bDtype, rng.normal(ref.matmulSpan(p.batch, p.strideB, p.k * p.n)));
        const outSize = ref.matmulSpan(p.batch, p.strideOut, p.m * p.n);
        const init = p.accumulate ? t(outDtype, rng.normal(outSize)) : undefined;
        await check({
          sub: c.label,
          inputs: { a, b },
          outputs: {
            out: {
              dtype: outDtype,
              size: outSize,
              init,
              expected: ref.matmul(a.values, b.values, p, init?.values),
              scale: sqrtLen(p.k) * Math.abs(p.alpha) + 1,
            },
          },
          call: (bk, o) => bk.matmul(o.out, o.a, o.b, p),
        });
      }
    };
  add(`matmul ${D}`, [D], run(D, D, D));
  // Mixed dtypes are what LoRA on a 16-bit model runs (16-bit activations against float32 adapter
  // weights, and float32 products accumulated into 16-bit gradients): every layout, accumulation included.
  for (const M of mixed) {
    add(`matmul ${D} a, ${M} b, ${M} out`, [D], run(D, M, M), [M]);
    add(`matmul ${M} a, ${D} b, ${M} out`, [D], run(M, D, M), [M]);
    add(`matmul ${M} a, ${M} b, ${D} out`, [D], run(M, M, D), [M]);
    add(`matmul ${D} a, ${M} b, ${D} out`, [D], run(D, M, D), [M]);
  }
}

// --- embedding -------------------------------------------------------------------------------------

function embeddingCases(add: Add, D: DType, mixed: DType[]): void {
  const shapes = [
    [1, 1, 1],
    [11, 7, 9],
    [50, 1031, 3],
    [5, 1, 6],
    [3, 16, 40],
  ] as const; // [rows, dim, n]
  add(`embedding ${D}`, [D], async ({ check, rng }) => {
    for (const [rows, dim, n] of shapes) {
      const weight = t(D, rng.normal(rows * dim));
      const ids = t('int32', rng.int(n, 0, rows));
      await check({
        sub: `weight [${rows}, ${dim}], n=${n}`,
        inputs: { weight, ids },
        outputs: { out: { dtype: D, size: n * dim, expected: ref.embedding(weight.values, ids.values, n, dim), shape: [n, dim] } },
        call: (b, o) => b.embedding(o.out, o.weight, o.ids, n, dim),
      });
    }
  });
  const backward =
    (outDtype: DType) =>
    async ({ check, rng }: Ctx) => {
      for (const [rows, dim, n] of shapes) {
        const dOut = t(D, rng.normal(n * dim));
        // Repeated ids (n > rows in some shapes) must add up.
        const ids = t('int32', rng.int(n, 0, rows));
        await check({
          sub: `weight [${rows}, ${dim}], n=${n}`,
          inputs: { dOut, ids },
          outputs: {
            dWeight: {
              dtype: outDtype,
              size: rows * dim,
              expected: ref.embeddingBackward(dOut.values, ids.values, n, dim, rows),
              shape: [rows, dim],
              scale: sqrtLen(n),
            },
          },
          call: (b, o) => b.embeddingBackward(o.dWeight, o.dOut, o.ids, n, dim),
        });
      }
    };
  add(`embeddingBackward ${D}`, [D], backward(D));
  for (const M of mixed) add(`embeddingBackward ${D} dOut into ${M} dWeight`, [D], backward(M), [M]);
}

// --- norms -----------------------------------------------------------------------------------------

const NORM_SHAPES = [
  [1, 1],
  [3, 7],
  [5, 64],
  [2, 1537],
  [4, 33],
] as const; // [rows, dim]

function normCases(add: Add, D: DType): void {
  const eps = 1e-5;
  const configs = [
    { label: 'weight and bias', weight: true, bias: true },
    { label: 'no weight, no bias', weight: false, bias: false },
    { label: 'weight only', weight: true, bias: false },
  ];
  for (const [rows, dim] of NORM_SHAPES) {
    const p = { rows, dim, eps };
    const shape = `[${rows}, ${dim}]`;
    add(`layerNorm ${D} ${shape}`, [D], async ({ check, rng }) => {
      for (const c of configs) {
        const x = t(D, rng.normal(rows * dim, 1, 2));
        const weight = c.weight ? t(D, rng.normal(dim, 1, 0.5)) : null;
        const bias = c.bias ? t(D, rng.normal(dim, 0, 0.5)) : null;
        const e = ref.layerNorm(x.values, weight?.values ?? null, bias?.values ?? null, p);
        await check({
          sub: c.label,
          inputs: { x, weight, bias },
          outputs: {
            out: { dtype: D, size: rows * dim, expected: e.out, shape: [rows, dim], scale: 4 },
            mean: { dtype: 'float32', size: rows, expected: e.mean, scale: 2 },
            rstd: { dtype: 'float32', size: rows, expected: e.rstd, scale: 2 },
          },
          call: (b, o) => b.layerNorm(o.out, o.mean, o.rstd, o.x, o.weight ?? null, o.bias ?? null, p),
        });
      }
    });
    add(`layerNormBackward ${D} ${shape}`, [D], async ({ check, rng }) => {
      for (const c of configs) {
        const x = t(D, rng.normal(rows * dim, 1, 2));
        const weight = c.weight ? t(D, rng.normal(dim, 1, 0.5)) : null;
        const dy = t(D, rng.normal(rows * dim));
        const stats = ref.layerNorm(x.values, null, null, p);
        const e = ref.layerNormBackward(dy.values, x.values, weight?.values ?? null, p);
        await check({
          sub: c.label,
          inputs: { dy, x, weight, mean: t('float32', stats.mean), rstd: t('float32', stats.rstd) },
          outputs: {
            dx: { dtype: D, size: rows * dim, expected: e.dx, shape: [rows, dim], scale: 4 * sqrtLen(dim) },
            ...(c.weight ? { dWeight: { dtype: 'float32' as DType, size: dim, expected: e.dWeight, scale: 4 * sqrtLen(rows) } } : {}),
            ...(c.bias ? { dBias: { dtype: 'float32' as DType, size: dim, expected: e.dBias, scale: 4 * sqrtLen(rows) } } : {}),
          },
          call: (b, o) => b.layerNormBackward(o.dx, o.dWeight ?? null, o.dBias ?? null, o.dy, o.x, o.weight ?? null, o.mean, o.rstd, p),
        });
      }
    });
    add(`rmsNorm ${D} ${shape}`, [D], async ({ check, rng }) => {
      for (const c of configs.slice(0, 2)) {
        const x = t(D, rng.normal(rows * dim, 0.5, 2));
        const weight = c.weight ? t(D, rng.normal(dim, 1, 0.5)) : null;
        const e = ref.rmsNorm(x.values, weight?.values ?? null, p);
        await check({
          sub: c.weight ? 'weight' : 'no weight',
          inputs: { x, weight },
          outputs: {
            out: { dtype: D, size: rows * dim, expected: e.out, shape: [rows, dim], scale: 4 },
            rstd: { dtype: 'float32', size: rows, expected: e.rstd, scale: 2 },
          },
          call: (b, o) => b.rmsNorm(o.out, o.rstd, o.x, o.weight ?? null, p),
        });
      }
    });
    add(`rmsNormBackward ${D} ${shape}`, [D], async ({ check, rng }) => {
      for (const c of configs.slice(0, 2)) {
        const x = t(D, rng.normal(rows * dim, 0.5, 2));
        const weight = c.weight ? t(D, rng.normal(dim, 1, 0.5)) : null;
        const dy = t(D, rng.normal(rows * dim));
        const e = ref.rmsNormBackward(dy.values, x.values, weight?.values ?? null, p);
        await check({
          sub: c.weight ? 'weight' : 'no weight',
          inputs: { dy, x, weight, rstd: t('float32', ref.rmsNorm(x.values, null, p).rstd) },
          outputs: {
            dx: { dtype: D, size: rows * dim, expected: e.dx, shape: [rows, dim], scale: 4 * sqrtLen(dim) },
            ...(c.weight ? { dWeight: { dtype: 'float32' as DType, size: dim, expected: e.dWeight, scale: 4 * sqrtLen(rows) } } : {}),
          },
          call: (b, o) => b.rmsNormBackward(o.dx, o.dWeight ?? null, o.dy, o.x, o.weight ?? null, o.rstd, p),
        });
      }
    });
  }
}

// --- rotary ----------------------------------------------------------------------------------------

interface RotaryCase {
  label: string;
  p: RotaryParams;
  positions: (rng: TestRng) => Int32Array;
}

function rotaryCaseList(): RotaryCase[] {
  const arange = (batch: number, seq: number, start: (b: number) => number) =>
    Int32Array.from({ length: batch * seq }, (_, i) => start(Math.floor(i / seq)) + (i % seq));
  return [
    {
      label: 'one pair',
      p: { batch: 1, seq: 1, heads: 1, headDim: 2, rotaryDim: 2, base: 10000, positionScale: 1 },
      positions: () => Int32Array.of(5),
    },
    {
      label: 'full rotation, offset positions (KV cache)',
      p: { batch: 2, seq: 5, heads: 3, headDim: 8, rotaryDim: 8, base: 10000, positionScale: 1 },
      positions: () => arange(2, 5, (b) => 3 * b),
    },
    {
      label: 'rotaryDim < headDim (rotary_pct)',
      p: { batch: 1, seq: 7, heads: 2, headDim: 16, rotaryDim: 8, base: 10000, positionScale: 1 },
      positions: () => arange(1, 7, () => 0),
    },
    {
      label: 'rotaryDim 4 of headDim 6',
      p: { batch: 2, seq: 2, heads: 1, headDim: 6, rotaryDim: 4, base: 10000, positionScale: 1 },
      positions: () => Int32Array.of(0, 1, 9, 4),
    },
    {
      label: 'Llama-3 base, linear scaling 2, random positions',
      p: { batch: 2, seq: 3, heads: 4, headDim: 64, rotaryDim: 64, base: 500000, positionScale: 2 },
      positions: (rng) => rng.int(6, 0, 60),
    },
    {
      label: 'headDim 128, rotaryDim 32, positions up to 2000',
      p: { batch: 1, seq: 4, heads: 2, headDim: 128, rotaryDim: 32, base: 10000, positionScale: 1 },
      positions: () => Int32Array.of(0, 17, 1023, 2000),
    },
  ];
}

function rotaryCases(add: Add, D: DType): void {
  for (const backward of [false, true]) {
    add(`${backward ? 'rotaryBackward' : 'rotary'} ${D}`, [D], async ({ check, rng }) => {
      for (const c of rotaryCaseList()) {
        const { p } = c;
        const size = p.batch * p.seq * p.heads * p.headDim;
        const positions = t('int32', c.positions(rng));
        const x = t(D, rng.normal(size));
        const maxPos = Math.max(...positions.values);
        // Backends compute the angle position·inv_freq in float32: its error grows with the position.
        const scale = 1 + maxPos / 16;
        const expected = backward ? ref.rotaryBackward(x.values, positions.values, p) : ref.rotary(x.values, positions.values, p);
        await check({
          sub: `${c.label}: [${p.batch}, ${p.seq}, ${p.heads}, ${p.headDim}] rotaryDim ${p.rotaryDim}`,
          inputs: { x, positions },
          outputs: { out: { dtype: D, size, expected, shape: [p.batch, p.seq, p.heads, p.headDim], scale } },
          call: (b, o) => (backward ? b.rotaryBackward(o.out, o.x, o.positions, p) : b.rotary(o.out, o.x, o.positions, p)),
        });
      }
    });
  }
}

// --- attention -------------------------------------------------------------------------------------

interface AttentionCase {
  label: string;
  p: AttentionParams;
  /** int32 [batch, seqK], 1 = real token; null = no mask. */
  mask: ((rng: TestRng) => number[]) | null;
}

function attentionCaseList(): AttentionCase[] {
  const a = (label: string, q: Omit<AttentionParams, 'scale'> & { scale?: number }, mask: AttentionCase['mask'] = null): AttentionCase => ({
    label: `${label}: batch ${q.batch} seqQ ${q.seqQ} seqK ${q.seqK} heads ${q.heads}/${q.kvHeads} headDim ${q.headDim}${q.causal ? ' causal' : ''}${mask ? ' masked' : ''}`,
    p: { scale: 1 / Math.sqrt(q.headDim), ...q },
    mask,
  });
  return [
    a('one query, one key', { batch: 1, seqQ: 1, seqK: 1, heads: 1, kvHeads: 1, headDim: 1, causal: false, scale: 1 }),
    a('causal self-attention', { batch: 2, seqQ: 5, seqK: 5, heads: 4, kvHeads: 4, headDim: 8, causal: true }),
    a(
      'KV cache seqQ < seqK, GQA 2:1, left padding',
      { batch: 2, seqQ: 3, seqK: 7, heads: 4, kvHeads: 2, headDim: 16, causal: true },
      () => [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1],
    ),
    a(
      'padding mask, one sequence all padding (rows see no key)',
      { batch: 2, seqQ: 6, seqK: 6, heads: 6, kvHeads: 2, headDim: 8, causal: false },
      () => [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    ),
    a(
      'causal with left padding: first rows see no key, MQA',
      { batch: 1, seqQ: 4, seqK: 4, heads: 2, kvHeads: 1, headDim: 8, causal: true },
      () => [0, 0, 1, 1],
    ),
    a('causal seqQ > seqK: first rows see no key', { batch: 1, seqQ: 4, seqK: 2, heads: 2, kvHeads: 2, headDim: 4, causal: true }),
    a('large scores (scale 1)', { batch: 1, seqQ: 8, seqK: 8, heads: 2, kvHeads: 2, headDim: 64, causal: false, scale: 1 }),
    a('longer than a 128 tile, MQA', { batch: 1, seqQ: 130, seqK: 130, heads: 2, kvHeads: 1, headDim: 64, causal: true }),
    a(
      'headDim 128 past a 64 tile, GQA, right padding',
      { batch: 2, seqQ: 70, seqK: 70, heads: 4, kvHeads: 2, headDim: 128, causal: true },
      () => Array.from({ length: 140 }, (_, i) => (i >= 130 ? 0 : 1)),
    ),
    a('headDim 64, queries after a cache (seqQ < seqK)', { batch: 1, seqQ: 20, seqK: 90, heads: 2, kvHeads: 2, headDim: 64, causal: true }),
    a(
      'decode over a long cache, random padding',
      { batch: 1, seqQ: 2, seqK: 1030, heads: 4, kvHeads: 2, headDim: 32, causal: true },
      (rng) => Array.from(rng.uniform(1030), (u) => (u < 0.1 ? 0 : 1)),
    ),
  ];
}

function attentionCases(add: Add, D: DType): void {
  for (const c of attentionCaseList()) {
    const { p } = c;
    const qSize = p.batch * p.seqQ * p.heads * p.headDim;
    const kSize = p.batch * p.seqK * p.kvHeads * p.headDim;
    const inputs = (rng: TestRng) => ({
      q: t(D, rng.normal(qSize)),
      k: t(D, rng.normal(kSize)),
      v: t(D, rng.normal(kSize)),
      mask: c.mask ? t('int32', c.mask(rng)) : null,
    });
    const qShape = [p.batch, p.seqQ, p.heads, p.headDim];
    const kShape = [p.batch, p.seqK, p.kvHeads, p.headDim];
    add(`attention ${D} ${c.label}`, [D], async ({ check, rng }) => {
      const x = inputs(rng);
      const e = ref.attention(x.q.values, x.k.values, x.v.values, x.mask?.values ?? null, p);
      await check({
        inputs: x,
        outputs: {
          out: { dtype: D, size: qSize, expected: e.out, shape: qShape, scale: 4 },
          lse: { dtype: 'float32', size: p.batch * p.heads * p.seqQ, expected: e.lse, shape: [p.batch, p.heads, p.seqQ], scale: 4 },
        },
        call: (b, o) => b.attention(o.out, o.lse, o.q, o.k, o.v, o.mask ?? null, p),
      });
    });
    add(`attentionBackward ${D} ${c.label}`, [D], async ({ check, rng }) => {
      const x = inputs(rng);
      const fwd = ref.attention(x.q.values, x.k.values, x.v.values, x.mask?.values ?? null, p);
      const dOut = t(D, rng.normal(qSize));
      const e = ref.attentionBackward(dOut.values, x.q.values, x.k.values, x.v.values, x.mask?.values ?? null, p);
      const group = p.heads / p.kvHeads;
      await check({
        inputs: { ...x, dOut, out: t(D, fwd.out), lse: t('float32', fwd.lse) },
        outputs: {
          dq: { dtype: D, size: qSize, expected: e.dq, shape: qShape, scale: 4 * sqrtLen(p.seqK) },
          dk: { dtype: D, size: kSize, expected: e.dk, shape: kShape, scale: 4 * sqrtLen(p.seqQ * group) },
          dv: { dtype: D, size: kSize, expected: e.dv, shape: kShape, scale: 4 * sqrtLen(p.seqQ * group) },
        },
        call: (b, o) => b.attentionBackward(o.dq, o.dk, o.dv, o.dOut, o.q, o.k, o.v, o.out, o.lse, o.mask ?? null, p),
      });
    });
  }
}

// --- activations -----------------------------------------------------------------------------------

function activationCases(add: Add, D: DType): void {
  const special = [-10, -5, -3, -1, -0.5, 0, 0.5, 1, 3, 5, 10];
  const inputs = (rng: TestRng) => [Float64Array.from(special), ...SIZES.map((n) => rng.normal(n, 0, 3))];
  for (const approximate of [false, true]) {
    const kind = approximate ? 'tanh' : 'exact';
    add(`gelu ${kind} ${D}`, [D], async ({ check, rng }) => {
      for (const values of inputs(rng)) {
        const x = t(D, values);
        await check({
          sub: `n=${values.length}`,
          inputs: { x },
          outputs: { out: { dtype: D, size: values.length, expected: ref.gelu(x.values, approximate), scale: 2 } },
          call: (b, o) => b.gelu(o.out, o.x, approximate),
        });
      }
    });
    add(`geluBackward ${kind} ${D}`, [D], async ({ check, rng }) => {
      for (const values of inputs(rng)) {
        const x = t(D, values);
        const dy = t(D, rng.normal(values.length));
        await check({
          sub: `n=${values.length}`,
          inputs: { dy, x },
          outputs: { dx: { dtype: D, size: values.length, expected: ref.geluBackward(dy.values, x.values, approximate), scale: 2 } },
          call: (b, o) => b.geluBackward(o.dx, o.dy, o.x, approximate),
        });
      }
    });
  }
  add(`siluMul ${D}`, [D], async ({ check, rng }) => {
    for (const values of inputs(rng)) {
      const gate = t(D, values);
      const up = t(D, rng.normal(values.length));
      await check({
        sub: `n=${values.length}`,
        inputs: { gate, up },
        outputs: { out: { dtype: D, size: values.length, expected: ref.siluMul(gate.values, up.values), scale: 2 } },
        call: (b, o) => b.siluMul(o.out, o.gate, o.up),
      });
    }
  });
  add(`siluMulBackward ${D}`, [D], async ({ check, rng }) => {
    for (const values of inputs(rng)) {
      const n = values.length;
      const gate = t(D, values);
      const up = t(D, rng.normal(n));
      const dy = t(D, rng.normal(n));
      const e = ref.siluMulBackward(dy.values, gate.values, up.values);
      await check({
        sub: `n=${n}`,
        inputs: { dy, gate, up },
        outputs: { dGate: { dtype: D, size: n, expected: e.dGate, scale: 2 }, dUp: { dtype: D, size: n, expected: e.dUp, scale: 2 } },
        call: (b, o) => b.siluMulBackward(o.dGate, o.dUp, o.dy, o.gate, o.up),
      });
    }
  });
}

// --- loss ------------------------------------------------------------------------------------------

interface LossCase {
  rows: number;
  classes: number;
  ignoreIndex: number;
  /** Added to every logit (tests the max subtraction). */
  shift: number;
  /** Rows whose target is ignoreIndex. */
  ignored: number[];
}

function lossCases(add: Add, D: DType): void {
  const list: LossCase[] = [
    { rows: 1, classes: 1, ignoreIndex: -100, shift: 0, ignored: [] },
    { rows: 3, classes: 7, ignoreIndex: -100, shift: 0, ignored: [1] },
    { rows: 4, classes: 1030, ignoreIndex: -100, shift: 0, ignored: [0, 3] },
    { rows: 2, classes: 32003, ignoreIndex: -100, shift: 0, ignored: [] },
    { rows: 5, classes: 50, ignoreIndex: -100, shift: 60, ignored: [] },
    { rows: 4, classes: 9, ignoreIndex: 3, shift: 0, ignored: [2] },
    { rows: 2, classes: 5, ignoreIndex: -100, shift: 0, ignored: [0, 1] },
  ];
  const make = (c: LossCase, rng: TestRng) => {
    const logits = t(D, rng.normal(c.rows * c.classes, c.shift, 3));
    const targets = Array.from(rng.int(c.rows, 0, c.classes), (v) => (v === c.ignoreIndex ? (v + 1) % c.classes : v));
    for (const r of c.ignored) targets[r] = c.ignoreIndex;
    return { logits, targets: t('int32', targets) };
  };
  const label = (c: LossCase) =>
    `[${c.rows}, ${c.classes}] ignoreIndex ${c.ignoreIndex}${c.ignored.length ? ` on rows ${c.ignored.join(',')}` : ''}${c.shift ? ` logits shifted by ${c.shift}` : ''}`;
  add(`crossEntropy ${D}`, [D], async ({ check, rng }) => {
    for (const c of list) {
      const p = { rows: c.rows, classes: c.classes, ignoreIndex: c.ignoreIndex };
      const x = make(c, rng);
      const e = ref.crossEntropy(x.logits.values, x.targets.values, p);
      await check({
        sub: label(c),
        inputs: x,
        outputs: {
          loss: { dtype: 'float32', size: c.rows, expected: e.loss, scale: 4 + Math.abs(c.shift) },
          // lse of an ignored row is not specified.
          lse: { dtype: 'float32', size: c.rows, expected: e.lse, scale: 4 + Math.abs(c.shift), care: (r) => !c.ignored.includes(r) },
        },
        call: (b, o) => b.crossEntropy(o.loss, o.lse, o.logits, o.targets, p),
      });
    }
  });
  add(`crossEntropyBackward ${D}`, [D], async ({ check, rng }) => {
    for (const c of list) {
      const p = { rows: c.rows, classes: c.classes, ignoreIndex: c.ignoreIndex };
      const x = make(c, rng);
      const dLoss = t('float32', rng.normal(c.rows));
      const lse = t('float32', ref.crossEntropy(x.logits.values, x.targets.values, p).lse);
      await check({
        sub: label(c),
        inputs: { ...x, dLoss, lse },
        outputs: {
          dLogits: {
            dtype: D,
            size: c.rows * c.classes,
            expected: ref.crossEntropyBackward(dLoss.values, x.logits.values, x.targets.values, p),
            shape: [c.rows, c.classes],
            scale: 2,
          },
        },
        call: (b, o) => b.crossEntropyBackward(o.dLogits, o.dLoss, o.logits, o.targets, o.lse, p),
      });
    }
  });
}

// --- randomness ------------------------------------------------------------------------------------

function randomCases(add: Add, D: DType): void {
  const list = [
    { n: 1, seed: 0, offset: 0 },
    { n: 5, seed: 42, offset: 7 },
    { n: 1031, seed: 1234567, offset: 3 },
    { n: 64, seed: 2 ** 33 + 5, offset: 2 ** 32 + 1 },
  ];
  for (const distribution of ['uniform', 'normal'] as const) {
    add(`random ${distribution} ${D}`, [D], async ({ check }) => {
      for (const { n, seed, offset } of list) {
        const p =
          distribution === 'uniform' ? { seed, offset, distribution, low: -2, high: 3 } : { seed, offset, distribution, low: 0.5, high: 2 };
        await check({
          sub: `n=${n} seed=${seed} offset=${offset}`,
          inputs: {},
          outputs: { out: { dtype: D, size: n, expected: ref.random(n, p), scale: 8 } },
          call: (b, o) => b.random(o.out, p),
        });
      }
    });
  }
  for (const backward of [false, true]) {
    add(`${backward ? 'dropoutBackward' : 'dropout'} ${D}`, [D], async ({ check, rng }) => {
      for (const [n, prob, seed, offset] of [
        [1, 0.5, 1, 0],
        [7, 0.1, 99, 3],
        [1031, 0.5, 12345, 11],
        [1031, 0, 5, 0],
        [2048, 0.25, 2 ** 40 + 3, 2 ** 33],
      ] as const) {
        const p = { p: prob, seed, offset };
        const x = t(D, rng.normal(n));
        await check({
          sub: `n=${n} p=${prob} seed=${seed} offset=${offset}`,
          inputs: { x },
          outputs: {
            out: { dtype: D, size: n, expected: backward ? ref.dropoutBackward(x.values, p) : ref.dropout(x.values, p), scale: 2 },
          },
          call: (b, o) => (backward ? b.dropoutBackward(o.out, o.x, p) : b.dropout(o.out, o.x, p)),
        });
      }
    });
  }
}

// --- optimizer -------------------------------------------------------------------------------------

function adamwCases(add: Add, D: DType): void {
  add(`adamw ${D}`, [D], async ({ check, rng }) => {
    for (const [n, step, weightDecay, gradScale] of [
      [1, 1, 0, 1],
      [7, 1, 0.01, 1],
      [1031, 10, 0.1, 0.25],
      [1031, 1000, 0.01, 1],
    ] as const) {
      const p = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, step, gradScale };
      const param = t(D, rng.normal(n));
      const grad = t(D, rng.normal(n, 0, 0.1));
      const m = t('float32', rng.normal(n, 0, 0.01));
      const v = t('float32', rng.uniform(n, 0, 1e-3));
      const e = ref.adamw(param.values, grad.values, m.values, v.values, p);
      await check({
        sub: `n=${n} step=${step} weightDecay=${weightDecay} gradScale=${gradScale}`,
        inputs: { grad },
        outputs: {
          param: { dtype: D, size: n, init: param, expected: e.param, scale: 2 },
          m: { dtype: 'float32', size: n, init: m, expected: e.m },
          v: { dtype: 'float32', size: n, init: v, expected: e.v },
        },
        call: (b, o) => b.adamw(o.param, o.grad, o.m, o.v, p),
      });
    }
  });
  // The values a captured step replays with: lr, bias corrections and gradScale read on the device;
  // p's own lr, step and gradScale must not be used.
  add(`adamw scalars ${D}`, [D], async ({ check, rng }) => {
    for (const [n, step, weightDecay, gradScale] of [
      [5, 3, 0.01, 0.5],
      [1031, 200, 0, 1],
    ] as const) {
      const p = { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, step: 1, gradScale: 3 };
      const scalars = t('float32', [2e-3, 1 - 0.9 ** step, 1 - 0.999 ** step, gradScale]);
      const param = t(D, rng.normal(n));
      const grad = t(D, rng.normal(n, 0, 0.1));
      const m = t('float32', rng.normal(n, 0, 0.01));
      const v = t('float32', rng.uniform(n, 0, 1e-3));
      const e = ref.adamw(param.values, grad.values, m.values, v.values, p, scalars.values);
      await check({
        sub: `n=${n} step=${step} weightDecay=${weightDecay} gradScale=${gradScale}`,
        inputs: { grad, scalars },
        outputs: {
          param: { dtype: D, size: n, init: param, expected: e.param, scale: 2 },
          m: { dtype: 'float32', size: n, init: m, expected: e.m },
          v: { dtype: 'float32', size: n, init: v, expected: e.v },
        },
        call: (b, o) => b.adamw(o.param, o.grad, o.m, o.v, p, o.scalars),
      });
    }
  });
}
