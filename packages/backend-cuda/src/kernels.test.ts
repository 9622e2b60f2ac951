import { describe, expect, it } from 'vitest';
import { isContiguous, KERNELS, packArgs, packedSize, simplifyView, simplifyViews } from './kernels.js';

describe('packArgs', () => {
  it('aligns each parameter to its own size, as the C ABI lays out kernel parameters', () => {
    const view = new DataView(new ArrayBuffer(256));
    // unary(int op, void* out, int dt, const void* x, int dt, i64 n): 0, 8, 16, 24, 32, 40 → 48 bytes
    const size = packArgs(view, 'unary', KERNELS.unary.params, [7, 0x7f0000001000, 2, 0x7f0000002000, 1, 1031]);
    expect(size).toBe(48);
    expect(packedSize(KERNELS.unary.params)).toBe(48);
    expect(view.getInt32(0, true)).toBe(7);
    expect(view.getBigUint64(8, true)).toBe(0x7f0000001000n);
    expect(view.getInt32(16, true)).toBe(2);
    expect(view.getBigUint64(24, true)).toBe(0x7f0000002000n);
    expect(view.getInt32(32, true)).toBe(1);
    expect(view.getBigInt64(40, true)).toBe(1031n);
  });

  it('writes a View as rank, offset, shape[8], stride[8] (int64), padding unused dims with 1 and 0', () => {
    const view = new DataView(new ArrayBuffer(512));
    const size = packArgs(view, 'copy_bits32', KERNELS.copy_bits32.params, [16, 32, { shape: [3, 4], strides: [1, 3], offset: 5 }, 12]);
    expect(size).toBe(16 + 144 + 8);
    expect(view.getBigInt64(16, true)).toBe(2n);
    expect(view.getBigInt64(24, true)).toBe(5n);
    expect([0, 1, 2].map((k) => view.getBigInt64(32 + 8 * k, true))).toEqual([3n, 4n, 1n]);
    expect([0, 1, 2].map((k) => view.getBigInt64(96 + 8 * k, true))).toEqual([1n, 3n, 0n]);
    expect(view.getBigInt64(160, true)).toBe(12n);
  });

  it('writes AttnShape as six int32, a float scale and a causal flag (4-byte aligned after a pointer)', () => {
    const view = new DataView(new ArrayBuffer(256));
    const p = KERNELS.attention_fwd_2.params;
    const size = packArgs(view, 'attention_fwd_2', p, [
      1,
      0,
      2,
      3,
      0,
      4,
      0,
      5,
      0,
      0,
      { batch: 2, seqQ: 5, seqK: 7, heads: 4, kvHeads: 2, D: 16, scale: 0.25, causal: true },
    ]);
    expect(size).toBe(80 + 32);
    expect([0, 1, 2, 3, 4, 5].map((k) => view.getInt32(80 + 4 * k, true))).toEqual([2, 5, 7, 4, 2, 16]);
    expect(view.getFloat32(104, true)).toBe(0.25);
    expect(view.getInt32(108, true)).toBe(1);
  });

  it('packs u64 offsets past 2^32 and rejects a wrong argument count', () => {
    const view = new DataView(new ArrayBuffer(256));
    packArgs(view, 'random_fill', KERNELS.random_fill.params, [0, 0, 1, 2, 2n ** 40n + 3n, 1, 0, 1, 5]);
    expect(view.getBigUint64(24, true)).toBe(2n ** 40n + 3n);
    expect(() => packArgs(view, 'unary', KERNELS.unary.params, [1, 2])).toThrow(/unary: 2 arguments for 6 parameters/);
  });

  it('refuses a view of rank above 8', () => {
    const view = new DataView(new ArrayBuffer(512));
    const v = { shape: [2, 2, 2, 2, 2, 2, 2, 2, 2], strides: [1, 2, 4, 8, 16, 32, 64, 128, 256], offset: 0 };
    expect(() => packArgs(view, 'copy_bits32', KERNELS.copy_bits32.params, [0, 0, v, 512])).toThrow(/rank 9/);
  });
});

describe('simplifyView', () => {
  it('merges contiguous dims and drops size-1 dims', () => {
    expect(simplifyView({ shape: [2, 1, 3, 4], strides: [12, 99, 4, 1], offset: 3 })).toEqual({ shape: [24], strides: [1], offset: 3 });
    expect(isContiguous({ shape: [2, 3], strides: [3, 1], offset: 7 })).toBe(true);
  });

  it('keeps a transpose and a broadcast as they are', () => {
    expect(simplifyView({ shape: [3, 4], strides: [1, 3], offset: 0 })).toEqual({ shape: [3, 4], strides: [1, 3], offset: 0 });
    expect(simplifyView({ shape: [5, 4], strides: [0, 1], offset: 0 })).toEqual({ shape: [5, 4], strides: [0, 1], offset: 0 });
    expect(isContiguous({ shape: [3, 4], strides: [1, 3], offset: 0 })).toBe(false);
  });

  it('merges two views only where both allow it', () => {
    const [a, b] = simplifyViews({ shape: [2, 3, 4], strides: [12, 4, 1], offset: 0 }, { shape: [2, 3, 4], strides: [0, 4, 1], offset: 1 });
    expect(a).toEqual({ shape: [2, 12], strides: [12, 1], offset: 0 });
    expect(b).toEqual({ shape: [2, 12], strides: [0, 1], offset: 1 });
  });

  it('turns a scalar view into one element', () => {
    expect(simplifyView({ shape: [], strides: [], offset: 4 })).toEqual({ shape: [1], strides: [1], offset: 4 });
  });
});
