import { describe, expect, it } from 'vitest';
import { backend, download, upload } from '../test-helpers.js';

describe('reduce', () => {
  it('sums and maxes over the middle axis of [outer, reduce, inner]', async () => {
    const be = backend();
    // x [2, 3, 2]
    const x = upload(be, [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, 7]);
    const out = be.alloc('float32', 4);
    be.reduce('sum', out, x, 2, 3, 2);
    expect(await download(be, out)).toEqual([9, 12, -9, 1]);
    be.reduce('max', out, x, 2, 3, 2);
    expect(await download(be, out)).toEqual([5, 6, -1, 7]);
    const all = be.alloc('float32', 1);
    be.reduce('sum', all, x, 1, 12, 1);
    expect(await download(be, all)).toEqual([13]);
    be.destroy();
  });

  it('max propagates NaN; empty reductions give 0 and -Infinity', async () => {
    const be = backend();
    const x = upload(be, [1, Number.NaN, 3]);
    const out = be.alloc('float32', 1);
    be.reduce('max', out, x, 1, 3, 1);
    expect(await download(be, out)).toEqual([Number.NaN]);
    const empty = be.alloc('float32', 2);
    be.reduce('sum', empty, x, 2, 0, 1);
    expect(await download(be, empty)).toEqual([0, 0]);
    be.reduce('max', empty, x, 2, 0, 1);
    expect(await download(be, empty)).toEqual([Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(() => be.reduce('sum', out, x, 1, 4, 1)).toThrow(/reduce\(sum\): x has 3 elements but the parameters need at least 4/);
    be.destroy();
  });
});

describe('argmax', () => {
  it('returns the first index of the largest value, NaN counting as largest', async () => {
    const be = backend();
    const x = upload(be, [1, 5, 5, 2, /**/ -3, -1, -2, -1, /**/ 0, Number.NaN, 9, Number.NaN], 'bfloat16');
    const out = be.alloc('int32', 3);
    be.argmax(out, x, 3, 4);
    expect(await download(be, out)).toEqual([1, 1, 1]);
    const y = upload(be, [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, 7, 8]);
    be.argmax(out, y, 2, 2);
    expect((await download(be, out)).slice(0, 2)).toEqual([0, 1]);
    expect(() => be.argmax(be.alloc('float32', 3), x, 3, 4)).toThrow(/argmax: out has dtype float32 but must be int32/);
    be.destroy();
  });
});
