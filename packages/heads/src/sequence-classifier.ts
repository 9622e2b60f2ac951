import {
  argmax,
  crossEntropy,
  type DType,
  type Generator,
  gatherRows,
  Linear,
  Module,
  noGrad,
  reshape,
  type Tensor,
  tensor,
  tidy,
} from '@peft/core';
import type { BaseModel, CausalLM } from '@peft/models';
import { baseHidden, batchShape, checkCount, checkIds, type HeadBatch, inEvalMode, lastTokenIndex } from './batch.js';

export interface SequenceClassifierOptions {
  numLabels: number;
  /** Draws the score layer's initial weight (PyTorch's Linear init, U(±1/√hidden)). */
  generator?: Generator;
  /** Storage dtype of the score layer; default float32 (a bfloat16 backbone still feeds it). */
  dtype?: DType;
}

/**
 * Study A's classifier: the decoder's final hidden state at each sequence's last real token, then
 * `score`, a Linear(hidden, numLabels) without bias. Parameter names are those of transformers'
 * `GPTNeoXForSequenceClassification` / `LlamaForSequenceClassification`: `gpt_neox.*` or
 * `model.*`, and `score.weight` (PEFT's `modules_to_save: ["score"]` saves it with the adapter).
 *
 * Pooling follows the study, not transformers: the position comes from the attention mask
 * (sum(mask) − 1 under right padding, the last position under left padding), never from a pad id.
 * The model's base is shared, not copied: disposing the classifier disposes the base's weights.
 */
export class SequenceClassifier extends Module {
  /** The name of the head layer, for `modulesToSave`. */
  readonly scoreName = 'score';
  readonly numLabels: number;

  constructor(
    readonly model: CausalLM,
    opts: SequenceClassifierOptions,
  ) {
    super();
    checkCount('SequenceClassifier', 'numLabels', opts.numLabels);
    this.numLabels = opts.numLabels;
    this.registerModule(model.baseName, model.base);
    this.registerModule(
      'score',
      new Linear(model.config.hiddenSize, opts.numLabels, {
        backend: model.backend,
        dtype: opts.dtype ?? 'float32',
        bias: false,
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

  /** Logits [batch, numLabels]. */
  forward(batch: HeadBatch): Tensor {
    return tidy(() => this.score.forward(this.pool(batch)));
  }

  /** Mean cross-entropy of the logits against one label per row. */
  loss(batch: HeadBatch, labels: readonly number[]): Tensor {
    const [b] = batchShape('SequenceClassifier.loss', batch);
    if (labels.length !== b) throw new Error(`SequenceClassifier.loss: ${labels.length} labels for a batch of ${b} rows`);
    labels.forEach((label, row) => {
      if (!Number.isInteger(label) || label < 0 || label >= this.numLabels) {
        throw new Error(
          `SequenceClassifier.loss: labels[${row}] = ${label} is outside [0, ${this.numLabels}) (numLabels ${this.numLabels})`,
        );
      }
    });
    return tidy(() => crossEntropy(this.forward(batch), labels));
  }

  /** The argmax label of each row, in eval mode and without recording gradients. */
  async predict(batch: HeadBatch): Promise<number[]> {
    const ids = await inEvalMode(this, () => noGrad(() => tidy(() => argmax(this.forward(batch)))));
    try {
      return Array.from(await ids.data());
    } finally {
      ids.dispose();
    }
  }
}
