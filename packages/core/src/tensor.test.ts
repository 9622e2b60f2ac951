import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { fromRaw, memoryInfo, ones, tensor, zeros } from './index.js';
import { add, matmul } from './ops/index.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('Tensor', () => {
  it('holds values and reads them back asynchronously', async () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend });
    expect(t.shape).toEqual([2, 3]);
    expect(t.size).toBe(6);
    expect(Array.from(await t.data())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await t.array()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    t.dispose();
  });

  it('rounds to bfloat16 and float16 storage with round-to-nearest-even', async () => {
    const values = [1 / 3, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65520, 2 ** -25];
    const bf = tensor(values, [5], { backend, dtype: 'bfloat16' });
    const h = tensor(values, [5], { backend, dtype: 'float16' });
    expect(Array.from(await bf.raw())).toEqual([0x3eab, 0x3f80, 0x3f82, 0x4780, 0x3300]);
    // 1 + 2^-8 is a tie in bf16 → even (1.0); 1 + 3·2^-8 rounds up to 1 + 2^-6.
    expect(Array.from(await bf.data()).slice(0, 3)).toEqual([0.333984375, 1, 1.015625]);
    const hv = await h.data();
    expect(hv[0]).toBeCloseTo(0.33325195, 7);
    expect(hv[3]).toBe(Number.POSITIVE_INFINITY);
    expect(hv[4]).toBe(0); // 2^-25 is half the smallest subnormal: ties to even (0)
    bf.dispose();
    h.dispose();
  });

  it('refuses values that do not fill the shape, and non-integers in int32', () => {
    expect(() => tensor([1, 2, 3], [2, 2], { backend })).toThrow('tensor: 3 values do not fill shape [2, 2] (4 elements)');
    expect(() => tensor([1.5], [1], { backend, dtype: 'int32' })).toThrow('value 1.5 at index 0 is not an integer');
    expect(() => fromRaw(new Float32Array(2), [2], { backend, dtype: 'bfloat16' })).toThrow(
      'bfloat16 storage needs a Uint16Array, got Float32Array',
    );
  });

  it('names the op and the tensor when used after dispose', () => {
    const a = ones([2, 2], { backend });
    const b = ones([2, 2], { backend });
    a.name = 'a';
    a.dispose();
    expect(() => add(a, b)).toThrow(/add: tensor #\d+ "a" \[2, 2\] float32 was disposed and cannot be used/);
    expect(a.data()).rejects.toThrow('was disposed');
    b.dispose();
  });

  it('reports shape and dtype mismatches with the values', () => {
    const a = zeros([2, 3], { backend });
    const b = zeros([4, 5], { backend });
    const i = zeros([2, 3], { backend, dtype: 'int32' });
    expect(() => matmul(a, b)).toThrow('matmul: inner dimensions differ: a is [2, 3], b is [4, 5] (3 vs 4)');
    expect(() => add(a, b)).toThrow('add: shapes [2, 3] and [4, 5] cannot be broadcast together (dimension 0: 2 vs 4)');
    expect(() => add(a, i)).toThrow(/add: cannot mix tensor #\d+ \[2, 3\] float32 and tensor #\d+ \[2, 3\] int32/);
    for (const t of [a, b, i]) t.dispose();
  });

  it('refuses tensors from two backends in one op', () => {
    const other = createCpuBackend();
    const a = ones([2], { backend });
    const b = ones([2], { backend: other });
    expect(() => add(a, b)).toThrow(
      /add: tensor #\d+ \[2\] float32 is on backend "cpu" but tensor #\d+ \[2\] float32 is on another "cpu" backend instance/,
    );
    a.dispose();
    b.dispose();
    other.destroy();
  });

  it('counts live tensors and bytes per backend; views share storage', () => {
    const before = memoryInfo(backend);
    const a = zeros([4, 4], { backend });
    const v = a.share([16]);
    expect(memoryInfo(backend)).toEqual({ tensors: before.tensors + 2, storages: before.storages + 1, bytes: before.bytes + 64 });
    a.dispose();
    expect(memoryInfo(backend).bytes).toBe(before.bytes + 64);
    v.dispose();
    expect(memoryInfo(backend)).toEqual(before);
  });
});
