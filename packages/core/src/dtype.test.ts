import { describe, expect, it } from 'vitest';
import { assertDType, bf16ToFloat, decode, encode, f16ToFloat, floatToBf16, floatToF16 } from './dtype.js';
import golden from './fixtures/dtype-rounding.json' with { type: 'json' };

describe('float16 / bfloat16 rounding', () => {
  const values = new Float32Array(new Uint32Array(golden.float32Bits).buffer);

  it(`rounds ${golden.float32Bits.length} float32 values to bfloat16 exactly as ${golden.producer} does`, () => {
    const bits = encode(values, 'bfloat16');
    const mismatches = golden.bfloat16Bits.flatMap((b, i) => (bits[i] === b ? [] : [`${values[i]}: ${bits[i]} vs ${b}`]));
    expect(mismatches).toEqual([]);
  });

  it(`rounds ${golden.float32Bits.length} float32 values to float16 exactly as ${golden.producer} does`, () => {
    const bits = encode(values, 'float16');
    const mismatches = golden.float16Bits.flatMap((b, i) => (bits[i] === b ? [] : [`${values[i]}: ${bits[i]} vs ${b}`]));
    expect(mismatches).toEqual([]);
  });

  it('decodes back to the value the bits stand for', () => {
    expect(bf16ToFloat(0x3f80)).toBe(1);
    expect(bf16ToFloat(0xc000)).toBe(-2);
    expect(f16ToFloat(0x3c00)).toBe(1);
    expect(f16ToFloat(0x0001)).toBe(2 ** -24);
    expect(f16ToFloat(0x7bff)).toBe(65504);
    expect(Number.isNaN(f16ToFloat(0x7e00))).toBe(true);
    expect(Number.isNaN(bf16ToFloat(floatToBf16(Number.NaN)))).toBe(true);
    expect(Number.isNaN(f16ToFloat(floatToF16(Number.NaN)))).toBe(true);
    const round = decode(encode([1.5, -0.1], 'float16'), 'float16');
    expect(Array.from(round)).toEqual([1.5, f16ToFloat(floatToF16(-0.1))]);
  });

  it('names a dtype it does not know', () => {
    expect(() => assertDType('float64', 'config.json torch_dtype')).toThrow(
      'config.json torch_dtype: dtype "float64" is not supported: use one of float32, float16, bfloat16, int32',
    );
  });
});
