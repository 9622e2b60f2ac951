/**
 * Float32 ↔ storage conversions for the hot loops. float16 and bfloat16 live as raw 16-bit
 * patterns; kernels decode inputs to float32 through 65536-entry tables and round outputs back
 * with round-to-nearest-even, bit for bit what `floatToF16` / `floatToBf16` in core do.
 */
import { type DType, f16FromF32Bits, f16ToFloat } from '@peft/core';
import type { CpuBuffer } from './buffer.js';

let f16Table: Float32Array | null = null;
let bf16Table: Float32Array | null = null;

/** float32 value of every 16-bit pattern of `dtype` (float16 or bfloat16). */
export function decodeTable(dtype: 'float16' | 'bfloat16'): Float32Array {
  if (dtype === 'float16') {
    if (f16Table === null) {
      f16Table = new Float32Array(65536);
      for (let i = 0; i < 65536; i++) f16Table[i] = f16ToFloat(i);
    }
    return f16Table;
  }
  if (bf16Table === null) {
    bf16Table = new Float32Array(65536);
    const bits = new Uint32Array(bf16Table.buffer);
    for (let i = 0; i < 65536; i++) bits[i] = i << 16;
  }
  return bf16Table;
}

/** Rounds src[0, n) (float32) into dst[dstOffset, dstOffset + n) as float16 or bfloat16 bits. */
export function roundInto(dst: Uint16Array, dtype: 'float16' | 'bfloat16', dstOffset: number, src: Float32Array, n = src.length): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  if (dtype === 'bfloat16') {
    for (let i = 0; i < n; i++) {
      const x = bits[i];
      dst[dstOffset + i] = (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) | 0x40) & 0xffff : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
  } else {
    for (let i = 0; i < n; i++) dst[dstOffset + i] = f16FromF32Bits(bits[i]);
  }
}

/** Elements [start, start + n) of a float buffer as float32: a view for float32 storage, a decoded copy otherwise. */
export function loadF32(buf: CpuBuffer, start = 0, n = buf.size - start): Float32Array {
  if (buf.dtype === 'float32') return (buf.data as Float32Array).subarray(start, start + n);
  if (buf.dtype === 'int32') {
    const out = new Float32Array(n);
    const src = buf.data as Int32Array;
    for (let i = 0; i < n; i++) out[i] = src[start + i];
    return out;
  }
  const table = decodeTable(buf.dtype);
  const src = buf.data as Uint16Array;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = table[src[start + i]];
  return out;
}

/**
 * Where a kernel writes elements [start, start + n) of `buf` in float32: the buffer itself for
 * float32 storage, else a scratch array that `storeF32` rounds into the buffer afterwards.
 */
export function outF32(buf: CpuBuffer, n = buf.size, start = 0): Float32Array {
  if (buf.dtype === 'float32') return (buf.data as Float32Array).subarray(start, start + n);
  return new Float32Array(n);
}

/** Stores float32 values at element `start` of `buf`, rounding to its storage dtype (no-op for its own view). */
export function storeF32(buf: CpuBuffer, values: Float32Array, start = 0): void {
  const dtype: DType = buf.dtype;
  if (dtype === 'float32') {
    const data = buf.data as Float32Array;
    if (values.buffer !== data.buffer || values.byteOffset !== start * 4) data.set(values, start);
  } else if (dtype === 'int32') {
    throw new Error(`internal: storeF32 into an int32 buffer`);
  } else {
    roundInto(buf.data as Uint16Array, dtype, start, values);
  }
}
