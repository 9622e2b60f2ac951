import {
  type Backend,
  bytesPerElement,
  type DType,
  type FileOpener,
  keep,
  type LoadedTensor,
  openSafetensors,
  openShardedSafetensors,
  type RawArray,
  type SafetensorsFile,
  type ShardedSafetensors,
} from '@peft/core';
import { CausalLM } from './causal-lm.js';
import { type ModelConfig, parseConfig } from './config.js';
import { TORCH_BIN_FORMAT } from './weights/torch-bin-format.js';

/** One checkpoint's tensors, whatever the file format: names, shapes and lazy per-tensor reads. */
export interface WeightReader {
  /** What to call the checkpoint in errors: a file, or an index and its shards. */
  readonly label: string;
  names(): string[];
  has(name: string): boolean;
  /** Shape and the file holding the tensor. */
  info(name: string): Promise<{ shape: number[]; file: string }>;
  readTensor(name: string, opts: { dtype: DType }): Promise<LoadedTensor>;
  /**
   * Streams a tensor stored in `dtype` as-is through `staging`, piece by piece (element offset and
   * raw values); false when the stored dtype differs (then use readTensor).
   */
  stream?(name: string, dtype: DType, staging: Uint8Array, onChunk: (data: RawArray, elementOffset: number) => void): Promise<boolean>;
  close(): Promise<void>;
}

const NATIVE: Record<string, DType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', I32: 'int32' };

/** Streams a safetensors tensor whose stored dtype is already `dtype`. */
async function streamSafetensors(
  file: SafetensorsFile,
  name: string,
  dtype: DType,
  staging: Uint8Array,
  onChunk: (data: RawArray, elementOffset: number) => void,
): Promise<boolean> {
  if (NATIVE[file.info(name).dtype] !== dtype) return false;
  const width = bytesPerElement(dtype);
  await file.streamRaw(name, staging.subarray(0, staging.byteLength - (staging.byteLength % width)), (bytes, byteOffset) => {
    const aligned = bytes.byteOffset % width === 0 ? bytes : bytes.slice();
    const n = aligned.byteLength / width;
    const view =
      dtype === 'float32'
        ? new Float32Array(aligned.buffer, aligned.byteOffset, n)
        : dtype === 'int32'
          ? new Int32Array(aligned.buffer, aligned.byteOffset, n)
          : new Uint16Array(aligned.buffer, aligned.byteOffset, n);
    onChunk(view, byteOffset / width);
  });
  return true;
}

/** Opens a format-specific reader; formats register here in the order they are preferred. */
export interface WeightFormat {
  /** File names that identify the format, most specific first (an index before a single file). */
  files: string[];
  open(opener: FileOpener, file: string): Promise<WeightReader>;
}

function fromSafetensorsFile(file: SafetensorsFile, name: string): WeightReader {
  return {
    label: name,
    names: () => file.names(),
    has: (n) => file.has(n),
    info: async (n) => ({ shape: file.info(n).shape, file: name }),
    readTensor: (n, opts) => file.readTensor(n, opts),
    stream: (n, dtype, staging, onChunk) => streamSafetensors(file, n, dtype, staging, onChunk),
    close: () => file.close(),
  };
}

function fromSharded(sharded: ShardedSafetensors, index: string): WeightReader {
  return {
    label: `${index} and its ${sharded.shardFiles().length} shards`,
    names: () => sharded.names(),
    has: (n) => sharded.has(n),
    info: async (n) => {
      const info = await sharded.info(n);
      return { shape: info.shape, file: info.file };
    },
    readTensor: (n, opts) => sharded.readTensor(n, opts),
    stream: async (n, dtype, staging, onChunk) => streamSafetensors(await sharded.shard(sharded.shardOf(n)), n, dtype, staging, onChunk),
    close: () => sharded.close(),
  };
}

export const SAFETENSORS_FORMAT: WeightFormat = {
  files: ['model.safetensors.index.json', 'model.safetensors'],
  async open(opener, file) {
    if (file.endsWith('.index.json')) return fromSharded(await openShardedSafetensors(opener, file, { lazy: true }), file);
    return fromSafetensorsFile(await openSafetensors(await opener.open(file)), file);
  },
};

const formats: WeightFormat[] = [SAFETENSORS_FORMAT, TORCH_BIN_FORMAT];

/** Adds a checkpoint format after the built-in ones (pytorch_model.bin registers itself this way). */
export function registerWeightFormat(format: WeightFormat): void {
  formats.push(format);
}

async function exists(opener: FileOpener, file: string, listing: string[] | null): Promise<boolean> {
  if (listing) return listing.includes(file);
  try {
    const source = await opener.open(file);
    await source.close?.();
    return true;
  } catch {
    return false;
  }
}

/** Finds and opens the checkpoint in a model folder: safetensors (sharded or not) first, then the other formats. */
export async function openWeights(opener: FileOpener): Promise<WeightReader> {
  const listing = opener.list ? await opener.list() : null;
  for (const format of formats) {
    for (const file of format.files) if (await exists(opener, file, listing)) return format.open(opener, file);
  }
  throw new Error(`${opener.name}: no weights found: looked for ${formats.flatMap((f) => f.files).join(', ')}`);
}

const STAGING_BYTES = 4 << 20;

/** Tensors a checkpoint may hold that are not parameters (buffers of older transformers versions). */
const IGNORED = [/\.rotary_emb\.inv_freq$/, /\.attention\.bias$/, /\.attention\.masked_bias$/];

export interface LoadOptions {
  backend: Backend;
  /** Storage dtype of the weights. Default: config.json's torch_dtype when the backend stores it, else float32. */
  dtype?: DType;
}

export function chooseDtype(config: ModelConfig, backend: Backend, requested?: DType): DType {
  if (requested) {
    if (!backend.dtypes.includes(requested)) {
      throw new Error(`loadModel: backend "${backend.name}" does not store ${requested}: it stores ${backend.dtypes.join(', ')}`);
    }
    return requested;
  }
  const preferred = config.torchDtype ?? 'float32';
  return backend.dtypes.includes(preferred) ? preferred : 'float32';
}

async function readText(opener: FileOpener, file: string): Promise<string> {
  let source: Awaited<ReturnType<FileOpener['open']>>;
  try {
    source = await opener.open(file);
  } catch (error) {
    throw new Error(
      `${opener.name}: ${file} not found: a Hugging Face model folder has config.json beside its weights (${(error as Error).message})`,
    );
  }
  const bytes = await source.read(0, source.size);
  await source.close?.();
  return new TextDecoder().decode(bytes);
}

export async function readConfig(opener: FileOpener): Promise<ModelConfig> {
  const text = await readText(opener, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`${opener.name}/config.json does not parse as JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${opener.name}/config.json must hold a JSON object`);
  return parseConfig(raw as Record<string, unknown>, `${opener.name}/config.json`);
}

/**
 * Loads a Hugging Face model folder: config.json and the checkpoint, one tensor at a time straight
 * into the backend's memory (never a second full copy on the host). Every parameter the model
 * has must be in the checkpoint with its shape; tensors the model does not have are an error
 * (except non-parameter buffers older checkpoints carry). The parameters come back frozen
 * (`requiresGrad` false), so inference records nothing; adapters add what trains.
 */
export async function loadModelFrom(opener: FileOpener, opts: LoadOptions): Promise<CausalLM> {
  const config = await readConfig(opener);
  const dtype = chooseDtype(config, opts.backend, opts.dtype);
  const weights = await openWeights(opener);
  const model = keep(new CausalLM(config, { backend: opts.backend, dtype, init: 'zeros' }));
  // One reused buffer for reading: host memory beyond the backend's own stays at its size.
  const staging = new Uint8Array(STAGING_BYTES);
  try {
    const params = [...model.namedParameters()];
    const expected = new Set(params.map(([n]) => n));
    const tiedHead = config.tieWordEmbeddings ? `${model.headName}.weight` : null;
    const missing = params.map(([n]) => n).filter((n) => !weights.has(n));
    if (missing.length > 0) {
      throw new Error(
        `${opener.name}: ${weights.label} is missing ${missing.length} of the model's ${params.length} tensors: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      );
    }
    const extra = weights.names().filter((n) => !expected.has(n) && n !== tiedHead && !IGNORED.some((re) => re.test(n)));
    if (extra.length > 0) {
      throw new Error(
        `${opener.name}: ${weights.label} has ${extra.length} tensors that a ${config.modelType} model with this config.json does not: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}`,
      );
    }
    for (const [name, param] of params) {
      const info = await weights.info(name);
      if (info.shape.join() !== param.shape.join()) {
        throw new Error(
          `${opener.name}/${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}], config.json gives [${param.shape.join(', ')}]`,
        );
      }
      const buffer = param.buffer('loadModel');
      const streamed = await weights.stream?.(name, param.dtype, staging, (data, offset) => opts.backend.write(buffer, data, offset));
      if (!streamed) {
        const loaded = await weights.readTensor(name, { dtype: param.dtype });
        if (loaded.data.length > 0) opts.backend.write(buffer, loaded.data);
      }
      param.name = name;
    }
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    await weights.close();
  }
  // A pretrained base is frozen, as parameter-efficient tuning wants it: a plain forward pass
  // records nothing for autograd. Set requiresGrad on the parameters to train them all.
  model.freeze();
  return model;
}
