/**
 * A streaming reader for POSIX tar archives (ustar, pax extended headers, GNU long names), over any
 * async stream of byte chunks, so a corpus archive is read entry by entry and never extracted to disk.
 * Only regular files and directories are yielded; any entry that could write outside the archive's
 * root when extracted (absolute path, a `..` segment, a symbolic or hard link) or that is not a file or
 * directory (device, FIFO) is an error naming the entry.
 */

export interface TarEntry {
  /** Normalised relative path: `/`-separated, no `.` or empty segments, no trailing slash. */
  path: string;
  type: 'file' | 'directory';
  /** The file's bytes (empty for directories). */
  data: Uint8Array;
}

const BLOCK = 512;
const utf8 = new TextDecoder('utf-8');

/** Pulls exact byte counts out of an async iterator of chunks. */
class ByteReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    const asyncIt = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator];
    if (asyncIt) this.it = asyncIt.call(source);
    else {
      const syncIt = (source as Iterable<Uint8Array>)[Symbol.iterator]();
      this.it = { next: async () => syncIt.next() };
    }
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    const take = Math.min(n, this.buffered);
    const out = new Uint8Array(take);
    let filled = 0;
    while (filled < take) {
      const head = this.chunks[0]!;
      const k = Math.min(head.length, take - filled);
      out.set(head.subarray(0, k), filled);
      filled += k;
      if (k === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(k);
    }
    this.buffered -= take;
    return out;
  }
}

function cString(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return utf8.decode(block.subarray(start, end));
}

function parseNumber(block: Uint8Array, start: number, length: number, field: string): number {
  if (block[start]! & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as the marker.
    let v = block[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + block[i]!;
    return v;
  }
  const text = cString(block, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`corrupt tar header: field ${field} is ${JSON.stringify(text)}, expected octal digits`);
  return Number.parseInt(text, 8);
}

function checksumOk(block: Uint8Array): boolean {
  const stored = parseNumber(block, 148, 8, 'chksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return sum === stored;
}

/** pax records: "<length> <key>=<value>\n" repeated. */
function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    let sp = pos;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number.parseInt(utf8.decode(data.subarray(pos, sp)), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length) throw new Error('corrupt pax extended header: bad record length');
    const record = utf8.decode(data.subarray(sp + 1, pos + len - 1));
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Checks that `raw` stays inside the extraction root and returns it normalised, or throws an error
 * naming the entry.
 */
export function safeArchivePath(raw: string): string {
  if (raw.startsWith('/') || raw.startsWith('\\') || /^[A-Za-z]:/.test(raw)) {
    throw new Error(`unsafe archive entry ${JSON.stringify(raw)}: absolute path; refusing to read an archive that writes outside its root`);
  }
  const segments = raw.split(/[\\/]/).filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw new Error(`unsafe archive entry ${JSON.stringify(raw)}: ".." segment escapes the archive root; refusing to read this archive`);
  }
  return segments.join('/');
}

/** Yields the files and directories of a tar archive read from `source` (a stream of byte chunks). */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let pax = new Map<string, string>();
  let globalPax = new Map<string, string>();
  let longName: string | undefined;
  for (;;) {
    const header = await reader.read(BLOCK);
    if (header.length === 0) return; // some writers omit the two zero blocks
    if (header.length < BLOCK) throw new Error(`truncated tar archive: header block has ${header.length} of 512 bytes`);
    if (header.every((b) => b === 0)) return;
    if (!checksumOk(header)) throw new Error(`corrupt tar header for entry ${JSON.stringify(cString(header, 0, 100))}: checksum mismatch`);

    const typeflag = header[156] === 0 ? '0' : String.fromCharCode(header[156]!);
    const magic = cString(header, 257, 6);
    let name = cString(header, 0, 100);
    const prefix = magic === 'ustar' ? cString(header, 345, 155) : ''; // GNU "ustar  " has no prefix field
    if (prefix !== '') name = `${prefix}/${name}`;
    const paxSize = pax.get('size') ?? globalPax.get('size');
    const size = paxSize !== undefined ? Number(paxSize) : parseNumber(header, 124, 12, 'size');
    const data = await reader.read(size);
    if (data.length < size)
      throw new Error(`truncated tar archive: entry ${JSON.stringify(name)} declares ${size} bytes, found ${data.length}`);
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) await reader.read(padding);

    if (typeflag === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (typeflag === 'g') {
      globalPax = parsePax(data);
      continue;
    }
    if (typeflag === 'L') {
      longName = cString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'K') continue; // GNU long link name; links are rejected below anyway

    const rawPath = pax.get('path') ?? longName ?? globalPax.get('path') ?? name;
    pax = new Map();
    longName = undefined;

    if (typeflag === '1' || typeflag === '2') {
      const kind = typeflag === '1' ? 'hard link' : 'symbolic link';
      throw new Error(
        `unsafe archive entry ${JSON.stringify(rawPath)}: ${kind} to ${JSON.stringify(cString(header, 157, 100))}; links are not allowed in a corpus archive`,
      );
    }
    const path = safeArchivePath(rawPath);
    if (typeflag === '5') {
      yield { path, type: 'directory', data: new Uint8Array(0) };
    } else if (typeflag === '0' || typeflag === '7') {
      yield { path, type: 'file', data };
    } else {
      throw new Error(
        `unsupported archive entry ${JSON.stringify(rawPath)}: tar type ${JSON.stringify(typeflag)} is not a regular file or directory`,
      );
    }
  }
}
