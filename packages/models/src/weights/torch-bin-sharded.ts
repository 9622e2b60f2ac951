/**
 * Sharded PyTorch checkpoints: `pytorch_model.bin.index.json` ({"metadata": {...}, "weight_map":
 * {tensor: "pytorch_model-00001-of-00002.bin"}}) over several torch.save files, read by core's
 * format-independent ShardedCheckpoint with torch.save files as shards.
 */
import { type FileOpener, ShardedCheckpoint, type ShardedOptions, type ShardIndexData } from '@peft/core';
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

/** Largest index JSON read: real ones are tens to hundreds of kilobytes. */
export const MAX_INDEX_BYTES = 64 * 2 ** 20;

/**
 * Opens a sharded checkpoint from its index JSON. Reads only the index and each shard's zip
 * directory and data.pkl; by default every shard is opened and checked now.
 */
export async function openShardedTorchBin(
  reader: TorchBinFileReader,
  indexFileName = TORCH_BIN_INDEX_FILE,
  options: ShardedTorchBinOptions = {},
): Promise<ShardedTorchBin> {
  const sharded = new ShardedTorchBin(reader, indexFileName, await readShardIndex(reader, indexFileName), options);
  if (!options.lazy) {
    try {
      await sharded.validate();
    } catch (error) {
      await sharded.close();
      throw error;
    }
  }
  return sharded;
}

/**
 * Reads and checks `pytorch_model.bin.index.json`. Errors name the file and the field and describe
 * wrong values by their type only: the file may be a link to anything, and its text is never quoted.
 */
export async function readShardIndex(reader: TorchBinFileReader, fileName: string): Promise<ShardIndexData> {
  const source = await reader.open(fileName);
  let bytes: Uint8Array;
  try {
    if (source.size > MAX_INDEX_BYTES) {
      throw new Error(
        `${fileName}: ${source.size} bytes is too large for a shard index (at most ${MAX_INDEX_BYTES}): it is not an index JSON`,
      );
    }
    bytes = await source.read(0, source.size);
  } finally {
    await source.close?.();
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${fileName}: is not UTF-8 text, so not an index JSON`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // The engine's message quotes the text: keep only where it stopped.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new Error(`${fileName}: not valid JSON${position ? ` (at character ${position})` : ''}`);
  }
  if (!isObject(json)) throw new Error(`${fileName}: must be a JSON object with "weight_map", got ${typeOf(json)}`);
  const { metadata = {}, weight_map: weightMap } = json;
  if (!isObject(metadata)) throw new Error(`${fileName}: "metadata" must be an object, got ${typeOf(metadata)}`);
  if (!isObject(weightMap))
    throw new Error(`${fileName}: "weight_map" must be an object {tensor name: shard file}, got ${typeOf(weightMap)}`);
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    const where = `${fileName}: weight_map entry for tensor ${clip(name)}`;
    if (typeof file !== 'string' || file === '') throw new Error(`${where} must be a shard file name, got ${typeOf(file)}`);
    if (!isPlainShardName(file)) {
      throw new Error(`${where} names shard ${clip(file)}, which is not a file name inside the model folder`);
    }
    map.set(name, file);
  }
  return { metadata, weightMap: map };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a JSON value is, without its content. */
function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v === '' ? 'an empty string' : 'a string';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** A name for error messages: quoted, and cut short if long. */
function clip(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}...` : s);
}

/** A relative path that stays inside the folder: no absolute paths, drive letters, `..` parts or NUL. */
function isPlainShardName(file: string): boolean {
  if (file.includes('\0') || /^[/\\]/.test(file) || /^[A-Za-z]:/.test(file)) return false;
  return file.split(/[/\\]/).every((part) => part !== '..' && part !== '');
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
