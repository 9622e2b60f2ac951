import type { SafetensorsDType } from './dtypes.js';
import { isSafetensorsDType, SAFETENSORS_DTYPES, safetensorsDTypeBits } from './dtypes.js';
import { describeJsonValue as describe, parseUntrustedJson, quoteName } from './json.js';

/** Same cap as the reference crate: a header longer than this is not a safetensors file. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Where one tensor lives in a safetensors file. */
export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Offsets as written in the header, relative to the start of the data region. */
  dataOffsets: [number, number];
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** Byte length of the JSON header (the u64 at the start of the file). */
  headerByteLength: number;
  /** Absolute position of the data region: 8 + headerByteLength. */
  dataOffset: number;
  metadata: Record<string, string>;
  /** Tensors in data-offset order. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

/** Nesting of a safetensors header: the object of tensors, each tensor's object, its arrays. */
const MAX_HEADER_DEPTH = 3;

const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

/**
 * Reads the u64 header length from the first 8 bytes and checks it against the file size. The
 * length field of a file that is not safetensors is 8 arbitrary bytes (text, if a link leads to a
 * text file), so a length beyond both the file and any real header is reported without its value.
 */
export function readHeaderLength(first8: Uint8Array, fileName: string, fileSize: number): number {
  if (fileSize < 8 || first8.byteLength < 8) {
    throw new Error(`${fileName}: file is ${fileSize} bytes, too small for a safetensors file, which starts with an 8-byte header length`);
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES) && n > BigInt(fileSize - 8)) {
    // Beyond any header: these 8 bytes were never a length (text, if a link leads to a text file).
    throw new Error(
      `${fileName}: not a safetensors file (header length field exceeds the file size ${fileSize}): the file is truncated or not safetensors`,
    );
  }
  const length = Number(n);
  if (length > MAX_HEADER_BYTES) {
    throw new Error(
      `${fileName}: header length ${length} is over the ${MAX_HEADER_BYTES}-byte limit: the file is corrupt or not safetensors`,
    );
  }
  if (8 + length > fileSize) {
    throw new Error(
      `${fileName}: header length ${length} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8} bytes of header): the file is truncated or not safetensors`,
    );
  }
  if (length < 2) {
    throw new Error(`${fileName}: header length ${length} is too short for a JSON object: the file is corrupt or not safetensors`);
  }
  return length;
}

/** Parses and validates the JSON header as strictly as the reference crate, with messages that name the culprit. */
export function parseHeader(headerBytes: Uint8Array, fileName: string, fileSize: number): SafetensorsHeader {
  const fail = (message: string): never => {
    throw new Error(`${fileName}: ${message}`);
  };
  const headerByteLength = headerBytes.byteLength;
  const dataOffset = 8 + headerByteLength;
  const dataSize = fileSize - dataOffset;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail(`header (${headerByteLength} bytes) is not valid UTF-8: the file is corrupt or not safetensors`);
  }
  // A header is an object of objects whose deepest values are the shape and data_offsets arrays.
  const json = parseUntrustedJson(text, fileName, { maxDepth: MAX_HEADER_DEPTH, what: 'header' });
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail(`header must be a JSON object of tensors, got ${describe(json)}`);
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate) {
    return fail(
      duplicate.depth === 1
        ? `header names tensor ${quoteName(duplicate.key)} twice: tensor names must be unique`
        : `header repeats the key ${quoteName(duplicate.key)} inside one object`,
    );
  }

  const metadata: Record<string, string> = {};
  const entries: Array<[string, SafetensorsTensorInfo]> = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) {
        fail(`__metadata__ must be an object of strings, got ${describe(value)}`);
      }
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value of ${quoteName(key)} must be a string, got ${describe(v)}`);
        metadata[key] = v as string;
      }
      continue;
    }
    entries.push([name, parseEntry(name, value, fail, dataOffset, dataSize)]);
  }

  // Like the reference crate: order by offsets, then require the tensors to tile the data region.
  entries.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let end = 0;
  let previous: [string, SafetensorsTensorInfo] | undefined;
  for (const entry of entries) {
    const [name, info] = entry;
    const [begin] = info.dataOffsets;
    if (begin > end) {
      fail(
        previous
          ? `${begin - end} unused bytes between tensor ${quoteName(previous[0])} (data_offsets ${offsets(previous[1])}) and tensor ${quoteName(name)} (data_offsets ${offsets(info)}): tensors must be contiguous`
          : `tensor ${quoteName(name)} data_offsets ${offsets(info)} leave ${begin} unused bytes at the start of the data: the first tensor must begin at 0`,
      );
    }
    if (begin < end && previous) {
      fail(
        `tensor ${quoteName(name)} data_offsets ${offsets(info)} overlap tensor ${quoteName(previous[0])} data_offsets ${offsets(previous[1])}: tensors must not share bytes`,
      );
    }
    end = info.dataOffsets[1];
    previous = entry;
  }
  if (end !== dataSize) {
    fail(
      `data region is ${dataSize} bytes (file ${fileSize} bytes, header ${headerByteLength} bytes) but the tensors cover ${end}: ${dataSize - end} trailing bytes after ${previous ? `tensor ${quoteName(previous[0])}` : 'the header'}`,
    );
  }
  return { headerByteLength, dataOffset, metadata, tensors: new Map(entries) };
}

function parseEntry(
  name: string,
  value: unknown,
  fail: (message: string) => never,
  dataOffset: number,
  dataSize: number,
): SafetensorsTensorInfo {
  const quoted = quoteName(name);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`tensor ${quoted} must be an object {"dtype", "shape", "data_offsets"}, got ${describe(value)}`);
  }
  const entry = value as Record<string, unknown>;
  for (const field of ENTRY_FIELDS) {
    if (!(field in entry)) fail(`tensor ${quoted} has no "${field}": each tensor needs dtype, shape and data_offsets`);
  }
  for (const key of Object.keys(entry)) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(key)) {
      fail(`tensor ${quoted} has an unexpected field ${quoteName(key, 40)}: expected only dtype, shape and data_offsets`);
    }
  }
  const { dtype, shape, data_offsets: dataOffsets } = entry;
  if (!isSafetensorsDType(dtype)) {
    fail(
      `tensor ${quoted} has dtype ${typeof dtype === 'string' ? quoteName(dtype, 20) : describe(dtype)}, which is not a safetensors dtype: known are ${SAFETENSORS_DTYPES.join(', ')}`,
    );
  }
  const st = dtype as SafetensorsDType;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(`tensor ${quoted} shape ${numbersText(shape)} must be an array of non-negative integers`);
  }
  const dims = shape as number[];
  if (!Array.isArray(dataOffsets) || dataOffsets.length !== 2 || !dataOffsets.every(isCount)) {
    fail(`tensor ${quoted} data_offsets ${numbersText(dataOffsets)} must be [begin, end], two non-negative integers`);
  }
  const [begin, end] = dataOffsets as [number, number];
  if (end < begin) fail(`tensor ${quoted} data_offsets [${begin}, ${end}] end before they begin`);

  // Checked at every step, as the reference crate's checked_mul: no intermediate beyond 2^53.
  let bits = safetensorsDTypeBits(st);
  for (const d of dims) {
    bits *= d;
    if (!Number.isSafeInteger(bits)) {
      fail(`tensor ${quoted} shape ${numbersText(dims)} is too large: its size in bits overflows 2^53 (${st})`);
    }
  }
  if (bits % 8 !== 0) {
    fail(`tensor ${quoted} ${st} ${shapeText(dims)} is ${bits} bits, not a whole number of bytes`);
  }
  const needed = bits / 8;
  if (end - begin !== needed) {
    fail(`tensor ${quoted} data_offsets [${begin}, ${end}] cover ${end - begin} bytes but ${st} ${shapeText(dims)} needs ${needed}`);
  }
  if (end > dataSize) {
    fail(
      `tensor ${quoted} data_offsets [${begin}, ${end}] run past the end of the data, which is ${Math.max(dataSize, 0)} bytes: the file is truncated or the offsets are wrong`,
    );
  }
  return { dtype: st, shape: dims, dataOffsets: [begin, end], byteOffset: dataOffset + begin, byteLength: needed };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A short array of numbers as JSON, anything else described without its contents. */
function numbersText(value: unknown): string {
  return Array.isArray(value) && value.length <= 8 && value.every((v) => typeof v === 'number') ? JSON.stringify(value) : describe(value);
}

function shapeText(dims: number[]): string {
  return dims.length <= 8 ? `[${dims.join(', ')}]` : `[${dims.slice(0, 8).join(', ')}, … (${dims.length} dimensions)]`;
}

function offsets(info: SafetensorsTensorInfo): string {
  return `[${info.dataOffsets[0]}, ${info.dataOffsets[1]}]`;
}

/**
 * JSON.parse keeps the last of repeated keys silently; a header that names a tensor twice is
 * ambiguous, so scan the (already valid) JSON text for repeated keys in any object.
 */
function firstDuplicateKey(text: string): { key: string; depth: number } | null {
  const stack: Array<{ keys: Set<string> | null; expectKey: boolean }> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { key, depth: stack.length };
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, expectKey: false });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}
