import { encode } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from './index.js';
import { download, upload } from './test-helpers.js';

describe('cpu backend memory', () => {
  it('allocates zeroed buffers of every dtype and accounts bytes and peak', async () => {
    const be = createCpuBackend();
    expect(be.name).toBe('cpu');
    expect(be.dtypes).toEqual(['float32', 'float16', 'bfloat16', 'int32']);
    const a = be.alloc('float32', 10);
    const b = be.alloc('bfloat16', 10);
    const c = be.alloc('float16', 3);
    const d = be.alloc('int32', 5);
    expect(be.memory()).toEqual({ buffers: 4, bytes: 40 + 20 + 6 + 20, peakBytes: 86, pooledBytes: 0 });
    expect(await be.read(a)).toEqual(new Float32Array(10));
    expect(await be.read(b)).toEqual(new Uint16Array(10));
    expect(await be.read(d)).toEqual(new Int32Array(5));
    be.free(a);
    expect(be.memory()).toEqual({ buffers: 3, bytes: 46, peakBytes: 86, pooledBytes: 0 });
    be.resetPeak();
    expect(be.memory().peakBytes).toBe(46);
    be.free(c);
    be.free(b);
    be.free(d);
    expect(be.memory()).toEqual({ buffers: 0, bytes: 0, peakBytes: 46, pooledBytes: 0 });
    await be.sync();
    be.destroy();
  });

  it('reuses freed memory of the same byte size as it was left, and keeps the accounting', async () => {
    const be = createCpuBackend();
    const a = be.alloc('float32', 2048); // 8 KiB: pooled when freed
    be.fill(a, 3);
    be.free(a);
    expect(be.memory()).toEqual({ buffers: 0, bytes: 0, peakBytes: 8192, pooledBytes: 8192 });
    const b = be.alloc('bfloat16', 4096); // the same 8 KiB, another dtype: not zeroed (contents are unspecified)
    expect(be.memory()).toEqual({ buffers: 1, bytes: 8192, peakBytes: 8192, pooledBytes: 0 });
    const three = new Uint16Array(new Float32Array(2048).fill(3).buffer);
    expect(await be.read(b)).toEqual(three);
    be.fill(b, 1);
    be.free(b);
    const c = be.alloc('int32', 2048);
    expect(await be.read(c)).toEqual(new Int32Array(new Uint16Array(4096).fill(0x3f80).buffer));
    be.free(c);
    expect(be.memory().pooledBytes).toBe(8192);
    be.destroy();
    expect(be.memory()).toMatchObject({ buffers: 0, bytes: 0, pooledBytes: 0 });
  });

  it('drops the oldest pooled memory rather than hold more than 5/4 of the peak', () => {
    const be = createCpuBackend();
    const KiB = 1024;
    const big = be.alloc('float32', 16 * KiB); // 64 KiB
    const small = be.alloc('float32', 4 * KiB); // 16 KiB
    be.free(big);
    be.free(small);
    expect(be.memory()).toMatchObject({ bytes: 0, peakBytes: 80 * KiB, pooledBytes: 80 * KiB });
    // 32 KiB of a new size: handed out 32 + pooled 80 would exceed 5/4 of the 80 KiB peak (100):
    // the 64 KiB array (pooled first) goes, the 16 KiB one stays.
    const other = be.alloc('float32', 8 * KiB);
    expect(be.memory()).toMatchObject({ bytes: 32 * KiB, pooledBytes: 16 * KiB });
    be.free(other);
    // After resetPeak the allowance shrinks with the peak.
    be.resetPeak();
    be.alloc('float32', 2 * KiB);
    expect(be.memory()).toMatchObject({ bytes: 8 * KiB, pooledBytes: 0 });
    be.destroy();
  });

  it('writes raw bits at an offset and reads back a copy', async () => {
    const be = createCpuBackend();
    const buf = be.alloc('bfloat16', 4);
    be.write(buf, new Uint16Array([0x3eab, 0x3f80]), 1);
    const raw = await be.read(buf);
    expect(raw).toEqual(new Uint16Array([0, 0x3eab, 0x3f80, 0]));
    raw[0] = 7;
    expect((await be.read(buf))[0]).toBe(0);
    const f16 = upload(be, [1, 65520, 2 ** -24], 'float16');
    expect(await be.read(f16)).toEqual(new Uint16Array([0x3c00, 0x7c00, 0x0001]));
    expect(await download(be, f16)).toEqual([1, Number.POSITIVE_INFINITY, 2 ** -24]);
    be.destroy();
  });

  it('rejects bad allocations, writes and foreign or freed buffers', async () => {
    const be = createCpuBackend();
    expect(() => be.alloc('float64' as never, 2)).toThrow(/dtype "float64" is not supported/);
    expect(() => be.alloc('float32', -1)).toThrow(/alloc: size must be a non-negative integer, got -1/);
    expect(() => be.alloc('float32', 1.5)).toThrow(/got 1.5/);
    const buf = be.alloc('float32', 3);
    expect(() => be.write(buf, new Uint16Array(3))).toThrow(/float32 buffer takes a Float32Array/);
    expect(() => be.write(be.alloc('float16', 2), new Float32Array(2))).toThrow(/float16 buffer takes a Uint16Array/);
    expect(() => be.write(buf, new Float32Array(2), 2)).toThrow(/2 elements at offset 2 do not fit in a buffer of 3/);
    expect(() => be.write(buf, new Float32Array(1), -1)).toThrow(/offset -1/);

    const other = createCpuBackend();
    const foreign = other.alloc('float32', 3);
    expect(() => be.fill(foreign, 1)).toThrow(/fill: out belongs to another cpu backend/);
    expect(() => be.fill({ dtype: 'float32', size: 3 }, 1)).toThrow(/fill: out is not a buffer of the cpu backend/);

    be.free(buf);
    expect(() => be.fill(buf, 1)).toThrow(/fill: out was used after free/);
    expect(() => be.unary('exp', be.alloc('float32', 3), buf)).toThrow(/unary\(exp\): x was used after free/);
    await expect(be.read(buf)).rejects.toThrow(/read: buf was used after free/);
    expect(() => be.free(buf)).toThrow(/already freed/);
    other.destroy();
    be.destroy();
  });

  it('destroy frees everything and refuses new work', () => {
    const be = createCpuBackend({ threads: 1 });
    const a = be.alloc('float32', 8);
    be.alloc('int32', 8);
    be.destroy();
    expect(be.memory()).toMatchObject({ buffers: 0, bytes: 0 });
    expect(() => be.fill(a, 0)).toThrow(/used after free/);
    expect(() => be.alloc('float32', 1)).toThrow(/destroyed/);
    be.destroy(); // idempotent
  });

  it('encode round trip through int32 buffers', async () => {
    const be = createCpuBackend();
    const ids = be.alloc('int32', 3);
    be.write(ids, encode([3, -1, 2147483647], 'int32'));
    expect(await download(be, ids)).toEqual([3, -1, 2147483647]);
    be.destroy();
  });
});
