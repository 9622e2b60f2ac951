import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { f16ToFloat } from '../dtype.js';
import { fp8Table, fp8ToFloat, resolveSafetensorsDType, safetensorsDTypeBits } from './dtypes.js';

describe('safetensors dtypes', () => {
  it('decodes F8_E4M3 (OCP fn): max 448, NaN only at S.1111.111, no infinities', () => {
    const table = fp8Table('F8_E4M3');
    const finite = [...table].filter(Number.isFinite);
    expect(finite.length).toBe(254);
    expect(Math.max(...finite)).toBe(448);
    expect(fp8ToFloat(0x7f, 'F8_E4M3')).toBeNaN();
    expect(fp8ToFloat(0xff, 'F8_E4M3')).toBeNaN();
    expect(fp8ToFloat(0x08, 'F8_E4M3')).toBe(2 ** -6); // smallest normal
    expect(fp8ToFloat(0x07, 'F8_E4M3')).toBe(7 * 2 ** -9); // largest subnormal
    expect(fp8ToFloat(0xc4, 'F8_E4M3')).toBe(-3);
  });

  it('decodes F8_E5M2 as the upper byte of an IEEE half', () => {
    for (let code = 0; code < 256; code++) {
      expect(Object.is(fp8ToFloat(code, 'F8_E5M2'), f16ToFloat(code << 8)) || Number.isNaN(f16ToFloat(code << 8))).toBe(true);
    }
    expect(fp8ToFloat(0xfc, 'F8_E5M2')).toBe(-Infinity);
  });

  it('decodes the FNUZ variants and E8M0', () => {
    expect(fp8ToFloat(0x00, 'F8_E4M3FNUZ')).toBe(0);
    expect(fp8ToFloat(0x01, 'F8_E4M3FNUZ')).toBe(2 ** -10);
    expect(fp8ToFloat(0xff, 'F8_E4M3FNUZ')).toBe(-240);
    expect(fp8ToFloat(0x04, 'F8_E5M2FNUZ')).toBe(2 ** -15);
    expect(fp8ToFloat(0x80, 'F8_E5M2FNUZ')).toBeNaN();
    expect(fp8ToFloat(0x80, 'F8_E8M0')).toBe(2);
    expect(fp8ToFloat(254, 'F8_E8M0')).toBe(2 ** 127);
  });

  it('maps core dtypes and knows sub-byte sizes', () => {
    expect(resolveSafetensorsDType('bfloat16', 'x')).toBe('BF16');
    expect(resolveSafetensorsDType('I64', 'x')).toBe('I64');
    expect(() => resolveSafetensorsDType('float64', 'tensor "w"')).toThrow(
      'tensor "w": dtype "float64" is not a safetensors dtype: use one of BOOL, F4,',
    );
    expect(safetensorsDTypeBits('F4')).toBe(4);
    expect(safetensorsDTypeBits('F6_E3M2')).toBe(6);
    expect(safetensorsDTypeBits('C64')).toBe(64);
  });

  it('keeps src/safetensors browser-safe: no node:* imports outside tests', () => {
    const dir = new URL('./', import.meta.url);
    const sources = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(sources.length).toBeGreaterThan(5);
    for (const file of sources) {
      expect(readFileSync(new URL(file, dir), 'utf8'), file).not.toMatch(/from ['"]node:|require\(|\bprocess\.|\bBuffer\./);
    }
  });
});
