// Fuzzes the pytorch_model.bin readers: (a) the restricted unpickler on real data.pkl files,
// (b) the whole zip reader, reading every tensor, (c) the sharded index JSON with its shards.
// Every case must load, or fail with a clear error naming the file, within 2 s and 256 MiB.
import { readFileSync } from 'node:fs';
import { bytesReader } from '@peft/core';
import { BINARY_MUTATORS, describeFailures, type FuzzTarget, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { openTorchBin } from './torch-bin.js';
import { unpickleTorch } from './torch-bin-pickle.js';
import { openShardedTorchBin } from './torch-bin-sharded.js';
import { f32, latin1, makeZip, memorySource, stateDictPickle, str, tensorPickle } from './torch-bin-testing.js';
import { readEntry, readZipDirectory } from './torch-bin-zip.js';

const fixture = (path: string) => new Uint8Array(readFileSync(new URL(`./fixtures/torch-bin/${path}`, import.meta.url)));
const modelFixture = (path: string) => new Uint8Array(readFileSync(new URL(`../../../../fixtures/models/${path}`, import.meta.url)));

// float32, float16, bfloat16, float64 and integer tensors, views, protocol 4, deflated, zip64,
// big-endian, a shard, and a real tiny model's checkpoint.
const binSeeds = [
  fixture('state-dict.bin'),
  fixture('state-dict-proto4.bin'),
  fixture('deflate.bin'),
  fixture('zip64.bin'),
  fixture('big-endian.bin'),
  fixture('sharded/pytorch_model-00001-of-00002.bin'),
  modelFixture('tiny-llama/bin/pytorch_model.bin'),
];

async function dataPkl(bin: Uint8Array): Promise<Uint8Array> {
  const source = memorySource(bin);
  const { entries } = await readZipDirectory(source);
  const name = [...entries.keys()].find((n) => n.endsWith('/data.pkl'))!;
  return readEntry(source, entries.get(name)!);
}

/** Opens a .bin and reads every tensor, as raw bytes and converted. */
async function readAll(bytes: Uint8Array, file: string): Promise<number> {
  const ckpt = await openTorchBin(memorySource(bytes, file));
  try {
    let n = 0;
    for (const name of ckpt.names()) {
      n += (await ckpt.readRaw(name)).byteLength;
      const info = ckpt.info(name);
      // int64 values outside int32 are refused by readTensor (with a clear error): read them raw only.
      if (info.dtype !== 'int64') n += (await ckpt.readTensor(name)).data.length;
    }
    return n;
  } finally {
    await ckpt.close();
  }
}

const hostileBins = () => {
  const long4 = new Uint8Array(7 + (1 << 18) + 1);
  long4.set([0x80, 0x02, 0x8b, 0x00, 0x00, 0x04, 0x00]);
  long4[long4.length - 1] = 0x2e;
  return [
    {
      name: 'stride-0 view of a 1-element storage claiming 2^30 elements',
      bytes: makeZip([
        { name: 'a/data.pkl', data: stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 1, 0, [1 << 30], [0])}`) },
        { name: 'a/data/0', data: f32(1) },
      ]),
    },
    {
      name: 'data.pkl declaring 4 GiB',
      bytes: makeZip([{ name: 'a/data.pkl', data: stateDictPickle(''), method: 8, declaredSize: 0xfffffff0 }]),
    },
    { name: '256 KiB LONG4', bytes: makeZip([{ name: 'a/data.pkl', data: long4 }]) },
    { name: 'UNICODE \\UFFFFFFFF', bytes: makeZip([{ name: 'a/data.pkl', data: '\x80\x02V\\UFFFFFFFF\n.' }]) },
    { name: 'nested tuples', bytes: makeZip([{ name: 'a/data.pkl', data: `\x80\x02)${'\x85'.repeat(50000)}.` }]) },
    {
      name: 'deflated storage inflating past its declared size',
      bytes: makeZip([
        { name: 'a/data.pkl', data: stateDictPickle(`${str('w')}${tensorPickle('FloatStorage', '0', 4, 0, [4], [1])}`) },
        { name: 'a/data/0', data: new Uint8Array(1 << 20), method: 8, declaredSize: 16 },
      ]),
    },
  ];
};

describe('fuzz: pytorch_model.bin', () => {
  it('the restricted unpickler on real data.pkl files (BINARY_MUTATORS)', async () => {
    const seeds = await Promise.all([binSeeds[0]!, binSeeds[1]!, binSeeds[4]!, binSeeds[6]!].map(dataPkl));
    const target: FuzzTarget = {
      reader: 'torch-bin-pickle',
      file: 'pytorch_model.bin',
      seeds,
      cases: 1500,
      mutators: BINARY_MUTATORS,
      read: (bytes, file) => unpickleTorch(bytes, file),
      extraCases: [
        { name: 'UNICODE \\UFFFFFFFF', bytes: latin1('\x80\x02V\\UFFFFFFFF\n.') },
        { name: 'a million MARKs', bytes: latin1(`\x80\x02${'('.repeat(1000000)}.`) },
        { name: 'long text integer', bytes: latin1(`\x80\x02L${'9'.repeat(100000)}L\n.`) },
      ],
    };
    const report = await runFuzz(target);
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.accepted).toBeGreaterThan(0);
  }, 60000);

  it('the zip reader, reading every tensor (BINARY_MUTATORS)', async () => {
    const target: FuzzTarget = {
      reader: 'torch-bin',
      file: 'pytorch_model.bin',
      seeds: binSeeds,
      cases: 2500,
      mutators: BINARY_MUTATORS,
      read: readAll,
      extraCases: hostileBins(),
    };
    const report = await runFuzz(target);
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.accepted).toBeGreaterThan(0);
  }, 60000);

  it('the sharded index with its shards, reading every tensor (TEXT_MUTATORS)', async () => {
    const shardNames = ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'];
    const shards = Object.fromEntries(shardNames.map((n) => [n, fixture(`sharded/${n}`)]));
    const target: FuzzTarget = {
      reader: 'torch-bin-index',
      file: 'pytorch_model.bin.index.json',
      seeds: [fixture('sharded/pytorch_model.bin.index.json')],
      cases: 1500,
      mutators: TEXT_MUTATORS,
      async read(bytes, file) {
        const sharded = await openShardedTorchBin(bytesReader({ ...shards, [file]: bytes }), file, { unmapped: 'ignore' });
        try {
          for (const name of sharded.names()) await sharded.readTensor(name);
        } finally {
          await sharded.close();
        }
      },
      extraCases: [
        { name: 'absolute shard path', bytes: latin1('{"weight_map": {"w": "/etc/passwd"}}') },
        { name: 'parent shard path', bytes: latin1('{"weight_map": {"w": "../x.bin"}}') },
        { name: 'not UTF-8', bytes: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) },
      ],
    };
    const report = await runFuzz(target);
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.accepted).toBeGreaterThan(0);
  }, 60000);
});
