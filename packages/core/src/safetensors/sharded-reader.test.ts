import { describe, expect, it, vi } from 'vitest';
import type { ByteSource } from './byte-source.js';
import type { FileOpener } from './sharded-reader.js';
import { bytesReader, filesReader, openShardedSafetensors } from './sharded-reader.js';
import { planShards } from './shards.js';
import { serializeSafetensors } from './writer.js';

const f32 = (...v: number[]) => ({ dtype: 'F32' as const, shape: [v.length], data: new Float32Array(v) });

/** A two-shard checkpoint as transformers lays it out, kept in memory. */
function checkpoint() {
  const tensors = [
    { name: 'embed.weight', ...f32(1, 2, 3) },
    { name: 'layer.0.weight', ...f32(4, 5) },
    { name: 'lm_head.weight', ...f32(6, 7, 8) },
  ];
  const plan = planShards(tensors, 20);
  const files: Record<string, Uint8Array> = { [plan.indexFileName]: new TextEncoder().encode(plan.indexJson) };
  for (const shard of plan.shards) {
    files[shard.fileName] = serializeSafetensors(
      tensors.filter((t) => shard.names.includes(t.name)),
      { format: 'pt' },
    );
  }
  return { plan, files };
}

/** Counts how often each file is opened. */
function counting(reader: FileOpener) {
  const opened: string[] = [];
  return {
    opened,
    reader: {
      ...reader,
      open: (name: string) => {
        opened.push(name);
        return reader.open(name);
      },
    } as FileOpener,
  };
}

describe('openShardedSafetensors', () => {
  it('reads tensors across shards through the index', async () => {
    const { plan, files } = checkpoint();
    expect(plan.shards.map((s) => s.names)).toEqual([['embed.weight', 'layer.0.weight'], ['lm_head.weight']]);
    const sharded = await openShardedSafetensors(bytesReader(files, 'ckpt'));
    expect(sharded.names()).toEqual(['embed.weight', 'layer.0.weight', 'lm_head.weight']);
    expect(sharded.metadata).toEqual({ total_size: 32 });
    expect(sharded.shardOf('lm_head.weight')).toBe('model-00002-of-00002.safetensors');
    expect((await sharded.readTensor('lm_head.weight')).data).toEqual(new Float32Array([6, 7, 8]));
    expect((await sharded.readTensor('layer.0.weight', { dtype: 'bfloat16' })).data).toEqual(new Uint16Array([0x4080, 0x40a0]));
    expect((await sharded.info('embed.weight')).file).toBe('model-00001-of-00002.safetensors');
    expect(() => sharded.shardOf('nope')).toThrow('model.safetensors.index.json: no tensor "nope" in weight_map (3 tensors over 2 shards)');
    await sharded.close();
  });

  it('fails when the index lists a tensor its shard does not hold', async () => {
    const { files } = checkpoint();
    const index = JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json']));
    index.weight_map['layer.1.weight'] = 'model-00002-of-00002.safetensors';
    files['model.safetensors.index.json'] = new TextEncoder().encode(JSON.stringify(index));
    await expect(openShardedSafetensors(bytesReader(files))).rejects.toThrow(
      'model-00002-of-00002.safetensors: tensor "layer.1.weight" listed in model.safetensors.index.json weight_map for this shard is not in it (the shard has 1 tensors)',
    );
  });

  it('fails when a shard is missing, naming the shard and a tensor in it', async () => {
    const { files } = checkpoint();
    delete files['model-00002-of-00002.safetensors'];
    await expect(openShardedSafetensors(bytesReader(files, 'ckpt'))).rejects.toThrow(
      'model.safetensors.index.json: weight_map puts 1 tensors ("lm_head.weight") in shard "model-00002-of-00002.safetensors", which cannot be opened: ckpt: no file "model-00002-of-00002.safetensors"',
    );
  });

  it('warns (or fails, if asked) about shard tensors the index does not map', async () => {
    const { files } = checkpoint();
    files['model-00002-of-00002.safetensors'] = serializeSafetensors({
      'lm_head.weight': f32(6, 7, 8),
      stray: f32(0),
    });
    const warn = vi.fn();
    const sharded = await openShardedSafetensors(bytesReader(files), undefined, { warn });
    expect(warn).toHaveBeenCalledWith(
      'model-00002-of-00002.safetensors: tensor "stray" is in this shard but not in model.safetensors.index.json weight_map: it will not be loaded',
    );
    expect(sharded.has('stray')).toBe(false);
    await expect(openShardedSafetensors(bytesReader(files), undefined, { unmapped: 'error' })).rejects.toThrow(
      'model-00002-of-00002.safetensors: tensor "stray" is in this shard but not in model.safetensors.index.json weight_map',
    );
  });

  it('opens shards only when needed when lazy', async () => {
    const { files } = checkpoint();
    const { reader, opened } = counting(bytesReader(files));
    const sharded = await openShardedSafetensors(reader, 'model.safetensors.index.json', { lazy: true });
    expect(opened).toEqual(['model.safetensors.index.json']);
    await sharded.readTensor('lm_head.weight');
    await sharded.readTensor('lm_head.weight');
    expect(opened).toEqual(['model.safetensors.index.json', 'model-00002-of-00002.safetensors']);
  });

  it('rejects a malformed index', async () => {
    const bad = (text: string) => openShardedSafetensors(bytesReader({ 'model.safetensors.index.json': new TextEncoder().encode(text) }));
    await expect(bad('{"weight_map": [1]}')).rejects.toThrow(
      'model.safetensors.index.json: "weight_map" must be an object {tensor name: shard file}, got an array [1]',
    );
    await expect(bad('{"weight_map": {"a": 3}}')).rejects.toThrow(
      'model.safetensors.index.json: weight_map entry for tensor "a" must be a shard file name, got number 3',
    );
    await expect(bad('{"weight_map": ')).rejects.toThrow('model.safetensors.index.json: the index is not valid JSON');
  });

  it('works over browser File objects', async () => {
    const { files } = checkpoint();
    const picked = Object.entries(files).map(([name, bytes]) => new File([bytes.slice()], name));
    const sharded = await openShardedSafetensors(filesReader(picked));
    expect((await sharded.readTensor('embed.weight')).data).toEqual(new Float32Array([1, 2, 3]));
    expect(() => filesReader([picked[0]!, picked[0]!])).toThrow(
      'selected files: two files are named "model.safetensors.index.json": pick one folder\'s files',
    );
  });

  it('closes every opened shard', async () => {
    const { files } = checkpoint();
    const closed: string[] = [];
    const base = bytesReader(files);
    const reader: FileOpener = {
      name: 'closing',
      async open(name) {
        const source: ByteSource = await base.open(name);
        return { ...source, read: source.read.bind(source), close: async () => void closed.push(name) };
      },
    };
    const sharded = await openShardedSafetensors(reader);
    await sharded.close();
    expect(closed.sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  });

  it('accepts only plain file names beside the index in weight_map', async () => {
    const bad = (file: unknown) =>
      openShardedSafetensors(
        bytesReader({ 'model.safetensors.index.json': new TextEncoder().encode(JSON.stringify({ weight_map: { w: file } })) }),
      );
    for (const file of ['../secret.safetensors', '/etc/passwd', 'sub/model.safetensors', 'a\\b', '..', 'x'.repeat(300)]) {
      const message = await bad(file).catch((e: Error) => e.message);
      expect(message).toMatch(
        /^model\.safetensors\.index\.json: weight_map entry for tensor "w" is ".*: expected the name of a file in the same folder as the index \(no path\)$/,
      );
      expect(String(message).length).toBeLessThan(300);
    }
    await expect(bad('')).rejects.toThrow('weight_map entry for tensor "w" must be a shard file name, got the string ""');
    await expect(bad(['a'])).rejects.toThrow('weight_map entry for tensor "w" must be a shard file name, got an array of 1 item');
  });

  it('rejects an index that nests absurdly, is not text or is huge, without quoting it', async () => {
    const open = (bytes: Uint8Array) => openShardedSafetensors(bytesReader({ 'model.safetensors.index.json': bytes }));
    const deep = new TextEncoder().encode(`{"metadata": ${'['.repeat(50_000)}${']'.repeat(50_000)}}`);
    await expect(open(deep)).rejects.toThrow('model.safetensors.index.json: the index nests arrays or objects more than 8 levels deep');
    await expect(open(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))).rejects.toThrow(
      'model.safetensors.index.json: the index is not UTF-8 text: it is not a JSON index',
    );
    const text = await open(new TextEncoder().encode('root:x:0:0:root:/root:/bin/bash')).catch((e: Error) => e.message);
    expect(text).toMatch(/^model\.safetensors\.index\.json: the index is not valid JSON/);
    expect(text).not.toContain('root');
    const huge: ByteSource = { name: 'model.safetensors.index.json', size: 2 ** 40, read: async () => new Uint8Array(0) };
    await expect(openShardedSafetensors({ name: 'big', open: async () => huge })).rejects.toThrow(
      'model.safetensors.index.json: the index is 1099511627776 bytes, more than the 67108864 an index JSON may have',
    );
  });

  it('names the missing shard and closes the shards it opened when one fails', async () => {
    const { files } = checkpoint();
    delete files['model-00002-of-00002.safetensors'];
    const open = new Set<string>();
    const base = bytesReader(files);
    const reader: FileOpener = {
      name: 'ckpt',
      async open(name) {
        const source = await base.open(name);
        open.add(name);
        return { ...source, read: source.read.bind(source), close: async () => void open.delete(name) };
      },
    };
    await expect(openShardedSafetensors(reader)).rejects.toThrow('in shard "model-00002-of-00002.safetensors", which cannot be opened');
    expect([...open]).toEqual([]);
  });
});
