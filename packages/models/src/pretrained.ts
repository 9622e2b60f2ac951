import type { FileOpener, Tensor } from '@peft/core';
import type { CausalLM } from './causal-lm.js';
import { FLOAT_DTYPES, type LoadOptions, loadModelFrom, type WeightReader } from './load.js';

/**
 * transformers' `AutoModelForCausalLM.from_pretrained` over any file source: the causal LM of a
 * model folder (see `loadModelFrom`), its `nameOrPath` set to the source's name so that an adapter
 * trained on it records where its base model is.
 */
export async function causalLMFromPretrained(opener: FileOpener, opts: LoadOptions): Promise<CausalLM> {
  const model = await loadModelFrom(opener, opts);
  model.nameOrPath = opener.name;
  return model;
}

// Tensors a checkpoint may hold that are not parameters (buffers of older transformers versions);
// the same list as loadModelFrom's.
const BUFFERS = [/\.rotary_emb\.inv_freq$/, /\.attention\.bias$/, /\.attention\.masked_bias$/];

export interface LoadWeightsOptions {
  /** Parameters the checkpoint may lack: they keep the values they have (a freshly initialised head). */
  optional?: (name: string) => boolean;
  /** Checkpoint tensors the model has no place for that are not an error (another task's head). */
  ignore?: (name: string) => boolean;
}

/**
 * Reads a checkpoint's tensors into `params` by name, one tensor at a time through one reused
 * 4 MiB buffer, as `loadModelFrom` does for a causal LM, for any module tree (a task head over a
 * decoder). Every parameter must be in the checkpoint with its shape unless `optional` says so;
 * checkpoint tensors without a parameter are an error unless ignored (or old non-parameter
 * buffers). Returns the names of the parameters that were not in the checkpoint.
 */
export async function loadWeightsInto(
  where: string,
  weights: WeightReader,
  params: Iterable<readonly [string, Tensor]>,
  opts: LoadWeightsOptions = {},
): Promise<{ notInCheckpoint: string[] }> {
  const list = [...params];
  const expected = new Set(list.map(([n]) => n));
  const missing = list.map(([n]) => n).filter((n) => !weights.has(n));
  const required = missing.filter((n) => !opts.optional?.(n));
  if (required.length > 0) {
    throw new Error(
      `${where}: ${weights.label} is missing ${required.length} of the model's ${list.length} tensors: ${required.slice(0, 5).join(', ')}${required.length > 5 ? ', …' : ''}`,
    );
  }
  const extra = weights.names().filter((n) => !expected.has(n) && !opts.ignore?.(n) && !BUFFERS.some((re) => re.test(n)));
  if (extra.length > 0) {
    throw new Error(
      `${where}: ${weights.label} has ${extra.length} tensors that this model does not: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}`,
    );
  }
  // Every shape and stored dtype is checked from the headers before anything is written, so a
  // checkpoint that does not fit leaves the parameters as they were.
  for (const [name, param] of list) {
    if (!weights.has(name)) continue;
    const info = await weights.info(name);
    if (info.shape.length !== param.shape.length || info.shape.some((d, i) => d !== param.shape[i])) {
      throw new Error(
        `${where}/${info.file}: tensor "${name}" has shape [${info.shape.slice(0, 8).join(', ')}], the model needs [${param.shape.join(', ')}]`,
      );
    }
    if (info.dtype !== undefined && !FLOAT_DTYPES.has(info.dtype)) {
      throw new Error(`${where}/${info.file}: tensor "${name}" is stored as ${info.dtype}: weights must be floating point`);
    }
  }
  const staging = new Uint8Array(4 << 20);
  for (const [name, param] of list) {
    if (!weights.has(name)) continue;
    const backend = param.backend;
    const buffer = param.buffer('loadWeights');
    const streamed = await weights.stream?.(name, param.dtype, staging, (data, offset) => backend.write(buffer, data, offset));
    if (!streamed) {
      const loaded = await weights.readTensor(name, { dtype: param.dtype });
      if (loaded.data.length > 0) backend.write(buffer, loaded.data);
    }
    param.name = name;
  }
  return { notInCheckpoint: missing };
}
