import { describe, expect, it } from 'vitest';
import { backend, download, upload } from '../test-helpers.js';

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
