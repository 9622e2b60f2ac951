import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TorchBinFile } from './torch-bin.js';
import type { TorchBinFileReader } from './torch-bin-sharded.js';
import { openShardedTorchBin, openTorchBinCheckpoint, ShardedTorchBin } from './torch-bin-sharded.js';

const shardDir = new URL('./fixtures/torch-bin/sharded/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('../golden.json', shardDir), 'utf8')) as {
  files: Record<string, { tensors: Record<string, { dtype: string; shape: number[]; as_float32: number[]; as_float16: number[] }> }>;
};
const shardFiles = Object.fromEntries(readdirSync(shardDir).map((f) => [f, new Uint8Array(readFileSync(new URL(f, shardDir)))]));
const index = JSON.parse(new TextDecoder().decode(shardFiles['pytorch_model.bin.index.json'])) as {
  metadata: Record<string, unknown>;
  weight_map: Record<string, string>;
};

/** A reader over files in memory that records which files were opened. */
function memoryReader(files: Record<string, Uint8Array>, withList = true): TorchBinFileReader & { opened: string[] } {
  const opened: string[] = [];
  const reader: TorchBinFileReader & { opened: string[] } = {
    name: 'model-dir',
    opened,
    async open(fileName) {
      const bytes = files[fileName];
      if (!bytes) throw new Error(`model-dir: no file ${JSON.stringify(fileName)}`);
      opened.push(fileName);
      return {
        name: fileName,
        size: bytes.byteLength,
        async read(offset: number, length: number) {
          return bytes.subarray(offset, offset + length);
        },
      };
    },
  };
  if (withList) reader.list = async () => Object.keys(files);
  return reader;
}
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('sharded pytorch_model.bin', () => {
  it('reads every tensor from the shard the index names', async () => {
    const ckpt = await openShardedTorchBin(memoryReader(shardFiles));
    expect(ckpt.names()).toEqual(Object.keys(index.weight_map));
    expect(ckpt.metadata).toEqual(index.metadata);
    expect(ckpt.shardFiles()).toEqual(['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']);
    for (const [name, file] of Object.entries(index.weight_map)) {
      const want = golden.files[`sharded/${file}`]!.tensors[name]!;
      const info = await ckpt.info(name);
      expect(info.file).toBe(file);
      expect([info.dtype, info.shape]).toEqual([want.dtype, want.shape]);
      const t = await ckpt.readTensor(name);
      const bits = t.dtype === 'float16' ? Array.from(t.data as Uint16Array) : Array.from(new Uint32Array(t.data.slice().buffer));
      expect(bits, name).toEqual(t.dtype === 'float16' ? want.as_float16 : want.as_float32);
    }
    expect((await ckpt.info('lm_head.weight')).contiguous).toBe(false);
    await ckpt.close();
  });

  it('opens shards lazily when asked', async () => {
    const reader = memoryReader(shardFiles);
    const ckpt = await openShardedTorchBin(reader, 'pytorch_model.bin.index.json', { lazy: true });
    expect(reader.opened).toEqual(['pytorch_model.bin.index.json']);
    await ckpt.readTensor('model.norm.weight');
    expect(reader.opened).toEqual(['pytorch_model.bin.index.json', 'pytorch_model-00002-of-00002.bin']);
    expect(ckpt.shardOf('model.embed.weight')).toBe('pytorch_model-00001-of-00002.bin');
    expect(() => ckpt.shardOf('nope')).toThrow('pytorch_model.bin.index.json: no tensor "nope" in weight_map (4 tensors over 2 shards)');
  });

  it('checks shards against the index', async () => {
    const missingShard = { ...shardFiles };
    delete missingShard['pytorch_model-00002-of-00002.bin'];
    await expect(openShardedTorchBin(memoryReader(missingShard))).rejects.toThrow(
      'pytorch_model.bin.index.json: weight_map puts 2 tensors ("model.norm.weight", ...) in shard "pytorch_model-00002-of-00002.bin", which cannot be opened',
    );

    const moved = { ...index.weight_map, 'model.norm.weight': 'pytorch_model-00001-of-00002.bin' };
    await expect(
      openShardedTorchBin(memoryReader({ ...shardFiles, 'pytorch_model.bin.index.json': json({ weight_map: moved }) })),
    ).rejects.toThrow(
      'pytorch_model-00001-of-00002.bin: tensor "model.norm.weight" listed in pytorch_model.bin.index.json weight_map for this shard is not in it',
    );

    const partial = { ...index.weight_map };
    delete (partial as Record<string, string>)['lm_head.weight'];
    const warnings: string[] = [];
    await openShardedTorchBin(memoryReader({ ...shardFiles, 'pytorch_model.bin.index.json': json({ weight_map: partial }) }), undefined, {
      warn: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([
      'pytorch_model-00002-of-00002.bin: tensor "lm_head.weight" is in this shard but not in pytorch_model.bin.index.json weight_map: it will not be loaded',
    ]);

    await expect(openShardedTorchBin(memoryReader({ 'pytorch_model.bin.index.json': json({ weight_map: [] }) }))).rejects.toThrow(
      'pytorch_model.bin.index.json: "weight_map" must be an object {tensor name: shard file}',
    );
  });
});

describe('openTorchBinCheckpoint', () => {
  it('prefers the index, falls back to pytorch_model.bin, and says when neither is there', async () => {
    expect(await openTorchBinCheckpoint(memoryReader(shardFiles))).toBeInstanceOf(ShardedTorchBin);
    expect(await openTorchBinCheckpoint(memoryReader(shardFiles, false))).toBeInstanceOf(ShardedTorchBin);
    const single = { 'pytorch_model.bin': shardFiles['pytorch_model-00001-of-00002.bin']!, 'config.json': json({}) };
    for (const withList of [true, false]) {
      const ckpt = await openTorchBinCheckpoint(memoryReader(single, withList));
      expect(ckpt).toBeInstanceOf(TorchBinFile);
      expect(ckpt.names()).toEqual(['model.embed.weight', 'model.layers.0.weight']);
    }
    await expect(openTorchBinCheckpoint(memoryReader({ 'config.json': json({}) }))).rejects.toThrow(
      'model-dir: neither pytorch_model.bin.index.json nor pytorch_model.bin is here (files: config.json)',
    );
  });
});
