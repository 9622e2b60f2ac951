import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PeftModel } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { loadTokenizer } from '@peft/models/node';
import {
  loadPeftSequenceClassifierFrom,
  loadSequenceClassifierFrom,
  type PeftSequenceClassifierFromPretrainedOptions,
  readAdapterConfig,
  type SequenceClassifierFromPretrainedOptions,
} from '../pretrained.js';
import type { SequenceClassifier } from '../sequence-classifier.js';

export { AutoModelForCausalLM, AutoTokenizer } from '@peft/models/node';

/**
 * The pad token id a classifier records for transformers when neither the caller nor config.json
 * gives one: the folder's tokenizer's pad token, else its EOS (what `tokenizer.pad_token =
 * tokenizer.eos_token` does in Python), else none.
 */
async function tokenizerPadId(dir: string): Promise<number | null> {
  try {
    const tok = await loadTokenizer(dir);
    return tok.padTokenId ?? tok.eosTokenId ?? null;
  } catch {
    return null;
  }
}

/**
 * transformers' `AutoModelForSequenceClassification`:
 * `await AutoModelForSequenceClassification.fromPretrained(dir, { backend, id2label: ['neg', 'pos'] })`
 * loads a local GPT-NeoX or Llama folder as a last-token classifier (`SequenceClassifier`): the
 * decoder frozen, the `score` head new (or the saved one of a classifier folder, with its class
 * names). `numLabels` / `id2label` as transformers' `num_labels` / `id2label`; the pad id that
 * `saveMerged` records defaults to config.json's, else the folder tokenizer's pad (or EOS) token.
 */
export const AutoModelForSequenceClassification = {
  async fromPretrained(dir: string, opts: SequenceClassifierFromPretrainedOptions): Promise<SequenceClassifier> {
    const classifier = await loadSequenceClassifierFrom(nodeDirReader(dir), opts);
    if (opts.padTokenId === undefined && classifier.padTokenId === null) classifier.padTokenId = await tokenizerPadId(dir);
    return classifier;
  },
};

export interface PeftClassifierFromPretrainedOptions extends PeftSequenceClassifierFromPretrainedOptions {
  /** The base model folder; default adapter_config.json's base_model_name_or_path (the folder it was trained on). */
  baseModelNameOrPath?: string;
}

/**
 * PEFT's `AutoPeftModelForSequenceClassification`:
 * `await AutoPeftModelForSequenceClassification.fromPretrained(adapterDir, { backend })` loads a
 * trained classifier in one call: the base folder (adapter_config.json's base_model_name_or_path,
 * or `baseModelNameOrPath`) as a classifier with the class names and `score` head saved in the
 * adapter folder, and the adapter on it, frozen and in eval mode unless `isTrainable`. Returns the
 * PeftModel; `peft.model` is the `SequenceClassifier` (`predict`, `predictLabels`, `id2label`).
 */
export const AutoPeftModelForSequenceClassification = {
  async fromPretrained(adapterDir: string, opts: PeftClassifierFromPretrainedOptions): Promise<PeftModel<SequenceClassifier>> {
    const adapter = nodeDirReader(adapterDir);
    const base = opts.baseModelNameOrPath ?? (await readAdapterConfig(adapter)).base_model_name_or_path;
    if (typeof base !== 'string' || base === '') {
      throw new Error(
        `${adapterDir}/adapter_config.json names no base_model_name_or_path: pass { baseModelNameOrPath: '<the model folder it was trained on>' }`,
      );
    }
    if (!existsSync(join(base, 'config.json'))) {
      throw new Error(
        `${adapterDir}: the base model "${base}" is not a local model folder (no config.json there; nothing is downloaded): pass { baseModelNameOrPath: '<model folder>' }`,
      );
    }
    const peft = await loadPeftSequenceClassifierFrom(adapter, nodeDirReader(base), opts);
    const classifier = peft.model;
    if (classifier.padTokenId === null) classifier.padTokenId = await tokenizerPadId(base);
    return peft;
  },
};
