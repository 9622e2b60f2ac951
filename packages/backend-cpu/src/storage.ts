/**
 * Float32 ↔ storage conversions for the hot loops. float16 and bfloat16 live as raw 16-bit
 * patterns; kernels decode inputs to float32 (bfloat16 by a shift, float16 through a 65536-entry
 * table) and round outputs back with round-to-nearest-even, bit for bit what `floatToF16` /
 * `floatToBf16` in core do.
 *
 * Two ways to get float32 values:
 * - `loadF32` / `outF32` / `storeF32`: whole ranges; 16-bit storage gets a fresh array per call,
 *   so a kernel may hold several at once.
 * - `readF32` / `writeF32` / `flushF32`: one chunk or row at a time, without allocating: float32
 *   buffers hand out their own array (index it from `start`), 16-bit buffers decode into a
 *   numbered scratch slot (index it from 0). A kernel that holds several at once gives each its
 *   own slot; nothing may hold a slot across kernel calls.
 */
import { type DType, f16FromF32Bits, f16ToFloat } from '@peft/core';
import type { CpuBuffer } from './buffer.js';

/** Elements per chunk when a kernel walks 16-bit operands through scratch (16 KiB of float32). */
export const CHUNK = 4096;

/** Scratch slots grow up to this many elements and are kept; larger requests get a fresh array. */
const MAX_KEPT_SCRATCH = 1 << 20;

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

/** bfloat16 bits of the float32 whose bits are `x`: round to nearest even, NaN stays a (quiet) NaN. */
function bf16FromF32Bits(x: number): number {
  return (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) | 0x40) & 0xffff : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

const one32 = new Float32Array(1);
const oneBits = new Uint32Array(one32.buffer);

/** The bfloat16 bits of one value (rounded to float32 first, then to nearest even). */
export function toBf16(value: number): number {
  one32[0] = value;
  return bf16FromF32Bits(oneBits[0]);
}

/** The float16 bits of one value (rounded to float32 first, then to nearest even). */
export function toF16(value: number): number {
  one32[0] = value;
  return f16FromF32Bits(oneBits[0]);
}

/** Uint32 views of arrays that `bitsOf` has seen lately (the scratch slots, mostly). */
const bitViews = new WeakMap<ArrayBuffer, Uint32Array>();

/** A Uint32Array over the same memory as `src` (offset 0, src.length elements). */
function bitsOf(src: Float32Array): Uint32Array {
  const ab = src.buffer as ArrayBuffer;
  if (src.byteOffset === 0 && src.length === ab.byteLength >>> 2) {
    let bits = bitViews.get(ab);
    if (bits === undefined) {
      bits = new Uint32Array(ab);
      bitViews.set(ab, bits);
    }
    return bits;
  }
  return new Uint32Array(ab, src.byteOffset, src.length);
}

/** Rounds src[srcOffset, srcOffset + n) (float32) into dst[dstOffset, dstOffset + n) as float16 or bfloat16 bits. */
export function roundInto(
  dst: Uint16Array,
  dtype: 'float16' | 'bfloat16',
  dstOffset: number,
  src: Float32Array,
  n = src.length,
  srcOffset = 0,
): void {
  const bits = bitsOf(src);
  if (dtype === 'bfloat16') {
    for (let i = 0; i < n; i++) dst[dstOffset + i] = bf16FromF32Bits(bits[srcOffset + i]);
  } else {
    for (let i = 0; i < n; i++) dst[dstOffset + i] = f16FromF32Bits(bits[srcOffset + i]);
  }
}

/** dst[dstOffset + i] = float32 value of elements start + i of `buf` (16-bit or int32 storage), i < n. */
export function decodeInto(buf: CpuBuffer, start: number, n: number, dst: Float32Array, dstOffset = 0): void {
  if (buf.dtype === 'bfloat16') {
    const src = buf.data as Uint16Array;
    const bits = bitsOf(dst);
    for (let i = 0; i < n; i++) bits[dstOffset + i] = src[start + i] << 16;
  } else if (buf.dtype === 'float16') {
    const table = decodeTable('float16');
    const src = buf.data as Uint16Array;
    for (let i = 0; i < n; i++) dst[dstOffset + i] = table[src[start + i]];
  } else if (buf.dtype === 'int32') {
    const src = buf.data as Int32Array;
    for (let i = 0; i < n; i++) dst[dstOffset + i] = src[start + i];
  } else {
    dst.set((buf.data as Float32Array).subarray(start, start + n), dstOffset);
  }
}

/** Elements [start, start + n) of a float buffer as float32: a view for float32 storage, a decoded copy otherwise. */
export function loadF32(buf: CpuBuffer, start = 0, n = buf.size - start): Float32Array {
  if (buf.dtype === 'float32') return (buf.data as Float32Array).subarray(start, start + n);
  const out = new Float32Array(n);
  decodeInto(buf, start, n, out);
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

const slots: Float32Array[] = [];

/** Scratch slot `slot` with room for at least `n` elements (contents arbitrary). */
export function scratch(slot: number, n: number): Float32Array {
  const s = slots[slot];
  if (s !== undefined && s.length >= n) return s;
  if (n > MAX_KEPT_SCRATCH) return new Float32Array(n);
  const grown = new Float32Array(Math.max(n, Math.min(MAX_KEPT_SCRATCH, Math.max(CHUNK, s === undefined ? 0 : 2 * s.length))));
  slots[slot] = grown;
  return grown;
}

/**
 * Float32 values of elements [start, start + n) of a float buffer: its own array for float32
 * (element start + i at index start + i), else decoded into scratch `slot` (at index i).
 */
export function readF32(buf: CpuBuffer, start: number, n: number, slot: number): Float32Array {
  if (buf.dtype === 'float32') return buf.data as Float32Array;
  const s = scratch(slot, n);
  decodeInto(buf, start, n, s);
  return s;
}

/** Where `readF32` puts element `start`: `start` for float32 buffers, 0 for decoded scratch. */
export function at(buf: CpuBuffer, start: number): number {
  return buf.dtype === 'float32' ? start : 0;
}

/**
 * Where a kernel writes elements [start, start + n) of `buf` in float32: its own array for
 * float32 (index from `at(buf, start)`), else scratch `slot` that `flushF32` rounds back.
 */
export function writeF32(buf: CpuBuffer, n: number, slot: number): Float32Array {
  return buf.dtype === 'float32' ? (buf.data as Float32Array) : scratch(slot, n);
}

/** After `writeF32`: rounds values[from, from + n) into elements [start, start + n) of a 16-bit buffer; nothing for float32. */
export function flushF32(buf: CpuBuffer, start: number, n: number, values: Float32Array, from = 0): void {
  if (buf.dtype === 'float32') return;
  if (buf.dtype === 'int32') throw new Error(`internal: flushF32 into an int32 buffer`);
  roundInto(buf.data as Uint16Array, buf.dtype, start, values, n, from);
}

/** Chunk length for a kernel over `n` elements: everything at once when all operands are float32. */
export function chunkOf(n: number, ...bufs: CpuBuffer[]): number {
  for (const b of bufs) if (b.dtype !== 'float32') return CHUNK;
  return Math.max(n, 1);
}

/** Elements of the block fillRaw copies into shared arrays. */
const FILL_BLOCK = 16384;
/** The last block fillRaw made, per array type, with its value. */
const fillBlocks = new Map<unknown, { block: RawArray; value: number }>();
type RawArray = Float32Array | Float64Array | Int32Array | Uint16Array;

/**
 * a.fill(value) (value as a raw element: a float, an int32 or 16-bit bits), but an array on a
 * SharedArrayBuffer (the backend's large buffers when it has worker threads) is filled by copies
 * of a filled block: V8 fills shared memory element by element, about five times slower than
 * plain memory, and copies into it about twice as fast as it fills it.
 */
export function fillRaw(a: RawArray, value: number): void {
  if (typeof SharedArrayBuffer === 'undefined' || !(a.buffer instanceof SharedArrayBuffer) || a.length <= FILL_BLOCK) {
    a.fill(value);
    return;
  }
  let cached = fillBlocks.get(a.constructor);
  if (cached === undefined || !Object.is(cached.value, value)) {
    const Type = a.constructor as new (n: number) => RawArray;
    cached = { block: new Type(FILL_BLOCK).fill(value), value };
    fillBlocks.set(a.constructor, cached);
  }
  const block = cached.block;
  for (let o = 0; o < a.length; o += FILL_BLOCK) {
    (a as Float32Array).set((a.length - o < FILL_BLOCK ? block.subarray(0, a.length - o) : block) as Float32Array, o);
  }
}
