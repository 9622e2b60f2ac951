import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { CpuBuffer } from './buffer.js';
import {
  at,
  decodeInto,
  decodeTable,
  fillRaw,
  flushF32,
  loadF32,
  readF32,
  roundInto,
  scratch,
  toBf16,
  toF16,
  writeF32,
} from './storage.js';

function roundOne(value: number, dtype: 'float16' | 'bfloat16'): number {
  const out = new Uint16Array(1);
  roundInto(out, dtype, 0, new Float32Array([value]));
  return out[0];
}

describe('float16 / bfloat16 storage conversions', () => {
  it('rounds known values to the expected bit patterns', () => {
    expect(roundOne(1 / 3, 'bfloat16')).toBe(0x3eab);
    expect(roundOne(1, 'bfloat16')).toBe(0x3f80);
    expect(roundOne(-2, 'bfloat16')).toBe(0xc000);
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1).
    expect(roundOne(1 + 2 ** -8, 'bfloat16')).toBe(0x3f80);
    expect(roundOne(1 + 3 * 2 ** -8, 'bfloat16')).toBe(0x3f82);
    expect(roundOne(Number.NaN, 'bfloat16') & 0x7fc0).toBe(0x7fc0);

    expect(roundOne(1, 'float16')).toBe(0x3c00);
    expect(roundOne(1 / 3, 'float16')).toBe(0x3555);
    expect(roundOne(65504, 'float16')).toBe(0x7bff);
    expect(roundOne(65519, 'float16')).toBe(0x7bff);
    expect(roundOne(65520, 'float16')).toBe(0x7c00); // halfway to 2^16 rounds to even: Inf
    expect(roundOne(-1e6, 'float16')).toBe(0xfc00);
    expect(roundOne(2 ** -24, 'float16')).toBe(0x0001); // smallest subnormal
    expect(roundOne(2 ** -25, 'float16')).toBe(0x0000); // tie → even (0)
    expect(roundOne(1.5 * 2 ** -25, 'float16')).toBe(0x0001);
    expect(roundOne(3 * 2 ** -25, 'float16')).toBe(0x0002); // 1.5 ulp ties to even 2
    expect(roundOne(2 ** -14 - 2 ** -25, 'float16')).toBe(0x0400); // rounds up into the normals
    expect(roundOne(-0, 'float16')).toBe(0x8000);
    expect(roundOne(Number.POSITIVE_INFINITY, 'float16')).toBe(0x7c00);
    expect(roundOne(Number.NaN, 'float16') & 0x7e00).toBe(0x7e00);
  });

  it('matches core floatToF16 / floatToBf16 on a million random bit patterns', () => {
    const n = 1 << 20;
    const bits = new Uint32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      // Bias toward the float16 range (exponents 100..150) half the time.
      bits[i] = i & 1 ? s : (s & 0x807fffff) | ((100 + (s % 51)) << 23);
    }
    const values = new Float32Array(bits.buffer);
    const f16 = new Uint16Array(n);
    const bf16 = new Uint16Array(n);
    roundInto(f16, 'float16', 0, values);
    roundInto(bf16, 'bfloat16', 0, values);
    for (let i = 0; i < n; i++) {
      if (f16[i] !== floatToF16(values[i])) throw new Error(`f16 of bits 0x${bits[i].toString(16)}: ${f16[i]} vs ${floatToF16(values[i])}`);
      if (bf16[i] !== floatToBf16(values[i]))
        throw new Error(`bf16 of bits 0x${bits[i].toString(16)}: ${bf16[i]} vs ${floatToBf16(values[i])}`);
      if (toF16(values[i]) !== f16[i] || toBf16(values[i]) !== bf16[i]) throw new Error(`toF16/toBf16 of bits 0x${bits[i].toString(16)}`);
    }
    // From an offset of the source, as chunked kernels round.
    const part = new Uint16Array(1000);
    roundInto(part, 'bfloat16', 0, values, 1000, 5000);
    expect(part).toEqual(bf16.subarray(5000, 6000));
  });

  it('decode tables agree with core for every 16-bit pattern', () => {
    const f16 = decodeTable('float16');
    const bf16 = decodeTable('bfloat16');
    const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
    for (let i = 0; i < 65536; i++) {
      if (!same(f16[i], f16ToFloat(i))) throw new Error(`f16 0x${i.toString(16)}: ${f16[i]} vs ${f16ToFloat(i)}`);
      if (!same(bf16[i], bf16ToFloat(i))) throw new Error(`bf16 0x${i.toString(16)}: ${bf16[i]} vs ${bf16ToFloat(i)}`);
    }
    expect(f16[0x0001]).toBe(2 ** -24);
    expect(f16[0x7c00]).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('float32 access to buffers for the kernels', () => {
  const owner = {};
  const buffer = (dtype: 'float32' | 'bfloat16' | 'float16' | 'int32', values: number[]) => {
    const b = new CpuBuffer(owner, dtype, values.length);
    if (dtype === 'float32') (b.data as Float32Array).set(values);
    else if (dtype === 'int32') (b.data as Int32Array).set(values);
    else roundInto(b.data as Uint16Array, dtype, 0, Float32Array.from(values));
    return b;
  };

  it('decodes 16-bit and int32 ranges, at any destination offset', () => {
    const values = [1, -2.5, 1 / 3, 65504, -0, 7];
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const b = buffer(dtype, values);
      const table = decodeTable(dtype);
      const want = Array.from(b.data as Uint16Array, (bits) => table[bits]);
      const dst = new Float32Array(8).fill(99);
      decodeInto(b, 1, 4, dst, 0);
      expect(Array.from(dst.subarray(0, 5))).toEqual([...want.slice(1, 5), 99]);
      decodeInto(b, 1, 4, dst, 3);
      expect(Array.from(dst.subarray(3, 7))).toEqual(want.slice(1, 5));
      expect(Array.from(loadF32(b, 2, 3))).toEqual(want.slice(2, 5));
    }
    expect(Array.from(loadF32(buffer('int32', [3, -4, 16777217]), 0))).toEqual([3, -4, 16777216]);
  });

  it('readF32 hands out float32 data itself and decodes 16-bit data into scratch; writeF32 + flushF32 round back', () => {
    const f = buffer('float32', [1, 2, 3, 4]);
    expect(readF32(f, 2, 2, 0)).toBe(f.data);
    expect(at(f, 2)).toBe(2);
    const h = buffer('bfloat16', [1, 2, 3, 4]);
    const s = readF32(h, 2, 2, 0);
    expect(s).toBe(scratch(0, 2));
    expect(at(h, 2)).toBe(0);
    expect(Array.from(s.subarray(0, 2))).toEqual([3, 4]);
    const out = writeF32(h, 2, 1);
    expect(out === s).toBe(false);
    out[0] = 1 / 3;
    out[1] = -1;
    flushF32(h, 1, 2, out);
    expect(Array.from(h.data as Uint16Array)).toEqual([0x3f80, 0x3eab, 0xbf80, 0x4080]);
    expect(writeF32(f, 4, 1)).toBe(f.data);
  });

  it('keeps scratch slots apart and does not keep very large ones', () => {
    expect(scratch(5, 10) === scratch(5, 100)).toBe(true);
    expect(scratch(5, 10) === scratch(6, 10)).toBe(false);
    const huge = scratch(7, (1 << 20) + 1);
    expect(huge.length).toBe((1 << 20) + 1);
    expect(scratch(7, (1 << 20) + 1) === huge).toBe(false);
  });
});

describe('fillRaw', () => {
  it('fills shared and plain arrays of every raw type exactly as TypedArray.fill, across block boundaries', () => {
    const shared = (Type: new (b: ArrayBufferLike) => Float32Array | Int32Array | Uint16Array | Float64Array, n: number, bytes: number) =>
      new Type(new SharedArrayBuffer(n * bytes));
    const cases: [string, () => Float32Array | Int32Array | Uint16Array | Float64Array, number][] = [
      ['float32 shared', () => shared(Float32Array, 3 * 16384 + 5, 4), -1.25],
      ['float32 shared NaN', () => shared(Float32Array, 16385, 4), Number.NaN],
      ['int32 shared', () => shared(Int32Array, 2 * 16384, 4), -7],
      ['uint16 shared (bf16 bits)', () => shared(Uint16Array, 40_000, 2), 0x3fc0],
      ['float64 shared', () => shared(Float64Array, 20_000, 8), 1e-300],
      ['float32 plain', () => new Float32Array(50_000), 3],
      ['float32 shared, short', () => shared(Float32Array, 100, 4), 2],
    ];
    for (const [name, make, value] of cases) {
      const a = make();
      a.fill(9);
      fillRaw(a, value);
      const want = make();
      want.fill(value);
      expect(Array.from(a), name).toEqual(Array.from(want));
      // A second value of the same type replaces the cached block.
      fillRaw(a, 0);
      expect(
        a.every((v) => v === 0),
        name,
      ).toBe(true);
    }
  });
});
