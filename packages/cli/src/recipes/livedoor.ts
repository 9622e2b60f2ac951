// Study A end to end: livedoor news → template → LoRA on a GPT-NeoX (or Llama) backbone with a
// last-token classification head → best validation macro-F1 → test metrics, one run or the grid.
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { type Backend, type DType, type FileSink, Generator, getPeftModel, loadAdapterFrom, loraConfig, type PeftModel } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { formatLivedoor, type LivedoorExample, type LivedoorTemplate, splitLivedoor } from '@peft/datasets';
import { readLivedoor } from '@peft/datasets/node';
import { SequenceClassifier } from '@peft/heads';
import type { ModelConfig, Tokenizer } from '@peft/models';
import { loadConfig, loadModel, loadTokenizer } from '@peft/models/node';
import {
  type EpochInfo,
  type ProgressOptions,
  type RunStore,
  runSweep,
  type StepInfo,
  type SweepResult,
  type TrainResult,
  train,
  type ValidationRecord,
} from '@peft/trainer';
import { nodeRunStore } from '@peft/trainer/node';
import { createBackend, gemmNote } from '../backends.js';
import { type ClassificationMetrics, ClassificationTask, type LabelledText } from '../tasks/classification.js';
import { CURVES_FILE, writeCurves } from './curves.js';
import { type LivedoorRunSettings, RUN_SETTINGS_FILE, runSettingsText } from './run-settings.js';

/** Study A's grid: learning rate × template, selected by validation macro-F1. */
export const LIVEDOOR_GRID = { lr: [1e-4, 3e-4, 5e-4, 1e-3], template: [0, 1, 2] } as const;

/** The file beside the adapter that names the classes by id (PEFT's folder has no place for them). */
export const LABELS_FILE = 'labels.json';

export interface LivedoorLoraOptions {
  /** Default 32. */
  r?: number;
  /** Default 16. */
  alpha?: number;
  /** Default 0.1. */
  dropout?: number;
  /** Default: PEFT's default for the model type (GPT-NeoX: query_key_value; Llama: q_proj, v_proj). */
  targetModules?: readonly string[] | string;
}

export interface LivedoorOptions {
  /** A local Hugging Face model folder (config.json, weights, tokenizer) of a gpt_neox or llama model. */
  modelDir: string;
  /** The livedoor corpus: ldcc-20140209.tar.gz, the extracted text/ folder, or its parent. */
  data: string;
  /**
   * The run folder (a path, or a RunStore). A single run writes config.json, log.csv, val-metrics.json,
   * test-metrics.json, adapter/ (PEFT folder + labels.json), checkpoints/ and results.md; a sweep one
   * such folder per configuration plus summary.md, val-f1.svg, sweep.json and results.md.
   * Without it nothing is written.
   */
  out?: string | RunStore;
  /** A backend name ('cpu', the default; 'webgpu', 'cuda' when their package is installed) or a Backend instance. */
  backend?: string | Backend;
  /** GEMM worker threads of the CPU backend made for 'cpu' (default: every core). */
  threads?: number;
  /**
   * Storage dtype of the backbone. Default: bfloat16 as the study, when the backend stores it and the
   * checkpoint is a 16-bit one; a float32 checkpoint (the tiny test model) stays float32. The CPU
   * backend stores bfloat16 but computes in float32 and converts on every read, so bfloat16 saves
   * memory there, not time. LoRA weights and the head are float32 in any case.
   */
  dtype?: DType;
  /** Input template 0, 1 or 2 (default 2, the plainest: `{title}\n{body}`). */
  template?: LivedoorTemplate;
  /** Peak learning rate (default 5e-4). */
  lr?: number;
  /** Default 10. */
  epochs?: number;
  /** Examples per optimizer update (default 32). */
  batchSize?: number;
  /** Examples per forward/backward pass; gradients are accumulated up to batchSize. Default batchSize. */
  microBatchSize?: number;
  /** Rows per forward pass when evaluating. Default batchSize. */
  evalBatchSize?: number;
  /** Tokens per input, longer ones truncated (default 512). */
  maxLength?: number;
  /** Warm-up epochs of the linear schedule (default 1). */
  warmupEpochs?: number;
  /** AdamW weight decay (default 0.01). */
  weightDecay?: number;
  lora?: LivedoorLoraOptions;
  /** Recompute each decoder layer in backward instead of keeping its activations (default true, as the study). */
  gradientCheckpointing?: boolean;
  /** Seed of the split, the initial LoRA and head weights, the dropout masks and the data order (default 42). */
  seed?: number;
  /** Class names in id order; default the corpus's sorted category names. A category of the data that is not listed is an error. */
  labels?: readonly string[];
  /** Run the grid (true: learning rate ∈ {1e-4, 3e-4, 5e-4, 1e-3} × template ∈ {0, 1, 2}) or a grid of your own. */
  sweep?: boolean | { lr?: readonly number[]; template?: readonly LivedoorTemplate[] };
  /** Continue from the run folder's newest checkpoint (a sweep reuses finished configurations). */
  resume?: boolean;
  /** Stops training at the next step boundary, after writing a checkpoint. */
  signal?: AbortSignal;
  /** Progress bar / lines (default to stderr); false for silence. */
  progress?: ProgressOptions | false;
  /** Messages (model summary, split sizes, where things are written). Default stderr, none when progress is false. */
  log?: (line: string) => void;
  onStep?: (info: StepInfo) => void | Promise<void>;
  onEpoch?: (info: EpochInfo) => void | Promise<void>;
  /** Name in the results table; default the model folder's name. */
  modelName?: string;
}

/** One training run's outcome (the selected configuration's, for a sweep). */
export interface LivedoorRun {
  template: LivedoorTemplate;
  lr: number;
  /** Validation of the untrained state (epoch 0). */
  untrained: ValidationRecord;
  /** The selected epoch (the untrained state counts). */
  best: ValidationRecord;
  validation: ValidationRecord[];
  /** Test metrics of the selected state. */
  test: ClassificationMetrics;
  /** Test predictions of the selected state, in the split's order. */
  testPredictions: number[];
  /** The run's folder and its adapter folder (null without an `out` path). */
  runDir: string | null;
  adapterDir: string | null;
  /** The run's curves.svg (training loss and validation macro-F1), null without an `out` path. */
  curves: string | null;
  /** The trainer's result; null for a sweep configuration reused from an earlier process (resume). */
  train: TrainResult | null;
}

export interface LivedoorResult extends LivedoorRun {
  model: string;
  labels: string[];
  splitSizes: { train: number; validation: number; test: number };
  dtype: DType;
  /** Every configuration when `sweep` was given. */
  sweep: SweepResult | null;
  /** The study table (this run's row, then the published rows). */
  table: string;
  elapsedSeconds: number;
}

/** A row of the study's results table; values are fractions (printed in percent). */
export interface StudyRow {
  model: string;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

const pct = (x: number) => x / 100;

/** Study A's reported test results (best validation configuration per model). */
export const LIVEDOOR_PUBLISHED: readonly StudyRow[] = [
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-sft-v2',
    accuracy: pct(97.96),
    precision: pct(97.77),
    recall: pct(97.76),
    f1: pct(97.75),
  },
  { model: 'rinna/japanese-gpt-neox-3.6b', accuracy: pct(97.55), precision: pct(97.24), recall: pct(97.39), f1: pct(97.3) },
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-sft',
    accuracy: pct(97.55),
    precision: pct(97.32),
    recall: pct(97.27),
    f1: pct(97.27),
  },
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-ppo',
    accuracy: pct(97.55),
    precision: pct(97.03),
    recall: pct(97.37),
    f1: pct(97.18),
  },
  { model: 'cyberagent/open-calm-7b', accuracy: pct(97.01), precision: pct(96.76), recall: pct(96.42), f1: pct(96.55) },
  { model: 'cyberagent/open-calm-3b', accuracy: pct(96.88), precision: pct(96.38), recall: pct(96.51), f1: pct(96.42) },
  { model: 'cyberagent/open-calm-1b', accuracy: pct(94.43), precision: pct(94.24), recall: pct(93.8), f1: pct(93.98) },
];

export interface StudyTableOptions {
  /** Append the study's published rows, marked "(published)". Default false. */
  published?: boolean;
}

/** The study's table layout: model | accuracy | precision | recall | F1, in percent with 2 decimals. */
export function formatStudyTable(rows: readonly StudyRow[], opts: StudyTableOptions = {}): string {
  const all = [...rows, ...(opts.published ? LIVEDOOR_PUBLISHED.map((r) => ({ ...r, model: `${r.model} (published)` })) : [])];
  const cell = (x: number) => (Number.isFinite(x) ? (x * 100).toFixed(2) : String(x));
  const lines = ['| model | accuracy | precision | recall | F1 |', '|---|---|---|---|---|'];
  for (const r of all) lines.push(`| ${r.model} | ${cell(r.accuracy)} | ${cell(r.precision)} | ${cell(r.recall)} | ${cell(r.f1)} |`);
  return `${lines.join('\n')}\n`;
}

function fail(message: string): never {
  throw new Error(`livedoor: ${message}`);
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) fail(`${name} must be a positive integer, got ${v}`);
  return v;
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) fail(`${name} must be a number > 0, got ${v}`);
  return v;
}

function template(v: unknown): LivedoorTemplate {
  if (v !== 0 && v !== 1 && v !== 2) fail(`template must be 0, 1 or 2, got ${JSON.stringify(v)}`);
  return v;
}

async function exists(path: string): Promise<'dir' | 'file' | null> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return null;
  }
}

interface Resolved {
  epochs: number;
  batchSize: number;
  microBatchSize: number;
  evalBatchSize: number;
  maxLength: number;
  seed: number;
  r: number;
  alpha: number;
  dropout: number;
  warmupEpochs: number;
  weightDecay: number;
  gradientCheckpointing: boolean;
  grid: { lr: number[]; template: LivedoorTemplate[] } | null;
}

/** Every option checked before anything is loaded; errors name the option and the value. */
function resolveOptions(o: LivedoorOptions): Resolved {
  const batchSize = positiveInt('batchSize', o.batchSize ?? 32);
  const microBatchSize = positiveInt('microBatchSize', o.microBatchSize ?? batchSize);
  if (microBatchSize > batchSize) fail(`microBatchSize ${microBatchSize} is larger than batchSize ${batchSize}`);
  template(o.template ?? 2);
  positive('lr', o.lr ?? 5e-4);
  const seed = o.seed ?? 42;
  if (!Number.isSafeInteger(seed) || seed < 0) fail(`seed must be a non-negative integer, got ${seed}`);
  const dropout = o.lora?.dropout ?? 0.1;
  if (!(dropout >= 0 && dropout < 1)) fail(`lora.dropout must be in [0, 1), got ${dropout}`);
  let grid: Resolved['grid'] = null;
  if (o.sweep) {
    const g = o.sweep === true ? {} : o.sweep;
    const lrs = [...(g.lr ?? LIVEDOOR_GRID.lr)];
    const templates = [...(g.template ?? LIVEDOOR_GRID.template)] as LivedoorTemplate[];
    if (lrs.length === 0 || templates.length === 0) fail('sweep needs at least one learning rate and one template');
    for (const lr of lrs) positive('sweep lr', lr);
    for (const t of templates) template(t);
    grid = { lr: lrs, template: templates };
  }
  return {
    epochs: positiveInt('epochs', o.epochs ?? 10),
    batchSize,
    microBatchSize,
    evalBatchSize: positiveInt('evalBatchSize', o.evalBatchSize ?? batchSize),
    maxLength: positiveInt('maxLength', o.maxLength ?? 512),
    seed,
    r: positiveInt('lora.r', o.lora?.r ?? 32),
    alpha: positive('lora.alpha', o.lora?.alpha ?? 16),
    dropout,
    warmupEpochs: o.warmupEpochs ?? 1,
    weightDecay: o.weightDecay ?? 0.01,
    gradientCheckpointing: o.gradientCheckpointing ?? true,
    grid,
  };
}

/** Checks the data path and the model folder (config.json, model_type) before any weights or articles are read. */
async function checkInputs(o: LivedoorOptions): Promise<ModelConfig> {
  if (!(await exists(o.data))) {
    fail(`data path ${o.data} does not exist: pass ldcc-20140209.tar.gz, the extracted text/ folder, or its parent`);
  }
  const kind = await exists(o.modelDir);
  if (kind !== 'dir') {
    fail(
      `model folder ${o.modelDir} ${kind === 'file' ? 'is a file' : 'does not exist'}: pass a local Hugging Face model folder (config.json, weights, tokenizer files)`,
    );
  }
  // The models package's own error for a missing config.json or an unsupported model_type.
  return loadConfig(o.modelDir);
}

/** Class ids by `labels` (default: the corpus's sorted categories); a category outside them is an error naming it. */
function relabel(
  examples: readonly LivedoorExample[],
  corpusLabels: readonly string[],
  labels: readonly string[] | undefined,
  data: string,
) {
  if (!labels) return { labels: [...corpusLabels], examples: [...examples] };
  if (labels.length === 0) fail('labels is empty: give the class names in id order, or leave it out to use the corpus categories');
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) fail(`labels lists "${dup}" twice`);
  const index = new Map(labels.map((l, i) => [l, i]));
  const unknown = corpusLabels.filter((c) => !index.has(c));
  if (unknown.length > 0) {
    fail(
      `the data in ${data} has categor${unknown.length > 1 ? 'ies' : 'y'} ${unknown.map((c) => `"${c}"`).join(', ')} that the classifier's labels [${labels.join(', ')}] do not have: add ${unknown.length > 1 ? 'them' : 'it'} to labels, or leave labels out to use the corpus categories`,
    );
  }
  return { labels: [...labels], examples: examples.map((e) => ({ ...e, label: index.get(e.category)! })) };
}

function storeOf(out: LivedoorOptions['out']): { store: RunStore | undefined; dir: string | null } {
  if (out === undefined) return { store: undefined, dir: null };
  if (typeof out === 'string') return { store: nodeRunStore(resolve(out)), dir: resolve(out) };
  return { store: out, dir: null };
}

/** Writes the labels and the run's settings (peft_run.json: what eval and predict reuse) beside the adapter, after the PEFT files. */
function withLabels(task: ClassificationTask, labels: readonly string[], settings: LivedoorRunSettings) {
  const save = task.saveArtifacts.bind(task);
  task.saveArtifacts = async (sink: FileSink) => {
    await save(sink);
    await sink.writeFile(LABELS_FILE, `${JSON.stringify(labels, null, 2)}\n`);
    await sink.writeFile(RUN_SETTINGS_FILE, runSettingsText(settings));
  };
}

/** The backend to run on; one made here (from a name) is destroyed at the end. */
async function backendOf(o: LivedoorOptions): Promise<{ backend: Backend; owned: boolean }> {
  const b = o.backend ?? 'cpu';
  if (typeof b !== 'string') return { backend: b, owned: false };
  if (b === 'cpu') return { backend: createCpuBackend(o.threads === undefined ? {} : { threads: o.threads }), owned: true };
  return { backend: await createBackend(b), owned: true };
}

/** The study's dtype rule: bfloat16 for a 16-bit checkpoint on a backend that stores it; float32 stays float32. */
export function livedoorDtype(config: ModelConfig, backend: Backend, requested?: DType): DType {
  if (requested) {
    if (!backend.dtypes.includes(requested))
      fail(`backend "${backend.name}" does not store ${requested}: it stores ${backend.dtypes.join(', ')}`);
    return requested;
  }
  if (config.torchDtype === null || config.torchDtype === 'float32') return 'float32';
  return backend.dtypes.includes('bfloat16') ? 'bfloat16' : 'float32';
}

interface Prepared {
  labels: string[];
  split: { train: LivedoorExample[]; validation: LivedoorExample[]; test: LivedoorExample[] };
  tokenizer: Tokenizer;
  config: ModelConfig;
}

function texts(examples: readonly LivedoorExample[], t: LivedoorTemplate): LabelledText[] {
  return examples.map((e) => ({ text: formatLivedoor(e, t), label: e.label }));
}

/**
 * Study A, end to end: reads the corpus, splits it 8:1:1 with the seed, formats the template, puts
 * LoRA (r 32, α 16, dropout 0.1, PEFT's default target) and a bias-free `score` head on the model,
 * trains with AdamW (weight decay 0.01, linear schedule, 1 warm-up epoch), keeps the epoch with the
 * best validation macro-F1 (the untrained state counts) and reports test accuracy and macro
 * precision / recall / F1. With `sweep`, runs the learning-rate × template grid and reports the
 * configuration with the best validation F1. Inputs are checked before anything is trained.
 */
export async function runLivedoor(options: LivedoorOptions): Promise<LivedoorResult> {
  const started = performance.now();
  const r = resolveOptions(options);
  const quiet = options.progress === false;
  const log = options.log ?? (quiet ? () => {} : (line: string) => void process.stderr.write(`${line}\n`));
  const modelConfig = await checkInputs(options);
  const { store, dir } = storeOf(options.out);
  const modelName = options.modelName ?? basename(resolve(options.modelDir));
  const { backend, owned } = await backendOf(options);
  try {
    const corpus = await readLivedoor(options.data);
    const { labels, examples } = relabel(corpus.examples, corpus.labels, options.labels, options.data);
    const split = splitLivedoor(examples, { seed: r.seed });
    const tokenizer = await loadTokenizer(options.modelDir);
    const dtype = livedoorDtype(modelConfig, backend, options.dtype);
    const prepared: Prepared = { labels, split, tokenizer, config: modelConfig };
    log(
      `livedoor: ${examples.length} articles in ${labels.length} categories → train ${split.train.length} / validation ${split.validation.length} / test ${split.test.length} (seed ${r.seed})`,
    );
    log(`model: ${modelName} (${modelConfig.modelType}, ${dtype} on the ${backend.name} backend${gemmNote(backend)})`);

    const runOne = async (lr: number, t: LivedoorTemplate, out: RunStore | undefined, resume: boolean, runDir: string | null) =>
      trainOne(options, r, prepared, { backend, dtype, lr, template: t, out, resume, runDir, log, modelName });

    let run: LivedoorRun;
    let sweep: SweepResult | null = null;
    if (r.grid) {
      const runs = new Map<string, LivedoorRun>();
      sweep = await runSweep(
        r.grid,
        async (config, ctx) => {
          const one = await runOne(
            config.lr as number,
            config.template as LivedoorTemplate,
            ctx.out,
            ctx.resume,
            dir ? join(dir, ctx.name) : null,
          );
          runs.set(ctx.name, one);
          return one.train!;
        },
        {
          out: store,
          resume: options.resume,
          metrics: [
            { key: 'accuracy', label: 'accuracy' },
            { key: 'precision', label: 'precision' },
            { key: 'recall', label: 'recall' },
            { key: 'f1', label: 'F1' },
          ],
          title: `Study A sweep: ${modelName}, validation macro-F1 per epoch`,
          log,
        },
      );
      const best = sweep.best;
      const fresh = runs.get(best.name);
      if (fresh) run = fresh;
      else {
        // The selected configuration finished in an earlier process: its numbers come from its run folder.
        const runDir = dir ? join(dir, best.name) : null;
        const validation = best.result.validation;
        run = {
          template: best.config.template as LivedoorTemplate,
          lr: best.config.lr as number,
          untrained: validation[0] ?? best.result.best,
          best: best.result.best,
          validation,
          test: best.result.test?.metrics as ClassificationMetrics,
          testPredictions: [],
          runDir,
          adapterDir: runDir ? join(runDir, 'adapter') : null,
          curves: runDir && (await exists(join(runDir, CURVES_FILE))) ? join(runDir, CURVES_FILE) : null,
          train: null,
        };
      }
      log(`sweep: selected ${best.name} by validation macro-F1 ${(best.result.best.score * 100).toFixed(2)}`);
    } else {
      run = await runOne(options.lr ?? 5e-4, template(options.template ?? 2), store, options.resume ?? false, dir);
    }

    const row: StudyRow = {
      model: `${modelName} (template ${run.template}, lr ${run.lr})`,
      accuracy: run.test.accuracy,
      precision: run.test.precision,
      recall: run.test.recall,
      f1: run.test.f1,
    };
    const table = formatStudyTable([row], { published: true });
    if (store) {
      await store.writeFile(
        'results.md',
        `# Study A: ${modelName}\n\nTest metrics of the epoch with the best validation macro-F1 (percent), beside the study's published numbers.\n\n${table}`,
      );
    }
    return {
      ...run,
      model: modelName,
      labels,
      splitSizes: { train: split.train.length, validation: split.validation.length, test: split.test.length },
      dtype,
      sweep,
      table,
      elapsedSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    if (owned) backend.destroy();
  }
}

interface OneRun {
  backend: Backend;
  dtype: DType;
  lr: number;
  template: LivedoorTemplate;
  out: RunStore | undefined;
  resume: boolean;
  runDir: string | null;
  log: (line: string) => void;
  modelName: string;
}

/** Builds a fresh model + LoRA + head (same seeds every time, so a resumed run starts from the same state) and trains it. */
async function trainOne(options: LivedoorOptions, r: Resolved, p: Prepared, one: OneRun): Promise<LivedoorRun> {
  const { peft, dropoutGenerator } = await buildClassifier(options.modelDir, p.labels, {
    backend: one.backend,
    dtype: one.dtype,
    seed: r.seed,
    r: r.r,
    alpha: r.alpha,
    dropout: r.dropout,
    targetModules: options.lora?.targetModules,
    gradientCheckpointing: r.gradientCheckpointing,
  });
  try {
    one.log(peft.printTrainableParameters(() => {}));
    const task = new ClassificationTask({
      peft,
      tokenizer: p.tokenizer,
      data: {
        train: texts(p.split.train, one.template),
        validation: texts(p.split.validation, one.template),
        test: texts(p.split.test, one.template),
      },
      labels: p.labels,
      maxLength: r.maxLength,
      evalBatchSize: r.evalBatchSize,
      dropoutGenerator,
      baseModelNameOrPath: options.modelDir,
      describe: { model: one.modelName, modelType: p.config.modelType, dtype: one.dtype, template: one.template },
    });
    withLabels(task, p.labels, {
      format: 1,
      study: 'livedoor',
      task: 'sequence-classification',
      model: resolve(options.modelDir),
      modelType: p.config.modelType,
      data: resolve(options.data),
      dtype: one.dtype,
      seed: r.seed,
      template: one.template,
      maxLength: r.maxLength,
      evalBatchSize: r.evalBatchSize,
      labels: [...p.labels],
      pooling: 'last-token',
    });
    const result = await train(task, {
      epochs: r.epochs,
      batchSize: r.batchSize,
      microBatchSize: r.microBatchSize,
      lr: one.lr,
      weightDecay: r.weightDecay,
      warmupEpochs: r.warmupEpochs,
      seed: r.seed,
      out: one.out,
      resume: one.resume,
      signal: options.signal,
      progress: options.progress,
      onStep: options.onStep,
      onEpoch: options.onEpoch,
      config: {
        study: 'A',
        model: one.modelName,
        modelType: p.config.modelType,
        dtype: one.dtype,
        template: one.template,
        maxLength: r.maxLength,
        lora: { r: r.r, alpha: r.alpha, dropout: r.dropout, targetModules: options.lora?.targetModules ?? null },
        gradientCheckpointing: r.gradientCheckpointing,
        labels: p.labels,
        split: { train: p.split.train.length, validation: p.split.validation.length, test: p.split.test.length },
      },
    });
    const drawn = one.out
      ? await writeCurves(one.out, { scoreLabel: 'macro-F1', title: `${one.modelName}, template ${one.template}, lr ${one.lr}` })
      : false;
    const test = result.test!.metrics as ClassificationMetrics;
    const testPredictions = task.lastPredictions.get('test') ?? (await task.predict('test'));
    return {
      template: one.template,
      lr: one.lr,
      untrained: result.validation[0]!,
      best: result.best,
      validation: result.validation,
      test,
      testPredictions,
      runDir: one.runDir,
      adapterDir: one.runDir ? join(one.runDir, 'adapter') : null,
      curves: drawn && one.runDir ? join(one.runDir, CURVES_FILE) : null,
      train: result,
    };
  } finally {
    peft.dispose();
  }
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
async function buildClassifier(modelDir: string, labels: readonly string[], o: ClassifierOptions): Promise<Classifier> {
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
    fail(
      `${join(adapterDir, LABELS_FILE)} cannot be read (${(error as Error).message}): is this an adapter folder written by runLivedoor?`,
    );
  }
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string'))
    fail(`${join(adapterDir, LABELS_FILE)} must be a JSON list of class names`);
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
