import type { DType } from '../dtype.js';
import type { SafetensorsDType } from './dtypes.js';
import { resolveSafetensorsDType, safetensorsDTypeBits, safetensorsDTypeRank } from './dtypes.js';
import { MAX_HEADER_BYTES } from './header.js';

/** One tensor to write. `data` holds its little-endian bytes (any typed array or DataView). */
export interface TensorToWrite {
  dtype: SafetensorsDType | DType;
  shape: readonly number[];
  data: ArrayBufferView;
}

export interface NamedTensorToWrite extends TensorToWrite {
  name: string;
}

/** A tensor whose bytes are produced only when the writer reaches it. */
export interface LazyTensorToWrite {
  dtype: SafetensorsDType | DType;
  shape: readonly number[];
  data: ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);
}

export interface NamedLazyTensorToWrite extends LazyTensorToWrite {
  name: string;
}

export type TensorsToWrite = readonly NamedTensorToWrite[] | Readonly<Record<string, TensorToWrite>>;
export type LazyTensorsToWrite = readonly NamedLazyTensorToWrite[] | Readonly<Record<string, LazyTensorToWrite>>;

/** Where the streaming writer sends bytes. Chunks may be views of the caller's tensors: copy if kept. */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
}

export interface PlannedTensor<T> {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  byteLength: number;
  /** Offsets relative to the data region, as written in the header. */
  dataOffsets: [number, number];
  tensor: T;
}

export interface SafetensorsLayout<T> {
  /** The 8-byte length plus the space-padded JSON header. */
  header: Uint8Array;
  /** Tensors in file order. */
  tensors: PlannedTensor<T>[];
  /** Size of the whole file. */
  totalBytes: number;
}

/** Largest chunk handed to a sink at once (file writes are limited to 2 GiB per call). */
const SINK_CHUNK_BYTES = 64 * 1024 * 1024;

/** Normalizes the array and record forms to one named list. */
export function namedTensors<T extends { dtype: unknown; shape: readonly number[] }>(
  tensors: readonly (T & { name: string })[] | Readonly<Record<string, T>>,
): (T & { name: string })[] {
  if (Array.isArray(tensors)) return tensors as (T & { name: string })[];
  return Object.entries(tensors as Record<string, T>).map(([name, t]) => ({ ...t, name }));
}

/** Bytes a tensor of this dtype and shape takes; throws (naming the tensor) on bad shapes. */
export function tensorByteLength(dtype: SafetensorsDType, shape: readonly number[], where: string): number {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where} shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
  }
  const bits = shape.reduce((a, b) => a * b, 1) * safetensorsDTypeBits(dtype);
  if (!Number.isSafeInteger(bits)) throw new Error(`${where} ${dtype} ${fmtShape(shape)} is too large`);
  if (bits % 8 !== 0) throw new Error(`${where} ${dtype} ${fmtShape(shape)} is ${bits} bits, not a whole number of bytes`);
  return bits / 8;
}

/**
 * Orders tensors, assigns offsets and builds the header, without touching tensor data.
 *
 * Order is the reference writer's (Python `safetensors.save_file`): by dtype alignment, largest
 * first, then by name (code point order). Every tensor thus starts at a multiple of its element
 * size, and the file is byte-identical to the one Python writes for the same tensors and metadata.
 */
export function layoutSafetensors<T extends { dtype: SafetensorsDType | DType; shape: readonly number[] }>(
  tensors: readonly (T & { name: string })[] | Readonly<Record<string, T>>,
  metadata?: Record<string, string>,
  fileName = 'safetensors writer',
): SafetensorsLayout<T> {
  const list = namedTensors<T>(tensors);
  const seen = new Set<string>();
  const planned = list.map((t) => {
    if (typeof t.name !== 'string') throw new Error(`${fileName}: tensor name ${JSON.stringify(t.name)} must be a string`);
    const where = `${fileName}: tensor ${JSON.stringify(t.name)}`;
    if (t.name === '__metadata__') throw new Error(`${where}: the name __metadata__ is reserved for the header's metadata`);
    if (seen.has(t.name)) throw new Error(`${where} is given twice: tensor names must be unique`);
    seen.add(t.name);
    const dtype = resolveSafetensorsDType(t.dtype, where);
    return {
      name: t.name,
      dtype,
      shape: [...t.shape],
      byteLength: tensorByteLength(dtype, t.shape, where),
      dataOffsets: [0, 0] as [number, number],
      tensor: t as T,
    };
  });
  planned.sort((a, b) => safetensorsDTypeRank(b.dtype) - safetensorsDTypeRank(a.dtype) || compareCodePoints(a.name, b.name));

  let offset = 0;
  const parts: string[] = [];
  if (metadata !== undefined) {
    const meta: string[] = [];
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new Error(`${fileName}: metadata value of ${JSON.stringify(key)} must be a string, got ${JSON.stringify(value)}`);
      }
      meta.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  for (const p of planned) {
    p.dataOffsets = [offset, offset + p.byteLength];
    offset += p.byteLength;
    // Built by hand: JSON.stringify of an object would move integer-like names ("0") to the front.
    parts.push(
      `${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":[${p.shape.join(',')}],"data_offsets":[${p.dataOffsets.join(',')}]}`,
    );
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new Error(`${fileName}: header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers accept`);
  }
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, tensors: planned, totalBytes: header.byteLength + offset };
}

/** Serializes tensors into one in-memory safetensors file (see `layoutSafetensors` for the order). */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const layout = layoutSafetensors<TensorToWrite>(tensors, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.header, 0);
  for (const p of layout.tensors) {
    out.set(checkedBytes(p.tensor.data, p, 'safetensors writer'), layout.header.byteLength + p.dataOffsets[0]);
  }
  return out;
}

/**
 * Streams a safetensors file to `sink`: the header first, then each tensor's bytes, asking lazy
 * tensors for their data one at a time so that only one tensor need be in memory besides the sink's
 * buffers. Resolves to the number of bytes written.
 */
export async function writeSafetensorsTo(
  sink: ByteSink,
  tensors: LazyTensorsToWrite,
  metadata?: Record<string, string>,
  fileName = 'safetensors writer',
): Promise<number> {
  const layout = layoutSafetensors<LazyTensorToWrite>(tensors, metadata, fileName);
  await sink.write(layout.header);
  for (const p of layout.tensors) {
    const data = typeof p.tensor.data === 'function' ? await p.tensor.data() : p.tensor.data;
    const bytes = checkedBytes(data, p, fileName);
    for (let at = 0; at < bytes.byteLength; at += SINK_CHUNK_BYTES) {
      await sink.write(bytes.subarray(at, Math.min(at + SINK_CHUNK_BYTES, bytes.byteLength)));
    }
  }
  return layout.totalBytes;
}

function checkedBytes(data: unknown, p: PlannedTensor<unknown>, fileName: string): Uint8Array {
  if (!ArrayBuffer.isView(data)) {
    throw new Error(`${fileName}: tensor ${JSON.stringify(p.name)} data must be a typed array or DataView, got ${typeof data}`);
  }
  if (data.byteLength !== p.byteLength) {
    throw new Error(
      `${fileName}: tensor ${JSON.stringify(p.name)} has ${data.byteLength} bytes of data but ${p.dtype} ${fmtShape(p.shape)} needs ${p.byteLength}`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Compares strings by Unicode code point (the order of their UTF-8 bytes, as Rust and Python sort). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointKey(x) - codePointKey(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (astral code points) above U+E000..U+FFFF, which UTF-16 order puts after them. */
function codePointKey(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
