/**
 * Reading a fatbin's table of contents (the container nvcc -fatbin writes): a 16-byte header
 * (magic 0xBA55ED50, version, header size, payload size), then entries, each with its own
 * header: kind (1 = PTX, 2 = ELF/SASS) at byte 0, header size at 4, payload size at 8 and the
 * target architecture (80 for sm_80 / compute_80) at 28.
 */

export interface FatbinEntry {
  kind: 'ptx' | 'sass';
  arch: number;
  bytes: number;
}

export function fatbinEntries(buf: Uint8Array): FatbinEntry[] {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.byteLength < 16 || v.getUint32(0, true) !== 0xba55ed50) throw new Error('not a fatbin (no 0xBA55ED50 magic)');
  let at = v.getUint16(6, true);
  const end = at + Number(v.getBigUint64(8, true));
  const out: FatbinEntry[] = [];
  while (at + 32 <= end && at + 32 <= buf.byteLength) {
    const kind = v.getUint16(at, true);
    const headerSize = v.getUint32(at + 4, true);
    const size = Number(v.getBigUint64(at + 8, true));
    out.push({ kind: kind === 1 ? 'ptx' : 'sass', arch: v.getUint32(at + 28, true), bytes: size });
    at += headerSize + size;
  }
  return out;
}
