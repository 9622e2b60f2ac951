// Hostile pytorch_model.bin files: each case is bounded in time and memory and ends in an error
// that names the file (or loads), never in an engine error or a huge allocation.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesReader } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { openTorchBin } from './torch-bin.js';
import { TORCH_BIN_FORMAT } from './torch-bin-format.js';
import { MAX_PICKLE_VALUES, unpickleTorch } from './torch-bin-pickle.js';
import { openShardedTorchBin, openTorchBinCheckpoint } from './torch-bin-sharded.js';
import { deflatedZeros, f32, latin1, makeZip, memorySource, stateDictPickle, str, tensorPickle } from './torch-bin-testing.js';

/** Runs `fn`, returning its error (or undefined), the wall time and the growth of array-buffer memory. */
async function measure(fn: () => unknown): Promise<{ error: Error | undefined; ms: number; bufferGrowth: number }> {
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 5);
  const started = performance.now();
  let error: Error | undefined;
  try {
    await fn();
  } catch (e) {
    error = e as Error;
  }
  const ms = performance.now() - started;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  return { error, ms, bufferGrowth: peak - before };
}

/** The error must be a plain Error (not RangeError/TypeError/...) naming the file, and short. */
function expectClear(error: Error | undefined, file: string, including?: string): void {
  expect(error, 'expected an error').toBeInstanceOf(Error);
  expect(error!.constructor).toBe(Error);
  expect(error!.message).toContain(file);
  expect(error!.message.length).toBeLessThanOrEqual(1000);
  if (including) expect(error!.message).toContain(including);
}

const MiB = 2 ** 20;
/** Bytes that do not compress (xorshift). */
const noise = (n: number) => {
  const out = new Uint8Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
};
const pickleBytes = (head: Uint8Array, body: Uint8Array, tail: Uint8Array) => {
  const out = new Uint8Array(head.length + body.length + tail.length);
  out.set(head);
  out.set(body, head.length);
  out.set(tail, head.length + body.length);
  return out;
};
const long4 = (n: number) => {
  const head = new Uint8Array([0x80, 0x02, 0x8b, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);
  return pickleBytes(head, new Uint8Array(n).fill(0x11), latin1('.'));
};
const binWith = (pkl: string | Uint8Array, storages: Record<string, Uint8Array> = {}) =>
  makeZip([{ name: 'a/data.pkl', data: pkl }, ...Object.entries(storages).map(([k, v]) => ({ name: `a/data/${k}`, data: v }))]);

describe('pickle opcodes are linear and bounded', () => {
  it('decodes a 64 KiB LONG4 in linear time and refuses longer ones', async () => {
    // Before: 64 KiB took 0.6 s and 256 KiB 322 s (quadratic); now 64 KiB takes a few ms.
    const ok = await measure(() => unpickleTorch(long4(1 << 16), 'data.pkl'));
    expect(ok.error).toBeUndefined();
    expect(ok.ms).toBeLessThan(300);
    const big = await measure(() => unpickleTorch(long4(256 * 1024), 'big.bin'));
    expectClear(big.error, 'big.bin', 'LONG4 integer of 262144 bytes is longer than 65536');
    expect(big.ms).toBeLessThan(500);
  });

  it('decodes LONG1 integers of every width to the right values, ten thousand 255-byte ones quickly', async () => {
    const long1 = (...bytes: number[]) => unpickleTorch(new Uint8Array([0x80, 0x02, 0x8a, bytes.length, ...bytes, 0x2e]), 'l.bin').root;
    expect(long1()).toBe(0);
    expect(long1(0xff)).toBe(-1);
    expect(long1(0x00, 0x80)).toBe(-32768);
    expect(long1(0x00, 0x80, 0x00)).toBe(32768);
    expect(long1(0x00, 0x00, 0x00, 0x00, 0x00, 0x80)).toBe(-(2 ** 47));
    expect(long1(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)).toBe(-1);
    expect(long1(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f)).toBe(Number.MAX_SAFE_INTEGER);
    expect(long1(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01)).toBe(2n ** 64n);
    expect(long1(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80)).toBe(-(2n ** 71n));
    const one = `\x8a\xff${'\x11'.repeat(255)}0`;
    const pkl = latin1(`\x80\x02${one.repeat(10000)}N.`);
    const r = await measure(() => unpickleTorch(pkl, 'data.pkl'));
    expect(r.error).toBeUndefined();
    expect(r.ms).toBeLessThan(5000);
  });

  it('refuses text integers longer than 4300 digits', async () => {
    const pkl = latin1(`\x80\x02L${'7'.repeat(200000)}L\n.`);
    const r = await measure(() => unpickleTorch(pkl, 'long.bin'));
    expectClear(r.error, 'long.bin', 'longer than 4300 digits');
  });

  it('describes a huge integer by its size, not its digits', async () => {
    const n = 60000;
    const pkl = pickleBytes(new Uint8Array([0x80, 0x02, 0x8b, n & 0xff, n >>> 8, 0, 0]), new Uint8Array(n).fill(0x11), latin1('.'));
    const r = await measure(() => openTorchBin(memorySource(binWith(pkl), 'int.bin')));
    expectClear(r.error, 'int.bin', 'the checkpoint holds an integer of about 480000 bits, not a state dict');
    expect(r.ms).toBeLessThan(1000);
  });

  it('translates a UNICODE escape beyond U+10FFFF', async () => {
    // Before: a bare RangeError "Invalid code point 4294967295".
    const r = await measure(() => unpickleTorch(latin1('\x80\x02V\\UFFFFFFFF\n.'), 'u.bin'));
    expectClear(r.error, 'u.bin', 'UNICODE escape \\UFFFFFFFF is not a Unicode code point');
  });

  it('describes deeply nested tuples without overflowing the call stack', async () => {
    // Before: RangeError "Maximum call stack size exceeded".
    const bytes = binWith(`\x80\x02)${'\x85'.repeat(100000)}.`);
    const r = await measure(() => openTorchBin(memorySource(bytes, 'deep.bin')));
    expectClear(r.error, 'deep.bin', 'the checkpoint holds ((a tuple of 1)), not a state dict');
    // 100,000 lists, each appended to the one below it.
    const lists = binWith(`\x80\x02${']'.repeat(100000)}${'a'.repeat(99999)}.`);
    const l = await measure(() => openTorchBin(memorySource(lists, 'lists.bin')));
    expectClear(l.error, 'lists.bin', 'the checkpoint holds a list of 1, not a state dict');
  });

  it('bounds MARK nesting and the number of values', async () => {
    // Before: a million MARKs took 0.37 s and 61 MiB, and were only refused at STOP.
    const manyMarks = latin1(`\x80\x02${'('.repeat(1000000)}.`);
    const marks = await measure(() => unpickleTorch(manyMarks, 'marks.bin'));
    expectClear(marks.error, 'marks.bin', 'nests more than 1000 MARKs');
    expect(marks.ms).toBeLessThan(500);
    const manyDups = latin1(`\x80\x02N${'2'.repeat(MAX_PICKLE_VALUES + 10)}.`);
    const dups = await measure(() => unpickleTorch(manyDups, 'dup.bin'));
    expectClear(dups.error, 'dup.bin', `builds more than ${MAX_PICKLE_VALUES} values`);
  });

  it('nests tensor-subclass rebuilds only so deep', async () => {
    // _rebuild_from_type_v2(_rebuild_from_type_v2(...)) 200 levels deep.
    let args = `((${str('storage')}ctorch\nFloatStorage\n${str('0')}${str('cpu')}K\x01tQK\x00(K\x01t(K\x01t\x89ccollections\nOrderedDict\n)Rt`;
    let fn = 'ctorch._utils\n_rebuild_tensor_v2\n';
    for (let i = 0; i < 200; i++) {
      args = `(${fn}ctorch\nTensor\n${args}}t`;
      fn = 'ctorch._tensor\n_rebuild_from_type_v2\n';
    }
    const r = await measure(() => unpickleTorch(latin1(`\x80\x02${fn}${args}R.`), 'nest.bin'));
    expectClear(r.error, 'nest.bin', 'nests tensor rebuilds more than 16 deep');
  });
});

describe('tensors are checked against their storage before anything is allocated', () => {
  it('refuses a stride-0 view of a 1-element storage claiming 2^30 elements', async () => {
    // Before: the 389-byte file opened, and readTensor allocated 4 GiB (20 s).
    const bytes = binWith(stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 1, 0, [1 << 30], [0])}`), { '0': f32(1) });
    expect(bytes.byteLength).toBeLessThan(620);
    const r = await measure(() => openTorchBin(memorySource(bytes, 'stride0.bin')));
    expectClear(
      r.error,
      'stride0.bin',
      'tensor "w": shape [1073741824] with stride [0] from offset 0 has 1073741824 elements but its storage "0" holds only 1',
    );
    expect(r.ms).toBeLessThan(500);
    expect(r.bufferGrowth).toBeLessThan(MiB);
  });

  it('refuses overlapping views and shapes whose element count overflows', async () => {
    const storage = { '0': f32(1, 2, 3, 4) };
    const overlap = await measure(() =>
      openTorchBin(
        memorySource(binWith(stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 4, 0, [4, 4], [1, 0])}`), storage), 'o.bin'),
      ),
    );
    expectClear(overlap.error, 'o.bin', 'has 16 elements but its storage "0" holds only 4');
    const huge = await measure(() =>
      openTorchBin(
        memorySource(
          binWith(
            stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 4, 0, [65536, 65536, 65536, 65536], [0, 0, 0, 0])}`),
            storage,
          ),
          'h.bin',
        ),
      ),
    );
    expectClear(huge.error, 'h.bin', 'but its storage "0" holds only 4');
  });

  it('still reads a broadcast view no larger than its storage', async () => {
    const ckpt = await openTorchBin(
      memorySource(
        binWith(stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 4, 1, [2, 2], [0, 1])}`), { '0': f32(1, 2, 3, 4) }),
      ),
    );
    expect(Array.from((await ckpt.readTensor('w')).data)).toEqual([2, 3, 2, 3]);
  });
});

describe('zip entry sizes are never trusted', () => {
  it('refuses a deflated data.pkl declaring 4 GiB in a 4 MB file without allocating it', async () => {
    // Before: a 4 GiB buffer was allocated, then the entry was found to hold 32 bytes.
    const bytes = makeZip([
      { name: 'a/data.pkl', data: stateDictPickle(''), method: 8, declaredSize: 0xfffffff0 },
      { name: 'a/data/0', data: noise(4 * MiB) },
    ]);
    const r = await measure(() => openTorchBin(memorySource(bytes, 'lying.bin')));
    expectClear(r.error, 'lying.bin', 'deflated bytes cannot hold the 4294967280 bytes the directory declares');
    expect(r.bufferGrowth).toBeLessThan(8 * MiB);
  });

  it('refuses a data.pkl declaring more than 64 MiB, and one that inflates past its declared size', async () => {
    const big = makeZip([{ name: 'a/data.pkl', data: noise(100 * 1024), method: 8, declaredSize: 65 * MiB }]);
    const r = await measure(() => openTorchBin(memorySource(big, 'big.bin')));
    expectClear(r.error, 'big.bin', 'declares 68157440 bytes, more than the 67108864 this reader accepts');
    expect(r.ms).toBeLessThan(1000);
    // Declares 1 MiB but holds 64 MiB of zeros: stops at the first output past 1 MiB.
    const bomb = makeZip([{ name: 'a/data.pkl', data: '', deflated: deflatedZeros(64), method: 8, declaredSize: MiB }]);
    const b = await measure(() => openTorchBin(memorySource(bomb, 'bomb.bin')));
    expectClear(b.error, 'bomb.bin', 'inflates past the 1048576 bytes the directory declares');
    expect(b.ms).toBeLessThan(5000);
    expect(b.bufferGrowth).toBeLessThan(48 * MiB);
  });

  it('inflates a 64 MiB deflated data.pkl (the largest bomb within the limits) in bounded time and memory', async () => {
    const bomb = makeZip([{ name: 'a/data.pkl', data: '', deflated: deflatedZeros(64), method: 8, declaredSize: 64 * MiB }]);
    const r = await measure(() => openTorchBin(memorySource(bomb, 'zeros.bin')));
    // Inflated to the end (all 64 MiB from 65 KB), then refused by its CRC.
    expectClear(r.error, 'zeros.bin', 'zip entry "a/data.pkl" fails its CRC check');
    expect(r.ms).toBeLessThan(10000);
    expect(r.bufferGrowth).toBeLessThan(200 * MiB);
  }, 30000);

  it('checks local headers against the central directory', async () => {
    const pkl = stateDictPickle('');
    const size = await measure(() =>
      openTorchBin(memorySource(makeZip([{ name: 'a/data.pkl', data: pkl, localDeclaredSize: 9999 }]), 'l.bin')),
    );
    expectClear(size.error, 'l.bin', 'zip entry "a/data.pkl": its local header gives uncompressed size 9999 but the central directory');
    const name = await measure(() =>
      openTorchBin(memorySource(makeZip([{ name: 'a/data.pkl', data: pkl, localName: 'b/data.pkl' }]), 'n.bin')),
    );
    expectClear(name.error, 'n.bin', 'zip entry "a/data.pkl": its local header names a different file');
  });
});

describe('deflated storages inflate only what a read needs', () => {
  it('reads one float of a 256 MiB deflated storage without inflating the rest', async () => {
    // Before: 4.7 s and 275 MiB of RSS (the whole storage inflated); now one 64 KiB step.
    const n = 256 * MiB;
    const bytes = makeZip([
      { name: 'a/data.pkl', data: stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', n / 4, 0, [1], [1])}`) },
      { name: 'a/data/0', data: '', deflated: deflatedZeros(256), method: 8, declaredSize: n },
    ]);
    const source = memorySource(bytes, 'sparse.bin');
    const ckpt = await openTorchBin(source);
    const before = source.bytesRead;
    const r = await measure(async () => expect(Array.from((await ckpt.readTensor('w')).data)).toEqual([0]));
    expect(r.error).toBeUndefined();
    expect(r.ms).toBeLessThan(2000);
    expect(r.bufferGrowth).toBeLessThan(16 * MiB);
    expect(source.bytesRead - before).toBeLessThanOrEqual(30 + 'a/data/0'.length + 65536);
  });

  it('refuses a deflated storage that inflates to fewer or more bytes than declared', async () => {
    const pkl = stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 4, 0, [4], [1])}`);
    const short = makeZip([
      { name: 'a/data.pkl', data: pkl },
      { name: 'a/data/0', data: f32(1, 2, 3), method: 8, declaredSize: 16 },
    ]);
    const s = await measure(async () => (await openTorchBin(memorySource(short, 's.bin'))).readTensor('w'));
    expectClear(s.error, 's.bin', 'zip entry "a/data/0" inflates to fewer bytes than the 16 the directory declares');
    const long = makeZip([
      { name: 'a/data.pkl', data: pkl },
      { name: 'a/data/0', data: f32(1, 2, 3, 4, 5, 6, 7, 8), method: 8, declaredSize: 16 },
    ]);
    const l = await measure(async () => (await openTorchBin(memorySource(long, 'l.bin'))).readTensor('w'));
    expectClear(l.error, 'l.bin', 'inflates past the 16 bytes the directory declares');
  });
});

describe('the shard index', () => {
  const index = (text: string | Uint8Array) =>
    openShardedTorchBin(bytesReader({ 'pytorch_model.bin.index.json': typeof text === 'string' ? latin1(text) : text }));

  it('names the field and the type of a wrong value, never the value', async () => {
    await expect(index('{"weight_map": "SECRET"}')).rejects.toThrow(
      'pytorch_model.bin.index.json: "weight_map" must be an object {tensor name: shard file}, got a string',
    );
    await expect(index('{"weight_map": {"w": ["SECRET"]}}')).rejects.toThrow(
      'pytorch_model.bin.index.json: weight_map entry for tensor "w" must be a shard file name, got an array',
    );
    await expect(index('{"weight_map": {"w": 1}, SECRET}')).rejects.toThrow(
      /^pytorch_model\.bin\.index\.json: the index is not valid JSON at character \d+ of \d+$/,
    );
    await expect(index(new Uint8Array([0x7b, 0xff, 0x7d]))).rejects.toThrow('pytorch_model.bin.index.json: the index is not UTF-8 text');
  });

  it('refuses shard names that leave the model folder', async () => {
    for (const shard of ['/etc/passwd', '../x.bin', 'a/../../x.bin', 'C:\\x.bin', '\\\\server\\x.bin']) {
      await expect(index(JSON.stringify({ weight_map: { w: shard } }))).rejects.toThrow(
        'expected the name of a file in the same folder as the index (no path)',
      );
    }
  });
});

describe('model folders on disk', () => {
  const root = mkdtempSync(join(tmpdir(), 'peft-torch-bin-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const SECRET = 'SECRET-7f3a9c-do-not-print';
  const secretFile = join(root, 'secret.txt');
  writeFileSync(secretFile, `${SECRET}\n{"weight_map": ${SECRET}}\n`);
  const openFds = () => readdirSync('/proc/self/fd').length;

  it.skipIf(process.platform !== 'linux')('closes the file handle of every failed open (200 failed loads)', async () => {
    // Before: every failed open of a single file kept its handle (200 loads: +200 descriptors).
    const dir = join(root, 'corrupt');
    mkdirSync(dir);
    const good = binWith(stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 1, 0, [1], [1])}`), { '0': f32(1) });
    const corrupt = good.slice();
    corrupt[40] ^= 0xff; // inside data.pkl: its CRC fails
    writeFileSync(join(dir, 'pytorch_model.bin'), corrupt);
    const opener = nodeDirReader(dir);
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      await expect(TORCH_BIN_FORMAT.open(opener, 'pytorch_model.bin')).rejects.toThrow('pytorch_model.bin');
      await expect(openTorchBinCheckpoint(opener)).rejects.toThrow('pytorch_model.bin');
    }
    expect(openFds() - before).toBeLessThanOrEqual(2);

    const sharded = join(root, 'sharded');
    mkdirSync(sharded);
    writeFileSync(join(sharded, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { w: 'a.bin', v: 'b.bin' } }));
    writeFileSync(join(sharded, 'a.bin'), good);
    writeFileSync(join(sharded, 'b.bin'), corrupt);
    const shardedBefore = openFds();
    for (let i = 0; i < 200; i++) {
      await expect(openShardedTorchBin(nodeDirReader(sharded))).rejects.toThrow('b.bin');
    }
    expect(openFds() - shardedBefore).toBeLessThanOrEqual(2);
  });

  it('never shows bytes of what a linked file points to', async () => {
    const dir = join(root, 'links');
    mkdirSync(dir);
    symlinkSync(secretFile, join(dir, 'pytorch_model.bin'));
    const single = await measure(() => openTorchBinCheckpoint(nodeDirReader(dir)));
    expectClear(single.error, 'pytorch_model.bin');
    expect(single.error!.message).not.toContain('SECRET');

    symlinkSync(secretFile, join(dir, 'pytorch_model.bin.index.json'));
    const index = await measure(() => openTorchBinCheckpoint(nodeDirReader(dir)));
    expectClear(index.error, 'pytorch_model.bin.index.json', 'not valid JSON');
    expect(index.error!.message).not.toContain('SECRET');

    // Valid JSON whose values are the secret: described by type only.
    for (const [i, doc] of [
      { weight_map: SECRET },
      { metadata: SECRET, weight_map: {} },
      { weight_map: { w: [SECRET] } },
      [SECRET],
    ].entries()) {
      const d = join(root, `json${i}`);
      mkdirSync(d);
      const target = join(root, `secret${i}.json`);
      writeFileSync(target, JSON.stringify(doc));
      symlinkSync(target, join(d, 'pytorch_model.bin.index.json'));
      const r = await measure(() => openTorchBinCheckpoint(nodeDirReader(d)));
      expectClear(r.error, 'pytorch_model.bin.index.json');
      expect(r.error!.message).not.toContain('SECRET');
    }

    // A zip archive that is not a checkpoint: its entry names are not listed.
    const zipDir = join(root, 'zip');
    mkdirSync(zipDir);
    writeFileSync(join(root, 'other.zip'), makeZip([{ name: `${SECRET}.txt`, data: 'x' }]));
    symlinkSync(join(root, 'other.zip'), join(zipDir, 'pytorch_model.bin'));
    const zip = await measure(() => openTorchBinCheckpoint(nodeDirReader(zipDir)));
    expectClear(zip.error, 'pytorch_model.bin', 'the zip archive has no data.pkl');
    expect(zip.error!.message).not.toContain('SECRET');

    // A byteorder entry holding text.
    const bo = makeZip([
      { name: 'a/data.pkl', data: stateDictPickle('') },
      { name: 'a/byteorder', data: SECRET },
    ]);
    const r = await measure(() => openTorchBin(memorySource(bo, 'bo.bin')));
    expectClear(r.error, 'bo.bin', 'byteorder entry holds 26 bytes, not "little" or "big"');
    expect(r.error!.message).not.toContain('SECRET');
  });
});

describe('long names from the file are cut short in messages', () => {
  it('a storage class name of 100,000 characters', async () => {
    const type = `${'Q'.repeat(100000)}Storage`;
    const r = await measure(() =>
      openTorchBin(
        memorySource(binWith(stateDictPickle(`${str('w')}${tensorPickle(type, '0', 1, 0, [1], [1])}`), { '0': f32(1) }), 'n.bin'),
      ),
    );
    expectClear(r.error, 'n.bin', 'tensor "w" is stored as torch.QQQQ');
  });

  it('a tensor name and a storage key of 100,000 characters', async () => {
    const long = 'k'.repeat(100000);
    const r = await measure(() =>
      openTorchBin(memorySource(binWith(stateDictPickle(`${str(long)}${tensorPickle('FloatStorage', long, 1, 0, [1], [1])}`)), 'k.bin')),
    );
    expectClear(r.error, 'k.bin', 'is missing from the archive');
  });
});
