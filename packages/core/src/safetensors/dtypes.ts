import type { DType } from '../dtype.js';
import { f16ToFloat } from '../dtype.js';

/**
 * Element types of the safetensors format, in the order of the reference Rust crate's `Dtype`
 * enum (increasing alignment). The writer sorts tensors by this order, descending, then by name.
 */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

export type SafetensorsDType = (typeof SAFETENSORS_DTYPES)[number];

const BITS: Record<SafetensorsDType, number> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const RANK = new Map<string, number>(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && RANK.has(value);
}

/** Bits per element: 4 and 6 for the packed microscaling floats, a multiple of 8 otherwise. */
export function safetensorsDTypeBits(dtype: SafetensorsDType): number {
  return BITS[dtype];
}

/** Position in the reference crate's alignment order (used to order tensors when writing). */
export function safetensorsDTypeRank(dtype: SafetensorsDType): number {
  return RANK.get(dtype)!;
}

const FROM_CORE: Record<DType, SafetensorsDType> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int32: 'I32',
};

/** The safetensors name of a core storage dtype: float32 → F32, float16 → F16, bfloat16 → BF16, int32 → I32. */
export function toSafetensorsDType(dtype: DType): SafetensorsDType {
  return FROM_CORE[dtype];
}

/** Accepts a safetensors dtype ("F32") or a core dtype ("float32") and gives the safetensors one. */
export function resolveSafetensorsDType(value: unknown, where: string): SafetensorsDType {
  if (isSafetensorsDType(value)) return value;
  if (typeof value === 'string' && value in FROM_CORE) return FROM_CORE[value as DType];
  throw new Error(
    `${where}: dtype ${JSON.stringify(value)} is not a safetensors dtype: use one of ${SAFETENSORS_DTYPES.join(', ')} or a core dtype (float32, float16, bfloat16, int32)`,
  );
}

/**
 * The core dtype a safetensors tensor loads as when no dtype is asked for: F16 and BF16 keep their
 * bits, other floats widen or narrow to float32, integers and BOOL become int32.
 * Null for dtypes that only load raw (F4, F6_*, C64).
 */
export function defaultCoreDType(dtype: SafetensorsDType): DType | null {
  switch (dtype) {
    case 'F32':
    case 'F64':
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0':
    case 'F8_E4M3FNUZ':
    case 'F8_E5M2FNUZ':
      return 'float32';
    case 'F16':
      return 'float16';
    case 'BF16':
      return 'bfloat16';
    case 'BOOL':
    case 'U8':
    case 'I8':
    case 'I16':
    case 'U16':
    case 'I32':
    case 'U32':
    case 'I64':
    case 'U64':
      return 'int32';
    case 'F4':
    case 'F6_E2M3':
    case 'F6_E3M2':
    case 'C64':
      return null;
  }
}

// --- 8-bit floats: decoded through 256-entry tables ----------------------------------------------

type Fp8 = 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0' | 'F8_E4M3FNUZ' | 'F8_E5M2FNUZ';

/** Value of one 8-bit float code. E4M3 is the OCP "fn" variant (no infinities, NaN = S.1111.111). */
export function fp8ToFloat(code: number, dtype: Fp8): number {
  const b = code & 0xff;
  switch (dtype) {
    case 'F8_E5M2':
      // E5M2 is the upper byte of an IEEE half.
      return f16ToFloat(b << 8);
    case 'F8_E4M3':
      return miniFloat(b, 4, 3, 7, (e, m) => e === 15 && m === 7);
    case 'F8_E4M3FNUZ':
      return b === 0x80 ? Number.NaN : miniFloat(b, 4, 3, 8, () => false);
    case 'F8_E5M2FNUZ':
      return b === 0x80 ? Number.NaN : miniFloat(b, 5, 2, 16, () => false);
    case 'F8_E8M0':
      // Unsigned power of two, the MX scale type: 0xff is NaN.
      return b === 0xff ? Number.NaN : 2 ** (b - 127);
  }
}

function miniFloat(b: number, expBits: number, mantBits: number, bias: number, nanAt: (e: number, m: number) => boolean): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> mantBits) & ((1 << expBits) - 1);
  const m = b & ((1 << mantBits) - 1);
  if (nanAt(e, m)) return Number.NaN;
  const scale = 2 ** mantBits;
  if (e === 0) return sign * (m / scale) * 2 ** (1 - bias);
  return sign * (1 + m / scale) * 2 ** (e - bias);
}

const fp8Tables = new Map<Fp8, Float32Array>();

/** 256-entry decode table of one 8-bit float dtype. */
export function fp8Table(dtype: Fp8): Float32Array {
  let table = fp8Tables.get(dtype);
  if (!table) {
    table = new Float32Array(256);
    for (let i = 0; i < 256; i++) table[i] = fp8ToFloat(i, dtype);
    fp8Tables.set(dtype, table);
  }
  return table;
}

export function isFp8(dtype: SafetensorsDType): dtype is Fp8 {
  return dtype.startsWith('F8_');
}
