/**
 * A minimal ustar writer (plus pax headers for long names), for fixtures and tests: the bytes depend
 * only on the entries (mtime, uid, gid fixed), so generated archives are reproducible.
 */

export interface TarWriteEntry {
  /** Path exactly as stored; not checked, so tests can build malicious archives. */
  path: string;
  type?: 'file' | 'directory' | 'symlink' | 'hardlink';
  /** File contents (string = UTF-8). */
  data?: Uint8Array | string;
  /** Link target for symlink / hardlink entries. */
  linkTarget?: string;
  /** pax records written in an extended header before the entry (values not checked). */
  pax?: Record<string, string>;
}

const encoder = new TextEncoder();

function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  if (bytes.length > length)
    throw new Error(`tar field overflow: ${JSON.stringify(value)} needs ${bytes.length} bytes, field has ${length}`);
  block.set(bytes, offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

function header(name: string, typeflag: string, size: number, linkTarget: string): Uint8Array {
  const block = new Uint8Array(512);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, typeflag === '5' ? 0o755 : 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, 0);
  block.fill(32, 148, 156);
  block[156] = typeflag.charCodeAt(0);
  writeString(block, 157, 100, linkTarget);
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  let sum = 0;
  for (const b of block) sum += b;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

function padded(data: Uint8Array): Uint8Array[] {
  const pad = (512 - (data.length % 512)) % 512;
  return pad === 0 ? [data] : [data, new Uint8Array(pad)];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const base = encoder.encode(body).length;
  // The record length counts its own decimal digits.
  let len = base + 1;
  while (len !== base + String(len).length) len = base + String(len).length;
  return `${len}${body}`;
}

/** The bytes of a tar archive holding `entries` in order, ending with two zero blocks. */
export function writeTar(entries: readonly TarWriteEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const typeflag = { file: '0', directory: '5', symlink: '2', hardlink: '1' }[type];
    const data =
      type === 'file' ? (typeof e.data === 'string' ? encoder.encode(e.data) : (e.data ?? new Uint8Array(0))) : new Uint8Array(0);
    let name = e.path;
    let records = Object.entries(e.pax ?? {})
      .map(([k, v]) => paxRecord(k, v))
      .join('');
    if (encoder.encode(name).length > 100) {
      records = paxRecord('path', name) + records;
      name = 'pax-long-name';
    }
    if (records !== '') {
      const pax = encoder.encode(records);
      parts.push(header('PaxHeader', 'x', pax.length, ''), ...padded(pax));
    }
    parts.push(header(name, typeflag, data.length, e.linkTarget ?? ''), ...padded(data));
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
