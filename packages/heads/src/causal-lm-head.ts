import { crossEntropy, gatherRows, type Linear, Module, reshape, type Tensor, tensor, tidy } from '@peft/core';
import type { BaseModel, CausalLM } from '@peft/models';
import { baseHidden, batchShape, checkIds, type HeadBatch, type Rows } from './batch.js';
import { type GenerateOptions, greedyGenerate, type Prompts } from './generate.js';
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

export interface CausalLMBatch extends HeadBatch {
  /**
   * Targets aligned with inputIds (not shifted): the token ids of the answer, −100 on the prompt
   * and the padding. The loss shifts them by one, as transformers does.
   */
  labels: Rows;
}

/** The answer-token loss as input tensors (`tensorLoss`) or their host values (`lossInputs`), all int32. */
export interface CausalLMTensorInputs<T = Tensor> extends ModelInputs<T> {
  /** [targets]: the flat positions (row · seq + position) whose logits predict a target. */
  targetRows: T;
  /** [targets]: the token each of those positions predicts; the ignore index (−100) on padding. */
  targets: T;
}

/** How far `CausalLMHead.lossInputs` pads: the batch and sequence axes, and the number of targets. */
export interface CausalLMInputPadding extends InputPadding {
  /** Target rows; the extra ones gather position 0 with the ignore index. Default the batch's own. */
  targets?: number;
}

/** What `CausalLMHead.forward` returns. */
export interface CausalLMHeadOutput {
  /** [batch, seq, vocab]. */
  logits: Tensor;
  /** The answer-token loss, when labels were given. */
  loss?: Tensor;
}

/**
 * Study B's head: the causal LM itself, trained with the loss only on the answer tokens, and
 * batched greedy generation with a KV cache. Parameter names are those of
 * `GPTNeoXForCausalLM` / `LlamaForCausalLM` (`gpt_neox.*` + `embed_out`, `model.*` + `lm_head`).
 * The model's modules are shared, not copied.
 */
export class CausalLMHead extends Module {
  constructor(readonly model: CausalLM) {
    super();
    this.registerModule(model.baseName, model.base);
    this.registerModule(model.headName, model.lmHead);
  }

  get base(): BaseModel {
    return this.getSubmodule(this.model.baseName) as unknown as BaseModel;
  }

  get lmHead(): Linear {
    return this.getSubmodule(this.model.headName) as Linear;
  }

  /**
   * `{ logits }` [batch, seq, vocab] (as `CausalLM.forward`), and with `batch.labels` also `loss`,
   * the same value as `loss(batch)`, taken from these logits.
   */
  forward(batch: HeadBatch & { labels?: Rows }): CausalLMHeadOutput {
    const [b, t] = batchShape('CausalLMHead', batch);
    checkIds('CausalLMHead', batch.inputIds, this.model.config.vocabSize);
    const picked = batch.labels ? this.#targets('CausalLMHead.forward', batch.labels, b, t) : null;
    return tidy(() => {
      const logits = this.lmHead.forward(baseHidden(this.base, this.model, batch));
      if (!picked) return { logits };
      const flat = reshape(logits, [b * t, logits.shape[2]!]);
      return { logits, loss: this.#crossEntropy(flat, picked) };
    });
  }

  /**
   * Mean cross-entropy of the logits at position t against labels[t + 1], over the targets that
   * are not −100. Only the positions that have a target go through the LM head, so a long prompt
   * costs no [seq, vocab] logits.
   */
  loss(batch: CausalLMBatch): Tensor {
    const where = 'CausalLMHead.loss';
    const [b, t] = batchShape(where, batch);
    checkIds(where, batch.inputIds, this.model.config.vocabSize);
    const picked = this.#targets(where, batch.labels, b, t);
    return tidy(() => {
      const hidden = baseHidden(this.base, this.model, batch);
      const flat = reshape(hidden, [b * t, hidden.shape[2]!]);
      const index = tensor(picked.rows, [picked.rows.length], { backend: this.model.backend, dtype: 'int32' });
      const logits = this.lmHead.forward(gatherRows(flat, index));
      return crossEntropy(logits, picked.targets, { ignoreIndex: -100 });
    });
  }

  /**
   * The batch as the int32 host arrays `tensorLoss` reads, padded to `pad` (default none): extra
   * positions are masked padding on the right of every row, extra rows hold one token and no
   * target, extra target rows are ignored. A batch without any target has one ignored target row
   * (the zero loss of `loss`).
   */
  lossInputs(batch: CausalLMBatch, pad: CausalLMInputPadding = {}): CausalLMTensorInputs<HostInput> {
    const where = 'CausalLMHead.lossInputs';
    const [b, t] = batchShape(where, batch);
    const picked = this.#targets(where, batch.labels, b, t);
    const { rows: _rows, length: _length, batch: _batch, seq, ...model } = inputGrid(where, batch, this.model.config, pad);
    const count = pad.targets ?? picked.rows.length;
    if (!Number.isInteger(count) || count < picked.rows.length) {
      throw new Error(`${where}: pad.targets is ${count}; it must be an integer >= ${picked.rows.length}, the batch's target rows`);
    }
    const targetRows = new Int32Array(count);
    const targets = new Int32Array(count).fill(IGNORE_INDEX);
    picked.rows.forEach((flat, k) => {
      targetRows[k] = Math.floor(flat / t) * seq + (flat % t);
    });
    targets.set(picked.targets);
    return {
      ...model,
      targetRows: { shape: [count], dtype: 'int32', data: targetRows },
      targets: { shape: [count], dtype: 'int32', data: targets },
    };
  }

  /**
   * `loss` computed from input tensors alone (the arrays of `lossInputs` on the device): no value
   * is read on the host, so a captured graph of it replays for new inputs of the same shapes. The
   * mean is over the targets that are not −100, and 0 (with zero gradients) when there is none.
   * Not for rope type dynamic (`supportsTensorLoss`).
   */
  tensorLoss(inputs: CausalLMTensorInputs): Tensor {
    const where = 'CausalLMHead.tensorLoss';
    checkModelInputs(where, this.model.config, inputs);
    checkInputs(where, inputs, { targetRows: [null] });
    checkInputs(where, inputs, { targets: [inputs.targetRows.size] });
    return tidy(() => {
      const picked = gatherRows(flatHidden(this.base, this.model, inputs), inputs.targetRows);
      return meanCrossEntropy(this.lmHead.forward(picked), inputs.targets);
    });
  }

  /** Cross-entropy of the rows of flat logits [batch·seq, vocab] that have a target. */
  #crossEntropy(flat: Tensor, picked: { rows: number[]; targets: number[] }): Tensor {
    const index = tensor(picked.rows, [picked.rows.length], { backend: this.model.backend, dtype: 'int32' });
    return crossEntropy(gatherRows(flat, index), picked.targets, { ignoreIndex: -100 });
  }

  /** The flat positions whose logits predict a label (the one before it) and those labels. */
  #targets(where: string, labels: Rows, b: number, t: number): { rows: number[]; targets: number[] } {
    const vocab = this.model.config.vocabSize;
    if (labels.length !== b || labels.some((r) => r.length !== t)) {
      throw new Error(
        `${where}: labels must be [${b}, ${t}] like inputIds; got ${labels.length} rows of ${labels.map((r) => r.length).join(', ')}`,
      );
    }
    const rows: number[] = [];
    const targets: number[] = [];
    labels.forEach((row, i) => {
      row.forEach((label, j) => {
        if (label === -100) return;
        if (!Number.isInteger(label) || label < 0 || label >= vocab) {
          throw new Error(
            `${where}: labels[${i}][${j}] = ${label} is outside the vocabulary [0, ${vocab}) and is not the ignore index −100`,
          );
        }
        // The logits at j − 1 predict the token at j; a label at position 0 has no predictor.
        if (j > 0) {
          rows.push(i * t + j - 1);
          targets.push(label);
        }
      });
    });
    if (rows.length === 0) {
      // No target in the batch: a zero loss that still reaches the graph (zero gradients).
      rows.push(0);
      targets.push(-100);
    }
    return { rows, targets };
  }

  /**
   * Greedy continuation of each prompt, batched with left padding and a KV cache: the new token ids
   * of each row, without the EOS and cut before a stop string.
   */
  async generate(prompts: Prompts, opts: GenerateOptions): Promise<number[][]> {
    return (await greedyGenerate(this, prompts, opts)).tokens;
  }

  /** As `generate`, decoded with `opts.tokenizer` and cut exactly before the first stop string. */
  async generateText(
    prompts: Prompts,
    opts: GenerateOptions & { tokenizer: NonNullable<GenerateOptions['tokenizer']> },
  ): Promise<string[]> {
    return (await greedyGenerate(this, prompts, opts)).texts!;
  }
}
