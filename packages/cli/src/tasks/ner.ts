import { type FileSink, type Generator, type PeftModel, saveAdapterTo, setDropoutExamples, type Tensor } from '@peft/core';
import {
  BC5CDR_LABELS,
  collateCausalLM,
  type NerMethod,
  nerExample,
  type PromptAnswer,
  type Sentence,
  type TextTokenizer,
} from '@peft/datasets';
import { CausalLMHead, type CausalLMTensorInputs, type CausalLMBatch as HeadCausalLMBatch, supportsTensorLoss } from '@peft/heads';
import { mergeByPriority, type ParseResult, parseExtraction, parseTagged, type Span, spanScores } from '@peft/metrics';
import type { CausalLM, Tokenizer } from '@peft/models';
import type { EvaluateOptions, Evaluation, LossContext, Split, StepInput, StepShapes, TrainTask } from '@peft/trainer';
import { bucket, StepDropoutKeys, stepPadding } from './step-inputs.js';

/** Study B's priority when per-label runs disagree on a token: Disease first, then Chemical. */
export const BC5CDR_PRIORITY: readonly string[] = ['Disease', 'Chemical'];

export interface NerData {
  train: readonly Sentence[];
  validation: readonly Sentence[];
  test: readonly Sentence[];
}

export interface GenerativeNerTaskOptions {
  /** The causal LM with its LoRA adapter injected (`getPeftModel(model, config)`); its trainable tensors are the adapter's. */
  peft: PeftModel<CausalLM>;
  tokenizer: Tokenizer;
  data: NerData;
  /** `tagging` rewrites the sentence with entity markers, `extraction` lists the entities. */
  method: NerMethod;
  /** Entity types this task handles. Default BC5CDR's: Disease, Chemical. */
  labels?: readonly string[];
  /**
   * One output per sentence and label (`@@…##` markers, or one label's list) instead of one output
   * with every label (`[Chemical]…[/Chemical]`, `Disease: …; Chemical: …`). With several labels this
   * needs the instruction, which names the label; Study B trains one run per label instead.
   */
  perLabel: boolean;
  /** Instruction before `Input:`: true for Study B's wording (per-label tagging; our own wording for the other formats), a string for your own. */
  instruction?: boolean | string;
  /** Longest training sequence in tokens (longer ones lose the end of their answer). */
  maxLength: number;
  /** Sentences per generation batch. Default 16. */
  evalBatchSize?: number;
  /** Tokens generated beyond the longest expected answer of the split. Default 8. */
  maxNewTokensMargin?: number;
  /** Merge order when spans overlap. Default Disease > Chemical. */
  priority?: readonly string[];
  /** The generator that draws the LoRA dropout masks (the one given to getPeftModel): checkpointed, so a resumed run draws the same masks. */
  generator?: Generator;
  /** Recorded in config.json. */
  describe?: Record<string, unknown>;
}

/** One sentence's result: the gold spans, the parsed (and merged) predicted spans, and the raw generations. */
export interface NerPrediction {
  id: string;
  tokens: string[];
  gold: Span[];
  pred: Span[];
  /** Generated text per query: the label's name for per-label outputs, `all` for an all-labels output. */
  outputs: Record<string, string>;
  /** Entities the outputs named that could not be placed on the input tokens. */
  unaligned: number;
}

export interface NerScoreRow {
  precision: number;
  recall: number;
  f1: number;
  /** Gold entities. */
  support: number;
  /** Predicted entities. */
  predicted: number;
  /** Exact matches (span and type). */
  tp: number;
}

/** Entity-level scores (exact span and type): micro over all types, and per type. */
export interface NerScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
  predicted: number;
  tp: number;
  perType: Record<string, NerScoreRow>;
  /** Outputs' entities not found in the input. */
  unaligned: number;
  sentences: number;
}

const ALL = 'all';

/** The instruction of a format: Study B's for per-label tagging, ours (same style) for the formats the study gives none for. */
export function nerInstructionText(method: NerMethod, label: string | undefined, labels: readonly string[]): string | true {
  if (method === 'tagging' && label !== undefined) return true;
  const types = label ?? labels.join(' and ');
  if (method === 'tagging') {
    return `The task is to identify ${types} entities in the input. Please rewrite the input text and surround each entity with [Type] and [/Type], where Type is its entity type (${labels.join(', ')}).`;
  }
  if (label !== undefined) {
    return `The task is to identify ${label} entities in the input. Please list the ${label} entities of the input, separated by commas, or None if there are none.`;
  }
  return `The task is to identify ${types} entities in the input. Please list them by type as "${labels.map((l) => `${l}: …`).join('; ')}", with None for a type without entities.`;
}

/**
 * The prompt and expected answer of one query (a sentence, for one label when per-label), exactly
 * as `GenerativeNerTask` trains and generates them; `predict` builds its prompts with it.
 */
export function nerQueryExample(
  sentence: Sentence,
  label: string | undefined,
  opts: { method: NerMethod; labels: readonly string[]; instruction: boolean | string },
): PromptAnswer {
  let instruction: boolean | string = false;
  if (opts.instruction === true) instruction = nerInstructionText(opts.method, label, opts.labels);
  else if (typeof opts.instruction === 'string') instruction = opts.instruction;
  const onlyOurs = label === undefined ? sentence : { ...sentence, spans: sentence.spans.filter((s) => opts.labels.includes(s.type)) };
  return nerExample(onlyOurs, { method: opts.method, label, labels: opts.labels, instruction });
}

/** Parses one generation back into spans on the sentence's tokens (never throws). */
export function parseNerOutput(
  output: string,
  tokens: readonly string[],
  method: NerMethod,
  label: string | undefined,
  labels: readonly string[],
): ParseResult {
  if (method === 'tagging') {
    return label !== undefined
      ? parseTagged(output, tokens, { format: 'markers', label })
      : parseTagged(output, tokens, { format: 'xml', labels });
  }
  return label !== undefined ? parseExtraction(output, tokens, { label }) : parseExtraction(output, tokens, { allLabels: true, labels });
}

function row(r: { precision: number; recall: number; f1: number; support: number; predicted?: number; tp?: number }): NerScoreRow {
  return { precision: r.precision, recall: r.recall, f1: r.f1, support: r.support, predicted: r.predicted ?? 0, tp: r.tp ?? 0 };
}

/** Entity-level micro P/R/F1 (exact span and type) over `labels`, with per-type rows; zero division counts as 0. */
export function scoreNer(predictions: readonly NerPrediction[], labels: readonly string[]): NerScores {
  const s = spanScores(
    predictions.map((p) => p.gold.filter((g) => labels.includes(g.type))),
    predictions.map((p) => p.pred),
    { types: labels, zeroDivision: 0 },
  );
  const micro = row(s.micro);
  return {
    ...micro,
    perType: Object.fromEntries(labels.map((l) => [l, row(s.perType[l]!)])),
    unaligned: predictions.reduce((n, p) => n + p.unaligned, 0),
    sentences: predictions.length,
  };
}

/**
 * Merges the predictions of per-label runs on the same sentences (one list per run, same order):
 * each sentence's spans are pooled and merged by priority, so each token keeps one label (Study B:
 * Disease > Chemical). Gold spans are the union of the runs' gold spans.
 */
export function mergeNerPredictions(
  runs: readonly (readonly NerPrediction[])[],
  priority: readonly string[] = BC5CDR_PRIORITY,
): NerPrediction[] {
  if (runs.length === 0) return [];
  const n = runs[0]!.length;
  for (const r of runs) {
    if (r.length !== n)
      throw new Error(`mergeNerPredictions: the runs have different sentence counts (${runs.map((x) => x.length).join(', ')})`);
  }
  return runs[0]!.map((first, i) => {
    const all = runs.map((r) => r[i]!);
    for (const p of all) {
      if (p.id !== first.id) throw new Error(`mergeNerPredictions: sentence ${i} is ${first.id} in one run and ${p.id} in another`);
    }
    const seen = new Set<string>();
    const gold = all
      .flatMap((p) => p.gold)
      .filter((g) => {
        const k = `${g.type}:${g.start}:${g.end}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      })
      .sort((a, b) => a.start - b.start || a.end - b.end);
    return {
      id: first.id,
      tokens: first.tokens,
      gold,
      pred: mergeByPriority(
        all.flatMap((p) => p.pred),
        priority,
      ),
      outputs: Object.assign({}, ...all.map((p) => p.outputs)),
      unaligned: all.reduce((s, p) => s + p.unaligned, 0),
    };
  });
}

/** Rounded to 4 decimals for JSON. */
function r4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** What `evaluate` records: the scores, and a few generations to look at. */
function evaluationMetrics(scores: NerScores, predictions: readonly NerPrediction[]): Record<string, unknown> {
  return {
    precision: r4(scores.precision),
    recall: r4(scores.recall),
    f1: r4(scores.f1),
    ...Object.fromEntries(Object.entries(scores.perType).map(([t, r]) => [`${t} f1`, r4(r.f1)])),
    unaligned: scores.unaligned,
    sentences: scores.sentences,
    perType: scores.perType,
    samples: predictions.slice(0, 3).map((p) => ({ id: p.id, outputs: p.outputs, gold: p.gold, pred: p.pred })),
  };
}

/** A training micro-batch: ids, mask and answer-only labels (as CausalLMHead.loss takes them), and its real-token count. */
export interface NerBatch extends HeadCausalLMBatch {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
  tokens: number;
  /** Each row's index in the training examples (its dropout key). */
  examples: number[];
}

interface Query {
  sentence: Sentence;
  label: string | undefined;
  example: PromptAnswer;
}

/**
 * The flat positions (row · length + position) whose hidden states `CausalLMHead.loss` passes to
 * the LM head: each position before a label other than −100 (position 0 when there is none), so
 * that a LoRA on lm_head draws the dropout masks of those positions.
 */
function targetRows(labels: readonly (readonly number[])[]): number[] {
  const rows: number[] = [];
  labels.forEach((row, i) => {
    for (let j = 1; j < row.length; j++) if (row[j] !== -100) rows.push(i * row.length + j - 1);
  });
  return rows.length > 0 ? rows : [0];
}

/** The number of answer tokens the loss averages over: labels other than −100 after the first position. */
function answerTokens(labels: readonly (readonly number[])[]): number {
  let n = 0;
  for (const row of labels) for (let j = 1; j < row.length; j++) if (row[j] !== -100) n++;
  return n;
}

/**
 * Study B's task: NER by generation with a LoRA-tuned causal LM. Each example is
 * `[instruction\n]Input: {sentence}\nAnswer: {output}` with the loss on the answer only (and its
 * EOS); evaluation generates greedily (left padding, stopping at EOS or a newline), parses the
 * outputs back to token spans, merges overlapping spans by priority and scores entity-level
 * micro P/R/F1 (exact span and type). The artifacts are the PEFT adapter folder.
 */
export class GenerativeNerTask implements TrainTask<NerBatch> {
  readonly head: CausalLMHead;
  readonly peft: PeftModel<CausalLM>;
  readonly tokenizer: Tokenizer;
  readonly method: NerMethod;
  readonly labels: readonly string[];
  readonly perLabel: boolean;
  readonly priority: readonly string[];
  /** The most recent predictions per split (what the last `evaluate(split)` scored). */
  readonly lastPredictions = new Map<Split, NerPrediction[]>();
  readonly #data: NerData;
  readonly #instruction: boolean | string;
  readonly #maxLength: number;
  readonly #evalBatchSize: number;
  readonly #margin: number;
  readonly #train: PromptAnswer[];
  readonly #collateTokenizer: TextTokenizer;
  readonly #generator: Generator | undefined;
  readonly #describe: Record<string, unknown>;
  /** The dropout keys and gathered rows of the micro-batch the latest `stepInputs` described. */
  readonly #dropoutKeys: StepDropoutKeys;

  constructor(options: GenerativeNerTaskOptions) {
    const labels = options.labels ?? BC5CDR_LABELS;
    if (labels.length === 0)
      throw new Error('GenerativeNerTask: labels is empty: give the entity types to learn, e.g. ["Disease", "Chemical"]');
    if (options.method !== 'tagging' && options.method !== 'extraction') {
      throw new Error(`GenerativeNerTask: method ${JSON.stringify(options.method)} is unknown: use "tagging" or "extraction"`);
    }
    if (options.perLabel && labels.length > 1 && !options.instruction) {
      throw new Error(
        `GenerativeNerTask: per-label outputs for several labels (${labels.join(', ')}) look alike without an instruction naming the label: ` +
          'train one task per label (as Study B does, then mergeNerPredictions), or set instruction',
      );
    }
    if (!Number.isInteger(options.maxLength) || options.maxLength < 8) {
      throw new Error(`GenerativeNerTask: maxLength must be an integer >= 8, got ${options.maxLength}`);
    }
    if (options.data.train.length === 0) throw new Error('GenerativeNerTask: the training split has no sentences');
    this.peft = options.peft;
    this.head = new CausalLMHead(options.peft.model);
    this.tokenizer = options.tokenizer;
    this.method = options.method;
    this.labels = [...labels];
    this.perLabel = options.perLabel;
    this.priority = options.priority ?? BC5CDR_PRIORITY;
    this.#data = options.data;
    this.#instruction = options.instruction ?? false;
    this.#maxLength = options.maxLength;
    this.#evalBatchSize = options.evalBatchSize ?? 16;
    this.#margin = options.maxNewTokensMargin ?? 8;
    this.#generator = options.generator;
    this.#describe = options.describe ?? {};
    const tok = options.tokenizer;
    const pad = tok.padTokenId ?? tok.eosTokenId ?? 0;
    this.#collateTokenizer = {
      encode: (text, o) => tok.encode(text, o),
      padTokenId: pad,
      ...(tok.eosTokenId === null ? {} : { eosTokenId: tok.eosTokenId }),
    };
    this.#train = this.#queries(options.data.train).map((q) => q.example);
    this.#dropoutKeys = new StepDropoutKeys('GenerativeNerTask.stepLoss', options.peft);
  }

  /** The labels asked one at a time (per-label), or [undefined] for one all-labels output. */
  get #queryLabels(): (string | undefined)[] {
    return this.perLabel ? [...this.labels] : [undefined];
  }

  #example(sentence: Sentence, label: string | undefined): PromptAnswer {
    return nerQueryExample(sentence, label, { method: this.method, labels: this.labels, instruction: this.#instruction });
  }

  #queries(sentences: readonly Sentence[]): Query[] {
    return sentences.flatMap((sentence) =>
      this.#queryLabels.map((label) => ({ sentence, label, example: this.#example(sentence, label) })),
    );
  }

  /** The training examples as prompt / answer pairs (sentences × labels when per-label). */
  get trainExamples(): readonly PromptAnswer[] {
    return this.#train;
  }

  get trainSize(): number {
    return this.#train.length;
  }

  *trainable(): Iterable<readonly [string, Tensor]> {
    for (const [name, t] of this.peft.namedParameters()) if (t.requiresGrad) yield [name, t];
  }

  batch(indices: readonly number[]): NerBatch {
    const b = collateCausalLM(
      indices.map((i) => this.#train[i]!),
      { tokenizer: this.#collateTokenizer, maxLength: this.#maxLength },
    );
    return {
      inputIds: b.inputIds,
      attentionMask: b.attentionMask,
      labels: b.labels,
      tokens: b.attentionMask.reduce((n, r) => n + r.reduce((a, x) => a + x, 0), 0),
      examples: [...indices],
    };
  }

  /**
   * The answer tokens' mean cross-entropy, with LoRA dropout masks drawn per example (its index in
   * the training examples, the step): the same whatever batch, micro-batch or process holds it. The
   * keys stay set until the next call, for the forward that gradient checkpointing recomputes.
   */
  loss(batch: NerBatch, ctx?: LossContext): Tensor {
    const gathered = { length: batch.inputIds[0]?.length ?? 0, rows: targetRows(batch.labels) };
    setDropoutExamples(this.peft, { step: ctx?.step ?? 0, keys: batch.examples, gathered });
    return this.head.loss(batch);
  }

  /**
   * The answer tokens the loss averages over (labels other than −100 after the first position), so
   * that micro-batches, and the processes of a data-parallel run, combine into the per-token mean
   * of the whole batch: the loss and gradients one forward over all of it would give. A
   * micro-batch whose answers were all cut off by maxLength has a loss of 0 and no gradient; its
   * weight is a negligible 1e-30 instead of 0, which changes no sum, so that a step made only of
   * such batches is still a (zero-gradient) update.
   */
  weight(batch: NerBatch): number {
    const n = answerTokens(batch.labels);
    return n > 0 ? n : 1e-30;
  }

  /**
   * The micro-batch as the LM head's tensor-loss inputs (`lossInputs`): ids, mask and positions
   * [rows, seq], the positions that predict an answer token and their targets [targets], and while
   * LoRA dropout is on its per-example keys (see `StepDropoutKeys`; the LM head's gathered rows
   * keyed by their example and position). With `shapes.fixed`, padded to `microBatchSize` rows, a
   * bucket of lengths and a bucket of target rows (see `bucket`; extra targets are −100);
   * otherwise the batch's own shapes. A micro-batch without any answer token keeps the zero loss
   * of `loss`. Null (the trainer uses `loss`) for a model with dynamic rope (`supportsTensorLoss`).
   */
  stepInputs(batch: NerBatch, shapes: StepShapes, ctx?: LossContext): Record<string, StepInput> | null {
    if (!supportsTensorLoss(this.peft.model.config)) return null;
    const pad = stepPadding(batch.inputIds.length, batch.inputIds[0]?.length ?? 0, shapes, this.#maxLength);
    // Fewer target rows than the batch has positions: per-example dropout takes an input of exactly
    // that many rows as the gathered one, so no layer of the base model may have as many.
    const targets = shapes.fixed ? bucket(Math.max(answerTokens(batch.labels), 1), pad.batch * (pad.seq - 1)) : undefined;
    const inputs = this.head.lossInputs(batch, { ...pad, targets, padTokenId: this.#collateTokenizer.padTokenId });
    const gathered = { length: pad.seq, rows: Array.from(inputs.targetRows.data) };
    return { ...inputs, ...this.#dropoutKeys.inputs(batch.examples, pad, ctx, gathered) };
  }

  /** `loss` from the tensors of the latest `stepInputs`: the same mean over the answer tokens, the same dropout masks. */
  stepLoss(inputs: Readonly<Record<string, Tensor>>, ctx?: LossContext): Tensor {
    this.#dropoutKeys.apply(inputs, ctx);
    return this.head.tensorLoss(inputs as unknown as CausalLMTensorInputs);
  }

  tokens(batch: NerBatch): number {
    return batch.tokens;
  }

  setTraining(training: boolean): void {
    this.peft.train(training);
  }

  generators(): Record<string, Generator> {
    return this.#generator ? { lora: this.#generator } : {};
  }

  /**
   * Greedy generations for prompts, batched (shortest first, so that a batch's rows are of similar
   * length). An aborted `signal` stops it before the next batch, throwing the signal's reason.
   */
  async generate(prompts: readonly string[], maxNewTokens: number, options: { signal?: AbortSignal } = {}): Promise<string[]> {
    const tok = this.tokenizer;
    const ids = prompts.map((p) => tok.encode(p));
    const order = ids.map((_, i) => i).sort((a, b) => ids[a]!.length - ids[b]!.length || a - b);
    const out = new Array<string>(prompts.length);
    for (let at = 0; at < order.length; at += this.#evalBatchSize) {
      options.signal?.throwIfAborted();
      const chunk = order.slice(at, at + this.#evalBatchSize);
      const texts = await this.head.generateText(
        chunk.map((i) => ids[i]!),
        {
          maxNewTokens,
          eosTokenId: tok.eosTokenId ?? undefined,
          padTokenId: tok.padTokenId ?? tok.eosTokenId ?? 0,
          stopStrings: ['\n'],
          tokenizer: tok,
        },
      );
      chunk.forEach((i, k) => {
        out[i] = texts[k]!;
      });
    }
    return out;
  }

  /** maxNewTokens for a split's expected answers: the longest (with its EOS) plus the margin. */
  maxNewTokensFor(answers: readonly string[]): number {
    let longest = 0;
    for (const a of answers) longest = Math.max(longest, this.tokenizer.encode(a, { addSpecialTokens: false }).length + 1);
    return longest + this.#margin;
  }

  /** Generates for every sentence of a split (per label when per-label), parses and merges. */
  predict(split: Split | 'train', options: { signal?: AbortSignal } = {}): Promise<NerPrediction[]> {
    return this.#predictSentences(split === 'train' ? this.#data.train : this.#data[split], options);
  }

  async #predictSentences(sentences: readonly Sentence[], options: { signal?: AbortSignal }): Promise<NerPrediction[]> {
    const queries = this.#queries(sentences);
    if (queries.length === 0) return [];
    const texts = await this.generate(
      queries.map((q) => q.example.prompt),
      this.maxNewTokensFor(queries.map((q) => q.example.answer)),
      options,
    );
    const perSentence = this.#queryLabels.length;
    return sentences.map((sentence, i) => {
      const outputs: Record<string, string> = {};
      const spans: Span[] = [];
      let unaligned = 0;
      for (let k = 0; k < perSentence; k++) {
        const q = queries[i * perSentence + k]!;
        const text = texts[i * perSentence + k]!;
        outputs[q.label ?? ALL] = text;
        const parsed = parseNerOutput(text, sentence.tokens, this.method, q.label, this.labels);
        unaligned += parsed.unaligned;
        spans.push(...parsed.spans.filter((s) => this.labels.includes(s.type)));
      }
      return {
        id: sentence.id,
        tokens: sentence.tokens,
        gold: sentence.spans.filter((s) => this.labels.includes(s.type)).map((s) => ({ type: s.type, start: s.start, end: s.end })),
        pred: mergeByPriority(spans, this.priority),
        outputs,
        unaligned,
      };
    });
  }

  /**
   * Scores a split; the trainer passes its signal, so that a Ctrl-C stops the generation between
   * batches. With a communicator (a data-parallel run) this rank generates for sentences i with
   * i % size === rank, every rank's predictions are gathered, and the scores are those of the whole split.
   */
  async evaluate(split: Split, options: EvaluateOptions = {}): Promise<Evaluation> {
    const comm = options.communicator;
    let predictions: NerPrediction[];
    if (!comm || comm.size === 1) predictions = await this.predict(split, options);
    else {
      const sentences = this.#data[split];
      const mine = await this.#predictSentences(
        sentences.filter((_, i) => i % comm.size === comm.rank),
        options,
      );
      predictions = new Array<NerPrediction>(sentences.length);
      for (const [r, part] of (await comm.allGatherObjects(mine)).entries()) {
        part.forEach((p, k) => {
          predictions[r + k * comm.size] = p;
        });
      }
    }
    this.lastPredictions.set(split, predictions);
    const scores = scoreNer(predictions, this.labels);
    return { score: scores.f1, metrics: evaluationMetrics(scores, predictions) };
  }

  /** The PEFT adapter folder (adapter_config.json + adapter_model.safetensors). */
  async saveArtifacts(sink: FileSink): Promise<void> {
    await saveAdapterTo(this.peft, sink);
  }

  describe(): Record<string, unknown> {
    return {
      task: 'bc5cdr-ner-generation',
      method: this.method,
      labels: this.labels,
      perLabel: this.perLabel,
      instruction: this.#instruction,
      maxLength: this.#maxLength,
      trainingText: this.#train[0] ? this.#train[0].prompt + this.#train[0].answer : null,
      ...this.#describe,
    };
  }
}
