import type { ByteSource } from './byte-source.js';
import { blobSource, bytesSource } from './byte-source.js';
import type { SafetensorsTensorInfo } from './header.js';
import { describeJsonValue, parseUntrustedJson, quoteName } from './json.js';
import type { LoadedTensor, ReadTensorOptions, SafetensorsFile, TensorReader } from './reader.js';
import { openSafetensors } from './reader.js';

/** Opens files by name: a directory on disk (`nodeDirReader`), a browser FileList, files in memory. */
export interface FileOpener {
  /** Shown in error messages: a directory path, "FileList", ... */
  readonly name: string;
  open(fileName: string): Promise<ByteSource>;
  list?(): Promise<string[]>;
}

function fileList(names: Iterable<string>): string {
  const all = [...names];
  return all.length > 10 ? `${all.slice(0, 10).join(', ')}, … (${all.length} files)` : all.join(', ');
}

/** A reader over files held in memory, keyed by file name. */
export function bytesReader(files: Record<string, Uint8Array> | Map<string, Uint8Array>, name = 'memory'): FileOpener {
  const map = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    name,
    async open(fileName) {
      const bytes = map.get(fileName);
      if (!bytes) throw new Error(`${name}: no file ${quoteName(fileName)}; files are ${fileList(map.keys())}`);
      return bytesSource(bytes, fileName);
    },
    async list() {
      return [...map.keys()];
    },
  };
}

/**
 * A reader over browser files (an `<input type="file" multiple>` FileList, a drop, or `File[]`),
 * keyed by base name: pick a model folder's files and open its index by name.
 */
export function filesReader(files: Iterable<File> | ArrayLike<File>, name = 'selected files'): FileOpener {
  const map = new Map<string, File>();
  for (const file of Array.from(files as ArrayLike<File>)) {
    if (map.has(file.name)) throw new Error(`${name}: two files are named ${JSON.stringify(file.name)}: pick one folder's files`);
    map.set(file.name, file);
  }
  return {
    name,
    async open(fileName) {
      const file = map.get(fileName);
      if (!file) throw new Error(`${name}: no file ${quoteName(fileName)}; files are ${fileList(map.keys())}`);
      return blobSource(file, fileName);
    },
    async list() {
      return [...map.keys()];
    },
  };
}

export interface ShardedOptions {
  /**
   * Open shards when first needed instead of all at once. Each shard is still validated against
   * the index when it opens; eager opening (the default) reports every problem up front.
   */
  lazy?: boolean;
  /** A tensor present in a shard but not mapped to it in weight_map: 'warn' (default), 'error' or 'ignore'. */
  unmapped?: 'warn' | 'error' | 'ignore';
  /** Receives warnings; defaults to console.warn. */
  warn?: (message: string) => void;
}

/** The tensor's info plus the shard file holding it. */
export interface ShardedTensorInfo extends SafetensorsTensorInfo {
  file: string;
}

/** One file of a sharded checkpoint, whatever its format (safetensors, pytorch_model.bin, …). */
export interface ShardFile<Info, Loaded, ReadOptions> {
  names(): string[];
  has(name: string): boolean;
  info(name: string): Info;
  readRaw(name: string): Promise<Uint8Array>;
  readTensor(name: string, options?: ReadOptions): Promise<Loaded>;
  close(): Promise<void>;
}

/** The parsed index JSON of a sharded checkpoint. */
export interface ShardIndexData {
  metadata: Record<string, unknown>;
  weightMap: Map<string, string>;
}

/**
 * A checkpoint split over several files and described by an index JSON ({"metadata": {...},
 * "weight_map": {tensor: shard}}), for any shard format: shards open once (lazily or all at
 * once), each is checked against the index, and tensors are read from the shard the index names.
 */
export class ShardedCheckpoint<Info, Loaded, ReadOptions, F extends ShardFile<Info, Loaded, ReadOptions>> {
  readonly reader: FileOpener;
  readonly indexFileName: string;
  /** The index's "metadata" object (transformers writes {"total_size": N}). */
  readonly metadata: Record<string, unknown>;
  private readonly weightMap: Map<string, string>;
  /** Tensor names per shard file, in index order. */
  private readonly byShard = new Map<string, string[]>();
  private readonly opened = new Map<string, Promise<F>>();
  private readonly options: ShardedOptions;
  private readonly openFile: (source: ByteSource) => Promise<F>;

  constructor(
    reader: FileOpener,
    indexFileName: string,
    index: ShardIndexData,
    options: ShardedOptions,
    openFile: (source: ByteSource) => Promise<F>,
  ) {
    this.reader = reader;
    this.indexFileName = indexFileName;
    this.metadata = index.metadata;
    this.weightMap = index.weightMap;
    for (const [name, file] of index.weightMap) {
      const names = this.byShard.get(file);
      if (names) names.push(name);
      else this.byShard.set(file, [name]);
    }
    this.options = options;
    this.openFile = openFile;
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** Shard file names in the order the index first mentions them. */
  shardFiles(): string[] {
    return [...this.byShard.keys()];
  }

  /** The shard file holding a tensor (from the index alone, without opening anything). */
  shardOf(name: string): string {
    const file = this.weightMap.get(name);
    if (file === undefined) {
      throw new Error(
        `${this.indexFileName}: no tensor ${quoteName(name)} in weight_map (${this.weightMap.size} tensors over ${this.shardFiles().length} shards)`,
      );
    }
    return file;
  }

  /** Opens (once) and validates one shard against the index. */
  shard(fileName: string): Promise<F> {
    let promise = this.opened.get(fileName);
    if (!promise) {
      promise = this.openShard(fileName);
      this.opened.set(fileName, promise);
    }
    return promise;
  }

  async info(name: string): Promise<Info & { file: string }> {
    const file = this.shardOf(name);
    return { ...(await this.shard(file)).info(name), file };
  }

  async readRaw(name: string): Promise<Uint8Array> {
    return (await this.shard(this.shardOf(name))).readRaw(name);
  }

  async readTensor(name: string, options?: ReadOptions): Promise<Loaded> {
    return (await this.shard(this.shardOf(name))).readTensor(name, options);
  }

  /** Opens and validates every shard not opened yet, one at a time (an index may name thousands). */
  async validate(): Promise<void> {
    for (const f of this.shardFiles()) await this.shard(f);
  }

  async close(): Promise<void> {
    const shards = [...this.opened.values()];
    this.opened.clear();
    const results = await Promise.allSettled(shards);
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
  }

  private async openShard(fileName: string): Promise<F> {
    const expected = this.byShard.get(fileName) ?? [];
    let source: ByteSource;
    try {
      source = await this.reader.open(fileName);
    } catch (error) {
      throw new Error(
        `${this.indexFileName}: weight_map puts ${expected.length} tensors (${quoteName(expected[0] ?? '')}${expected.length > 1 ? ', ...' : ''}) in shard ${quoteName(fileName)}, which cannot be opened: ${(error as Error).message}`,
      );
    }
    let file: F;
    try {
      file = await this.openFile(source);
      const missing = expected.filter((n) => !file.has(n));
      if (missing.length > 0) {
        throw new Error(
          `${fileName}: tensor ${quoteName(missing[0] ?? '')}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''} listed in ${this.indexFileName} weight_map for this shard is not in it (the shard has ${file.names().length} tensors)`,
        );
      }
      const policy = this.options.unmapped ?? 'warn';
      const extra = file.names().filter((n) => this.weightMap.get(n) !== fileName);
      if (extra.length > 0 && policy !== 'ignore') {
        const first = extra[0]!;
        const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : '';
        const mapped = this.weightMap.get(first);
        const message = mapped
          ? `${fileName}: tensor ${quoteName(first)}${more} is in this shard but ${this.indexFileName} maps it to ${quoteName(mapped)}: it will be read from there`
          : `${fileName}: tensor ${quoteName(first)}${more} is in this shard but not in ${this.indexFileName} weight_map: it will not be loaded`;
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

/** A checkpoint split over several safetensors files and described by an index JSON. */
export class ShardedSafetensors
  extends ShardedCheckpoint<SafetensorsTensorInfo, LoadedTensor, ReadTensorOptions, SafetensorsFile>
  implements TensorReader
{
  constructor(reader: FileOpener, indexFileName: string, index: ShardIndexData, options: ShardedOptions) {
    super(reader, indexFileName, index, options, openSafetensors);
  }
}

/**
 * Opens a sharded checkpoint of any format from its index JSON; by default every shard is opened
 * and checked now. `make` builds the reader (ShardedSafetensors, or another format's subclass).
 */
export async function openShardedCheckpoint<S extends { validate(): Promise<void>; close(): Promise<void> }>(
  reader: FileOpener,
  indexFileName: string,
  options: ShardedOptions,
  make: (index: ShardIndexData) => S,
): Promise<S> {
  const sharded = make(parseIndex(await readText(reader, indexFileName), indexFileName));
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
 * Opens a sharded checkpoint from its index JSON ({"metadata": {...}, "weight_map": {tensor: shard}}).
 * Reads only the index and the shards' headers; by default every shard is opened and checked now.
 */
export async function openShardedSafetensors(
  reader: FileOpener,
  indexFileName = 'model.safetensors.index.json',
  options: ShardedOptions = {},
): Promise<ShardedSafetensors> {
  return openShardedCheckpoint(reader, indexFileName, options, (index) => new ShardedSafetensors(reader, indexFileName, index, options));
}

/** Longest index JSON read: transformers' index of a checkpoint with 100,000 tensors is about 10 MB. */
const MAX_INDEX_BYTES = 64 << 20;

async function readText(reader: FileOpener, fileName: string): Promise<string> {
  const source = await reader.open(fileName);
  try {
    if (source.size > MAX_INDEX_BYTES) {
      throw new Error(`${fileName}: the index is ${source.size} bytes, more than the ${MAX_INDEX_BYTES} an index JSON may have`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(await source.read(0, source.size));
    } catch (error) {
      if (error instanceof TypeError) throw new Error(`${fileName}: the index is not UTF-8 text: it is not a JSON index`);
      throw error;
    }
  } finally {
    await source.close?.();
  }
}

/** A shard's name in weight_map must be a plain file name beside the index. */
function checkShardFileName(indexFile: string, tensor: string, file: unknown): string {
  const where = `${indexFile}: weight_map entry for tensor ${quoteName(tensor)}`;
  if (typeof file !== 'string' || file === '')
    throw new Error(`${where} must be a shard file name, got ${describeJsonValue(file, { quoteStrings: false })}`);
  if (file.length > 255 || /[/\\\0]/.test(file) || file === '.' || file === '..') {
    throw new Error(`${where} is ${quoteName(file, 60)}: expected the name of a file in the same folder as the index (no path)`);
  }
  return file;
}

function parseIndex(text: string, fileName: string): { metadata: Record<string, unknown>; weightMap: Map<string, string> } {
  const json = parseUntrustedJson(text, fileName, { maxDepth: 8, what: 'the index' });
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(json))
    throw new Error(`${fileName}: must be a JSON object with "weight_map", got ${describeJsonValue(json, { quoteStrings: false })}`);
  const { metadata = {}, weight_map: weightMap } = json;
  if (!isObject(metadata))
    throw new Error(`${fileName}: "metadata" must be an object, got ${describeJsonValue(metadata, { quoteStrings: false })}`);
  if (!isObject(weightMap)) {
    throw new Error(
      `${fileName}: "weight_map" must be an object {tensor name: shard file}, got ${describeJsonValue(weightMap, { quoteStrings: false })}`,
    );
  }
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) map.set(name, checkShardFileName(fileName, name, file));
  return { metadata, weightMap: map };
}
