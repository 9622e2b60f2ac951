/**
 * The ZIP container of torch.save (torch >= 1.6): reads the central directory, then single entries
 * or byte ranges of entries on demand. Stored (uncompressed) entries, which is what torch writes,
 * are read range by range; deflated ones (an archive re-zipped by another tool) are inflated whole
 * with `DecompressionStream('deflate-raw')`. ZIP64 is supported (torch writes it past 4 GiB).
 */

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
          if (q + 8 > e + 4 + size) throw new Error(`${name}: zip64 extra field of ${JSON.stringify(entryName)} lacks the ${what}`);
          const v = safeU64(dv, q, name, `${what} of ${JSON.stringify(entryName)}`);
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
        `${name}: zip entry ${JSON.stringify(entryName)} (${compressedSize} bytes at offset ${localHeaderOffset}) runs past the end of the file (${fileSize} bytes): the file is truncated`,
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

/** Absolute offset of an entry's data (after its local header, which has its own extra field). */
export async function entryDataOffset(source: TorchBinSource, entry: ZipEntry): Promise<number> {
  const header = await source.read(entry.localHeaderOffset, 30);
  const dv = new DataView(header.buffer, header.byteOffset, 30);
  if (dv.getUint32(0, true) !== LFH_SIG) {
    throw new Error(
      `${source.name}: zip entry ${JSON.stringify(entry.name)} has no local header at offset ${entry.localHeaderOffset}: the file is corrupt`,
    );
  }
  const offset = entry.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
  if (offset + entry.compressedSize > source.size) {
    throw new Error(
      `${source.name}: zip entry ${JSON.stringify(entry.name)} data [${offset}, ${offset + entry.compressedSize}) runs past the end of the file (${source.size} bytes): the file is truncated`,
    );
  }
  return offset;
}

function checkEntry(source: TorchBinSource, entry: ZipEntry): void {
  if (entry.flags & 1) throw new Error(`${source.name}: zip entry ${JSON.stringify(entry.name)} is encrypted: not supported`);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new Error(
      `${source.name}: zip entry ${JSON.stringify(entry.name)} uses compression method ${entry.method}: only stored (0) and deflate (8) are supported`,
    );
  }
  if (entry.method === 0 && entry.compressedSize !== entry.uncompressedSize) {
    throw new Error(
      `${source.name}: stored zip entry ${JSON.stringify(entry.name)} has compressed size ${entry.compressedSize} but uncompressed size ${entry.uncompressedSize}: the file is corrupt`,
    );
  }
}

/** The whole uncompressed content of an entry, CRC-checked. */
export async function readEntry(source: TorchBinSource, entry: ZipEntry): Promise<Uint8Array> {
  checkEntry(source, entry);
  const offset = await entryDataOffset(source, entry);
  const raw = await source.read(offset, entry.compressedSize);
  const data = entry.method === 8 ? await inflateRaw(raw, source.name, entry) : raw;
  if (data.byteLength !== entry.uncompressedSize) {
    throw new Error(
      `${source.name}: zip entry ${JSON.stringify(entry.name)} holds ${data.byteLength} bytes, the directory says ${entry.uncompressedSize}: the file is corrupt`,
    );
  }
  const crc = crc32(data);
  if (crc !== entry.crc32) {
    throw new Error(
      `${source.name}: zip entry ${JSON.stringify(entry.name)} fails its CRC check (0x${hex(crc)}, expected 0x${hex(entry.crc32)}): the file is corrupt`,
    );
  }
  return data;
}

/**
 * Bytes [start, start + length) of an entry's uncompressed content. A stored entry reads only
 * that range (after a 30-byte read of its local header); a deflated one is inflated whole, then sliced.
 */
export async function readEntryRange(source: TorchBinSource, entry: ZipEntry, start: number, length: number): Promise<Uint8Array> {
  checkEntry(source, entry);
  if (start < 0 || length < 0 || start + length > entry.uncompressedSize) {
    throw new Error(
      `${source.name}: cannot read bytes [${start}, ${start + length}) of zip entry ${JSON.stringify(entry.name)}, which holds ${entry.uncompressedSize} bytes`,
    );
  }
  // Stored entries are read range by range without a CRC check (it would need the whole entry);
  // deflated ones are inflated whole and CRC-checked.
  if (entry.method === 8) return (await readEntry(source, entry)).subarray(start, start + length);
  if (length === 0) return new Uint8Array(0);
  const offset = await entryDataOffset(source, entry);
  return source.read(offset + start, length);
}

async function inflateRaw(bytes: Uint8Array, name: string, entry: ZipEntry): Promise<Uint8Array> {
  const Stream = (globalThis as { DecompressionStream?: typeof DecompressionStream }).DecompressionStream;
  if (!Stream) {
    throw new Error(
      `${name}: zip entry ${JSON.stringify(entry.name)} is deflate-compressed and this runtime has no DecompressionStream: re-save the checkpoint with torch.save (it stores entries uncompressed)`,
    );
  }
  let stream: DecompressionStream;
  try {
    stream = new Stream('deflate-raw' as CompressionFormat);
  } catch {
    throw new Error(
      `${name}: zip entry ${JSON.stringify(entry.name)} is deflate-compressed and this runtime's DecompressionStream lacks 'deflate-raw': re-save the checkpoint with torch.save (it stores entries uncompressed)`,
    );
  }
  try {
    const out = new Uint8Array(entry.uncompressedSize);
    const writer = stream.writable.getWriter();
    const writing = writer.write(bytes.slice()).then(() => writer.close());
    writing.catch(() => {});
    const reader = stream.readable.getReader();
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.byteLength > out.byteLength)
        throw new Error(`it inflates past the ${entry.uncompressedSize} bytes the directory gives`);
      out.set(value, n);
      n += value.byteLength;
    }
    await writing;
    return out.subarray(0, n);
  } catch (error) {
    throw new Error(`${name}: zip entry ${JSON.stringify(entry.name)} cannot be inflated: ${(error as Error).message}`);
  }
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

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
