import {
  argmax,
  crossEntropy,
  type DType,
  type Generator,
  gatherRows,
  Linear,
  labelMaps,
  Module,
  noGrad,
  reshape,
  type Tensor,
  tensor,
  tidy,
} from '@peft/core';
import type { BaseModel, CausalLM, ModelConfig } from '@peft/models';
import { baseHidden, batchShape, checkCount, checkIds, type HeadBatch, inEvalMode, lastTokenIndex } from './batch.js';
import {
  checkInputs,
  checkModelInputs,
  flatHidden,
  type HostInput,
  IGNORE_INDEX,
  type InputPadding,
  inputGrid,
  type ModelInputs,
  meanCrossEntropy,
} from './tensor-input.js';

/** A batch for the classifier, with one class id per row when a loss is wanted (transformers' `labels`). */
export interface SequenceClassifierInput extends HeadBatch {
  labels?: readonly number[];
}

/** What `forward` returns, as transformers' SequenceClassifierOutput: `loss` only when labels were given. */
export interface SequenceClassifierOutput {
  /** [batch, numLabels]. */
  logits: Tensor;
  /** Mean cross-entropy against `labels` (a scalar that backward can start from). */
  loss?: Tensor;
}

/** The classifier's loss as input tensors (`tensorLoss`) or their host values (`lossInputs`), all int32. */
export interface SequenceClassifierTensorInputs<T = Tensor> extends ModelInputs<T> {
  /** [batch]: each row's pooling position in the flattened batch, row · seq + its last real token. */
  poolIndex: T;
  /** [batch]: each row's class id; the ignore index (−100) on padding rows. */
  labels: T;
}

export interface SequenceClassifierOptions {
  /** Number of classes; default the length of `id2label`. */
  numLabels?: number;
  /**
   * Class names by id (transformers' `id2label`): a list, or config.json's `{ "0": "neg", … }`.
   * Default `LABEL_0`, `LABEL_1`, … as transformers names them.
   */
  id2label?: readonly string[] | Readonly<Record<string, string>>;
  /**
   * The pad token id written to config.json by `saveMerged` (transformers' classifier finds each
   * row's last token as the last one that is not the pad id). Default the model's `pad_token_id`.
   * Pooling here reads the attention mask and never this id.
   */
  padTokenId?: number | null;
  /** Draws the score layer's initial weight. */
  generator?: Generator;
  /**
   * The score layer's initial weight: 'default' is PyTorch's Linear init, U(±1/√hidden);
   * `{ normal: std }` is transformers' `_init_weights` (N(0, initializer_range²)).
   */
  init?: 'default' | { normal: number };
  /** Storage dtype of the score layer; default float32 (a bfloat16 backbone still feeds it). */
  dtype?: DType;
}

/** transformers' sequence-classification class for a causal LM's config: `GPTNeoXForCausalLM` → `GPTNeoXForSequenceClassification`. */
export function sequenceClassificationArchitecture(config: ModelConfig): string {
  const arch = Array.isArray(config.raw.architectures) ? config.raw.architectures[0] : undefined;
  if (typeof arch === 'string' && /For[A-Za-z]+$/.test(arch)) return arch.replace(/For[A-Za-z]+$/, 'ForSequenceClassification');
  const prefix = ARCHITECTURE_PREFIX[config.modelType];
  if (!prefix)
    throw new Error(
      `SequenceClassifier: no transformers class known for model_type "${config.modelType}" (config.json has no architectures)`,
    );
  return `${prefix}ForSequenceClassification`;
}

const ARCHITECTURE_PREFIX: Record<string, string> = { gpt_neox: 'GPTNeoX', llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2' };

/** Class names by id from a list or a config.json `id2label` object (keys "0" … "n−1"). */
export function normalizeId2Label(where: string, id2label: readonly string[] | Readonly<Record<string, string>>): string[] {
  if (Array.isArray(id2label)) {
    const list = id2label as readonly unknown[];
    list.forEach((name, i) => {
      if (typeof name !== 'string') throw new Error(`${where}: id2label[${i}] is ${JSON.stringify(name)}: class names must be strings`);
    });
    return [...(list as string[])];
  }
  const entries = Object.entries(id2label);
  const out = new Array<string>(entries.length);
  for (const [key, name] of entries) {
    const id = Number(key);
    if (!Number.isInteger(id) || id < 0 || id >= entries.length || String(id) !== key.trim()) {
      throw new Error(`${where}: id2label has key ${JSON.stringify(key)}: keys must be the ids 0…${entries.length - 1}`);
    }
    if (typeof name !== 'string') throw new Error(`${where}: id2label[${key}] is ${JSON.stringify(name)}: class names must be strings`);
    out[id] = name;
  }
  return out;
}

/**
 * Study A's classifier: the decoder's final hidden state at each sequence's last real token, then
 * `score`, a Linear(hidden, numLabels) without bias. Parameter names are those of transformers'
 * `GPTNeoXForSequenceClassification` / `LlamaForSequenceClassification`: `gpt_neox.*` or
 * `model.*`, and `score.weight` (PEFT's `modules_to_save: ["score"]` saves it with the adapter).
 * `config` is that class's config (architectures, id2label, label2id, pad_token_id), which
 * `saveMerged` writes and `getPeftModel` reads the model type from.
 *
 * Pooling follows the study, not transformers: the position comes from the attention mask
 * (sum(mask) − 1 under right padding, the last position under left padding), never from a pad id.
 * The model's base is shared, not copied: disposing the classifier disposes the base's weights.
 */
export class SequenceClassifier extends Module {
  /** The name of the head layer, for `modulesToSave`. */
  readonly scoreName = 'score';
  readonly numLabels: number;
  /** Class names by id (transformers' `config.id2label`): `id2label[predictedId]`. */
  readonly id2label: readonly string[];
  /** Class ids by name (transformers' `config.label2id`). */
  readonly label2id: Readonly<Record<string, number>>;
  /** The pad token id config.json records (see the option). */
  padTokenId: number | null;

  constructor(
    readonly model: CausalLM,
    opts: SequenceClassifierOptions,
  ) {
    super();
    const names = opts.id2label ? normalizeId2Label('SequenceClassifier', opts.id2label) : null;
    const numLabels = opts.numLabels ?? names?.length;
    if (numLabels === undefined) throw new Error('SequenceClassifier: give numLabels or id2label (the class names)');
    checkCount('SequenceClassifier', 'numLabels', numLabels);
    if (names && names.length !== numLabels) {
      throw new Error(`SequenceClassifier: numLabels ${numLabels} but id2label names ${names.length} classes (${names.join(', ')})`);
    }
    this.numLabels = numLabels;
    this.id2label = Object.freeze(names ?? Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`));
    this.label2id = Object.freeze(labelMaps(this.id2label).label2id);
    this.padTokenId = opts.padTokenId !== undefined ? opts.padTokenId : model.config.padTokenId;
    this.registerModule(model.baseName, model.base);
    this.registerModule(
      'score',
      new Linear(model.config.hiddenSize, numLabels, {
        backend: model.backend,
        dtype: opts.dtype ?? 'float32',
        bias: false,
        init: opts.init,
        generator: opts.generator,
      }),
    );
  }

  get base(): BaseModel {
    return this.getSubmodule(this.model.baseName) as unknown as BaseModel;
  }

  get score(): Linear {
    return this.getSubmodule('score') as Linear;
  }

  /** Where the model was loaded from (transformers' `name_or_path`), recorded in a saved adapter. */
  get nameOrPath(): string | null {
    return this.model.nameOrPath;
  }

  /**
   * The config of transformers' `…ForSequenceClassification`: the decoder's, with `raw` (what
   * `saveMerged` writes as config.json) naming that class and holding `id2label`, `label2id` and
   * `pad_token_id`.
   */
  get config(): ModelConfig {
    const base = this.model.config;
    const { num_labels: _stale, ...raw } = base.raw;
    return {
      ...base,
      padTokenId: this.padTokenId,
      raw: {
        ...raw,
        architectures: [sequenceClassificationArchitecture(base)],
        ...labelMaps(this.id2label),
        pad_token_id: this.padTokenId,
      },
    };
  }

  /** Final hidden states at each row's last real token: [batch, hidden]. */
  pool(batch: HeadBatch): Tensor {
    const [b, t] = batchShape('SequenceClassifier', batch);
    checkIds('SequenceClassifier', batch.inputIds, this.model.config.vocabSize);
    const last = lastTokenIndex(batch.attentionMask, b, t);
    return tidy(() => {
      const hidden = baseHidden(this.base, this.model, batch);
      const flat = reshape(hidden, [b * t, hidden.shape[2]!]);
      const index = tensor(
        last.map((pos, row) => row * t + pos),
        [b],
        { backend: this.model.backend, dtype: 'int32' },
      );
      return gatherRows(flat, index);
    });
  }

  /** `{ logits }` [batch, numLabels], and with `batch.labels` also `loss`, their mean cross-entropy. */
  forward(batch: SequenceClassifierInput): SequenceClassifierOutput {
    const labels = batch.labels;
    if (labels) this.#checkLabels('SequenceClassifier.forward', batch, labels);
    return tidy(() => {
      const logits = this.#logits(batch);
      return labels ? { logits, loss: crossEntropy(logits, labels) } : { logits };
    });
  }

  /** Mean cross-entropy of the logits against one label per row (default `batch.labels`). */
  loss(batch: SequenceClassifierInput, labels: readonly number[] | undefined = batch.labels): Tensor {
    if (!labels) throw new Error('SequenceClassifier.loss: no labels: pass them or give the batch a labels field');
    this.#checkLabels('SequenceClassifier.loss', batch, labels);
    return tidy(() => crossEntropy(this.#logits(batch), labels));
  }

  /**
   * The batch and its labels as the int32 host arrays `tensorLoss` reads, padded to `pad` (default
   * none): extra positions are masked padding on the right of every row, extra rows hold one token
   * and the ignore index as their label, so the loss is the mean over the real rows only.
   */
  lossInputs(batch: HeadBatch, labels: readonly number[], pad: InputPadding = {}): SequenceClassifierTensorInputs<HostInput> {
    const where = 'SequenceClassifier.lossInputs';
    this.#checkLabels(where, batch, labels);
    const { rows, length, batch: b, seq, ...model } = inputGrid(where, batch, this.model.config, pad);
    const last = lastTokenIndex(batch.attentionMask, rows, length);
    const poolIndex = new Int32Array(b);
    const target = new Int32Array(b).fill(IGNORE_INDEX);
    for (let r = 0; r < b; r++) poolIndex[r] = r * seq + (r < rows ? last[r]! : 0);
    target.set(labels);
    return {
      ...model,
      poolIndex: { shape: [b], dtype: 'int32', data: poolIndex },
      labels: { shape: [b], dtype: 'int32', data: target },
    };
  }

  /**
   * `loss` computed from input tensors alone (the arrays of `lossInputs` on the device): no value
   * is read on the host, so a captured graph of it replays for new inputs of the same shapes. The
   * mean is over the rows whose label is not −100. Not for rope type dynamic (`supportsTensorLoss`).
   */
  tensorLoss(inputs: SequenceClassifierTensorInputs): Tensor {
    const where = 'SequenceClassifier.tensorLoss';
    const [b] = checkModelInputs(where, this.model.config, inputs);
    checkInputs(where, inputs, { poolIndex: [b], labels: [b] });
    return tidy(() => {
      const pooled = gatherRows(flatHidden(this.base, this.model, inputs), inputs.poolIndex);
      return meanCrossEntropy(this.score.forward(pooled), inputs.labels);
    });
  }

  /** The argmax label of each row, in eval mode and without recording gradients. */
  async predict(batch: HeadBatch): Promise<number[]> {
    const ids = await inEvalMode(this, () => noGrad(() => tidy(() => argmax(this.#logits(batch)))));
    try {
      return Array.from(await ids.data());
    } finally {
      ids.dispose();
    }
  }

  /** The class name of each row's argmax (`id2label[predict(batch)[i]]`). */
  async predictLabels(batch: HeadBatch): Promise<string[]> {
    return (await this.predict(batch)).map((id) => this.id2label[id]!);
  }

  #logits(batch: HeadBatch): Tensor {
    return tidy(() => this.score.forward(this.pool(batch)));
  }

  #checkLabels(where: string, batch: HeadBatch, labels: readonly number[]): void {
    const [b] = batchShape(where, batch);
    if (labels.length !== b) throw new Error(`${where}: ${labels.length} labels for a batch of ${b} rows`);
    labels.forEach((label, row) => {
      if (!Number.isInteger(label) || label < 0 || label >= this.numLabels) {
        throw new Error(`${where}: labels[${row}] = ${label} is outside [0, ${this.numLabels}) (numLabels ${this.numLabels})`);
      }
    });
  }
}
