import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BINARY_MUTATORS, describeFailures, runFuzz, TEXT_MUTATORS } from '../testing/fuzz.js';
import { bytesSource } from './byte-source.js';
import { openSafetensors } from './reader.js';
import { bytesReader, openShardedSafetensors } from './sharded-reader.js';
import { planShards } from './shards.js';
import { serializeSafetensors } from './writer.js';

const encoder = new TextEncoder();

/** A file whose first 8 bytes say `declared` and whose header is `text`, followed by `data` bytes. */
function handMade(text: string, declared = BigInt(encoder.encode(text).length), data = 0): Uint8Array {
  const header = encoder.encode(text);
  const out = new Uint8Array(8 + header.length + data);
  new DataView(out.buffer).setBigUint64(0, declared, true);
  out.set(header, 8);
  return out;
}

/** Small valid files: several dtypes, metadata, zero-size and unaligned tensors, and the reference crate's golden file. */
function seeds(): Uint8Array[] {
  return [
    serializeSafetensors(
      {
        'model.embed.weight': { dtype: 'F32', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
        'model.norm.weight': { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
        'lm_head.weight': { dtype: 'BF16', shape: [2, 2], data: new Uint16Array([0x3f80, 0x4000, 0x4040, 0x4080]) },
      },
      { format: 'pt' },
    ),
    serializeSafetensors({
      ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
      mask: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      bytes: { dtype: 'U8', shape: [1, 3], data: new Uint8Array([7, 8, 9]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      f8: { dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x38, 0xb8]) },
    }),
    new Uint8Array(readFileSync(join(import.meta.dirname, 'fixtures', 'golden.safetensors'))),
    // Mostly data, so that mutations also land in tensor bytes (accepted files, read and converted).
    serializeSafetensors({
      w: { dtype: 'BF16', shape: [16, 16], data: Uint16Array.from({ length: 256 }, (_, i) => 0x3f80 + i) },
      b: { dtype: 'F16', shape: [64], data: Uint16Array.from({ length: 64 }, (_, i) => 0x3c00 + i) },
    }),
  ];
}

/** Opens a file and reads every tensor, as raw bytes and converted, then closes it. */
async function readAll(bytes: Uint8Array, file: string): Promise<number> {
  const st = await openSafetensors(bytesSource(bytes, file));
  let total = 0;
  try {
    for (const name of st.names()) {
      total += (await st.readRaw(name)).byteLength;
      const info = st.info(name);
      // Dtypes without a core dtype (F4, F6, ...) are read raw only; anything else must convert.
      if (!['F4', 'F6_E2M3', 'F6_E3M2', 'F8_E8M0', 'C64'].includes(info.dtype)) total += (await st.readTensor(name)).data.length;
    }
  } finally {
    await st.close();
  }
  return total;
}

describe('safetensors fuzz', () => {
  it('accepts each mutated file (reading every tensor) or rejects it with an error naming it, in bounded time and memory', async () => {
    const depth = 100_000;
    const report = await runFuzz({
      reader: 'safetensors',
      file: 'model.safetensors',
      seeds: seeds(),
      cases: 1500,
      mutators: BINARY_MUTATORS,
      extraCases: [
        { name: 'deep header', bytes: handMade(`{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`) },
        { name: 'deep metadata', bytes: handMade(`{"__metadata__":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`) },
        { name: 'text file', bytes: encoder.encode('root:x:0:0:root:/root:/bin/bash\n') },
        { name: 'length 2^64-1', bytes: handMade('{}', 2n ** 64n - 1n) },
        { name: 'length 0', bytes: handMade('', 0n) },
        { name: 'shape overflow', bytes: handMade('{"a":{"dtype":"F64","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}') },
        {
          name: 'offsets 2^53',
          bytes: handMade('{"a":{"dtype":"U8","shape":[1],"data_offsets":[9007199254740992,9007199254740993]}}', undefined, 1),
        },
        { name: 'huge name', bytes: handMade(`{"${'n'.repeat(1 << 20)}":{"dtype":"U8","shape":[2],"data_offsets":[0,1]}}`, undefined, 1) },
        {
          name: 'many tensors',
          bytes: handMade(
            `{${Array.from({ length: 5000 }, (_, i) => `"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`).join(',')}}`,
          ),
        },
      ],
      read: readAll,
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
  }, 120_000);

  it('accepts each mutated index JSON (reading every tensor of every shard) or rejects it with an error naming it', async () => {
    const tensors = [
      { name: 'model.embed.weight', dtype: 'F32' as const, shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      { name: 'model.layers.0.weight', dtype: 'F32' as const, shape: [2], data: new Float32Array([5, 6]) },
      { name: 'lm_head.weight', dtype: 'F16' as const, shape: [2, 2], data: new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400]) },
    ];
    const plan = planShards(tensors, 16);
    const shards = new Map<string, Uint8Array>();
    for (const shard of plan.shards) {
      shards.set(shard.fileName, serializeSafetensors(tensors.filter((t) => shard.names.includes(t.name))));
    }
    const indexFile = plan.indexFileName;
    const deep = 100_000;
    const report = await runFuzz({
      reader: 'safetensors index',
      file: indexFile,
      seeds: [encoder.encode(plan.indexJson), encoder.encode(JSON.stringify(plan.index))],
      cases: 1000,
      mutators: TEXT_MUTATORS,
      extraCases: [
        { name: 'null', bytes: encoder.encode('null') },
        { name: 'deep metadata', bytes: encoder.encode(`{"metadata":${'['.repeat(deep)}${']'.repeat(deep)},"weight_map":{}}`) },
        { name: 'path shard', bytes: encoder.encode('{"weight_map":{"lm_head.weight":"../../etc/passwd"}}') },
        { name: 'index as shard', bytes: encoder.encode(`{"weight_map":{"lm_head.weight":"${indexFile}"}}`) },
        { name: 'missing shard', bytes: encoder.encode('{"weight_map":{"lm_head.weight":"model-00009-of-00009.safetensors"}}') },
        { name: 'not text', bytes: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) },
      ],
      async read(bytes, file) {
        const files = new Map(shards);
        files.set(file, bytes);
        const sharded = await openShardedSafetensors(bytesReader(files, 'checkpoint'), file, { warn: () => {} });
        try {
          let total = 0;
          for (const name of sharded.names()) total += (await sharded.readTensor(name)).data.length;
          return total;
        } finally {
          await sharded.close();
        }
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
  }, 120_000);
});
