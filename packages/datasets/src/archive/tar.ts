/**
 * A streaming reader for POSIX tar archives (ustar, pax extended headers, GNU long names), over any
 * async stream of byte chunks, so a corpus archive is read entry by entry and never extracted to disk.
 * Only regular files and directories are yielded; any entry that could write outside the archive's
 * root when extracted (absolute path, a `..` segment, a symbolic or hard link) or that is not a file or
 * directory (device, FIFO) is an error naming the entry.
 *
 * Every header field the reader relies on is validated before use (checksum, size, mode, uid, gid,
 * mtime, pax records, GNU long names); a bad one is an error naming the archive, the entry and the
 * field. Entries the caller does not select are streamed past without being buffered, so a
 * multi-gigabyte member costs no memory; a selected entry larger than `maxEntryBytes` is an error.
 */

export interface TarEntry {
  /** Normalised relative path: `/`-separated, no `.` or empty segments, no trailing slash. */
  path: string;
  type: 'file' | 'directory';
  /** Size in bytes declared by the header (0 for directories). */
  size: number;
  /** The file's bytes (empty for directories). */
  data: Uint8Array;
}

export interface ReadTarOptions {
  /** The archive's name (usually its path): every error starts with it. */
  name?: string;
  /**
   * Which files to read into memory. Files for which it returns false are streamed past without
   * being buffered and are not yielded; directories are always yielded. Safety checks (absolute
   * paths, `..`, links, device entries) apply to every entry, selected or not. Default: every file.
   */
  select?: (path: string, size: number) => boolean;
  /** Largest file read into memory, in bytes (default 64 MiB); a larger selected file is an error. */
  maxEntryBytes?: number;
}

const BLOCK = 512;
/** Largest pax extended header or GNU long name accepted (they hold a few paths, not data). */
const MAX_METADATA_BYTES = 1 << 20;
/** Default for {@link ReadTarOptions.maxEntryBytes}. */
export const DEFAULT_MAX_TAR_ENTRY_BYTES = 64 * 2 ** 20;
const utf8 = new TextDecoder('utf-8');

/** Pulls exact byte counts out of an async iterator of chunks; `skip` discards without buffering. */
class ByteReader {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private buffered = 0;
  private done = false;
  /** Bytes consumed so far (the archive offset of the next byte). */
  position = 0;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    const asyncIt = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator];
    if (asyncIt) this.it = asyncIt.call(source);
    else {
      const syncIt = (source as Iterable<Uint8Array>)[Symbol.iterator]();
      this.it = { next: async () => syncIt.next() };
    }
  }

  private async pull(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = r.value;
    if (!(chunk instanceof Uint8Array)) throw new Error(`the byte stream gave a ${typeof chunk}, expected Uint8Array chunks`);
    if (chunk.length > 0) {
      if (this.head > 1024) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    while (this.buffered < n && (await this.pull()));
    const take = Math.min(n, this.buffered);
    const out = new Uint8Array(take);
    let filled = 0;
    while (filled < take) {
      const chunk = this.chunks[this.head]!;
      const k = Math.min(chunk.length, take - filled);
      out.set(chunk.subarray(0, k), filled);
      filled += k;
      this.consume(chunk, k);
    }
    return out;
  }

  /** Discards n bytes as they arrive (nothing is kept); returns how many there were (< n at the end). */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      if (this.buffered === 0 && !(await this.pull())) break;
      if (this.buffered === 0) continue;
      const chunk = this.chunks[this.head]!;
      const k = Math.min(chunk.length, n - skipped);
      this.consume(chunk, k);
      skipped += k;
    }
    return skipped;
  }

  private consume(chunk: Uint8Array, k: number): void {
    if (k === chunk.length) this.chunks[this.head++] = EMPTY;
    else this.chunks[this.head] = chunk.subarray(k);
    this.buffered -= k;
    this.position += k;
  }
}

const EMPTY = new Uint8Array(0);

function cString(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return utf8.decode(block.subarray(start, end));
}

/** A name for an error message: quoted, at most 200 characters. */
function show(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}

/**
 * A numeric header field: octal digits (NUL- or space-terminated, leading spaces allowed) or GNU
 * base-256 (top bit of the first byte set). Returns undefined when the field is neither, or when the
 * value is negative or beyond 2^53.
 */
function parseNumber(block: Uint8Array, start: number, length: number): number | undefined {
  const first = block[start]!;
  if (first & 0x80) {
    if (first & 0x40) return undefined; // negative base-256
    let v = first & 0x3f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + block[i]!;
    return Number.isSafeInteger(v) ? v : undefined;
  }
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  let text = '';
  for (let i = start; i < end; i++) text += String.fromCharCode(block[i]!);
  text = text.trim();
  if (text === '') return 0;
  if (!/^[0-7]{1,17}$/.test(text)) return undefined;
  const v = Number.parseInt(text, 8);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** The bytes of a field, as hex, for an error (header fields are metadata, never file contents). */
function fieldHex(block: Uint8Array, start: number, length: number): string {
  return Array.from(block.subarray(start, start + length), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Checks the header checksum (unsigned, or the signed sum some old writers used). */
function checksumProblem(block: Uint8Array): string | undefined {
  const stored = parseNumber(block, 148, 8);
  if (stored === undefined) return `checksum field is not octal (bytes ${fieldHex(block, 148, 8)})`;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed ? undefined : 'checksum mismatch';
}

/**
 * pax records: `"<length> <key>=<value>\n"` repeated, where length counts the whole record in
 * decimal. Throws a plain message (the caller adds the archive and entry).
 */
function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    let sp = pos;
    while (sp < data.length && sp - pos <= 10 && data[sp] !== 0x20) sp++;
    let digits = '';
    for (let i = pos; i < sp; i++) digits += String.fromCharCode(data[i]!);
    if (sp >= data.length || data[sp] !== 0x20 || !/^[1-9][0-9]*$/.test(digits)) {
      throw new Error(`record at byte ${pos} does not start with "<decimal length> "`);
    }
    const len = Number(digits);
    if (len < sp - pos + 4 || pos + len > data.length) {
      throw new Error(`record at byte ${pos} declares length ${len}; ${data.length - pos} byte(s) are left in the header`);
    }
    if (data[pos + len - 1] !== 0x0a) throw new Error(`record at byte ${pos} (length ${len}) does not end with a newline`);
    const record = utf8.decode(data.subarray(sp + 1, pos + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new Error(`record at byte ${pos} is not "<key>=<value>"`);
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  const size = out.get('size');
  if (size !== undefined && !(/^\d{1,16}$/.test(size) && Number.isSafeInteger(Number(size)))) {
    throw new Error(`record "size" is ${show(size)}, expected a non-negative decimal integer below 2^53`);
  }
  return out;
}

/**
 * Checks that `raw` stays inside the extraction root and returns it normalised, or throws an error
 * naming the entry.
 */
export function safeArchivePath(raw: string): string {
  if (raw.startsWith('/') || raw.startsWith('\\') || /^[A-Za-z]:/.test(raw)) {
    throw new Error(`unsafe archive entry ${show(raw)}: absolute path; refusing to read an archive that writes outside its root`);
  }
  const segments = raw.split(/[\\/]/).filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw new Error(`unsafe archive entry ${show(raw)}: ".." segment escapes the archive root; refusing to read this archive`);
  }
  return segments.join('/');
}

const META_TYPES = new Set(['x', 'g', 'L', 'K']);

/** Yields the files and directories of a tar archive read from `source` (a stream of byte chunks). */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry> {
  const prefix = options.name === undefined ? '' : `${options.name}: `;
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_MAX_TAR_ENTRY_BYTES;
  const fail = (message: string): never => {
    throw new Error(`${prefix}${message}`);
  };
  const reader = new ByteReader(source);
  let pax = new Map<string, string>();
  let globalPax = new Map<string, string>();
  let longName: string | undefined;
  for (;;) {
    const headerAt = reader.position;
    const header = await reader.read(BLOCK);
    if (header.length === 0) return; // some writers omit the two zero blocks
    if (header.length < BLOCK) fail(`truncated tar archive: header block at byte ${headerAt} has ${header.length} of 512 bytes`);
    if (header.every((b) => b === 0)) return;
    const name0 = cString(header, 0, 100);
    const checksum = checksumProblem(header);
    if (checksum) fail(`corrupt tar header for entry ${show(name0)}: ${checksum} (header at byte ${headerAt})`);

    const typeflag = header[156] === 0 ? '0' : String.fromCharCode(header[156]!);
    const magic = cString(header, 257, 6);
    let name = name0;
    const ustarPrefix = magic === 'ustar' ? cString(header, 345, 155) : ''; // GNU "ustar  " has no prefix field
    if (ustarPrefix !== '') name = `${ustarPrefix}/${name}`;
    for (const [field, start, length] of [
      ['mode', 100, 8],
      ['uid', 108, 8],
      ['gid', 116, 8],
      ['mtime', 136, 12],
    ] as const) {
      if (parseNumber(header, start, length) === undefined && !(header[start]! & 0x80)) {
        fail(
          `corrupt tar header for entry ${show(name)}: field ${field} is not octal (bytes ${fieldHex(header, start, length)}; header at byte ${headerAt})`,
        );
      }
    }
    const headerSize = parseNumber(header, 124, 12);
    if (headerSize === undefined) {
      fail(
        `corrupt tar header for entry ${show(name)}: field size is not a non-negative octal or base-256 number below 2^53 (bytes ${fieldHex(header, 124, 12)}; header at byte ${headerAt})`,
      );
    }
    const meta = META_TYPES.has(typeflag);
    const paxSize = meta ? undefined : (pax.get('size') ?? globalPax.get('size'));
    const size = paxSize !== undefined ? Number(paxSize) : headerSize!;
    const dataAt = reader.position;
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    const truncated = (found: number): never =>
      fail(`truncated tar archive: entry ${show(name)} declares ${size} bytes, found ${found} (header at byte ${headerAt})`);

    if (meta) {
      const what = typeflag === 'L' || typeflag === 'K' ? 'GNU long name' : 'pax extended header';
      if (size > MAX_METADATA_BYTES)
        fail(`${what} ${show(name)} at byte ${headerAt} declares ${size} bytes; at most ${MAX_METADATA_BYTES} are accepted`);
      const data = await reader.read(size);
      if (data.length < size) truncated(data.length);
      await reader.skip(padding);
      if (typeflag === 'x' || typeflag === 'g') {
        let records: Map<string, string>;
        try {
          records = parsePax(data);
        } catch (e) {
          return fail(`corrupt pax extended header ${show(name)} at byte ${headerAt} (data at byte ${dataAt}): ${(e as Error).message}`);
        }
        if (typeflag === 'x') pax = records;
        else globalPax = records;
      } else if (typeflag === 'L') {
        longName = cString(data, 0, data.length);
      }
      continue;
    }

    const paxPath = pax.get('path') || undefined;
    const rawPath = paxPath ?? longName ?? (globalPax.get('path') || undefined) ?? name;
    pax = new Map();
    longName = undefined;

    if (typeflag === '1' || typeflag === '2') {
      const kind = typeflag === '1' ? 'hard link' : 'symbolic link';
      fail(
        `unsafe archive entry ${show(rawPath)}: ${kind} to ${show(cString(header, 157, 100))}; links are not allowed in a corpus archive`,
      );
    }
    let path = '';
    try {
      path = safeArchivePath(rawPath);
    } catch (e) {
      fail((e as Error).message);
    }
    if (typeflag !== '0' && typeflag !== '7' && typeflag !== '5') {
      fail(`unsupported archive entry ${show(rawPath)}: tar type ${JSON.stringify(typeflag)} is not a regular file or directory`);
    }
    if (typeflag === '5' || !(options.select?.(path, size) ?? true)) {
      const skipped = await reader.skip(size);
      if (skipped < size) truncated(skipped);
      await reader.skip(padding);
      if (typeflag === '5') yield { path, type: 'directory', size: 0, data: EMPTY };
      continue;
    }
    if (size > maxEntryBytes) {
      fail(`archive entry ${show(rawPath)} is ${size} bytes; entries read into memory are limited to ${maxEntryBytes} bytes`);
    }
    const data = await reader.read(size);
    if (data.length < size) truncated(data.length);
    await reader.skip(padding);
    yield { path, type: 'file', size, data };
  }
}
