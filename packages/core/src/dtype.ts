/** Storage dtypes of tensors. Kernels accumulate in float32 whatever the storage dtype. */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32';

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32'];

/** Host array holding the raw bits of one storage dtype: f16 and bf16 travel as their 16-bit patterns. */
export type RawArray = Float32Array | Uint16Array | Int32Array;

/** Host array of values: float dtypes read back as float32, int32 as int32. */
export type ValueArray = Float32Array | Int32Array;

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
  }
}

export function isFloatDType(dtype: DType): boolean {
  return dtype !== 'int32';
}

export function assertDType(value: unknown, where: string): DType {
  if (typeof value === 'string' && (DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new Error(`${where}: dtype ${JSON.stringify(value)} is not supported: use one of ${DTYPES.join(', ')}`);
}

// --- float16 / bfloat16 bit conversions, round-to-nearest-even ---------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, round to nearest even; NaN stays a quiet NaN. */
export function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x0040) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16ToFloat(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** float32 → IEEE float16 bits, round to nearest even, overflow to ±Inf, subnormals kept. */
export function floatToF16(value: number): number {
  f32[0] = value;
  return f16FromF32Bits(u32[0]!);
}

/** float16 bits of the float32 whose bits are `x` (what floatToF16 does, for loops over Uint32Array views). */
export function f16FromF32Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m += 1;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  mant >>>= 13;
  if (rest > 0x1000 || (rest === 0x1000 && mant & 1)) {
    mant += 1;
    if (mant === 0x400) {
      mant = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | mant;
}

export function f16ToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes float values into the raw storage array of `dtype`. */
export function encode(values: ArrayLike<number>, dtype: DType): RawArray {
  const n = values.length;
  switch (dtype) {
    case 'float32':
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'int32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (!Number.isInteger(v)) throw new Error(`int32 tensor: value ${v} at index ${i} is not an integer`);
        out[i] = v;
      }
      return out;
    }
    case 'bfloat16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToBf16(values[i]!);
      return out;
    }
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToF16(values[i]!);
      return out;
    }
  }
}

/** Decodes a raw storage array into values: float32 for float dtypes, int32 for int32. */
export function decode(raw: RawArray, dtype: DType): ValueArray {
  switch (dtype) {
    case 'float32':
      return raw as Float32Array;
    case 'int32':
      return raw as Int32Array;
    case 'bfloat16': {
      const src = raw as Uint16Array;
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'float16': {
      const src = raw as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = f16ToFloat(src[i]!);
      return out;
    }
  }
}

/** Rounds float32 values through a storage dtype and back (what storing then loading does). */
export function roundTo(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'float32') return values;
  return decode(encode(values, dtype), dtype) as Float32Array;
}
