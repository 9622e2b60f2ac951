import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TorchBinSource } from './torch-bin.js';
import { openTorchBin } from './torch-bin.js';
import { crc32, readZipDirectory } from './torch-bin-zip.js';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`./fixtures/torch-bin/${name}`, import.meta.url)));
const source = (bytes: Uint8Array, name = 'f.bin'): TorchBinSource => ({
  name,
  size: bytes.byteLength,
  async read(offset, length) {
    if (offset < 0 || length < 0 || offset + length > bytes.byteLength) throw new Error(`${name}: read out of range`);
    return bytes.subarray(offset, offset + length);
  },
});
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** A minimal zip writer (stored entries unless `method` says otherwise), for archives torch would not write. */
function makeZip(
  files: Array<[string, Uint8Array | string]>,
  options: { method?: number; comment?: string; badCrc?: boolean } = {},
): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, content] of files) {
    const data = typeof content === 'string' ? latin1(content) : content;
    const n = enc.encode(name);
    const crc = options.badCrc ? crc32(data) ^ 1 : crc32(data);
    const local = new Uint8Array(30 + n.length + data.length);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true);
    l.setUint16(8, options.method ?? 0, true);
    l.setUint32(14, crc, true);
    l.setUint32(18, data.length, true);
    l.setUint32(22, data.length, true);
    l.setUint16(26, n.length, true);
    local.set(n, 30);
    local.set(data, 30 + n.length);
    const central = new Uint8Array(46 + n.length);
    const c = new DataView(central.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint16(10, options.method ?? 0, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, data.length, true);
    c.setUint32(24, data.length, true);
    c.setUint16(28, n.length, true);
    c.setUint32(42, offset, true);
    central.set(n, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const comment = latin1(options.comment ?? '');
  const cdSize = centrals.reduce((s, x) => s + x.length, 0);
  const eocd = new Uint8Array(22 + comment.length);
  const e = new DataView(eocd.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.length, true);
  e.setUint16(10, files.length, true);
  e.setUint32(12, cdSize, true);
  e.setUint32(16, offset, true);
  e.setUint16(20, comment.length, true);
  eocd.set(comment, 22);
  const out = new Uint8Array(offset + cdSize + eocd.length);
  let p = 0;
  for (const part of [...locals, ...centrals, eocd]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

// Protocol-2 pickle pieces, written the way torch.save writes them.
const u32 = (n: number) => String.fromCharCode(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
const str = (s: string) => `X${u32(s.length)}${s}`;
const int = (n: number) => `J${u32(n)}`;
const tuple = (xs: number[]) => `(${xs.map(int).join('')}t`;
const tensor = (type: string, key: string, numel: number, offset: number, shape: number[], stride: number[]) =>
  `ctorch._utils\n_rebuild_tensor_v2\n((${str('storage')}ctorch\n${type}\n${str(key)}${str('cpu')}${int(numel)}tQ${int(offset)}${tuple(shape)}${tuple(stride)}\x89ccollections\nOrderedDict\n)RtR`;
const stateDict = (entries: string) => `\x80\x02ccollections\nOrderedDict\n)R(${entries}u.`;
const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);

describe('zip container', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(latin1('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('finds the end record behind an archive comment', async () => {
    const bytes = makeZip(
      [
        ['archive/data.pkl', stateDict(`${str('w')}${tensor('FloatStorage', '0', 2, 0, [2], [1])}`)],
        ['archive/data/0', f32(1.5, -2)],
      ],
      { comment: 'written by another zip tool' },
    );
    const ckpt = await openTorchBin(source(bytes));
    expect(ckpt.prefix).toBe('archive/');
    expect(Array.from((await ckpt.readTensor('w')).data)).toEqual([1.5, -2]);
  });

  it('reads the ZIP64 records and extra fields', async () => {
    const dir = await readZipDirectory(source(fixture('zip64.bin'), 'zip64.bin'));
    expect([...dir.entries.keys()]).toContain('zip64/data.pkl');
    expect(dir.entries.get('zip64/data/0')!.uncompressedSize).toBe(24);
  });

  it('explains files that are not torch.save zip archives', async () => {
    await expect(openTorchBin(source(new Uint8Array(10), 'tiny.bin'))).rejects.toThrow(
      'tiny.bin: file is 10 bytes, too small for a torch.save zip archive',
    );
    const header = latin1('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    const st = new Uint8Array(8 + header.length + 4);
    new DataView(st.buffer).setUint32(0, header.length, true);
    st.set(header, 8);
    await expect(openTorchBin(source(st, 'model.safetensors'))).rejects.toThrow(
      'model.safetensors: no zip end-of-central-directory record: it looks like a safetensors file',
    );
    await expect(openTorchBin(source(latin1(`\x80\x02}q\x00.${' '.repeat(30)}`), 'bare.pkl'))).rejects.toThrow(
      'bare.pkl: no zip end-of-central-directory record: it looks like a bare pickle',
    );
    await expect(openTorchBin(source(new Uint8Array(100).fill(7), 'junk.bin'))).rejects.toThrow(
      'junk.bin: no zip end-of-central-directory record: it is not a torch.save (torch >= 1.6) zip archive, or it is truncated',
    );
  });

  it('refuses archives without data.pkl, TorchScript archives, bad CRCs and unknown compression', async () => {
    await expect(openTorchBin(source(makeZip([['a.txt', 'hi']]), 'other.zip'))).rejects.toThrow(
      'other.zip: the zip archive has no data.pkl, so it is not a torch.save checkpoint (it has 1 entry, none named <folder>/data.pkl)',
    );
    await expect(
      openTorchBin(
        source(
          makeZip([
            ['m/constants.pkl', '\x80\x02).'],
            ['m/code/__torch__.py', ''],
          ]),
          'jit.pt',
        ),
      ),
    ).rejects.toThrow('jit.pt: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint');
    await expect(openTorchBin(source(makeZip([['a/data.pkl', stateDict('')]], { badCrc: true })))).rejects.toThrow(
      'f.bin: zip entry "a/data.pkl" fails its CRC check',
    );
    await expect(openTorchBin(source(makeZip([['a/data.pkl', stateDict('')]], { method: 12 })))).rejects.toThrow(
      'f.bin: zip entry "a/data.pkl" uses compression method 12: only stored (0) and deflate (8) are supported',
    );
  });

  it('reports a central directory that points past the end of the file', async () => {
    const bytes = makeZip([
      ['a/data.pkl', stateDict('')],
      ['a/data/0', f32(1, 2, 3)],
    ]);
    // Point the second entry's local header offset past the end.
    const dir = await readZipDirectory(source(bytes));
    const cdStart = dir.centralDirectoryOffset;
    const second = cdStart + 46 + 'a/data.pkl'.length;
    new DataView(bytes.buffer).setUint32(second + 42, bytes.length - 10, true);
    await expect(openTorchBin(source(bytes))).rejects.toThrow('f.bin: zip entry "a/data/0" (12 bytes at offset');
  });
});

describe('checkpoint structure', () => {
  const open = (pkl: string, storages: Record<string, Uint8Array> = {}, extra: Array<[string, string]> = []) =>
    openTorchBin(
      source(
        makeZip([['a/data.pkl', pkl], ...Object.entries(storages).map(([k, v]) => [`a/data/${k}`, v] as [string, Uint8Array]), ...extra]),
      ),
    );

  it('keeps non-tensor values out of names() and reports them in otherKeys', async () => {
    const ckpt = await open(stateDict(`${str('w')}${tensor('FloatStorage', '0', 1, 0, [], [])}${str('epoch')}K\x03`), { '0': f32(4) });
    expect(ckpt.names()).toEqual(['w']);
    expect(ckpt.otherKeys).toEqual(['epoch']);
  });

  it('refuses pickles that are not flat state dicts', async () => {
    await expect(open(`\x80\x02${tensor('FloatStorage', '0', 1, 0, [], [])}.`, { '0': f32(1) })).rejects.toThrow(
      'f.bin: the checkpoint holds a tensor of shape [], not a state dict',
    );
    await expect(
      open(`\x80\x02}(${str('model')}}(${str('w')}${tensor('FloatStorage', '0', 1, 0, [], [])}u${str('step')}K\x01u.`, { '0': f32(1) }),
    ).rejects.toThrow('f.bin: the checkpoint is a dict whose tensors are nested under "model"');
    await expect(open(`\x80\x02}(K\x01${tensor('FloatStorage', '0', 1, 0, [], [])}u.`, { '0': f32(1) })).rejects.toThrow(
      'f.bin: the state dict has a key 1 that is not a string',
    );
  });

  it('checks storages against data.pkl: present, the right size, views in bounds', async () => {
    await expect(open(stateDict(`${str('w')}${tensor('FloatStorage', '7', 2, 0, [2], [1])}`))).rejects.toThrow(
      'f.bin: tensor "w": its storage "7" (zip entry "a/data/7") is missing from the archive',
    );
    await expect(open(stateDict(`${str('w')}${tensor('FloatStorage', '0', 3, 0, [2], [1])}`), { '0': f32(1, 2) })).rejects.toThrow(
      'f.bin: tensor "w": its storage "0" holds 8 bytes but data.pkl says 3 float32 elements (12 bytes): the file is corrupt',
    );
    await expect(
      open(stateDict(`${str('w')}${tensor('FloatStorage', '0', 4, 1, [2, 2], [1, 2])}`), { '0': f32(1, 2, 3, 4) }),
    ).rejects.toThrow(
      'f.bin: tensor "w": shape [2,2] with stride [1,2] from offset 1 reaches element 4 of storage "0", which has 4: the file is corrupt',
    );
    await expect(open(stateDict(`${str('w')}${tensor('QInt8Storage', '0', 1, 0, [1], [1])}`), { '0': new Uint8Array(1) })).rejects.toThrow(
      'f.bin: tensor "w" is stored as torch.QInt8Storage, which is not supported',
    );
  });

  it('reads strided views with offsets: a column, a reversed-order 3-d permutation', async () => {
    const values = Array.from({ length: 24 }, (_, i) => i);
    const ckpt = await open(
      stateDict(
        `${str('col')}${tensor('FloatStorage', '0', 24, 2, [4], [6])}` +
          `${str('perm')}${tensor('FloatStorage', '0', 24, 0, [4, 3, 2], [1, 4, 12])}` +
          `${str('bcast')}${tensor('FloatStorage', '0', 24, 5, [2, 3], [0, 1])}`,
      ),
      { '0': f32(...values) },
    );
    expect(Array.from((await ckpt.readTensor('col')).data)).toEqual([2, 8, 14, 20]);
    // perm[i][j][k] = storage[i + 4j + 12k]: x.reshape(2, 3, 4).permute(2, 1, 0)
    const want: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) want.push(i + 4 * j + 12 * k);
    expect(Array.from((await ckpt.readTensor('perm')).data)).toEqual(want);
    expect(Array.from((await ckpt.readTensor('bcast')).data)).toEqual([5, 6, 7, 5, 6, 7]);
    expect(ckpt.info('bcast').contiguous).toBe(false);
  });

  it('honours a byteorder entry and refuses a bad one', async () => {
    const pkl = stateDict(`${str('w')}${tensor('FloatStorage', '0', 1, 0, [1], [1])}`);
    const big = new Uint8Array(4);
    new DataView(big.buffer).setFloat32(0, 1.75, false);
    const ckpt = await open(pkl, { '0': big }, [['a/byteorder', 'big']]);
    expect(ckpt.byteOrder).toBe('big');
    expect(Array.from((await ckpt.readTensor('w')).data)).toEqual([1.75]);
    await expect(open(pkl, { '0': big }, [['a/byteorder', 'middle']])).rejects.toThrow(
      'f.bin: byteorder entry says "middle", not "little" or "big"',
    );
  });
});
