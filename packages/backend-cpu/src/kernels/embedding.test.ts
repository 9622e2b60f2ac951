import { describe, expect, it } from 'vitest';
import { backend, download, upload } from '../test-helpers.js';

describe('embedding', () => {
  it('gathers rows by id, converting dtype when needed', async () => {
    const be = backend();
    const weight = upload(be, [0, 1, 10, 11, 20, 21]); // [3, 2]
    const ids = upload(be, [2, 0, 2], 'int32');
    const out = be.alloc('float32', 6);
    be.embedding(out, weight, ids, 3, 2);
    expect(await download(be, out)).toEqual([20, 21, 0, 1, 20, 21]);
    const w16 = upload(be, [1 / 3, 1, 2, 3], 'bfloat16');
    const o16 = be.alloc('bfloat16', 2);
    be.embedding(o16, w16, upload(be, [0], 'int32'), 1, 2);
    expect(await be.read(o16)).toEqual(new Uint16Array([0x3eab, 0x3f80]));
    const o32 = be.alloc('float32', 2);
    be.embedding(o32, w16, upload(be, [1], 'int32'), 1, 2);
    expect(await download(be, o32)).toEqual([2, 3]);
    be.destroy();
  });

  it('rejects ids outside the table, naming the position, the id and the range', () => {
    const be = backend();
    const weight = upload(be, [0, 1, 10, 11, 20, 21]);
    const out = be.alloc('float32', 4);
    expect(() => be.embedding(out, weight, upload(be, [1, 3], 'int32'), 2, 2)).toThrow(
      /embedding: ids\[1\] = 3 is outside the weight's rows: valid ids are 0..2/,
    );
    expect(() => be.embedding(out, weight, upload(be, [-1, 0], 'int32'), 2, 2)).toThrow(/ids\[0\] = -1/);
    expect(() => be.embedding(out, weight, upload(be, [0, 0]), 2, 2)).toThrow(/ids has dtype float32 but must be int32/);
    be.destroy();
  });
});

describe('embeddingBackward', () => {
  it('zero-fills then scatter-adds rows of dOut, summing repeated ids', async () => {
    const be = backend();
    const dW = upload(be, [9, 9, 9, 9, 9, 9, 9, 9]); // [4, 2], stale values must vanish
    const dOut = upload(be, [1, 2, 3, 4, 5, 6]);
    be.embeddingBackward(dW, dOut, upload(be, [2, 0, 2], 'int32'), 3, 2);
    expect(await download(be, dW)).toEqual([3, 4, 0, 0, 6, 8, 0, 0]);
    expect(() => be.embeddingBackward(dW, dOut, upload(be, [4, 0, 0], 'int32'), 3, 2)).toThrow(/embeddingBackward: ids\[0\] = 4 .* 0..3/);
    be.destroy();
  });
});
