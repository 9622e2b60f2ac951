/**
 * The ZIP container of torch.save (torch >= 1.6): reads the central directory, then single entries
 * or byte ranges of entries on demand. Stored (uncompressed) entries, which is what torch writes,
 * are read range by range; deflated ones (an archive re-zipped by another tool) are inflated whole
 * with `DecompressionStream('deflate-raw')`. ZIP64 is supported (torch writes it past 4 GiB).
 */

import { shortValue } from '@peft/core';

/**
 * Random-access bytes, structurally the same as `ByteSource` of `@peft/core` (safetensors): an
 * in-memory buffer, a browser `Blob`, or a file on disk (`fileSource` of `@peft/core/node`).
 */
export interface TorchBinSource {
  /** Shown in error messages, usually the file name. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; the result may be a shared view: do not write to it. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases what the source holds open (a file handle). */
  close?(): Promise<void>;
}

/** One file inside the archive, from its central directory record. */
export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflate. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  /** Offset of the entry's local file header. */
  localHeaderOffset: number;
}

export interface ZipDirectory {
  entries: Map<string, ZipEntry>;
  /** Byte range of the central directory within the source. */
  centralDirectoryOffset: number;
  centralDirectorySize: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const EOCD_SIZE = 22;
const LOCATOR_SIZE = 20;
const EOCD64_SIZE = 56;
const MAX_COMMENT = 0xffff;

const LEGACY_HINT =
  "convert it with torch >= 1.6: python -c \"import torch; torch.save(torch.load('FILE', map_location='cpu', weights_only=True), 'FILE')\" (or save it as safetensors)";

/** Reads the end-of-central-directory records and the central directory (two or three small reads). */
export async function readZipDirectory(source: TorchBinSource): Promise<ZipDirectory> {
  const name = source.name;
  if (source.size < EOCD_SIZE) {
    throw new Error(`${name}: file is ${source.size} bytes, too small for a torch.save zip archive: ${await describeNonZip(source)}`);
  }
  // torch writes no archive comment, so the record is usually the last 22 bytes; read the locator with it.
  const quick = Math.min(source.size, EOCD_SIZE + LOCATOR_SIZE);
  let tail = await source.read(source.size - quick, quick);
  let tailOffset = source.size - quick;
  let at = findEocd(tail);
  if (at < 0 && source.size > quick) {
    const length = Math.min(source.size, EOCD_SIZE + LOCATOR_SIZE + MAX_COMMENT);
    tailOffset = source.size - length;
    tail = await source.read(tailOffset, length);
    at = findEocd(tail);
  }
  if (at < 0) {
    throw new Error(`${name}: no zip end-of-central-directory record: ${await describeNonZip(source)}`);
  }
  const eocd = tail.subarray(at);
  const dv = new DataView(eocd.buffer, eocd.byteOffset, eocd.byteLength);
  if (dv.getUint16(4, true) !== 0 || dv.getUint16(6, true) !== 0) {
    throw new Error(`${name}: multi-disk (split) zip archives are not supported`);
  }
  let count = dv.getUint16(10, true);
  let cdSize = dv.getUint32(12, true);
  let cdOffset = dv.getUint32(16, true);
  const eocdOffset = tailOffset + at;

  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff || hasLocator(tail, at)) {
    if (!hasLocator(tail, at)) {
      // The locator sits just before the EOCD; we may not have read it if the quick read missed.
      const locOffset = eocdOffset - LOCATOR_SIZE;
      if (locOffset < 0) throw new Error(`${name}: zip64 archive without a zip64 locator: the file is corrupt`);
      tail = await source.read(locOffset, LOCATOR_SIZE + EOCD_SIZE);
      tailOffset = locOffset;
      at = LOCATOR_SIZE;
      if (!hasLocator(tail, at)) throw new Error(`${name}: zip64 archive without a zip64 locator: the file is corrupt`);
    }
    const loc = new DataView(tail.buffer, tail.byteOffset + at - LOCATOR_SIZE, LOCATOR_SIZE);
    const eocd64Offset = safeU64(loc, 8, name, 'zip64 end-of-central-directory offset');
    if (eocd64Offset + EOCD64_SIZE > eocdOffset) {
      throw new Error(`${name}: zip64 end-of-central-directory offset ${eocd64Offset} is out of place: the file is corrupt or truncated`);
    }
    const rec = await source.read(eocd64Offset, EOCD64_SIZE);
    const r = new DataView(rec.buffer, rec.byteOffset, EOCD64_SIZE);
    if (r.getUint32(0, true) !== EOCD64_SIG) {
      throw new Error(`${name}: no zip64 end-of-central-directory record at offset ${eocd64Offset}: the file is corrupt`);
    }
    count = safeU64(r, 32, name, 'zip64 entry count');
    cdSize = safeU64(r, 40, name, 'zip64 central directory size');
    cdOffset = safeU64(r, 48, name, 'zip64 central directory offset');
  }
  if (cdOffset + cdSize > source.size) {
    throw new Error(
      `${name}: the zip central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the file (${source.size} bytes): the file is truncated`,
    );
  }
  const cd = await source.read(cdOffset, cdSize);
  const entries = parseCentralDirectory(cd, count, name, source.size);
  return { entries, centralDirectoryOffset: cdOffset, centralDirectorySize: cdSize };
}

function findEocd(tail: Uint8Array): number {
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  for (let i = tail.byteLength - EOCD_SIZE; i >= 0; i--) {
    if (dv.getUint32(i, true) === EOCD_SIG && i + EOCD_SIZE + dv.getUint16(i + 20, true) === tail.byteLength) return i;
  }
  return -1;
}

function hasLocator(tail: Uint8Array, eocdAt: number): boolean {
  if (eocdAt < LOCATOR_SIZE) return false;
  return new DataView(tail.buffer, tail.byteOffset + eocdAt - LOCATOR_SIZE, 4).getUint32(0, true) === EOCD64_LOCATOR_SIG;
}

function safeU64(dv: DataView, at: number, name: string, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${name}: ${what} ${v} is too large: the file is corrupt`);
  return Number(v);
}

function parseCentralDirectory(cd: Uint8Array, count: number, name: string, fileSize: number): Map<string, ZipEntry> {
  const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.byteLength || dv.getUint32(p, true) !== CDH_SIG) {
      throw new Error(`${name}: zip central directory record ${i} of ${count} is missing or corrupt (at byte ${p} of ${cd.byteLength})`);
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc32 = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let uncompressedSize = dv.getUint32(p + 24, true);
    const nameLength = dv.getUint16(p + 28, true);
    const extraLength = dv.getUint16(p + 30, true);
    const commentLength = dv.getUint16(p + 32, true);
    let localHeaderOffset = dv.getUint32(p + 42, true);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > cd.byteLength) throw new Error(`${name}: zip central directory record ${i} runs past the directory: the file is corrupt`);
    const entryName = utf8.decode(cd.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extended information: only the fields whose 32-bit value is saturated, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = dv.getUint16(e, true);
      const size = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (what: string): number => {
          if (q + 8 > e + 4 + size) throw new Error(`${name}: zip64 extra field of ${quoteName(entryName)} lacks the ${what}`);
          const v = safeU64(dv, q, name, `${what} of ${quoteName(entryName)}`);
          q += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      e += 4 + size;
    }
    if (localHeaderOffset + 30 + compressedSize > fileSize) {
      throw new Error(
        `${name}: zip entry ${quoteName(entryName)} (${compressedSize} bytes at offset ${localHeaderOffset}) runs past the end of the file (${fileSize} bytes): the file is truncated`,
      );
    }
    entries.set(entryName, { name: entryName, method, flags, crc32, compressedSize, uncompressedSize, localHeaderOffset });
    p = end;
  }
  return entries;
}

/** Explains what a source that is not a zip archive looks like instead. */
async function describeNonZip(source: TorchBinSource): Promise<string> {
  const head = await source.read(0, Math.min(16, source.size));
  if (head.byteLength >= 2 && head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a && head[3] === 0x0a) {
    return `it is in the legacy torch.save format (torch < 1.6, or _use_new_zipfile_serialization=False), which is not supported: ${LEGACY_HINT.replaceAll('FILE', source.name)}`;
  }
  if (head.byteLength >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05)) {
    return 'it starts like a zip archive but its end is missing: the file is truncated (an interrupted download?)';
  }
  if (head.byteLength >= 9 && head[8] === 0x7b && head[6] === 0 && head[7] === 0) {
    return 'it looks like a safetensors file: open it with the safetensors reader';
  }
  if (head.byteLength >= 1 && head[0] === 0x80) {
    return `it looks like a bare pickle, not a torch.save zip archive: ${LEGACY_HINT.replaceAll('FILE', source.name)}`;
  }
  return 'it is not a torch.save (torch >= 1.6) zip archive, or it is truncated';
}

/**
 * Largest `data.pkl` (or other whole entry) read into memory. Real ones take about 100 bytes per
 * tensor: kilobytes, a few megabytes for the largest models. The bound keeps a deflated bomb that
 * declares it to a few seconds of inflating.
 */
export const MAX_PICKLE_BYTES = 64 * 2 ** 20;
/**
 * Largest plausible ratio of uncompressed to compressed size for deflate (its limit is about
 * 1032:1); a directory that declares more is lying, and nothing is allocated from it.
 */
export const MAX_DEFLATE_RATIO = 1032;
/** Compressed bytes read and fed to the inflater at a time. */
const INFLATE_INPUT_CHUNK = 1 << 16;

const dataOffsets = new WeakMap<ZipEntry, number>();

/**
 * Absolute offset of an entry's data (after its local header, which has its own extra field).
 * The local header must agree with the central directory: signature, name, method, encryption,
 * and (unless the sizes are in a data descriptor) CRC and sizes.
 */
export async function entryDataOffset(source: TorchBinSource, entry: ZipEntry): Promise<number> {
  const known = dataOffsets.get(entry);
  if (known !== undefined) return known;
  const where = `${source.name}: zip entry ${quoteName(entry.name)}`;
  if (entry.localHeaderOffset + 30 > source.size) {
    throw new Error(`${where}: its local header at offset ${entry.localHeaderOffset} runs past the end of the file (${source.size} bytes)`);
  }
  // The header and (what should be) the entry's name, in one read.
  const centralName = new TextEncoder().encode(entry.name);
  const header = await source.read(entry.localHeaderOffset, Math.min(30 + centralName.byteLength, source.size - entry.localHeaderOffset));
  const dv = new DataView(header.buffer, header.byteOffset, 30);
  if (dv.getUint32(0, true) !== LFH_SIG) {
    throw new Error(`${where} has no local header at offset ${entry.localHeaderOffset}: the file is corrupt`);
  }
  const flags = dv.getUint16(6, true);
  const method = dv.getUint16(8, true);
  const nameLength = dv.getUint16(26, true);
  const offset = entry.localHeaderOffset + 30 + nameLength + dv.getUint16(28, true);
  if (offset + entry.compressedSize > source.size) {
    throw new Error(
      `${where}: data [${offset}, ${offset + entry.compressedSize}) runs past the end of the file (${source.size} bytes): the file is truncated`,
    );
  }
  const mismatch = (field: string, local: number | string, central: number | string) =>
    new Error(`${where}: its local header gives ${field} ${local} but the central directory ${central}: the file is corrupt`);
  if (method !== entry.method) throw mismatch('compression method', method, entry.method);
  if ((flags & 1) !== (entry.flags & 1)) throw mismatch('encryption flag', flags & 1, entry.flags & 1);
  const localName =
    nameLength === centralName.byteLength
      ? header.subarray(30)
      : await source.read(entry.localHeaderOffset + 30, Math.min(nameLength, source.size - entry.localHeaderOffset - 30));
  if (!sameName(localName, centralName, entry.name)) {
    throw new Error(`${where}: its local header names a different file (${nameLength} bytes): the file is corrupt`);
  }
  if (!(flags & 8)) {
    // No data descriptor: the local header carries CRC and sizes (0xffffffff: they are in its zip64 extra field).
    const crc = dv.getUint32(14, true);
    const compressed = dv.getUint32(18, true);
    const uncompressed = dv.getUint32(22, true);
    if (crc !== entry.crc32) throw mismatch('CRC', `0x${hex(crc)}`, `0x${hex(entry.crc32)}`);
    if (compressed !== 0xffffffff && compressed !== entry.compressedSize)
      throw mismatch('compressed size', compressed, entry.compressedSize);
    if (uncompressed !== 0xffffffff && uncompressed !== entry.uncompressedSize) {
      throw mismatch('uncompressed size', uncompressed, entry.uncompressedSize);
    }
  }
  dataOffsets.set(entry, offset);
  return offset;
}

/** Local and central names agree byte for byte, or decode to the same text (the central one was decoded leniently). */
function sameName(local: Uint8Array, central: Uint8Array, decoded: string): boolean {
  if (local.byteLength === central.byteLength && local.every((b, i) => b === central[i])) return true;
  return new TextDecoder('utf-8', { fatal: false }).decode(local) === decoded;
}

/** Refuses entries this reader cannot read (encrypted, unknown method) or whose declared sizes are implausible. */
export function assertReadableEntry(source: TorchBinSource, entry: ZipEntry): void {
  const where = `${source.name}: zip entry ${quoteName(entry.name)}`;
  if (entry.flags & 1) throw new Error(`${where} is encrypted: not supported`);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new Error(`${where} uses compression method ${entry.method}: only stored (0) and deflate (8) are supported`);
  }
  if (entry.method === 0 && entry.compressedSize !== entry.uncompressedSize) {
    throw new Error(
      `${where}: stored, but its compressed size ${entry.compressedSize} differs from its uncompressed size ${entry.uncompressedSize}: the file is corrupt`,
    );
  }
  if (entry.method === 8 && entry.uncompressedSize > plausibleInflatedSize(entry.compressedSize)) {
    throw new Error(
      `${where}: ${entry.compressedSize} deflated bytes cannot hold the ${entry.uncompressedSize} bytes the directory declares (deflate compresses at most ${MAX_DEFLATE_RATIO}:1): the file is corrupt or a decompression bomb`,
    );
  }
}

/** The most bytes `compressed` bytes of deflate data can inflate to. */
function plausibleInflatedSize(compressed: number): number {
  return compressed * MAX_DEFLATE_RATIO + 64;
}

/**
 * The whole uncompressed content of an entry, CRC-checked. `maxBytes` (default MAX_PICKLE_BYTES)
 * bounds what it may declare; a deflated entry is inflated in bounded steps into a buffer that
 * grows with what really comes out, and inflating past the declared size is an error.
 */
export async function readEntry(source: TorchBinSource, entry: ZipEntry, maxBytes = MAX_PICKLE_BYTES): Promise<Uint8Array> {
  assertReadableEntry(source, entry);
  const where = `${source.name}: zip entry ${quoteName(entry.name)}`;
  if (entry.uncompressedSize > maxBytes) {
    throw new Error(
      `${where} declares ${entry.uncompressedSize} bytes, more than the ${maxBytes} this reader accepts for it: the file is corrupt`,
    );
  }
  const offset = await entryDataOffset(source, entry);
  const data =
    entry.method === 8
      ? await inflateRange(source, entry, offset, 0, entry.uncompressedSize, true)
      : await source.read(offset, entry.compressedSize);
  if (data.byteLength !== entry.uncompressedSize) {
    throw new Error(`${where} holds ${data.byteLength} bytes, the directory says ${entry.uncompressedSize}: the file is corrupt`);
  }
  const crc = crc32(data);
  if (crc !== entry.crc32) {
    throw new Error(`${where} fails its CRC check (0x${hex(crc)}, expected 0x${hex(entry.crc32)}): the file is corrupt`);
  }
  return data;
}

/**
 * Bytes [start, start + length) of an entry's uncompressed content. A stored entry reads only
 * that range (after a small read of its local header); a deflated one is inflated from its start
 * only as far as the range's end, keeping only the range. Only a read of a whole deflated entry
 * is CRC-checked (a range cannot be).
 */
export async function readEntryRange(source: TorchBinSource, entry: ZipEntry, start: number, length: number): Promise<Uint8Array> {
  assertReadableEntry(source, entry);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > entry.uncompressedSize) {
    throw new Error(
      `${source.name}: cannot read bytes [${start}, ${start + length}) of zip entry ${quoteName(entry.name)}, which holds ${entry.uncompressedSize} bytes`,
    );
  }
  if (length === 0) return new Uint8Array(0);
  const offset = await entryDataOffset(source, entry);
  if (entry.method === 8) {
    const whole = start === 0 && length === entry.uncompressedSize;
    const data = await inflateRange(source, entry, offset, start, length, whole);
    if (data.byteLength !== length) {
      throw new Error(
        `${source.name}: zip entry ${quoteName(entry.name)} inflates to fewer bytes than the ${entry.uncompressedSize} the directory declares: the file is corrupt or truncated`,
      );
    }
    if (whole && crc32(data) !== entry.crc32) {
      throw new Error(`${source.name}: zip entry ${quoteName(entry.name)} fails its CRC check: the file is corrupt`);
    }
    return data;
  }
  return source.read(offset + start, length);
}

/** A byte buffer that grows (doubling, up to a cap) with what is appended, so memory follows real output. */
class GrowingBuffer {
  private buf: Uint8Array;
  length = 0;
  constructor(
    initial: number,
    private readonly cap: number,
  ) {
    this.buf = new Uint8Array(Math.min(initial, cap));
  }
  append(chunk: Uint8Array): void {
    const need = this.length + chunk.byteLength;
    if (need > this.buf.byteLength) {
      const next = new Uint8Array(Math.min(this.cap, Math.max(need, this.buf.byteLength * 2)));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(chunk, this.length);
    this.length = need;
  }
  bytes(): Uint8Array {
    return this.length === this.buf.byteLength ? this.buf : this.buf.subarray(0, this.length);
  }
}

/**
 * Inflates a deflated entry from its start and keeps bytes [start, start + length) of the output.
 * Compressed data is read and fed in 64 KiB steps; it stops as soon as the range is complete,
 * unless `whole`, in which case it inflates to the end and fails as soon as the output exceeds the
 * declared size. Memory: the kept range (grown as it arrives) plus one step's output.
 */
async function inflateRange(
  source: TorchBinSource,
  entry: ZipEntry,
  offset: number,
  start: number,
  length: number,
  whole: boolean,
): Promise<Uint8Array> {
  const name = source.name;
  const where = `${name}: zip entry ${quoteName(entry.name)}`;
  const Stream = (globalThis as { DecompressionStream?: typeof DecompressionStream }).DecompressionStream;
  if (!Stream) {
    throw new Error(
      `${where} is deflate-compressed and this runtime has no DecompressionStream: re-save the checkpoint with torch.save (it stores entries uncompressed)`,
    );
  }
  let stream: DecompressionStream;
  try {
    stream = new Stream('deflate-raw' as CompressionFormat);
  } catch {
    throw new Error(
      `${where} is deflate-compressed and this runtime's DecompressionStream lacks 'deflate-raw': re-save the checkpoint with torch.save (it stores entries uncompressed)`,
    );
  }
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  let stopped = false;
  const feeding = (async () => {
    for (let fed = 0; fed < entry.compressedSize && !stopped; ) {
      const n = Math.min(INFLATE_INPUT_CHUNK, entry.compressedSize - fed);
      const chunk = await source.read(offset + fed, n);
      fed += n;
      await writer.write(chunk.slice());
    }
    if (!stopped) await writer.close();
  })();
  feeding.catch(() => {});
  const end = start + length;
  const out = new GrowingBuffer(Math.min(length, Math.max(1 << 16, entry.compressedSize * 4)), length);
  let produced = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const from = produced;
      produced += value.byteLength;
      if (produced > entry.uncompressedSize) {
        throw new Error(`it inflates past the ${entry.uncompressedSize} bytes the directory declares (a decompression bomb?)`);
      }
      if (produced > start && from < end) out.append(value.subarray(Math.max(0, start - from), Math.min(value.byteLength, end - from)));
      if (produced >= end && !whole) break;
    }
    if (whole || produced < end) await feeding;
  } catch (error) {
    throw new Error(`${where} cannot be inflated: ${errorText(error)}`);
  } finally {
    stopped = true;
    await reader.cancel().catch(() => {});
    await writer.abort().catch(() => {});
  }
  return out.bytes();
}

/** An engine or zlib error's message, without anything from the file (those messages never quote data). */
function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 200)}...` : message;
}

let crcTable: Uint32Array | undefined;

export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An entry name for error messages: quoted, and cut short if it is long. */
export function quoteName(name: string): string {
  return shortValue(name, { as: 'string', max: 100, ellipsis: '...' });
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
