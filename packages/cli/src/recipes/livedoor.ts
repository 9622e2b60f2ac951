// Study A end to end: livedoor news → template → LoRA on a GPT-NeoX (or Llama) backbone with a
// last-token classification head → best validation macro-F1 → test metrics, one run or the grid.
// Options are checked first (resolveOptions, checkInputs), then the run (runLivedoor: one
// configuration by trainOne, or the grid by runGrid), then the report (studyReport).
import { basename, join, resolve } from 'node:path';
import type { Backend, DType } from '@peft/core';
import { formatLivedoor, type LivedoorExample, type LivedoorTemplate, splitLivedoor } from '@peft/datasets';
import { readLivedoor } from '@peft/datasets/node';
import type { ModelConfig, Tokenizer } from '@peft/models';
import { loadTokenizer } from '@peft/models/node';
import {
  type EpochInfo,
  type ProgressOptions,
  type RunStore,
  runSweep,
  type StepInfo,
  type SweepResult,
  type TrainCommunicator,
  type TrainResult,
  train,
  type ValidationRecord,
} from '@peft/trainer';
import { gemmNote } from '../backends.js';
import { type ClassificationMetrics, ClassificationTask, type LabelledText } from '../tasks/classification.js';
import {
  curvesIn,
  drawCurves,
  pathKind,
  recipeLog,
  runStoreOf,
  StudyChecks,
  saveBesideAdapter,
  withBackend,
  writeResults,
} from './common.js';
import { buildClassifier, LABELS_FILE, livedoorDtype } from './livedoor-classifier.js';
import { formatStudyTable, type StudyRow } from './livedoor-published.js';
import { type LivedoorRunSettings, RUN_SETTINGS_FILE, runSettingsText } from './run-settings.js';

export { type Classifier, type ClassifierOptions, LABELS_FILE, livedoorDtype, loadLivedoorClassifier } from './livedoor-classifier.js';
export { formatStudyTable, LIVEDOOR_PUBLISHED, type StudyRow, type StudyTableOptions } from './livedoor-published.js';

/** Study A's grid: learning rate × template, selected by validation macro-F1. */
export const LIVEDOOR_GRID = { lr: [1e-4, 3e-4, 5e-4, 1e-3], template: [0, 1, 2] } as const;

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
  /** The GPU a 'cuda' backend made from a name uses (default: the local rank under an MPI launcher, else 0). */
  device?: number;
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
  /** A training row in log.csv every this many updates (default 10). */
  logEverySteps?: number;
  /** CUDA graphs (`TrainOptions.graph`): 'auto' (default), true or false. */
  graph?: boolean | 'auto';
  /**
   * Data-parallel training over the processes of an MPI job (`peft train` under mpirun passes it):
   * `batchSize` is per process, only rank 0 writes `out`, evaluation is split over the ranks.
   */
  communicator?: TrainCommunicator;
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

const livedoor: StudyChecks = new StudyChecks('livedoor');

function template(v: unknown): LivedoorTemplate {
  if (v !== 0 && v !== 1 && v !== 2) livedoor.fail(`template must be 0, 1 or 2, got ${JSON.stringify(v)}`);
  return v;
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
  const batchSize = livedoor.positiveInt('batchSize', o.batchSize ?? 32);
  const microBatchSize = livedoor.positiveInt('microBatchSize', o.microBatchSize ?? batchSize);
  if (microBatchSize > batchSize) livedoor.fail(`microBatchSize ${microBatchSize} is larger than batchSize ${batchSize}`);
  template(o.template ?? 2);
  livedoor.positive('lr', o.lr ?? 5e-4);
  const seed = o.seed ?? 42;
  if (!Number.isSafeInteger(seed) || seed < 0) livedoor.fail(`seed must be a non-negative integer, got ${seed}`);
  const dropout = livedoor.dropout('lora.dropout', o.lora?.dropout ?? 0.1);
  let grid: Resolved['grid'] = null;
  if (o.sweep && (o.communicator?.size ?? 1) > 1)
    livedoor.fail(`sweep runs in one process: over ${o.communicator!.size} processes, train one configuration`);
  if (o.sweep) {
    const g = o.sweep === true ? {} : o.sweep;
    const lrs = [...(g.lr ?? LIVEDOOR_GRID.lr)];
    const templates = [...(g.template ?? LIVEDOOR_GRID.template)] as LivedoorTemplate[];
    if (lrs.length === 0 || templates.length === 0) livedoor.fail('sweep needs at least one learning rate and one template');
    for (const lr of lrs) livedoor.positive('sweep lr', lr);
    for (const t of templates) template(t);
    grid = { lr: lrs, template: templates };
  }
  return {
    epochs: livedoor.positiveInt('epochs', o.epochs ?? 10),
    batchSize,
    microBatchSize,
    evalBatchSize: livedoor.positiveInt('evalBatchSize', o.evalBatchSize ?? batchSize),
    maxLength: livedoor.positiveInt('maxLength', o.maxLength ?? 512),
    seed,
    r: livedoor.positiveInt('lora.r', o.lora?.r ?? 32),
    alpha: livedoor.positive('lora.alpha', o.lora?.alpha ?? 16),
    dropout,
    warmupEpochs: o.warmupEpochs ?? 1,
    weightDecay: o.weightDecay ?? 0.01,
    gradientCheckpointing: o.gradientCheckpointing ?? true,
    grid,
  };
}

/** Checks the data path and the model folder (config.json, model_type) before any weights or articles are read. */
async function checkInputs(o: LivedoorOptions): Promise<ModelConfig> {
  if ((await pathKind(o.data)) === null) {
    livedoor.fail(`data path ${o.data} does not exist: pass ldcc-20140209.tar.gz, the extracted text/ folder, or its parent`);
  }
  return livedoor.modelConfig(o.modelDir);
}

/** Class ids by `labels` (default: the corpus's sorted categories); a category outside them is an error naming it. */
function relabel(
  examples: readonly LivedoorExample[],
  corpusLabels: readonly string[],
  labels: readonly string[] | undefined,
  data: string,
) {
  if (!labels) return { labels: [...corpusLabels], examples: [...examples] };
  if (labels.length === 0) livedoor.fail('labels is empty: give the class names in id order, or leave it out to use the corpus categories');
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) livedoor.fail(`labels lists "${dup}" twice`);
  const index = new Map(labels.map((l, i) => [l, i]));
  const unknown = corpusLabels.filter((c) => !index.has(c));
  if (unknown.length > 0) {
    livedoor.fail(
      `the data in ${data} has categor${unknown.length > 1 ? 'ies' : 'y'} ${unknown.map((c) => `"${c}"`).join(', ')} that the classifier's labels [${labels.join(', ')}] do not have: add ${unknown.length > 1 ? 'them' : 'it'} to labels, or leave labels out to use the corpus categories`,
    );
  }
  return { labels: [...labels], examples: examples.map((e) => ({ ...e, label: index.get(e.category)! })) };
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
  const log = recipeLog(options);
  const modelConfig = await checkInputs(options);
  const { store, dir } = runStoreOf(options.out, options.communicator);
  const modelName = options.modelName ?? basename(resolve(options.modelDir));
  return withBackend(options, async (backend) => {
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

    const runOne: RunOne = (lr, t, out, resume, runDir) =>
      trainOne(options, r, prepared, { backend, dtype, lr, template: t, out, resume, runDir, log, modelName });
    const { run, sweep } = r.grid
      ? await runGrid(r.grid, runOne, { store, dir, resume: options.resume, modelName, log })
      : { run: await runOne(options.lr ?? 5e-4, template(options.template ?? 2), store, options.resume ?? false, dir), sweep: null };

    const table = await studyReport(run, modelName, store);
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
  });
}

/** The study's table (this run's row, then the published rows), also written to results.md in the run folder. */
async function studyReport(run: LivedoorRun, modelName: string, store: RunStore | undefined): Promise<string> {
  const row: StudyRow = {
    model: `${modelName} (template ${run.template}, lr ${run.lr})`,
    accuracy: run.test.accuracy,
    precision: run.test.precision,
    recall: run.test.recall,
    f1: run.test.f1,
  };
  const table = formatStudyTable([row], { published: true });
  if (store) {
    await writeResults(store, {
      title: `Study A: ${modelName}`,
      intro: "Test metrics of the epoch with the best validation macro-F1 (percent), beside the study's published numbers.",
      table,
    });
  }
  return table;
}

type RunOne = (lr: number, t: LivedoorTemplate, out: RunStore | undefined, resume: boolean, runDir: string | null) => Promise<LivedoorRun>;

/** Runs every configuration of the grid (one folder each) and returns the one with the best validation macro-F1. */
async function runGrid(
  grid: NonNullable<Resolved['grid']>,
  runOne: RunOne,
  o: { store: RunStore | undefined; dir: string | null; resume?: boolean; modelName: string; log: (line: string) => void },
): Promise<{ run: LivedoorRun; sweep: SweepResult }> {
  const runs = new Map<string, LivedoorRun>();
  const sweep = await runSweep(
    grid,
    async (config, ctx) => {
      const one = await runOne(
        config.lr as number,
        config.template as LivedoorTemplate,
        ctx.out,
        ctx.resume,
        o.dir ? join(o.dir, ctx.name) : null,
      );
      runs.set(ctx.name, one);
      return one.train!;
    },
    {
      out: o.store,
      resume: o.resume,
      metrics: [
        { key: 'accuracy', label: 'accuracy' },
        { key: 'precision', label: 'precision' },
        { key: 'recall', label: 'recall' },
        { key: 'f1', label: 'F1' },
      ],
      title: `Study A sweep: ${o.modelName}, validation macro-F1 per epoch`,
      log: o.log,
    },
  );
  const best = sweep.best;
  const run = runs.get(best.name) ?? (await reusedRun(best, o.dir ? join(o.dir, best.name) : null));
  o.log(`sweep: selected ${best.name} by validation macro-F1 ${(best.result.best.score * 100).toFixed(2)}`);
  return { run, sweep };
}

/** A grid configuration that finished in an earlier process: its numbers come from its run folder. */
async function reusedRun(best: SweepResult['best'], runDir: string | null): Promise<LivedoorRun> {
  const validation = best.result.validation;
  return {
    template: best.config.template as LivedoorTemplate,
    lr: best.config.lr as number,
    untrained: validation[0] ?? best.result.best,
    best: best.result.best,
    validation,
    test: best.result.test?.metrics as ClassificationMetrics,
    testPredictions: [],
    runDir,
    adapterDir: runDir ? join(runDir, 'adapter') : null,
    curves: await curvesIn(runDir),
    train: null,
  };
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
    // The labels and the run's settings (peft_run.json: what eval and predict reuse) beside the adapter.
    const settings: LivedoorRunSettings = {
      format: 1,
      study: 'livedoor',
      task: 'sequence-classification',
      model: resolve(options.modelDir),
      modelType: p.config.modelType,
      data: resolve(options.data),
      dtype: one.dtype,
      seed: r.seed,
      loraDropout: r.dropout,
      template: one.template,
      maxLength: r.maxLength,
      evalBatchSize: r.evalBatchSize,
      labels: [...p.labels],
      pooling: 'last-token',
    };
    saveBesideAdapter(task, {
      [LABELS_FILE]: `${JSON.stringify(p.labels, null, 2)}\n`,
      [RUN_SETTINGS_FILE]: runSettingsText(settings),
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
      logEverySteps: options.logEverySteps,
      graph: options.graph,
      communicator: options.communicator,
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
    const curves = await drawCurves(one.out, one.runDir, {
      scoreLabel: 'macro-F1',
      title: `${one.modelName}, template ${one.template}, lr ${one.lr}`,
    });
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
      curves,
      train: result,
    };
  } finally {
    peft.dispose();
  }
}
