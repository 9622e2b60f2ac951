// Study A's model: a backbone with a last-token `score` head and LoRA, built for training or
// loaded with a trained adapter folder (adapter_config.json, adapter_model.safetensors, labels.json).
import { join } from 'node:path';
import { type Backend, type DType, Generator, getPeftModel, loadAdapterFrom, loraConfig, type PeftModel } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { SequenceClassifier } from '@peft/heads';
import type { ModelConfig, Tokenizer } from '@peft/models';
import { loadConfig, loadModel, loadTokenizer } from '@peft/models/node';
import { StudyChecks } from './common.js';

/** The file beside the adapter that names the classes by id (PEFT's folder has no place for them). */
export const LABELS_FILE = 'labels.json';

const livedoor: StudyChecks = new StudyChecks('livedoor');

/** The study's dtype rule: bfloat16 for a 16-bit checkpoint on a backend that stores it; float32 stays float32. */
export function livedoorDtype(config: ModelConfig, backend: Backend, requested?: DType): DType {
  return livedoor.dtype(config, backend, requested);
}

export interface ClassifierOptions {
  backend: Backend;
  dtype?: DType;
  /** Seeds the head's and the adapter's initial weights and the dropout masks (default 42). */
  seed?: number;
  r?: number;
  alpha?: number;
  dropout?: number;
  targetModules?: readonly string[] | string;
  gradientCheckpointing?: boolean;
}

export interface Classifier {
  /** The LoRA-adapted classifier; `peft.model` is the SequenceClassifier. Dispose it when done (it owns the backbone). */
  peft: PeftModel<SequenceClassifier>;
  /** Draws the LoRA dropout masks (restored on resume). */
  dropoutGenerator: Generator;
}

/**
 * Study A's model: the folder's backbone, a `score` head (hidden → numLabels, no bias), LoRA on
 * PEFT's default target for the model type, the head trained fully and saved with the adapter
 * (`modules_to_save`, task type SEQ_CLS).
 */
export async function buildClassifier(modelDir: string, labels: readonly string[], o: ClassifierOptions): Promise<Classifier> {
  const seed = o.seed ?? 42;
  const causal = await loadModel(modelDir, { backend: o.backend, dtype: o.dtype });
  causal.gradientCheckpointing = o.gradientCheckpointing ?? true;
  // The class names go into adapter_config.json (id2label) with the adapter.
  const head = new SequenceClassifier(causal, { numLabels: labels.length, id2label: labels, generator: new Generator(seed + 1) });
  const dropoutGenerator = new Generator(seed + 2);
  let peft: PeftModel<SequenceClassifier>;
  try {
    peft = getPeftModel(
      head,
      loraConfig({
        r: o.r ?? 32,
        loraAlpha: o.alpha ?? 16,
        loraDropout: o.dropout ?? 0.1,
        targetModules: o.targetModules ?? null,
        modulesToSave: ['score'],
        taskType: 'SEQ_CLS',
      }),
      { modelType: causal.config.modelType, generator: dropoutGenerator },
    );
  } catch (error) {
    head.dispose();
    throw error;
  }
  return { peft, dropoutGenerator };
}

/**
 * Loads a trained Study A adapter folder (adapter_config.json, adapter_model.safetensors and
 * labels.json as `runLivedoor` writes them) onto the model folder it was trained on, for prediction.
 */
export async function loadLivedoorClassifier(
  modelDir: string,
  adapterDir: string,
  opts: { backend: Backend; dtype?: DType },
): Promise<{ peft: PeftModel<SequenceClassifier>; labels: string[]; tokenizer: Tokenizer }> {
  const reader = nodeDirReader(adapterDir);
  let labels: string[];
  try {
    const source = await reader.open(LABELS_FILE);
    const bytes = await source.read(0, source.size);
    await source.close?.();
    labels = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    livedoor.fail(
      `${join(adapterDir, LABELS_FILE)} cannot be read (${(error as Error).message}): is this an adapter folder written by runLivedoor?`,
    );
  }
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string'))
    livedoor.fail(`${join(adapterDir, LABELS_FILE)} must be a JSON list of class names`);
  const config = await loadConfig(modelDir);
  const causal = await loadModel(modelDir, { backend: opts.backend, dtype: livedoorDtype(config, opts.backend, opts.dtype) });
  const head = new SequenceClassifier(causal, { numLabels: labels.length, id2label: labels });
  try {
    const peft = await loadAdapterFrom(head, reader, { modelType: causal.config.modelType });
    peft.eval();
    return { peft, labels, tokenizer: await loadTokenizer(modelDir) };
  } catch (error) {
    head.dispose();
    throw error;
  }
}
