import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSafetensors } from '../safetensors/reader.js';
import type { NamedLazyTensorToWrite } from '../safetensors/writer.js';
import { serializeSafetensors } from '../safetensors/writer.js';
import { nodeDirReader } from './dir-reader.js';
import { fileSource } from './file-source.js';
import { loadSafetensors, openSafetensorsDir, openSafetensorsFile, saveSafetensors, saveShardedSafetensors } from './save.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-st-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tensors = (): NamedLazyTensorToWrite[] => [
  { name: 'embed.weight', dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
  { name: 'norm.weight', dtype: 'bfloat16', shape: [2], data: () => new Uint16Array([0x3f80, 0xc000]) },
  { name: 'lm_head.weight', dtype: 'float16', shape: [3, 2], data: async () => new Uint16Array([0x3c00, 0, 0, 0x3c00, 0, 0]) },
  { name: 'position_ids', dtype: 'I64', shape: [3], data: new BigInt64Array([0n, 1n, 2n]) },
];

describe('fileSource', () => {
  it('reads exactly the asked range and refuses ranges past the end', async () => {
    const path = join(dir, 'x.bin');
    await writeFile(path, new Uint8Array([10, 11, 12, 13, 14]));
    const source = await fileSource(path);
    expect(source.size).toBe(5);
    expect([...(await source.read(1, 3))]).toEqual([11, 12, 13]);
    expect([...(await source.read(5, 0))]).toEqual([]);
    await expect(source.read(3, 4)).rejects.toThrow(`${path}: cannot read bytes [3, 7): the source is only 5 bytes`);
    await source.close?.();
    await expect(source.read(0, 1)).rejects.toThrow(`${path}: cannot read: the file was closed`);
  });
});

describe('saveSafetensors / loadSafetensors', () => {
  it('round-trips through a file on disk with the same bytes as serializeSafetensors', async () => {
    const path = join(dir, 'adapter_model.safetensors');
    const size = await saveSafetensors(path, tensors(), { format: 'pt' });
    const bytes = await readFile(path);
    expect(bytes.length).toBe(size);
    const eager = serializeSafetensors(
      [
        { name: 'embed.weight', dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
        { name: 'norm.weight', dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
        { name: 'lm_head.weight', dtype: 'float16', shape: [3, 2], data: new Uint16Array([0x3c00, 0, 0, 0x3c00, 0, 0]) },
        { name: 'position_ids', dtype: 'I64', shape: [3], data: new BigInt64Array([0n, 1n, 2n]) },
      ],
      { format: 'pt' },
    );
    expect(Buffer.from(eager).equals(bytes)).toBe(true);

    const loaded = await loadSafetensors(path);
    expect(loaded.metadata).toEqual({ format: 'pt' });
    expect([...loaded.tensors.keys()]).toEqual(['position_ids', 'embed.weight', 'norm.weight', 'lm_head.weight']);
    expect(loaded.tensors.get('embed.weight')).toEqual({ dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
    expect(loaded.tensors.get('norm.weight')).toEqual({ dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) });
    expect(loaded.tensors.get('position_ids')).toEqual({ dtype: 'int32', shape: [3], data: new Int32Array([0, 1, 2]) });
    const asF32 = await loadSafetensors(path, { dtype: 'float32' });
    expect(asF32.tensors.get('lm_head.weight')!.data).toEqual(new Float32Array([1, 0, 0, 1, 0, 0]));
  });

  it('keeps the old file when a tensor fails while saving', async () => {
    const path = join(dir, 'model.safetensors');
    await saveSafetensors(path, tensors());
    const before = await readFile(path);
    const broken = tensors();
    broken[2]!.data = () => {
      throw new Error('GPU readback failed');
    };
    await expect(saveSafetensors(path, broken)).rejects.toThrow('GPU readback failed');
    expect((await readFile(path)).equals(before)).toBe(true);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
  });

  it('names the file in errors of a file it cannot parse', async () => {
    const path = join(dir, 'broken.safetensors');
    await writeFile(path, new Uint8Array([255, 0, 0, 0, 0, 0, 0, 0, 123]));
    await expect(openSafetensorsFile(path)).rejects.toThrow(`${path}: header length 255 runs past the end of the file (9 bytes`);
  });
});

describe('saveShardedSafetensors', () => {
  it('writes shards and an index like transformers and reads them back', async () => {
    const plan = await saveShardedSafetensors(dir, tensors(), { maxShardBytes: 36, metadata: { format: 'pt' } });
    // embed 24 + norm 4 = 28 bytes; adding lm_head's 12 would pass 36, so it opens shard 2 with position_ids' 24.
    expect(plan.shards.map((s) => [s.fileName, s.names])).toEqual([
      ['model-00001-of-00002.safetensors', ['embed.weight', 'norm.weight']],
      ['model-00002-of-00002.safetensors', ['lm_head.weight', 'position_ids']],
    ]);
    expect((await readdir(dir)).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    expect(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')).toBe(plan.indexJson);
    expect(JSON.parse(plan.indexJson).metadata).toEqual({ total_size: 64 });

    const reader = await openSafetensorsDir(dir);
    expect(reader.names()).toEqual(['embed.weight', 'lm_head.weight', 'norm.weight', 'position_ids']);
    expect((await reader.readTensor('lm_head.weight', { dtype: 'float32' })).data).toEqual(new Float32Array([1, 0, 0, 1, 0, 0]));
    expect((await reader.readTensor('norm.weight')).data).toEqual(new Uint16Array([0x3f80, 0xc000]));
    await reader.close();

    const shard = await openSafetensors(await nodeDirReader(dir).open('model-00002-of-00002.safetensors'));
    expect(shard.metadata).toEqual({ format: 'pt' });
    await shard.close();
  });

  it('replaces an earlier sharded save by a single file, removing the stale shards and index', async () => {
    await saveShardedSafetensors(dir, tensors(), { maxShardBytes: 30 });
    await writeFile(join(dir, 'config.json'), '{}');
    const plan = await saveShardedSafetensors(dir, tensors());
    expect(plan.sharded).toBe(false);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    const reader = await openSafetensorsDir(dir);
    expect(reader.names()).toHaveLength(4);
    await reader.close();
    const single = await openSafetensorsFile(join(dir, 'model.safetensors'));
    expect((await stat(join(dir, 'model.safetensors'))).size).toBe(single.dataOffset + 64);
    await single.close();
  });
});

describe('nodeDirReader', () => {
  it('lists files and refuses names outside the directory', async () => {
    await writeFile(join(dir, 'a.safetensors'), serializeSafetensors([]));
    const reader = nodeDirReader(dir);
    expect(await reader.list!()).toEqual(['a.safetensors']);
    await expect(reader.open('../etc/passwd')).rejects.toThrow(
      `${dir}: file name "../etc/passwd" points outside the directory: use a plain file name`,
    );
  });
});
