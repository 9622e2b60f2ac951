/**
 * The page's work, free of DOM code (so a Node test runs it too): load a Hugging Face model folder
 * from a FileOpener, put a classification head and LoRA on it (`ClassifierSession.create`, which
 * also says what was built), time a step, train with AdamW until done or stopped, evaluate,
 * classify a sentence, and write the adapter as PEFT saves it. `finetune` does all of it in one call.
 */
import {
  adamwStep,
  type Backend,
  backward,
  type FileOpener,
  Generator,
  getPeftModel,
  loraConfig,
  memorySink,
  noGrad,
  type PeftModel,
  saveAdapterTo,
  type Tensor,
  zeros,
} from '@peft/core';
import { SequenceClassifier } from '@peft/heads';
import { createTokenizer, loadModelFrom, type Tokenizer, type TokenizerFiles } from '@peft/models';
import { collate, type Example, type LabelledData, split } from './data.js';

/** The files of the bundled tiny GPT-NeoX (fixtures/models/tiny-gpt-neox, served by vite.config.ts). */
export const TINY_MODEL_FILES = ['config.json', 'model.safetensors', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json'];

const TOKENIZER_TEXT = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const TOKENIZER_BINARY = ['tokenizer.model', 'spiece.model'];

/** The tokenizer of the folder behind `opener` (tokenizer.json or a SentencePiece model, with its configs). */
export async function tokenizerFrom(opener: FileOpener): Promise<Tokenizer> {
  const names = new Set((await opener.list?.()) ?? [...TOKENIZER_TEXT, ...TOKENIZER_BINARY]);
  const files: TokenizerFiles = {};
  for (const name of [...TOKENIZER_TEXT, ...TOKENIZER_BINARY]) {
    if (!names.has(name)) continue;
    let source: Awaited<ReturnType<FileOpener['open']>>;
    try {
      source = await opener.open(name);
    } catch {
      continue;
    }
    const bytes = (await source.read(0, source.size)).slice();
    await source.close?.();
    files[name] = TOKENIZER_TEXT.includes(name) ? new TextDecoder().decode(bytes) : bytes;
  }
  if (![...TOKENIZER_BINARY, 'tokenizer.json'].some((n) => files[n] !== undefined)) {
    throw new Error(`${opener.name}: no tokenizer: pick a folder with tokenizer.json, tokenizer.model or spiece.model`);
  }
  return createTokenizer(files);
}

export interface FinetuneOptions {
  steps: number;
  batchSize: number;
  lr: number;
  /** Longest input in tokens (longer texts keep their start and the EOS token). */
  maxLength: number;
  r: number;
  loraAlpha: number;
  seed: number;
  /** Written into adapter_config.json as base_model_name_or_path. */
  modelName: string;
}

export const DEFAULT_OPTIONS: FinetuneOptions = {
  steps: 30,
  batchSize: 4,
  lr: 3e-3,
  maxLength: 40,
  r: 8,
  loraAlpha: 16,
  seed: 42,
  modelName: 'tiny-gpt-neox',
};

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  /** Real (unpadded) tokens trained on per second, over the steps so far. */
  tokensPerSecond: number;
  /** Seconds since the first step began. */
  elapsed: number;
  /**
   * Seconds the remaining steps should take: the mean time of the steps after the first (the
   * first also compiles kernels), or the first step's time while only it has run.
   */
  secondsLeft: number;
}

/** What the page shows before training: the model, the adapter on it, and the data. */
export interface ModelSummary {
  /** transformers' class of the checkpoint (config.json `architectures[0]`), else its model_type. */
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  heads: number;
  vocabSize: number;
  /** Parameters of the classifier with LoRA on it, and those that train (LoRA and the score head). */
  total: number;
  trainable: number;
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Module paths LoRA adapts, e.g. gpt_neox.layers.0.attention.query_key_value. */
  targets: string[];
  modulesToSave: string[];
  labels: string[];
  trainSize: number;
  testSize: number;
  /** The backend's name (cpu, webgpu). */
  backend: string;
}

export interface TrainOutcome {
  losses: number[];
  /** True when the signal stopped training before the last step. */
  stopped: boolean;
  /** Seconds the steps took. */
  seconds: number;
}

export interface Evaluation {
  /** Test-split accuracy, and what always answering the most frequent training label scores. */
  accuracy: number;
  baseline: number;
}

export interface FinetuneResult extends Evaluation {
  labels: string[];
  losses: number[];
  /** True when training was stopped before `options.steps`; `losses` then has one entry per step that ran. */
  stopped: boolean;
  testSize: number;
  trainSize: number;
  /** adapter_config.json and adapter_model.safetensors (PEFT's layout), and labels.json (the label names by id). */
  files: Map<string, Uint8Array>;
  /** Parameters trained (LoRA and the score head) of all. */
  trainable: number;
  total: number;
  /** The backend's device bytes after the last step (GPU memory on WebGPU). */
  deviceBytes: number;
}

export interface FinetuneHooks {
  onStatus?(text: string): void;
  onStep?(info: StepInfo): void;
  /** Stops training after the step that is running when it fires (the loop looks between steps). */
  signal?: AbortSignal;
}

/** A class and the probability the classifier gives it. */
export interface ClassProbability {
  label: string;
  probability: number;
}

/** Shuffled order of 0…n−1 (a seeded Fisher–Yates), so every run sees the same batches. */
function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * Lets the event loop run (clicks, rendering) before the next step: a message-channel task, which
 * background tabs do not throttle as they do timers. On the CPU backend a step never awaits
 * anything real, so without this a Stop click would wait for the whole run.
 */
export function nextTask(): Promise<void> {
  if (typeof MessageChannel !== 'function') return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Softmax of one row of logits (shifted by the maximum, so large logits do not overflow). */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

const now = () => performance.now();

function checkOptions(o: FinetuneOptions): void {
  for (const key of ['steps', 'batchSize', 'maxLength', 'r'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 1) throw new Error(`options.${key} must be a whole number ≥ 1, got ${o[key]}`);
  }
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new Error(`options.lr must be a positive number, got ${o.lr}`);
}

/**
 * A classifier built on a model folder, ready to train once: the model and tokenizer, a new score
 * head, LoRA on PEFT's default targets for the model type. Holds device memory until `dispose`.
 */
export class ClassifierSession {
  readonly summary: ModelSummary;
  /** Whether `train` has run (a session trains once; make a new one to train again). */
  trained = false;
  private readonly params: Tensor[];
  private readonly train: Example[];
  private readonly test: Example[];
  private disposed = false;

  private constructor(
    readonly backend: Backend,
    private readonly peft: PeftModel<SequenceClassifier>,
    private readonly tokenizer: Tokenizer,
    readonly data: LabelledData,
    readonly options: FinetuneOptions,
    split: { train: Example[]; test: Example[] },
  ) {
    this.train = split.train;
    this.test = split.test;
    this.params = [...peft.parameters()].filter((t) => t.requiresGrad);
    const config = peft.model.model.config;
    const lora = peft.peftConfig.get(peft.activeAdapter)!;
    const archs = config.raw.architectures;
    const { trainable, total } = peft.parameterCounts();
    const paths = [...peft.model.namedModules()].map(([path]) => path);
    this.summary = {
      architecture: Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : config.modelType,
      modelType: config.modelType,
      layers: config.numLayers,
      hiddenSize: config.hiddenSize,
      heads: config.numHeads,
      vocabSize: config.vocabSize,
      total,
      trainable,
      r: lora.r,
      loraAlpha: lora.loraAlpha,
      loraDropout: lora.loraDropout,
      targets: [...peft.targetedModules()],
      // PEFT adds `classifier` and `score` for SEQ_CLS (beside the `score` given); only those the model has train.
      modulesToSave: [...new Set(lora.modulesToSave ?? [])].filter((name) => paths.some((p) => p === name || p.endsWith(`.${name}`))),
      labels: data.labels,
      trainSize: split.train.length,
      testSize: split.test.length,
      backend: backend.name,
    };
  }

  /** Loads the model behind `opener` onto `backend` and puts the head and LoRA on it. */
  static async create(
    backend: Backend,
    opener: FileOpener,
    data: LabelledData,
    options: Partial<FinetuneOptions> = {},
    hooks: Pick<FinetuneHooks, 'onStatus'> = {},
  ): Promise<ClassifierSession> {
    const o = { ...DEFAULT_OPTIONS, ...options };
    checkOptions(o);
    const parts = split(data);
    if (parts.train.length === 0 || parts.test.length === 0) {
      throw new Error(`${data.examples.length} examples are too few: every 4th goes to the test split, the rest to training`);
    }
    hooks.onStatus?.(`loading the model from ${opener.name}…`);
    const tokenizer = await tokenizerFrom(opener);
    const causal = await loadModelFrom(opener, { backend, dtype: 'float32' });
    let head: SequenceClassifier | undefined;
    try {
      head = new SequenceClassifier(causal, { numLabels: data.labels.length, generator: new Generator(o.seed + 1) });
      const peft = getPeftModel(
        head,
        loraConfig({ r: o.r, loraAlpha: o.loraAlpha, loraDropout: 0.05, modulesToSave: ['score'], taskType: 'SEQ_CLS' }),
        { modelType: causal.config.modelType, generator: new Generator(o.seed + 2) },
      );
      return new ClassifierSession(backend, peft, tokenizer, data, o, parts);
    } catch (err) {
      (head ?? causal).dispose();
      throw err;
    }
  }

  private encode(texts: readonly string[]) {
    const padId = this.tokenizer.padTokenId ?? this.tokenizer.eosTokenId ?? 0;
    return collate(
      texts.map((t) => this.tokenizer.encode(t)),
      this.options.maxLength,
      padId,
    );
  }

  private alive(what: string): void {
    if (this.disposed) throw new Error(`${what}: this classifier was disposed: build a new one`);
  }

  /**
   * Seconds one training step takes on a batch of `options.batchSize`: a forward and backward pass
   * run twice (the first also compiles kernels), the second timed; the gradients are thrown away
   * and nothing trains (dropout off, so the training draws stay as they were).
   */
  async measureStep(): Promise<number> {
    this.alive('measureStep');
    const rows = this.train.slice(0, this.options.batchSize);
    const batch = this.encode(rows.map((e) => e.text));
    const labels = rows.map((e) => e.label);
    let seconds = 0;
    this.peft.eval();
    try {
      for (let run = 0; run < 2; run++) {
        const started = now();
        const loss = this.peft.model.loss(batch, labels);
        backward(loss);
        await loss.item();
        loss.dispose();
        for (const p of this.params) {
          p.grad?.dispose();
          p.grad = null;
        }
        seconds = (now() - started) / 1000;
        await nextTask();
      }
    } finally {
      this.peft.train();
    }
    return seconds;
  }

  /**
   * Trains `options.steps` steps with AdamW, or until `hooks.signal` fires (checked between
   * steps); `settings` overrides the steps, batch size and learning rate the session was built with.
   */
  async trainSteps(
    hooks: FinetuneHooks = {},
    settings: Partial<Pick<FinetuneOptions, 'steps' | 'batchSize' | 'lr'>> = {},
  ): Promise<TrainOutcome> {
    this.alive('train');
    if (this.trained) throw new Error('train: this classifier has trained already: build a new one to train again');
    const o = { ...this.options, ...settings };
    checkOptions(o);
    this.trained = true;
    const { train } = this;
    hooks.onStatus?.(`training: ${train.length} examples, ${o.steps} steps of ${o.batchSize}, on ${this.backend.name}`);
    const moments = this.params.map((p) => [zeros(p.shape, { backend: this.backend }), zeros(p.shape, { backend: this.backend })] as const);
    this.peft.train();
    const losses: number[] = [];
    let order = shuffled(train.length, o.seed);
    let at = 0;
    let tokens = 0;
    let stopped = false;
    const started = now();
    let firstStepEnd = started;
    try {
      for (let step = 1; step <= o.steps; step++) {
        if (hooks.signal?.aborted) {
          stopped = true;
          break;
        }
        if (at + o.batchSize > order.length) {
          order = shuffled(train.length, o.seed + step);
          at = 0;
        }
        const rows = order.slice(at, at + o.batchSize).map((i) => train[i]!);
        at += o.batchSize;
        const batch = this.encode(rows.map((e) => e.text));
        const loss = this.peft.model.loss(
          batch,
          rows.map((e) => e.label),
        );
        backward(loss);
        const value = await loss.item();
        loss.dispose();
        noGrad(() => {
          this.params.forEach((p, i) => {
            const [m, v] = moments[i]!;
            adamwStep(p, p.grad as Tensor, m, v, { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 });
            p.grad?.dispose();
            p.grad = null;
          });
        });
        losses.push(value);
        for (const row of batch.attentionMask) for (const m of row) tokens += m;
        const t = now();
        if (step === 1) firstStepEnd = t;
        const perStep = step === 1 ? (t - started) / 1000 : (t - firstStepEnd) / 1000 / (step - 1);
        const elapsed = (t - started) / 1000;
        hooks.onStep?.({
          step,
          steps: o.steps,
          loss: value,
          tokensPerSecond: tokens / elapsed,
          elapsed,
          secondsLeft: perStep * (o.steps - step),
        });
        await nextTask();
      }
    } finally {
      for (const [m, v] of moments) {
        m.dispose();
        v.dispose();
      }
      this.peft.eval();
    }
    return { losses, stopped, seconds: (now() - started) / 1000 };
  }

  /** Accuracy on the held-out split (every 4th line), beside the majority-label baseline. */
  async evaluate(): Promise<Evaluation> {
    this.alive('evaluate');
    const { train, test } = this;
    let correct = 0;
    for (let i = 0; i < test.length; i += 8) {
      const rows = test.slice(i, i + 8);
      const predicted = await this.peft.model.predict(this.encode(rows.map((e) => e.text)));
      predicted.forEach((p, k) => {
        if (p === rows[k]!.label) correct++;
      });
    }
    const frequency = this.data.labels.map((_, l) => train.filter((e) => e.label === l).length);
    const majority = frequency.indexOf(Math.max(...frequency));
    return { accuracy: correct / test.length, baseline: test.filter((e) => e.label === majority).length / test.length };
  }

  /** Every class with its probability for `text`, most probable first. */
  async classify(text: string): Promise<ClassProbability[]> {
    this.alive('classify');
    if (typeof text !== 'string' || text.trim() === '') throw new Error('classify: the text is empty: type a sentence first');
    const ids = this.tokenizer.encode(text.trim());
    if (ids.length === 0) throw new Error(`classify: the tokenizer made no tokens of ${JSON.stringify(text.slice(0, 60))}`);
    const batch = this.encode([text.trim()]);
    this.peft.eval();
    const logits = noGrad(() => this.peft.model.forward(batch).logits);
    let values: ArrayLike<number>;
    try {
      values = (await logits.data()) as Float32Array;
    } finally {
      logits.dispose();
    }
    const labels = this.data.labels;
    if (values.length !== labels.length) {
      throw new Error(`classify: the score head gave ${values.length} logits for ${labels.length} classes (${labels.join(', ')})`);
    }
    return softmax(values)
      .map((probability, i) => ({ label: labels[i]!, probability }))
      .sort((a, b) => b.probability - a.probability);
  }

  /** adapter_config.json and adapter_model.safetensors as PEFT writes them, and labels.json. */
  async files(): Promise<Map<string, Uint8Array>> {
    this.alive('files');
    const sink = memorySink('adapter');
    await saveAdapterTo(this.peft, sink, { baseModelNameOrPath: this.options.modelName });
    sink.files.set('labels.json', new TextEncoder().encode(`${JSON.stringify(this.data.labels)}\n`));
    return sink.files;
  }

  /** Frees the model's tensors (the backend stays). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.peft.dispose();
  }
}

/** Builds, trains (until done or stopped), evaluates and saves in one call; frees the model after. */
export async function finetune(
  backend: Backend,
  opener: FileOpener,
  data: LabelledData,
  options: Partial<FinetuneOptions> = {},
  hooks: FinetuneHooks = {},
): Promise<FinetuneResult> {
  const session = await ClassifierSession.create(backend, opener, data, options, hooks);
  try {
    const { losses, stopped } = await session.trainSteps(hooks);
    hooks.onStatus?.(`evaluating on ${session.summary.testSize} held-out examples…`);
    const evaluation = await session.evaluate();
    hooks.onStatus?.('writing the adapter…');
    const files = await session.files();
    return {
      ...evaluation,
      labels: data.labels,
      losses,
      stopped,
      testSize: session.summary.testSize,
      trainSize: session.summary.trainSize,
      files,
      trainable: session.summary.trainable,
      total: session.summary.total,
      deviceBytes: backend.memory().bytes,
    };
  } finally {
    session.dispose();
  }
}
