/**
 * Sharded PyTorch checkpoints: `pytorch_model.bin.index.json` ({"metadata": {...}, "weight_map":
 * {tensor: "pytorch_model-00001-of-00002.bin"}}) over several torch.save files, read by core's
 * format-independent ShardedCheckpoint with torch.save files as shards.
 */
import { type FileOpener, openShardedCheckpoint, ShardedCheckpoint, type ShardedOptions, type ShardIndexData } from '@peft/core';
import type { TorchBinLoadedTensor, TorchBinReader, TorchBinReadOptions, TorchBinSource, TorchBinTensorInfo } from './torch-bin.js';
import { openTorchBin, type TorchBinFile } from './torch-bin.js';

/** Opens files by name: core's FileOpener (`nodeDirReader`, `filesReader`, `bytesReader`). */
export type TorchBinFileReader = FileOpener;

export const TORCH_BIN_FILE = 'pytorch_model.bin';
export const TORCH_BIN_INDEX_FILE = 'pytorch_model.bin.index.json';

/** Open lazily, and what to do with tensors a shard holds but the index does not map there (core's ShardedOptions). */
export type ShardedTorchBinOptions = ShardedOptions;

/** A tensor's info plus the shard file holding it. */
export interface ShardedTorchBinTensorInfo extends TorchBinTensorInfo {
  file: string;
}

/** A checkpoint split over several torch.save files and described by an index JSON (core's ShardedCheckpoint). */
export class ShardedTorchBin
  extends ShardedCheckpoint<TorchBinTensorInfo, TorchBinLoadedTensor, TorchBinReadOptions, TorchBinFile>
  implements TorchBinReader
{
  constructor(reader: TorchBinFileReader, indexFileName: string, index: ShardIndexData, options: ShardedTorchBinOptions) {
    super(reader, indexFileName, index, options, openTorchBin);
  }
}

/**
 * Opens a sharded checkpoint from its index JSON (read and checked by core's shared index reader:
 * bounded size and nesting, shard names beside the index, errors that never quote the text).
 * Reads only the index and each shard's zip directory and data.pkl; by default every shard is
 * opened and checked now.
 */
export function openShardedTorchBin(
  reader: TorchBinFileReader,
  indexFileName = TORCH_BIN_INDEX_FILE,
  options: ShardedTorchBinOptions = {},
): Promise<ShardedTorchBin> {
  return openShardedCheckpoint(reader, indexFileName, options, (index) => new ShardedTorchBin(reader, indexFileName, index, options));
}

/**
 * Opens the PyTorch weights of a model folder: `pytorch_model.bin.index.json` and its shards when
 * the folder has the index, else `pytorch_model.bin`. The reader must be able to `list()` files,
 * or the index is tried first and the single file second.
 */
export async function openTorchBinCheckpoint(reader: TorchBinFileReader, options: ShardedTorchBinOptions = {}): Promise<TorchBinReader> {
  const files = reader.list ? await reader.list() : undefined;
  if (files) {
    if (files.includes(TORCH_BIN_INDEX_FILE)) return openShardedTorchBin(reader, TORCH_BIN_INDEX_FILE, options);
    if (files.includes(TORCH_BIN_FILE)) return openTorchBin(await reader.open(TORCH_BIN_FILE));
    throw new Error(
      `${reader.name}: neither ${TORCH_BIN_INDEX_FILE} nor ${TORCH_BIN_FILE} is here (files: ${files.slice(0, 8).join(', ')}${files.length > 8 ? ', ...' : ''})`,
    );
  }
  let index: TorchBinSource | undefined;
  try {
    index = await reader.open(TORCH_BIN_INDEX_FILE);
  } catch {
    return openTorchBin(await reader.open(TORCH_BIN_FILE));
  }
  await index.close?.();
  return openShardedTorchBin(reader, TORCH_BIN_INDEX_FILE, options);
}
