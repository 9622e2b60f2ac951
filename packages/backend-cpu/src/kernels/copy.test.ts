import type { DType, View } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../backend.js';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { backend, download, upload } from '../test-helpers.js';
import { addRows32, gatherRows16, gatherRows32, gatherRows64 } from './copy.js';

describe('fill', () => {
  it('fills every dtype, rounding floats to storage', async () => {
    const be = backend();
    const f = be.alloc('float32', 3);
    be.fill(f, 2.5);
    expect(await download(be, f)).toEqual([2.5, 2.5, 2.5]);
    const h = be.alloc('bfloat16', 2);
    be.fill(h, 1 / 3);
    expect(await be.read(h)).toEqual(new Uint16Array([0x3eab, 0x3eab]));
    const i = be.alloc('int32', 2);
    be.fill(i, -7);
    expect(await download(be, i)).toEqual([-7, -7]);
    expect(() => be.fill(i, 0.5)).toThrow(/fill: value 0.5 cannot be stored in an int32 buffer/);
    be.destroy();
  });
});

describe('copy', () => {
  it('permutes (transpose of a [2,3] matrix)', async () => {
    const be = backend();
    const x = upload(be, [1, 2, 3, 4, 5, 6]);
    const out = be.alloc('float32', 6);
    be.copy(out, x, { shape: [3, 2], strides: [1, 3], offset: 0 });
    expect(await download(be, out)).toEqual([1, 4, 2, 5, 3, 6]);
    be.destroy();
  });

  it('slices, broadcasts and reverses with negative strides', async () => {
    const be = backend();
    const x = upload(be, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]); // [3, 4]
    const slice = be.alloc('float32', 4);
    be.copy(slice, x, { shape: [2, 2], strides: [4, 1], offset: 5 }); // rows 1..2, cols 1..2
    expect(await download(be, slice)).toEqual([5, 6, 9, 10]);
    const bcast = be.alloc('float32', 6);
    be.copy(bcast, x, { shape: [2, 3], strides: [0, 1], offset: 1 }); // row [1,2,3] twice
    expect(await download(be, bcast)).toEqual([1, 2, 3, 1, 2, 3]);
    const rev = be.alloc('float32', 4);
    be.copy(rev, x, { shape: [4], strides: [-1], offset: 3 });
    expect(await download(be, rev)).toEqual([3, 2, 1, 0]);
    const scalar = be.alloc('float32', 1);
    be.copy(scalar, x, { shape: [], strides: [], offset: 7 });
    expect(await download(be, scalar)).toEqual([7]);
    // 4-d permute: [2, 1, 2, 3] → swap the last two axes, with a size-1 axis in between
    const y = upload(
      be,
      Array.from({ length: 12 }, (_, i) => i),
    );
    const perm = be.alloc('float32', 12);
    be.copy(perm, y, { shape: [2, 1, 3, 2], strides: [6, 6, 1, 3], offset: 0 });
    expect(await download(be, perm)).toEqual([0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
    be.destroy();
  });

  it('converts dtypes: f32 → bf16/f16 rounds, bf16 → f32 exact, int32 ↔ float', async () => {
    const be = backend();
    const x = upload(be, [1 / 3, 65520, -2.75, 2 ** -24]);
    const view = { shape: [4], strides: [1], offset: 0 };
    const bf = be.alloc('bfloat16', 4);
    be.copy(bf, x, view);
    expect((await be.read(bf))[0]).toBe(0x3eab);
    const h = be.alloc('float16', 4);
    be.copy(h, x, view);
    expect(await be.read(h)).toEqual(new Uint16Array([0x3555, 0x7c00, 0xc180, 0x0001]));
    const back = be.alloc('float32', 4);
    be.copy(back, bf, view);
    expect((await download(be, back))[0]).toBe(0.333984375);
    const h2 = be.alloc('bfloat16', 4);
    be.copy(h2, h, view); // f16 → bf16 through float32
    expect(await download(be, h2)).toEqual([0.333984375, Number.POSITIVE_INFINITY, -2.75, 2 ** -24]);
    const ints = be.alloc('int32', 4);
    const y = upload(be, [2.9, -2.9, 0, 1e9]);
    be.copy(ints, y, view);
    expect(await download(be, ints)).toEqual([2, -2, 0, 1000000000]);
    const floats = be.alloc('float32', 4);
    be.copy(floats, ints, view);
    expect(await download(be, floats)).toEqual([2, -2, 0, 1000000000]);
    const big = upload(be, [16777217, 2147483647], 'int32');
    const bigCopy = be.alloc('int32', 2);
    be.copy(bigCopy, big, { shape: [2], strides: [1], offset: 0 }); // int32 → int32 stays exact
    expect(await download(be, bigCopy)).toEqual([16777217, 2147483647]);
    const bad = upload(be, [1, Number.NaN]);
    expect(() => be.copy(be.alloc('int32', 2), bad, { shape: [2], strides: [1], offset: 0 })).toThrow(/element 1 has value NaN/);
    be.destroy();
  });

  it('rejects views that leave the buffer and outputs that are too small', () => {
    const be = backend();
    const x = upload(be, [1, 2, 3, 4]);
    expect(() => be.copy(be.alloc('float32', 4), x, { shape: [2, 2], strides: [2, 1], offset: 1 })).toThrow(
      /copy: x view \(shape \[2,2\], strides \[2,1\], offset 1\) reaches elements 1..4 of a buffer of 4/,
    );
    expect(() => be.copy(be.alloc('float32', 3), x, { shape: [4], strides: [1], offset: 0 })).toThrow(
      /copy: out has 3 elements but the parameters need at least 4/,
    );
    expect(() => be.copy(be.alloc('float32', 4), x, { shape: [4], strides: [-1], offset: 0 })).toThrow(/reaches elements -3..0/);
    expect(() => be.copy(be.alloc('float32', 4), x, { shape: [4], strides: [1, 1], offset: 0 })).toThrow(/2 strides for 1 dimensions/);
    be.destroy();
  });
});

describe('addInto', () => {
  it('adds into a strided view of a float32 buffer (backward of copy)', async () => {
    const be = backend();
    const dst = upload(be, [1, 1, 1, 1, 1, 1]); // [2, 3]
    const src = upload(be, [10, 20, 30, 40]);
    be.addInto(dst, src, { shape: [2, 2], strides: [1, 3], offset: 1 }); // transposed view of columns 1..2
    expect(await download(be, dst)).toEqual([1, 11, 31, 1, 21, 41]);
    be.destroy();
  });

  it('rounds into a bfloat16 buffer and leaves elements outside the view alone', async () => {
    const be = backend();
    const dst = be.alloc('bfloat16', 3);
    be.write(dst, new Uint16Array([0x3f80, 0x7fc1, 0x3f80])); // 1, NaN with payload, 1
    const src = upload(be, [1 / 3, 2 ** -9]);
    be.addInto(dst, src, { shape: [2], strides: [2], offset: 0 });
    // 1 + 1/3 → bf16 1.3359375 (0x3fab); 1 + 2^-9 rounds back to 1.
    expect(await be.read(dst)).toEqual(new Uint16Array([0x3fab, 0x7fc1, 0x3f80]));
    be.destroy();
  });
});

// --- row kernels: the same bits on one and two threads -------------------------------------------

const one = createCpuBackend({ threads: 1 });
const two = createCpuBackend({ threads: 2 });
afterAll(() => {
  one.destroy();
  two.destroy();
});
const workerTasks = (): number => (two as unknown as CpuContext).pool!.workerTasks;

/** Raw storage of `n` elements of `dtype` with pseudo-random bits (float32: every class of NaN included). */
function rawBits(dtype: DType, n: number, seed: number): Int32Array | Uint16Array {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  if (dtype === 'float16' || dtype === 'bfloat16') return Uint16Array.from({ length: n }, () => next() >>> 16);
  const bits = Int32Array.from({ length: n }, () => next() | 0);
  if (dtype === 'float32') for (let i = 0; i < n; i += 7) bits[i] = (bits[i] | 0x7f800000) & (i % 14 === 0 ? ~0x400000 : -1); // NaNs, signalling ones too
  return bits;
}

const rawOf = (b: CpuBuffer): Int32Array | Uint16Array =>
  b.data instanceof Float32Array ? new Int32Array(b.data.buffer, b.data.byteOffset, b.data.length) : (b.data as Int32Array | Uint16Array);

/** The element index of x that view element i reads, for every i (index by index: the meaning of a copy). */
function viewIndices(view: View): Float64Array {
  const count = view.shape.reduce((a, b) => a * b, 1);
  const at = new Float64Array(count);
  const idx = view.shape.map(() => 0);
  for (let i = 0; i < count; i++) {
    let p = view.offset;
    for (let d = 0; d < idx.length; d++) p += idx[d] * view.strides[d];
    at[i] = p;
    for (let d = view.shape.length - 1; d >= 0 && ++idx[d] === view.shape[d]; d--) idx[d] = 0;
  }
  return at;
}

/** The first index where two arrays differ (as bits for float32), or -1; vitest's deep equality is slow on 10⁵ elements. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Int32Array(x.buffer, x.byteOffset, x.length) : x);
  const [p, q] = [bits(a), bits(b)];
  if (p.length !== q.length) return Math.min(p.length, q.length);
  for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return i;
  return -1;
}

function copyOn(be: typeof one, dtype: DType, size: number, view: View): Int32Array | Uint16Array {
  const x = be.alloc(dtype, size) as CpuBuffer;
  rawOf(x).set(rawBits(dtype, size, 11));
  const count = view.shape.reduce((a, b) => a * b, 1);
  const out = be.alloc(dtype, count) as CpuBuffer;
  be.copy(out, x, view);
  const bits = rawOf(out).slice();
  be.free(x);
  be.free(out);
  return bits;
}

const [B, S, H, D] = [8, 64, 6, 64];
/** Views of every fast path, each over 128 Ki elements (so that 16-bit outputs are shared memory too). */
const views: [string, number, View][] = [
  [
    'one part of a fused q/k/v (aligned short rows: float64 words)',
    B * S * H * 3 * D,
    { shape: [B, S, H, 1, D], strides: [S * H * 3 * D, H * 3 * D, 3 * D, D, 1], offset: D },
  ],
  ['rows at an odd offset (element loop)', B * S * H * 3 * D, { shape: [B * S * H, D], strides: [3 * D, 1], offset: 1 }],
  ['odd row length 63 (loop tail)', B * S * H * 3 * D, { shape: [B * S * H, 63], strides: [3 * D, 1], offset: 2 }],
  ['bias row broadcast (stride 0, long rows)', 771, { shape: [200, 771], strides: [0, 1], offset: 0 }],
  ['long rows at an odd offset (set)', 300 * 700, { shape: [299, 513], strides: [700, 1], offset: 3 }],
  ['a transpose (strided rows)', 513 * 257, { shape: [257, 513], strides: [1, 257], offset: 0 }],
  ['heads to the front (two levels of rows)', B * S * H * D, { shape: [B, H, S, D], strides: [S * H * D, D, H * D, 1], offset: 0 }],
  ['one long row, reversed with an odd step (cut into pieces)', 3 * 140_001, { shape: [140_001], strides: [-3], offset: 3 * 140_000 + 1 }],
  ['one long contiguous row at an offset (cut into pieces)', 140_006, { shape: [140_002], strides: [1], offset: 4 }],
  ['an inner broadcast (step 0 rows)', 70_001, { shape: [70_001, 2], strides: [1, 0], offset: 0 }],
];

describe('copy on worker threads', () => {
  for (const dtype of ['float32', 'int32', 'bfloat16', 'float16'] as const) {
    it(`moves ${dtype} bits exactly, the same on one and two threads, the workers taking tasks`, () => {
      const before = workerTasks();
      for (const [name, size, view] of views) {
        const single = copyOn(one, dtype, size, view);
        const split = copyOn(two, dtype, size, view);
        const x = rawBits(dtype, size, 11);
        expect(
          firstDifference(
            single,
            Array.from(viewIndices(view), (p) => x[p]),
          ),
          name,
        ).toBe(-1);
        expect(firstDifference(split, single), name).toBe(-1);
      }
      expect(workerTasks()).toBeGreaterThan(before);
    });
  }

  it('row kernels give the same rows from any starting row (the walk over several levels)', () => {
    const src = Int32Array.from({ length: 6000 }, (_, i) => i * 7 + 1);
    // rows of 4 over outer dims [3, 5, 7] with strides [10, 40, 300], from offset 2; float64 words: half of it
    const walk = new Float64Array([2, 3, 10, 5, 40, 7, 300]);
    const rows = 3 * 5 * 7;
    const whole = new Int32Array(rows * 4);
    gatherRows32(src, whole, 4, 1, walk, 0, rows);
    const wide = new Float64Array(rows * 2);
    const s64 = new Float64Array(src.buffer);
    const walk64 = walk.map((v, i) => (i % 2 === 1 ? v : v / 2));
    gatherRows64(s64, wide, 2, walk64, 0, rows);
    expect(new Int32Array(wide.buffer)).toEqual(whole);
    const src16 = Uint16Array.from(src, (v) => v & 0xffff);
    const whole16 = new Uint16Array(rows * 4);
    gatherRows16(src16, whole16, 4, 1, walk, 0, rows);
    expect(Array.from(whole16)).toEqual(Array.from(whole, (v) => v & 0xffff));
    for (const cut of [1, 14, 15, 34, 35, 36, 104]) {
      const parts = new Int32Array(rows * 4);
      gatherRows32(src, parts, 4, 1, walk, 0, cut);
      gatherRows32(src, parts, 4, 1, walk, cut, rows);
      expect(parts, `cut at row ${cut}`).toEqual(whole);
      const sums = new Float32Array(6000);
      addRows32(sums, new Float32Array(whole.length).fill(1), 4, 1, walk, 0, cut);
      addRows32(sums, new Float32Array(whole.length).fill(1), 4, 1, walk, cut, rows);
      expect(sums.reduce((a, b) => a + b, 0)).toBe(rows * 4);
      expect(Array.from(whole, (v) => sums[(v - 1) / 7])).toEqual(new Array(rows * 4).fill(1));
    }
  });
});

describe('addInto on worker threads', () => {
  /** dst[view(i)] += src[i] on `be`, dst and src of pseudo-random values. */
  function addOn(be: typeof one, size: number, view: View): Float32Array {
    const count = view.shape.reduce((a, b) => a * b, 1);
    const dst = be.alloc('float32', size) as CpuBuffer;
    const src = be.alloc('float32', count) as CpuBuffer;
    const d = dst.data as Float32Array;
    const s = src.data as Float32Array;
    for (let i = 0; i < size; i++) d[i] = Math.sin(i * 0.731) * 3;
    for (let i = 0; i < count; i++) s[i] = Math.cos(i * 0.377) / 7;
    be.addInto(dst, src, view);
    const out = d.slice();
    // the meaning: one float32 sum per element of the view, everything else untouched
    const expected = new Float32Array(size);
    for (let i = 0; i < size; i++) expected[i] = Math.sin(i * 0.731) * 3;
    viewIndices(view).forEach((p, i) => {
      expected[p] = expected[p] + Math.fround(Math.cos(i * 0.377) / 7);
    });
    expect(firstDifference(out, expected)).toBe(-1);
    be.free(dst);
    be.free(src);
    return out;
  }

  it('adds in float32, the same bits on one and two threads, over short, odd and strided rows', () => {
    const before = workerTasks();
    for (const [name, size, view] of [views[0], views[1], views[2], views[5], views[6], views[7]]) {
      expect(firstDifference(addOn(two, size, view), addOn(one, size, view)), name).toBe(-1);
    }
    expect(workerTasks()).toBeGreaterThan(before);
  });

  it('long contiguous rows (added in WebAssembly on the calling thread) give the same bits', () => {
    const view: View = { shape: [299, 513], strides: [700, 1], offset: 3 };
    expect(firstDifference(addOn(two, 300 * 700, view), addOn(one, 300 * 700, view))).toBe(-1);
  });
});
