import {
  type Backend,
  bytesPerElement,
  type DType,
  type FileOpener,
  keep,
  type LoadedTensor,
  openSafetensors,
  openShardedSafetensors,
  parseUntrustedJson,
  type RawArray,
  type SafetensorsFile,
  type ShardedSafetensors,
  shortValue,
} from '@peft/core';
import { CausalLM, causalLMParameterShapes } from './causal-lm.js';
import { type ModelConfig, parseConfig } from './config.js';
import { outputHeadName } from './lora-count.js';
import { TORCH_BIN_FORMAT } from './weights/torch-bin-format.js';

/** One checkpoint's tensors, whatever the file format: names, shapes and lazy per-tensor reads. */
export interface WeightReader {
  /** What to call the checkpoint in errors: a file, or an index and its shards. */
  readonly label: string;
  names(): string[];
  has(name: string): boolean;
  /** Shape and the file holding the tensor, and its stored dtype where the format says (safetensors: F32, BF16, …). */
  info(name: string): Promise<{ shape: number[]; file: string; dtype?: string }>;
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
    info: async (n) => {
      const info = file.info(n);
      return { shape: info.shape, file: name, dtype: info.dtype };
    },
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
      return { shape: info.shape, file: info.file, dtype: info.dtype };
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
    // openSafetensors closes the source when it refuses the file.
    return fromSafetensorsFile(await openSafetensors(await opener.open(file)), file);
  },
};

/** The checkpoint formats a model folder may hold, in the order they are looked for. */
const formats: readonly WeightFormat[] = [SAFETENSORS_FORMAT, TORCH_BIN_FORMAT];

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

/** Longest config.json read (real ones are a few kilobytes). */
const MAX_CONFIG_BYTES = 16 << 20;
/** Deepest nesting read from config.json (multimodal configs nest a text_config or two). */
const MAX_CONFIG_DEPTH = 32;

async function readText(opener: FileOpener, file: string, where: string): Promise<string> {
  let source: Awaited<ReturnType<FileOpener['open']>>;
  try {
    source = await opener.open(file);
  } catch (error) {
    throw new Error(
      `${opener.name}: ${file} not found: a Hugging Face model folder has config.json beside its weights (${(error as Error).message})`,
    );
  }
  try {
    if (source.size > MAX_CONFIG_BYTES) {
      throw new Error(
        `${where} is ${source.size} bytes, more than the ${MAX_CONFIG_BYTES} a config.json may have: it is not a model config`,
      );
    }
    const bytes = await source.read(0, source.size);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new Error(`${where} is not UTF-8 text: it is not a JSON model config`);
    }
  } finally {
    await source.close?.();
  }
}

export async function readConfig(opener: FileOpener): Promise<ModelConfig> {
  const where = `${opener.name}/config.json`;
  const text = await readText(opener, 'config.json', where);
  const raw = parseUntrustedJson(text, where, { maxDepth: MAX_CONFIG_DEPTH, maxLength: MAX_CONFIG_BYTES, what: 'the text' });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const got = raw === null ? 'null' : Array.isArray(raw) ? 'an array' : `a ${typeof raw}`;
    throw new Error(`${where} must hold a JSON object of model settings ({"model_type": ..., "hidden_size": ...}), got ${got}`);
  }
  return parseConfig(raw as Record<string, unknown>, where);
}

/** Stored dtypes a weight may have: floating point, converted to the storage dtype when read. */
export const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ']);

/**
 * Checks a checkpoint's tensor names, shapes and dtypes (from its headers only) against the
 * parameters `config` gives, so that a checkpoint that does not fit, or a config.json that does
 * not fit its checkpoint, is refused before any of the model's memory is allocated.
 */
export async function checkCheckpoint(
  where: string,
  config: ModelConfig,
  weights: WeightReader,
  shapes: ReadonlyArray<readonly [string, readonly number[]]> = causalLMParameterShapes(config),
  /** Tensors the checkpoint may hold beyond `shapes` (a classifier's score head, an LM head not read). */
  allowExtra: (name: string) => boolean = () => false,
): Promise<void> {
  const expected = new Set(shapes.map(([n]) => n));
  const tiedHead = config.tieWordEmbeddings ? `${outputHeadName(config)}.weight` : null;
  const missing = shapes.map(([n]) => n).filter((n) => !weights.has(n));
  if (missing.length > 0) {
    throw new Error(
      `${where}: ${weights.label} is missing ${missing.length} of the model's ${shapes.length} tensors: ${list(missing)} (a ${config.modelType} model with this config.json, num_hidden_layers ${config.numLayers}, has them)`,
    );
  }
  const extra = weights.names().filter((n) => !expected.has(n) && n !== tiedHead && !allowExtra(n) && !IGNORED.some((re) => re.test(n)));
  if (extra.length > 0) {
    throw new Error(
      `${where}: ${weights.label} has ${extra.length} tensors that a ${config.modelType} model with this config.json does not: ${list(extra)}`,
    );
  }
  for (const [name, shape] of shapes) {
    const info = await weights.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${where}/${info.file}: tensor "${short(name)}" has shape [${info.shape.slice(0, 8).join(', ')}], config.json gives [${shape.join(', ')}]`,
      );
    }
    if (info.dtype !== undefined && !FLOAT_DTYPES.has(info.dtype)) {
      throw new Error(
        `${where}/${info.file}: tensor "${short(name)}" is stored as ${info.dtype}: model weights must be floating point (${[...FLOAT_DTYPES].join(', ')})`,
      );
    }
  }
}

/** A tensor name for a message, cut short when a file gives an absurd one. */
const short = (name: string) => shortValue(name, { as: 'text', max: 120, count: true });

function list(names: string[]): string {
  return `${names.slice(0, 5).map(short).join(', ')}${names.length > 5 ? ', …' : ''}`;
}

/** Builds the model for loading, translating an allocation failure into an error that says what was asked for. */
function allocate(
  where: string,
  config: ModelConfig,
  backend: Backend,
  dtype: DType,
  shapes: ReadonlyArray<readonly [string, readonly number[]]>,
): CausalLM {
  try {
    return keep(new CausalLM(config, { backend, dtype, init: 'zeros' }));
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const count = shapes.reduce((sum, [, s]) => sum + s.reduce((a, b) => a * b, 1), 0);
    throw new Error(
      `${where}: could not allocate the ${config.modelType} model of config.json (${count} parameters as ${dtype}, ${count * bytesPerElement(dtype)} bytes) on backend "${backend.name}": ${error.message}`,
    );
  }
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
  let model: CausalLM | undefined;
  try {
    // Names, shapes and dtypes from the checkpoint's headers first: nothing is allocated for a
    // checkpoint that does not fit config.json.
    const shapes = causalLMParameterShapes(config);
    await checkCheckpoint(opener.name, config, weights, shapes);
    model = allocate(opener.name, config, opts.backend, dtype, shapes);
    // One reused buffer for reading: host memory beyond the backend's own stays at its size.
    const staging = new Uint8Array(STAGING_BYTES);
    for (const [name, param] of model.namedParameters()) {
      const buffer = param.buffer('loadModel');
      const streamed = await weights.stream?.(name, param.dtype, staging, (data, offset) => opts.backend.write(buffer, data, offset));
      if (!streamed) {
        const loaded = await weights.readTensor(name, { dtype: param.dtype });
        if (loaded.data.length > 0) opts.backend.write(buffer, loaded.data);
      }
      param.name = name;
    }
  } catch (error) {
    model?.dispose();
    throw error;
  } finally {
    await weights.close();
  }
  // A pretrained base is frozen, as parameter-efficient tuning wants it: a plain forward pass
  // records nothing for autograd. Set requiresGrad on the parameters to train them all.
  model.freeze();
  return model;
}
