import { access, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadedTensor, ReadTensorOptions, TensorReader } from '../safetensors/reader.js';
import { openSafetensors, type SafetensorsFile } from '../safetensors/reader.js';
import type { ShardedOptions } from '../safetensors/sharded-reader.js';
import { openShardedSafetensors } from '../safetensors/sharded-reader.js';
import type { ShardPlan } from '../safetensors/shards.js';
import { DEFAULT_MAX_SHARD_SIZE, planShards } from '../safetensors/shards.js';
import type { LazyTensorsToWrite, LazyTensorToWrite, NamedLazyTensorToWrite } from '../safetensors/writer.js';
import { namedTensors, writeSafetensorsTo } from '../safetensors/writer.js';
import { makeDirectory, writeFileAtomic } from './atomic-write.js';
import { nodeDirReader } from './dir-reader.js';
import { fileSource } from './file-source.js';

/**
 * Writes one safetensors file atomically, streaming tensor by tensor (lazy `data` getters are
 * called one at a time). Resolves to the file size.
 */
export async function saveSafetensors(path: string, tensors: LazyTensorsToWrite, metadata?: Record<string, string>): Promise<number> {
  let size = 0;
  await writeFileAtomic(path, async (sink) => {
    size = await writeSafetensorsTo(sink, tensors, metadata, path);
  });
  return size;
}

export interface SaveShardedOptions {
  /** Largest shard in data bytes, or a size like "5GB" (decimal units, as transformers). Default "5GB". */
  maxShardBytes?: number | string;
  /** File name stem. Default "model". */
  prefix?: string;
  /** `__metadata__` of every shard (transformers writes {"format": "pt"}). */
  metadata?: Record<string, string>;
  /** Extra keys for the index's "metadata" besides total_size. */
  indexMetadata?: Record<string, unknown>;
  /**
   * Remove files of an earlier save with the same prefix that this one does not write: other
   * `<prefix>-NNNNN-of-NNNNN.safetensors` shards, the index when the model now fits one file, the
   * single file when it is now sharded (as transformers' save_pretrained does). Default true.
   */
  removeStale?: boolean;
}

/**
 * Saves tensors like transformers' `save_pretrained`: `<prefix>.safetensors` when they fit one
 * shard, otherwise `<prefix>-00001-of-0000N.safetensors` files plus `<prefix>.safetensors.index.json`.
 * Each file is written atomically; the index is written last, after every shard it names.
 */
export async function saveShardedSafetensors(
  dir: string,
  tensors: LazyTensorsToWrite,
  options: SaveShardedOptions = {},
): Promise<ShardPlan> {
  const list: NamedLazyTensorToWrite[] = namedTensors<LazyTensorToWrite>(tensors);
  const prefix = options.prefix ?? 'model';
  const plan = planShards(list, options.maxShardBytes ?? DEFAULT_MAX_SHARD_SIZE, {
    prefix,
    indexMetadata: options.indexMetadata,
  });
  await makeDirectory(dir, join(dir, plan.shards[0]?.fileName ?? `${prefix}.safetensors`));
  const byName = new Map(list.map((t) => [t.name, t]));
  for (const shard of plan.shards) {
    await saveSafetensors(
      join(dir, shard.fileName),
      shard.names.map((n) => byName.get(n)!),
      options.metadata,
    );
  }
  if (plan.sharded) await writeFileAtomic(join(dir, plan.indexFileName), plan.indexJson);
  if (options.removeStale ?? true) await removeStale(dir, prefix, plan);
  return plan;
}

async function removeStale(dir: string, prefix: string, plan: ShardPlan): Promise<void> {
  const keep = new Set(plan.shards.map((s) => s.fileName));
  if (plan.sharded) keep.add(plan.indexFileName);
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const ours = new RegExp(`^${escaped}(-\\d{5}-of-\\d{5})?\\.safetensors(\\.index\\.json)?$`);
  for (const file of await readdir(dir)) {
    if (ours.test(file) && !keep.has(file)) await rm(join(dir, file), { force: true });
  }
}

/** Opens one safetensors file on disk, reading only its header; close it when done. */
export async function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const source = await fileSource(path);
  try {
    return await openSafetensors(source);
  } catch (error) {
    await source.close?.();
    throw error;
  }
}

/**
 * Opens a Hugging Face model folder: `<prefix>.safetensors.index.json` with its shards when the
 * index exists, otherwise `<prefix>.safetensors`.
 */
export async function openSafetensorsDir(dir: string, options: ShardedOptions & { prefix?: string } = {}): Promise<TensorReader> {
  const prefix = options.prefix ?? 'model';
  const index = `${prefix}.safetensors.index.json`;
  const hasIndex = await access(join(dir, index)).then(
    () => true,
    () => false,
  );
  if (hasIndex) return openShardedSafetensors(nodeDirReader(dir), index, options);
  return openSafetensorsFile(join(dir, `${prefix}.safetensors`));
}

/** Reads a whole safetensors file into core tensors, keyed by name in file order. */
export async function loadSafetensors(
  path: string,
  options: ReadTensorOptions = {},
): Promise<{ metadata: Record<string, string>; tensors: Map<string, LoadedTensor> }> {
  const file = await openSafetensorsFile(path);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const name of file.names()) tensors.set(name, await file.readTensor(name, options));
    return { metadata: file.metadata, tensors };
  } finally {
    await file.close();
  }
}
