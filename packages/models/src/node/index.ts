import type { Backend, DType } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import type { CausalLM } from '../causal-lm.js';
import type { ModelConfig } from '../config.js';
import { type LoadOptions, loadModelFrom, readConfig } from '../load.js';
import { causalLMFromPretrained } from '../pretrained.js';
import { loadTokenizer } from '../tokenizer/node.js';
import type { CreateTokenizerOptions, Tokenizer } from '../tokenizer/types.js';

export type { LoadOptions };

/** Loads the causal LM in a local Hugging Face model folder (see loadModelFrom). */
export async function loadModel(dir: string, opts: { backend: Backend; dtype?: DType }): Promise<CausalLM> {
  return loadModelFrom(nodeDirReader(dir), opts);
}

/** Reads and validates a folder's config.json without loading weights. */
export async function loadConfig(dir: string): Promise<ModelConfig> {
  return readConfig(nodeDirReader(dir));
}
export { loadTokenizer, readTokenizerFiles } from '../tokenizer/node.js';

/**
 * transformers' `AutoModelForCausalLM`: `await AutoModelForCausalLM.fromPretrained(dir, { backend })`
 * loads a local model folder (config.json, safetensors or pytorch_model.bin) as a `CausalLM`,
 * frozen, with `nameOrPath` = `dir` (a saved adapter records it as base_model_name_or_path).
 * `dtype` defaults to config.json's torch_dtype when the backend stores it.
 */
export const AutoModelForCausalLM = {
  fromPretrained(dir: string, opts: LoadOptions): Promise<CausalLM> {
    return causalLMFromPretrained(nodeDirReader(dir), opts);
  },
};

/**
 * transformers' `AutoTokenizer`: `await AutoTokenizer.fromPretrained(dir)` is `loadTokenizer(dir)`,
 * the tokenizer of a local model folder (tokenizer.json, or tokenizer.model / spiece.model).
 */
export const AutoTokenizer = {
  fromPretrained(dir: string, options: CreateTokenizerOptions = {}): Promise<Tokenizer> {
    return loadTokenizer(dir, options);
  },
};
