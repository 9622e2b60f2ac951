import type { Backend, DType } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import type { CausalLM } from '../causal-lm.js';
import type { ModelConfig } from '../config.js';
import { type LoadOptions, loadModelFrom, readConfig } from '../load.js';

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
