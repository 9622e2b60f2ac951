/**
 * Sharded PyTorch checkpoints: `pytorch_model.bin.index.json` ({"metadata": {...}, "weight_map":
 * {tensor: "pytorch_model-00001-of-00002.bin"}}) over several torch.save files. Mirrors
 * `ShardedSafetensors` of `@peft/core`: shards open once, are checked against the index, and
 * tensors are read from the shard the index names.
 */
import type { TorchBinLoadedTensor, TorchBinReader, TorchBinReadOptions, TorchBinSource, TorchBinTensorInfo } from './torch-bin.js';
import { openTorchBin, type TorchBinFile } from './torch-bin.js';

/** Opens files by name; structurally the same as `FileReader` of `@peft/core` (`nodeDirReader`, `filesReader`, `bytesReader`). */
export interface TorchBinFileReader {
  /** Shown in error messages: a directory path, "FileList", ... */
  readonly name: string;
  open(fileName: string): Promise<TorchBinSource>;
  list?(): Promise<string[]>;
}

export const TORCH_BIN_FILE = 'pytorch_model.bin';
export const TORCH_BIN_INDEX_FILE = 'pytorch_model.bin.index.json';

export interface ShardedTorchBinOptions {
  /** Open shards when first needed instead of all at once (each is still checked against the index when it opens). */
  lazy?: boolean;
  /** A tensor present in a shard but not mapped to it in weight_map: 'warn' (default), 'error' or 'ignore'. */
  unmapped?: 'warn' | 'error' | 'ignore';
  /** Receives warnings; defaults to console.warn. */
  warn?: (message: string) => void;
}

/** A tensor's info plus the shard file holding it. */
export interface ShardedTorchBinTensorInfo extends TorchBinTensorInfo {
  file: string;
}

/** A checkpoint split over several torch.save files and described by an index JSON. */
export class ShardedTorchBin implements TorchBinReader {
  readonly reader: TorchBinFileReader;
  readonly indexFileName: string;
  /** The index's "metadata" object (transformers writes {"total_size": N}). */
  readonly metadata: Record<string, unknown>;
  private readonly weightMap: Map<string, string>;
  private readonly opened = new Map<string, Promise<TorchBinFile>>();
  private readonly options: ShardedTorchBinOptions;

  constructor(
    reader: TorchBinFileReader,
    indexFileName: string,
    index: { metadata: Record<string, unknown>; weightMap: Map<string, string> },
    options: ShardedTorchBinOptions,
  ) {
    this.reader = reader;
    this.indexFileName = indexFileName;
    this.metadata = index.metadata;
    this.weightMap = index.weightMap;
    this.options = options;
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** Shard file names in the order the index first mentions them. */
  shardFiles(): string[] {
    return [...new Set(this.weightMap.values())];
  }

  /** The shard file holding a tensor (from the index alone, without opening anything). */
  shardOf(name: string): string {
    const file = this.weightMap.get(name);
    if (file === undefined) {
      throw new Error(
        `${this.indexFileName}: no tensor ${JSON.stringify(name)} in weight_map (${this.weightMap.size} tensors over ${this.shardFiles().length} shards)`,
      );
    }
    return file;
  }

  /** Opens (once) and checks one shard against the index. */
  shard(fileName: string): Promise<TorchBinFile> {
    let promise = this.opened.get(fileName);
    if (!promise) {
      promise = this.openShard(fileName);
      this.opened.set(fileName, promise);
    }
    return promise;
  }

  async info(name: string): Promise<ShardedTorchBinTensorInfo> {
    const file = this.shardOf(name);
    return { ...(await this.shard(file)).info(name), file };
  }

  async readRaw(name: string): Promise<Uint8Array> {
    return (await this.shard(this.shardOf(name))).readRaw(name);
  }

  async readTensor(name: string, options?: TorchBinReadOptions): Promise<TorchBinLoadedTensor> {
    return (await this.shard(this.shardOf(name))).readTensor(name, options);
  }

  /** Opens and checks every shard not opened yet. */
  async validate(): Promise<void> {
    await Promise.all(this.shardFiles().map((f) => this.shard(f)));
  }

  async close(): Promise<void> {
    const shards = [...this.opened.values()];
    this.opened.clear();
    const results = await Promise.allSettled(shards);
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
  }

  private async openShard(fileName: string): Promise<TorchBinFile> {
    const expected = [...this.weightMap].filter(([, f]) => f === fileName).map(([n]) => n);
    let source: TorchBinSource;
    try {
      source = await this.reader.open(fileName);
    } catch (error) {
      throw new Error(
        `${this.indexFileName}: weight_map puts ${expected.length} tensors (${JSON.stringify(expected[0])}${expected.length > 1 ? ', ...' : ''}) in shard ${JSON.stringify(fileName)}, which cannot be opened: ${(error as Error).message}`,
      );
    }
    let file: TorchBinFile;
    try {
      file = await openTorchBin(source);
      const missing = expected.filter((n) => !file.has(n));
      if (missing.length > 0) {
        throw new Error(
          `${fileName}: tensor ${JSON.stringify(missing[0])}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''} listed in ${this.indexFileName} weight_map for this shard is not in it (the shard has ${file.names().length} tensors)`,
        );
      }
      const policy = this.options.unmapped ?? 'warn';
      const extra = file.names().filter((n) => this.weightMap.get(n) !== fileName);
      if (extra.length > 0 && policy !== 'ignore') {
        const first = extra[0]!;
        const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : '';
        const mapped = this.weightMap.get(first);
        const message = mapped
          ? `${fileName}: tensor ${JSON.stringify(first)}${more} is in this shard but ${this.indexFileName} maps it to ${JSON.stringify(mapped)}: it will be read from there`
          : `${fileName}: tensor ${JSON.stringify(first)}${more} is in this shard but not in ${this.indexFileName} weight_map: it will not be loaded`;
        if (policy === 'error') throw new Error(message);
        (this.options.warn ?? console.warn)(message);
      }
    } catch (error) {
      await source.close?.();
      throw error;
    }
    return file;
  }
}

/**
 * Opens a sharded checkpoint from its index JSON. Reads only the index and each shard's zip
 * directory and data.pkl; by default every shard is opened and checked now.
 */
export async function openShardedTorchBin(
  reader: TorchBinFileReader,
  indexFileName = TORCH_BIN_INDEX_FILE,
  options: ShardedTorchBinOptions = {},
): Promise<ShardedTorchBin> {
  const index = parseIndex(await readText(reader, indexFileName), indexFileName);
  const sharded = new ShardedTorchBin(reader, indexFileName, index, options);
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

async function readText(reader: TorchBinFileReader, fileName: string): Promise<string> {
  const source = await reader.open(fileName);
  try {
    return new TextDecoder().decode(await source.read(0, source.size));
  } finally {
    await source.close?.();
  }
}

function parseIndex(text: string, fileName: string): { metadata: Record<string, unknown>; weightMap: Map<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${fileName}: not valid JSON (${(error as Error).message})`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(json)) throw new Error(`${fileName}: must be a JSON object with "weight_map", got ${JSON.stringify(json)?.slice(0, 60)}`);
  const { metadata = {}, weight_map: weightMap } = json;
  if (!isObject(metadata)) throw new Error(`${fileName}: "metadata" must be an object, got ${JSON.stringify(metadata)}`);
  if (!isObject(weightMap)) {
    throw new Error(
      `${fileName}: "weight_map" must be an object {tensor name: shard file}, got ${JSON.stringify(weightMap)?.slice(0, 60)}`,
    );
  }
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '') {
      throw new Error(
        `${fileName}: weight_map entry for tensor ${JSON.stringify(name)} must be a shard file name, got ${JSON.stringify(file)}`,
      );
    }
    map.set(name, file);
  }
  return { metadata, weightMap: map };
}
