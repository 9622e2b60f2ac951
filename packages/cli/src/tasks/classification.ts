// Study A's training task: a LoRA-adapted decoder with a last-token classification head, as the
// trainer sees it (batches of token ids, the head's cross-entropy, macro-F1 on validation).
import { type FileSink, type Generator, type PeftModel, saveAdapterTo, setDropoutExamples, type Tensor } from '@peft/core';
import { type ClassificationBatch, collate, type TextTokenizer } from '@peft/datasets';
import { type SequenceClassifier, type SequenceClassifierTensorInputs, supportsTensorLoss } from '@peft/heads';
import { accuracyScore, classificationReport, confusionMatrix, precisionRecallFscoreSupport } from '@peft/metrics';
import type { EvaluateOptions, Evaluation, LossContext, Split, StepInput, StepShapes, TrainTask } from '@peft/trainer';
import { StepDropoutKeys, stepPadding } from './step-inputs.js';

/** One example: the model input (a formatted template) and its class id. */
export interface LabelledText {
  text: string;
  label: number;
}

export interface ClassificationSplits {
  train: readonly LabelledText[];
  validation: readonly LabelledText[];
  test: readonly LabelledText[];
}

/** A tokenizer as `@peft/models` gives it (pad id may be missing) or as collation reads it. */
export interface ClassificationTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  padTokenId: number | null;
  eosTokenId?: number | null;
}

export interface ClassificationTaskOptions {
  /** A PeftModel wrapping a `SequenceClassifier` (LoRA on the backbone, `score` in modulesToSave). */
  peft: PeftModel<SequenceClassifier>;
  tokenizer: ClassificationTokenizer;
  data: ClassificationSplits;
  /** Class names by id; their number must be the head's numLabels. */
  labels: readonly string[];
  /** Longest input in tokens; longer inputs are truncated (the start kept). Study A: 512. */
  maxLength: number;
  /** Rows per forward pass when evaluating. Default 32. */
  evalBatchSize?: number;
  /** The generator the LoRA dropout draws from (the one given to getPeftModel), restored on resume. */
  dropoutGenerator?: Generator;
  /** Written into adapter_config.json as base_model_name_or_path. */
  baseModelNameOrPath?: string;
  /** Extra settings for the run's config.json (model, template, rank, …). */
  describe?: Record<string, unknown>;
}

/** A training micro-batch: the collated rows and the training-set index of each (its dropout key). */
export interface ClassificationTrainBatch extends ClassificationBatch {
  examples: number[];
}

/** What `evaluate` puts in `metrics` (val-metrics.json / test-metrics.json). */
export interface ClassificationMetrics {
  [key: string]: unknown;
  accuracy: number;
  /** Macro-averaged over every label with zero_division = 0 (scikit-learn semantics). */
  precision: number;
  recall: number;
  f1: number;
  examples: number;
  labels: string[];
  /** scikit-learn's classification_report(output_dict=True), keyed by class name. */
  report: Record<string, unknown>;
  /** confusion[i][j]: examples of class i predicted as j. */
  confusion: number[][];
}

/**
 * Study A as a `TrainTask`: right-padded batches truncated to `maxLength`, the classifier's
 * mean cross-entropy as the loss, and accuracy + macro precision / recall / F1 over all labels
 * (zero_division 0) as the evaluation, selected by macro-F1. Saves a PEFT adapter folder with
 * the head under modules_to_save (`base_model.model.score.weight`).
 */
export class ClassificationTask implements TrainTask<ClassificationTrainBatch> {
  readonly peft: PeftModel<SequenceClassifier>;
  readonly labels: readonly string[];
  readonly maxLength: number;
  readonly evalBatchSize: number;
  /** Each split's predictions from its latest `evaluate` (the test split's: those of the selected state after `train`). */
  readonly lastPredictions = new Map<Split, number[]>();
  readonly #data: ClassificationSplits;
  readonly #tokenizer: TextTokenizer;
  readonly #options: ClassificationTaskOptions;
  /** The dropout keys of the micro-batch the latest `stepInputs` described. */
  readonly #dropoutKeys: StepDropoutKeys;

  constructor(options: ClassificationTaskOptions) {
    const { peft, data, labels, maxLength } = options;
    const head = peft.model;
    if (labels.length !== head.numLabels) {
      throw new Error(
        `ClassificationTask: ${labels.length} label names (${labels.join(', ')}) for a head with numLabels ${head.numLabels}: build the SequenceClassifier with numLabels: labels.length`,
      );
    }
    if (!Number.isInteger(maxLength) || maxLength < 1)
      throw new Error(`ClassificationTask: maxLength must be a positive integer, got ${maxLength}`);
    const evalBatchSize = options.evalBatchSize ?? 32;
    if (!Number.isInteger(evalBatchSize) || evalBatchSize < 1)
      throw new Error(`ClassificationTask: evalBatchSize must be a positive integer, got ${evalBatchSize}`);
    for (const split of ['train', 'validation', 'test'] as const) {
      const rows = data[split];
      if (!rows || rows.length === 0)
        throw new Error(`ClassificationTask: the ${split} split is empty: every split needs at least one example`);
      rows.forEach((e, i) => {
        if (!Number.isInteger(e.label) || e.label < 0 || e.label >= labels.length) {
          throw new Error(
            `ClassificationTask: ${split} example ${i} has label ${e.label}, but the head has ${labels.length} labels (0…${labels.length - 1}: ${labels.join(', ')})`,
          );
        }
      });
    }
    this.peft = peft;
    this.labels = [...labels];
    this.maxLength = maxLength;
    this.evalBatchSize = evalBatchSize;
    this.#data = data;
    this.#options = options;
    this.#tokenizer = cachingTokenizer(options.tokenizer);
    this.#dropoutKeys = new StepDropoutKeys('ClassificationTask.stepLoss', peft);
  }

  get head(): SequenceClassifier {
    return this.peft.model;
  }

  get trainSize(): number {
    return this.#data.train.length;
  }

  *trainable(): Iterable<readonly [string, Tensor]> {
    for (const [name, t] of this.peft.namedParameters()) if (t.requiresGrad) yield [name, t];
  }

  /** Right-padded ids and mask of these training examples, truncated to maxLength, with their indices. */
  batch(indices: readonly number[]): ClassificationTrainBatch {
    return { ...this.#collate(indices.map((i) => this.#data.train[i]!)), examples: [...indices] };
  }

  /**
   * The head's mean cross-entropy. The LoRA dropout masks are drawn per example (its training-set
   * index, the step): the same whatever batch, micro-batch or process holds it. The keys stay set
   * until the next call, for the forward that gradient checkpointing recomputes in backward.
   */
  loss(batch: ClassificationTrainBatch, ctx?: LossContext): Tensor {
    setDropoutExamples(this.peft, { step: ctx?.step ?? 0, keys: batch.examples });
    return this.head.loss(batch, batch.labels);
  }

  /**
   * The micro-batch as the classifier's tensor-loss inputs (`lossInputs`): ids, mask and positions
   * [rows, seq], pooling index and labels [rows], and while LoRA dropout is on its per-example keys
   * (see `StepDropoutKeys`). With `shapes.fixed`, padded to `microBatchSize` rows (label −100) and
   * a bucket of lengths (see `bucket`); otherwise the batch's own shapes. Null (the trainer uses
   * `loss`) for a model with dynamic rope (`supportsTensorLoss`).
   */
  stepInputs(batch: ClassificationTrainBatch, shapes: StepShapes, ctx?: LossContext): Record<string, StepInput> | null {
    if (!supportsTensorLoss(this.head.model.config)) return null;
    const pad = stepPadding(batch.inputIds.length, batch.inputIds[0]?.length ?? 0, shapes, this.maxLength);
    const inputs = this.head.lossInputs(batch, batch.labels, { ...pad, padTokenId: this.#tokenizer.padTokenId });
    return { ...inputs, ...this.#dropoutKeys.inputs(batch.examples, pad, ctx) };
  }

  /** `loss` from the tensors of the latest `stepInputs`: the same mean over the real rows, the same dropout masks. */
  stepLoss(inputs: Readonly<Record<string, Tensor>>, ctx?: LossContext): Tensor {
    this.#dropoutKeys.apply(inputs, ctx);
    return this.head.tensorLoss(inputs as unknown as SequenceClassifierTensorInputs);
  }

  tokens(batch: ClassificationBatch): number {
    let n = 0;
    for (const row of batch.attentionMask) for (const m of row) n += m;
    return n;
  }

  setTraining(training: boolean): void {
    this.peft.train(training);
  }

  generators(): Record<string, Generator> {
    return this.#options.dropoutGenerator ? { dropout: this.#options.dropoutGenerator } : {};
  }

  /**
   * Predicted class ids of texts, in their order (eval mode, no gradients, batches sorted by length).
   * An aborted `signal` stops it before the next batch, throwing the signal's reason.
   */
  async predictTexts(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<number[]> {
    const out = new Array<number>(texts.length);
    // Longest first within the whole list, so each batch pads little.
    const lengths = texts.map((t) => this.#tokenizer.encode(t).length);
    const order = texts.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
    for (let at = 0; at < order.length; at += this.evalBatchSize) {
      options.signal?.throwIfAborted();
      const idx = order.slice(at, at + this.evalBatchSize);
      const batch = this.#collate(idx.map((i) => ({ text: texts[i]!, label: 0 })));
      const pred = await this.head.predict(batch);
      batch.order.forEach((row, k) => {
        out[idx[row]!] = pred[k]!;
      });
    }
    return out;
  }

  /** Predicted class ids of a split's examples, in the split's order. */
  predict(split: Split | 'train', options: { signal?: AbortSignal } = {}): Promise<number[]> {
    return this.predictTexts(
      this.#data[split].map((e) => e.text),
      options,
    );
  }

  /**
   * Scores a split; the trainer passes its signal, so that a Ctrl-C stops the evaluation between
   * batches. With a communicator (a data-parallel run) this rank predicts examples i with
   * i % size === rank, every rank's predictions are gathered, and the metrics are those of the whole split.
   */
  async evaluate(split: Split, options: EvaluateOptions = {}): Promise<Evaluation> {
    const rows = this.#data[split];
    const yTrue = rows.map((e) => e.label);
    const comm = options.communicator;
    let yPred: number[];
    if (!comm || comm.size === 1) yPred = await this.predict(split, options);
    else {
      const mine = rows.map((_, i) => i).filter((i) => i % comm.size === comm.rank);
      const pred = await this.predictTexts(
        mine.map((i) => rows[i]!.text),
        options,
      );
      yPred = new Array<number>(rows.length);
      for (const [r, part] of (await comm.allGatherObjects(pred)).entries()) {
        part.forEach((p, k) => {
          yPred[r + k * comm.size] = p;
        });
      }
    }
    this.lastPredictions.set(split, yPred);
    const metrics = classificationMetrics(yTrue, yPred, this.labels);
    return { score: metrics.f1, metrics };
  }

  saveArtifacts(sink: FileSink): Promise<void> {
    return saveAdapterTo(this.peft, sink, { baseModelNameOrPath: this.#options.baseModelNameOrPath });
  }

  describe(): Record<string, unknown> {
    return {
      task: 'sequence-classification',
      labels: this.labels,
      maxLength: this.maxLength,
      examples: { train: this.#data.train.length, validation: this.#data.validation.length, test: this.#data.test.length },
      ...this.#options.describe,
    };
  }

  #collate(examples: readonly LabelledText[]): ClassificationBatch {
    return collate(examples, { tokenizer: this.#tokenizer, maxLength: this.maxLength, padding: 'right', sortByLength: false });
  }
}

/** Accuracy and macro P/R/F1 over every label (zero_division 0), the per-label report and the confusion matrix. */
export function classificationMetrics(
  yTrue: readonly number[],
  yPred: readonly number[],
  labels: readonly string[],
): ClassificationMetrics {
  const ids = labels.map((_, i) => i);
  const macro = precisionRecallFscoreSupport(yTrue, yPred, { average: 'macro', labels: ids, zeroDivision: 0 });
  const report = classificationReport(yTrue, yPred, { labels: ids, targetNames: [...labels], zeroDivision: 0, digits: 4 });
  return {
    accuracy: accuracyScore(yTrue, yPred),
    precision: macro.precision,
    recall: macro.recall,
    f1: macro.fscore,
    examples: yTrue.length,
    labels: [...labels],
    report: report.dict,
    confusion: confusionMatrix(yTrue, yPred, { labels: ids }),
  };
}

/**
 * The tokenizer collation reads, encoding each distinct text once (every epoch batches the same
 * texts again). A model without a pad token pads with EOS, then 0: padding is masked out anyway.
 */
function cachingTokenizer(tok: ClassificationTokenizer): TextTokenizer {
  const cache = new Map<string, number[]>();
  const eos = tok.eosTokenId ?? undefined;
  return {
    encode(text, options) {
      if (options?.addSpecialTokens === false) return tok.encode(text, options);
      let ids = cache.get(text);
      if (!ids) {
        ids = tok.encode(text);
        cache.set(text, ids);
      }
      return ids;
    },
    padTokenId: tok.padTokenId ?? eos ?? 0,
    eosTokenId: eos,
  };
}
