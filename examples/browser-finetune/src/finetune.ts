/**
 * The page's work, free of DOM code (so a Node test runs it too): load a Hugging Face model folder
 * from a FileOpener, put a classification head and LoRA on it, train with AdamW, evaluate, and
 * write the adapter as PEFT saves it.
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
}

export interface FinetuneResult {
  labels: string[];
  losses: number[];
  /** Test-split accuracy after training, and what always answering the most frequent training label scores. */
  accuracy: number;
  baseline: number;
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

export async function finetune(
  backend: Backend,
  opener: FileOpener,
  data: LabelledData,
  options: Partial<FinetuneOptions> = {},
  hooks: FinetuneHooks = {},
): Promise<FinetuneResult> {
  const o = { ...DEFAULT_OPTIONS, ...options };
  const status = hooks.onStatus ?? (() => {});
  const { train, test } = split(data);
  if (train.length === 0 || test.length === 0) {
    throw new Error(`${data.examples.length} examples are too few: every 4th goes to the test split, the rest to training`);
  }
  status(`loading the model from ${opener.name}…`);
  const tokenizer = await tokenizerFrom(opener);
  const causal = await loadModelFrom(opener, { backend, dtype: 'float32' });
  const head = new SequenceClassifier(causal, { numLabels: data.labels.length, generator: new Generator(o.seed + 1) });
  const peft = getPeftModel(
    head,
    loraConfig({ r: o.r, loraAlpha: o.loraAlpha, loraDropout: 0.05, modulesToSave: ['score'], taskType: 'SEQ_CLS' }),
    { modelType: causal.config.modelType, generator: new Generator(o.seed + 2) },
  );
  try {
    const { trainable, total } = peft.parameterCounts();
    const params = [...peft.parameters()].filter((t) => t.requiresGrad);
    const moments = params.map((p) => [zeros(p.shape, { backend }), zeros(p.shape, { backend })] as const);
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const encode = (rows: readonly Example[]) =>
      collate(
        rows.map((e) => tokenizer.encode(e.text)),
        o.maxLength,
        padId,
      );

    status(`training: ${train.length} examples, ${o.steps} steps of ${o.batchSize}, on ${backend.name}`);
    peft.train();
    const losses: number[] = [];
    let order = shuffled(train.length, o.seed);
    let at = 0;
    let tokens = 0;
    const started = performance.now();
    for (let step = 1; step <= o.steps; step++) {
      if (at + o.batchSize > order.length) {
        order = shuffled(train.length, o.seed + step);
        at = 0;
      }
      const rows = order.slice(at, at + o.batchSize).map((i) => train[i]!);
      at += o.batchSize;
      const batch = encode(rows);
      const loss = peft.model.loss(
        batch,
        rows.map((e) => e.label),
      );
      backward(loss);
      const value = await loss.item();
      loss.dispose();
      noGrad(() => {
        params.forEach((p, i) => {
          const [m, v] = moments[i]!;
          adamwStep(p, p.grad as Tensor, m, v, { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 });
          p.grad?.dispose();
          p.grad = null;
        });
      });
      losses.push(value);
      for (const row of batch.attentionMask) for (const m of row) tokens += m;
      hooks.onStep?.({ step, steps: o.steps, loss: value, tokensPerSecond: tokens / ((performance.now() - started) / 1000) });
    }
    for (const [m, v] of moments) {
      m.dispose();
      v.dispose();
    }

    status(`evaluating on ${test.length} held-out examples…`);
    let correct = 0;
    for (let i = 0; i < test.length; i += 8) {
      const rows = test.slice(i, i + 8);
      const predicted = await peft.model.predict(encode(rows));
      predicted.forEach((p, k) => {
        if (p === rows[k]!.label) correct++;
      });
    }
    const frequency = data.labels.map((_, l) => train.filter((e) => e.label === l).length);
    const majority = frequency.indexOf(Math.max(...frequency));
    const baseline = test.filter((e) => e.label === majority).length / test.length;

    status('writing the adapter…');
    const sink = memorySink('adapter');
    await saveAdapterTo(peft, sink, { baseModelNameOrPath: o.modelName });
    sink.files.set('labels.json', new TextEncoder().encode(`${JSON.stringify(data.labels)}\n`));
    return {
      labels: data.labels,
      losses,
      accuracy: correct / test.length,
      baseline,
      testSize: test.length,
      trainSize: train.length,
      files: sink.files,
      trainable,
      total,
      deviceBytes: backend.memory().bytes,
    };
  } finally {
    peft.dispose();
  }
}
