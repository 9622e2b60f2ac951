/**
 * Builders of small torch.save archives for tests: a zip writer that can also write what torch
 * never writes (deflated entries, lying sizes, mismatched local headers), and protocol-2 pickle
 * pieces written the way torch.save writes them. Test code only.
 */
import { constants, deflateRawSync } from 'node:zlib';
import type { TorchBinSource } from './torch-bin-zip.js';
import { crc32 } from './torch-bin-zip.js';

export const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** One file of a test archive. */
export interface TestZipFile {
  name: string;
  data: Uint8Array | string;
  /** 0: stored (default), 8: deflate. */
  method?: number;
  /** Overrides the uncompressed size written in the central directory (and the local header). */
  declaredSize?: number;
  /** Overrides the uncompressed size written in the local header only. */
  localDeclaredSize?: number;
  /** Overrides the name written in the local header only. */
  localName?: string;
  /** Ready-made deflate data (with `method: 8`): `data` is then unused except for its length unless `declaredSize` is given. */
  deflated?: Uint8Array;
  /** Overrides the CRC-32 (default: computed from `data`). */
  crc?: number;
}

/**
 * Raw deflate data of `mib` MiB of zeros, made cheaply: one MiB compressed with a sync flush
 * (non-final blocks), repeated, then an empty final block.
 */
export function deflatedZeros(mib: number): Uint8Array {
  const chunk = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: constants.Z_SYNC_FLUSH });
  const out = new Uint8Array(chunk.length * mib + 2);
  for (let i = 0; i < mib; i++) out.set(chunk, i * chunk.length);
  out.set([0x03, 0x00], chunk.length * mib);
  return out;
}

/** A zip archive; deflated entries are compressed with node's zlib. */
export function makeZip(files: readonly TestZipFile[]): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const file of files) {
    const data = typeof file.data === 'string' ? latin1(file.data) : file.data;
    const method = file.method ?? 0;
    const stored = file.deflated ?? (method === 8 ? new Uint8Array(deflateRawSync(data)) : data);
    const n = enc.encode(file.name);
    const ln = enc.encode(file.localName ?? file.name);
    const crc = file.crc ?? crc32(data);
    const size = file.declaredSize ?? data.length;
    const local = new Uint8Array(30 + ln.length + stored.length);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true);
    l.setUint16(8, method, true);
    l.setUint32(14, crc, true);
    l.setUint32(18, stored.length, true);
    l.setUint32(22, file.localDeclaredSize ?? size, true);
    l.setUint16(26, ln.length, true);
    local.set(ln, 30);
    local.set(stored, 30 + ln.length);
    const central = new Uint8Array(46 + n.length);
    const c = new DataView(central.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint16(10, method, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, stored.length, true);
    c.setUint32(24, size, true);
    c.setUint16(28, n.length, true);
    c.setUint32(42, offset, true);
    central.set(n, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const cdSize = centrals.reduce((s, x) => s + x.length, 0);
  const eocd = new Uint8Array(22);
  const e = new DataView(eocd.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.length, true);
  e.setUint16(10, files.length, true);
  e.setUint32(12, cdSize, true);
  e.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + eocd.length);
  let p = 0;
  for (const part of [...locals, ...centrals, eocd]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

// Protocol-2 pickle pieces, as latin1 strings.
export const u32 = (n: number): string => String.fromCharCode(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
export const str = (s: string): string => `X${u32(s.length)}${s}`;
export const int = (n: number): string => `J${u32(n)}`;
export const tuple = (xs: number[]): string => `(${xs.map(int).join('')}t`;
export const tensorPickle = (type: string, key: string, numel: number, offset: number, shape: number[], stride: number[]): string =>
  `ctorch._utils\n_rebuild_tensor_v2\n((${str('storage')}ctorch\n${type}\n${str(key)}${str('cpu')}${int(numel)}tQ${int(offset)}${tuple(shape)}${tuple(stride)}\x89ccollections\nOrderedDict\n)RtR`;
export const stateDictPickle = (entries: string): string => `\x80\x02ccollections\nOrderedDict\n)R(${entries}u.`;
export const f32 = (...xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);

/** An in-memory source that counts the bytes it hands out. */
export function memorySource(bytes: Uint8Array, name = 'f.bin'): TorchBinSource & { bytesRead: number } {
  const source = {
    name,
    size: bytes.byteLength,
    bytesRead: 0,
    async read(offset: number, length: number) {
      if (offset < 0 || length < 0 || offset + length > bytes.byteLength) throw new Error(`${name}: read out of range`);
      source.bytesRead += length;
      return bytes.subarray(offset, offset + length);
    },
  };
  return source;
}
