import {
  argmax,
  crossEntropy,
  Dropout,
  type DType,
  defaultGenerator,
  type Generator,
  Linear,
  Module,
  noGrad,
  type Tensor,
  tidy,
} from '@peft/core';
import type { BaseModel, CausalLM, ModelConfig } from '@peft/models';
import { baseHidden, batchShape, checkCount, checkIds, type HeadBatch, inEvalMode, type Rows } from './batch.js';

/** A batch for the token classifier, with a label per token (−100: ignored) when a loss is wanted. */
export interface TokenClassifierInput extends HeadBatch {
  labels?: Rows;
}

/** What `forward` returns, as transformers' TokenClassifierOutput. */
export interface TokenClassifierOutput {
  /** [batch, seq, numLabels]. */
  logits: Tensor;
  /** Mean cross-entropy over the labels that are not −100, when labels were given. */
  loss?: Tensor;
}

export interface TokenClassifierOptions {
  numLabels: number;
  /** Dropout before the classifier; default as transformers: config `classifier_dropout`, else 0.1. */
  dropout?: number;
  /** Draws the classifier's initial weights and the dropout masks. */
  generator?: Generator;
  /** Storage dtype of the classifier; default float32. */
  dtype?: DType;
}

/** transformers' default classifier dropout for the architecture. */
function classifierDropout(config: ModelConfig): number {
  const raw = config.raw;
  // GPTNeoXForTokenClassification reads classifier_dropout; the Llama-shaped ones (transformers'
  // GenericForTokenClassification) classifier_dropout, else hidden_dropout.
  const p = raw.classifier_dropout ?? (config.modelType !== 'gpt_neox' ? raw.hidden_dropout : undefined);
  return typeof p === 'number' ? p : 0.1;
}

/**
 * A label per token from the decoder's final hidden states: dropout, then a Linear(hidden,
 * numLabels) with bias. Names follow transformers: `GPTNeoXForTokenClassification` has
 * `gpt_neox.*`, `dropout`, `classifier`; `LlamaForTokenClassification` has `model.*`, `dropout`,
 * `score` (see `classifierName`). Labels −100 are ignored by the loss.
 */
export class TokenClassifier extends Module {
  readonly numLabels: number;
  /** `classifier` (GPT-NeoX) or `score` (Llama): the head layer, for `modulesToSave`. */
  readonly classifierName: 'classifier' | 'score';

  constructor(
    readonly model: CausalLM,
    opts: TokenClassifierOptions,
  ) {
    super();
    checkCount('TokenClassifier', 'numLabels', opts.numLabels);
    this.numLabels = opts.numLabels;
    this.classifierName = model.config.modelType === 'gpt_neox' ? 'classifier' : 'score';
    this.registerModule(model.baseName, model.base);
    this.registerModule('dropout', new Dropout(opts.dropout ?? classifierDropout(model.config), opts.generator ?? defaultGenerator));
    this.registerModule(
      this.classifierName,
      new Linear(model.config.hiddenSize, opts.numLabels, {
        backend: model.backend,
        dtype: opts.dtype ?? 'float32',
        generator: opts.generator,
      }),
    );
  }

  get base(): BaseModel {
    return this.getSubmodule(this.model.baseName) as unknown as BaseModel;
  }

  get classifier(): Linear {
    return this.getSubmodule(this.classifierName) as Linear;
  }

  /** `{ logits }` [batch, seq, numLabels], and with `batch.labels` also `loss` (as `loss(batch, labels)`). */
  forward(batch: TokenClassifierInput): TokenClassifierOutput {
    const labels = batch.labels;
    if (labels) this.#checkLabels('TokenClassifier.forward', batch, labels);
    return tidy(() => {
      const logits = this.#logits(batch);
      return labels ? { logits, loss: crossEntropy(logits, labels.flat(), { ignoreIndex: -100 }) } : { logits };
    });
  }

  /** Mean cross-entropy over the tokens whose label is not −100 (label padding and sub-word tails −100). */
  loss(batch: TokenClassifierInput, labels: Rows | undefined = batch.labels): Tensor {
    if (!labels) throw new Error('TokenClassifier.loss: no labels: pass them or give the batch a labels field');
    this.#checkLabels('TokenClassifier.loss', batch, labels);
    return tidy(() => crossEntropy(this.#logits(batch), labels.flat(), { ignoreIndex: -100 }));
  }

  #logits(batch: HeadBatch): Tensor {
    batchShape('TokenClassifier', batch);
    checkIds('TokenClassifier', batch.inputIds, this.model.config.vocabSize);
    return tidy(() => {
      const hidden = baseHidden(this.base, this.model, batch);
      return this.classifier.forward((this.getSubmodule('dropout') as Dropout).forward(hidden));
    });
  }

  #checkLabels(where: string, batch: HeadBatch, labels: Rows): void {
    const [b, t] = batchShape(where, batch);
    if (labels.length !== b || labels.some((r) => r.length !== t)) {
      throw new Error(
        `${where}: labels must be [${b}, ${t}] like inputIds; got ${labels.length} rows of ${labels.map((r) => r.length).join(', ')}`,
      );
    }
    labels.forEach((row, i) => {
      row.forEach((label, j) => {
        if (label !== -100 && (!Number.isInteger(label) || label < 0 || label >= this.numLabels)) {
          throw new Error(`${where}: labels[${i}][${j}] = ${label} is outside [0, ${this.numLabels}) and is not the ignore index −100`);
        }
      });
    });
  }

  /** The argmax label of every position [batch][seq] (padding positions included), in eval mode. */
  async predict(batch: HeadBatch): Promise<number[][]> {
    const [, t] = batchShape('TokenClassifier', batch);
    const ids = await inEvalMode(this, () => noGrad(() => tidy(() => argmax(this.#logits(batch)))));
    try {
      const flat = Array.from(await ids.data());
      return Array.from({ length: flat.length / t }, (_, i) => flat.slice(i * t, (i + 1) * t));
    } finally {
      ids.dispose();
    }
  }
}
