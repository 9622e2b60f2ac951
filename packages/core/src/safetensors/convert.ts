import type { DType, RawArray } from '../dtype.js';
import { bf16ToFloat, decode, encode, f16ToFloat, floatToBf16, floatToF16 } from '../dtype.js';
import type { SafetensorsDType } from './dtypes.js';
import { fp8Table, isFp8 } from './dtypes.js';

type TypedArrayCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/**
 * A typed view of little-endian bytes. Zero-copy when the bytes sit at an offset aligned to the
 * element size, otherwise the bytes are copied first (typed arrays cannot start unaligned).
 */
export function viewAs<T>(bytes: Uint8Array, Ctor: TypedArrayCtor<T>): T {
  const size = Ctor.BYTES_PER_ELEMENT;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/**
 * Converts one tensor's little-endian bytes (`st` elements) to the raw storage of core dtype
 * `target`. Floats convert among float32/float16/bfloat16 with round-to-nearest-even; integers and
 * BOOL load as int32 (or as floats if asked); floats never load as int32.
 * `where` prefixes error messages ("model.safetensors: tensor \"a\"").
 */
export function convertTensorBytes(bytes: Uint8Array, st: SafetensorsDType, target: DType, where: string): RawArray {
  if (st === 'F16' || st === 'BF16') {
    const bits = viewAs(bytes, Uint16Array);
    const source: DType = st === 'F16' ? 'float16' : 'bfloat16';
    if (target === source) return bits;
    if (target === 'int32') throw floatToIntError(st, where);
    const toFloat = st === 'F16' ? f16ToFloat : bf16ToFloat;
    if (target === 'float32') return decode(bits, source);
    // f16 <-> bf16: widening to float32 is exact, so this rounds once.
    const fromFloat = target === 'float16' ? floatToF16 : floatToBf16;
    const out = new Uint16Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = fromFloat(toFloat(bits[i]!));
    return out;
  }
  if (st === 'F32' || st === 'F64' || isFp8(st)) {
    if (target === 'int32') throw floatToIntError(st, where);
    let values: Float32Array;
    if (st === 'F32') values = viewAs(bytes, Float32Array);
    // F64 → float16/bfloat16 rounds twice (to float32, then to 16 bits); off by one ulp only in rare ties.
    else if (st === 'F64') values = Float32Array.from(viewAs(bytes, Float64Array));
    else {
      const table = fp8Table(st as Parameters<typeof fp8Table>[0]);
      values = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) values[i] = table[bytes[i]!]!;
    }
    return target === 'float32' ? values : encode(values, target);
  }
  const ints = toInt32(bytes, st, where);
  if (target === 'int32') return ints;
  return encode(Float32Array.from(ints), target);
}

function toInt32(bytes: Uint8Array, st: SafetensorsDType, where: string): Int32Array {
  switch (st) {
    case 'I32':
      return viewAs(bytes, Int32Array);
    case 'BOOL': {
      const out = new Int32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
    }
    case 'U8':
      return Int32Array.from(bytes);
    case 'I8':
      return Int32Array.from(viewAs(bytes, Int8Array));
    case 'I16':
      return Int32Array.from(viewAs(bytes, Int16Array));
    case 'U16':
      return Int32Array.from(viewAs(bytes, Uint16Array));
    case 'U32': {
      const src = viewAs(bytes, Uint32Array);
      for (let i = 0; i < src.length; i++) {
        if (src[i]! > 0x7fffffff) throw outOfRange(where, st, i, String(src[i]));
      }
      return Int32Array.from(src);
    }
    case 'I64':
    case 'U64': {
      // Each element is (lo, hi) as two int32 words; it fits int32 when hi is lo's sign extension.
      const words = viewAs(bytes, Int32Array);
      const out = new Int32Array(words.length / 2);
      for (let i = 0; i < out.length; i++) {
        const lo = words[2 * i]!;
        const hi = words[2 * i + 1]!;
        if (hi !== (lo < 0 ? -1 : 0) || (st === 'U64' && lo < 0)) {
          const big = st === 'I64' ? viewAs(bytes, BigInt64Array)[i]! : viewAs(bytes, BigUint64Array)[i]!;
          throw outOfRange(where, st, i, big.toString());
        }
        out[i] = lo;
      }
      return out;
    }
    default:
      throw new Error(`${where} is ${st}, which cannot be converted to a core dtype: read its bytes with readRaw`);
  }
}

function outOfRange(where: string, st: SafetensorsDType, index: number, value: string): Error {
  return new Error(
    `${where} is ${st} and its value ${value} at index ${index} is outside the int32 range [-2147483648, 2147483647]: read its bytes with readRaw instead`,
  );
}

function floatToIntError(st: SafetensorsDType, where: string): Error {
  return new Error(`${where} is ${st}, a float dtype: it cannot load as int32; ask for float32, float16 or bfloat16`);
}
