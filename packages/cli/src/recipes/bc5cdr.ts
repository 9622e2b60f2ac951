// Study B end to end: BC5CDR → one LoRA adapter per entity type (or one for both) trained to
// generate tagged or extracted mentions → dev and test entity-level P/R/F1 beside the study's
// numbers. Options are checked first (resolveSettings, prepare), then the run (runBc5cdr, one
// adapter per trainAdapter), then the report (report).
import { join, resolve } from 'node:path';
import { type Backend, type DType, Generator, getPeftModel, loraConfig, type PeftModel } from '@peft/core';
import { BC5CDR_LABELS, corpusStatistics, formatStatisticsTable, type NerMethod, type Sentence } from '@peft/datasets';
import type { CausalLM, ModelConfig, Tokenizer } from '@peft/models';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { type ProgressOptions, type RunStore, readJson, type TrainCommunicator, type TrainResult, train } from '@peft/trainer';
import { gemmNote } from '../backends.js';
import { fromRoot } from '../distributed.js';
import {
  BC5CDR_PRIORITY,
  GenerativeNerTask,
  mergeNerPredictions,
  type NerData,
  type NerPrediction,
  type NerScores,
  scoreNer,
} from '../tasks/ner.js';
import { type Bc5cdrCorpus, readBc5cdrCorpus } from './bc5cdr-corpus.js';
import { BC5CDR_LAYER_SETS, type Bc5cdrLayers, bc5cdrTargetModules } from './bc5cdr-layers.js';
import { type Bc5cdrPublishedNumber, bc5cdrPublished, bc5cdrResultsTable } from './bc5cdr-published.js';
import { curvesIn, drawCurves, recipeLog, runStoreOf, StudyChecks, saveBesideAdapter, withBackend, writeResults } from './common.js';
import { RUN_SETTINGS_FILE, runSettingsText } from './run-settings.js';

export {
  type Bc5cdrCorpus,
  type Bc5cdrFiles,
  type Bc5cdrFormat,
  findBc5cdrFiles,
  readBc5cdrCorpus,
} from './bc5cdr-corpus.js';
export { BC5CDR_LAYER_SETS, BC5CDR_LLAMA_LAYERS, type Bc5cdrLayers, bc5cdrTargetModules } from './bc5cdr-layers.js';
export { type Bc5cdrPublishedNumber, type Bc5cdrSetting, bc5cdrPublished, bc5cdrResultsTable } from './bc5cdr-published.js';

export interface Bc5cdrOptions {
  /** A local Hugging Face model folder (Llama-2-7B for the study; the bundled tiny Llama for a smoke run). */
  modelDir: string;
  /** The BC5CDR folder: CDR_*Set.PubTator.txt, CDR_*Set.BioC.xml, or BIO files (see findBc5cdrFiles). */
  data: string;
  /** The run folder: one trainer run folder per adapter (`Disease/`, `Chemical/` or `all/`), results.json, results.md. */
  out: string;
  /**
   * Data-parallel training over the processes of an MPI job (`peft train` under mpirun passes it):
   * `batchSize` is per process, only rank 0 writes `out`, generation on dev and test is split over the ranks.
   */
  communicator?: TrainCommunicator;
  /** A training row in log.csv every this many updates (default 10). */
  logEverySteps?: number;
  /** CUDA graphs (`TrainOptions.graph`): 'auto' (default), true or false. */
  graph?: boolean | 'auto';
  /** A backend name ('cpu', the default; 'webgpu', 'cuda' when their package is installed) or a Backend instance (yours to destroy). */
  backend?: string | Backend;
  /** GEMM worker threads of the CPU backend made for 'cpu' (default: every core). */
  threads?: number;
  /** The GPU a 'cuda' backend made from a name uses (default: the local rank under an MPI launcher, else 0). */
  device?: number;
  /** Storage dtype of the base weights. Default: bfloat16 for a 16-bit checkpoint (Llama-2's float16) when the backend stores it, float32 for a float32 one. LoRA weights are float32. */
  dtype?: DType;
  /** Finding 2: `tagging` (default) or `extraction`. */
  method?: NerMethod;
  /** Entity types to learn and score, of Disease and Chemical. Default both; `['Chemical']` is finding 1's setting (Chemical only). */
  types?: readonly string[];
  /** `per-label` (default): one adapter per entity type, trained and run separately, their predictions merged (Disease > Chemical); `all`: one adapter, one output with both types. */
  labels?: 'per-label' | 'all';
  /** Finding 1: the instruction before `Input:`. Default false (input only). */
  prompt?: boolean;
  /** Finding 3: LoRA layer set, or module names. Default `all` (finding 4's). */
  layers?: Bc5cdrLayers | readonly string[];
  /** LoRA rank. Default 128 (finding 4's). */
  r?: number;
  /** lora_alpha. Default 2·r (the study does not give it; this keeps alpha/r = 2 across the rank grid). */
  alpha?: number;
  /** lora_dropout. Default 0.05. */
  dropout?: number;
  /** Peak learning rate (linear decay, no warm-up). Default 1e-4. */
  lr?: number;
  /** Default 3. */
  epochs?: number;
  /** Examples per optimizer update. Default 8. */
  batchSize?: number;
  /** Examples per forward pass (gradient accumulation). Default batchSize. */
  microBatchSize?: number;
  /** Longest training sequence in tokens. Default 256 (BC5CDR sentences with their tagged copy fit). */
  maxLength?: number;
  /** Sentences per generation batch. Default 16. */
  evalBatchSize?: number;
  /** AdamW weight decay. Default 0 (the HF Trainer's). */
  weightDecay?: number;
  /** Seed of the LoRA init, dropout and data order. Default 42. */
  seed?: number;
  /** Use only the first n sentences of each split (a quick check). Default all. */
  limit?: number | { train?: number; validation?: number; test?: number };
  /** Recompute each decoder layer in backward instead of keeping its activations. Default true (a 7B model on one GPU needs it). */
  gradientCheckpointing?: boolean;
  /** Score the untrained adapter too (epoch 0). Default false: generation over the dev set is the slow part. */
  evaluateUntrained?: boolean;
  /** Continue an interrupted run in `out`: finished adapters are reused, the interrupted one resumes from its checkpoint. */
  resume?: boolean;
  signal?: AbortSignal;
  /** Lines of the report (trainable parameters, corpus, results table). Default standard error (as the progress bar), none when progress is false. */
  log?: (line: string) => void;
  /** Training progress; false for silence. */
  progress?: ProgressOptions | false;
}

export interface Bc5cdrRun {
  /** `Disease`, `Chemical` or `all`. */
  name: string;
  dir: string;
  /** The PEFT adapter folder. */
  adapterDir: string;
  /** PEFT's print_trainable_parameters line. */
  trainableLine: string;
  /** The run's curves.svg (training loss, validation entity F1), null when there is no log to draw. */
  curves: string | null;
  /** Null when a finished run folder was reused (resume). */
  train: TrainResult | null;
  validation: NerScores;
  test: NerScores;
}

export interface Bc5cdrResult {
  out: string;
  settings: Record<string, unknown>;
  runs: Bc5cdrRun[];
  /** Merged over the runs (per-label: Disease > Chemical), entity-level micro P/R/F1. */
  validation: NerScores;
  test: NerScores;
  published: Bc5cdrPublishedNumber[];
  /** The results table as printed (Markdown). */
  table: string;
  seconds: number;
}

const bc5cdr: StudyChecks = new StudyChecks('bc5cdr');

/** Every option checked before anything is loaded; errors name the option and the value. */
function resolveSettings(o: Bc5cdrOptions) {
  const method = bc5cdr.oneOf('method', o.method ?? 'tagging', ['tagging', 'extraction'] as const);
  const labels = bc5cdr.oneOf('labels', o.labels ?? 'per-label', ['per-label', 'all'] as const);
  const layers = o.layers ?? 'all';
  if (typeof layers === 'string' && !BC5CDR_LAYER_SETS.includes(layers)) {
    bc5cdr.fail(`layers "${layers}" is unknown: use one of ${BC5CDR_LAYER_SETS.join(', ')} (or a list of module names)`);
  }
  const r = bc5cdr.positiveInt('r', o.r ?? 128);
  const dropout = bc5cdr.dropout('dropout', o.dropout ?? 0.05);
  const limit = typeof o.limit === 'number' ? { train: o.limit, validation: o.limit, test: o.limit } : (o.limit ?? {});
  for (const [k, v] of Object.entries(limit)) if (v !== undefined) bc5cdr.positiveInt(`limit.${k}`, v);
  const batchSize = bc5cdr.positiveInt('batchSize', o.batchSize ?? 8);
  const types = [...(o.types ?? BC5CDR_LABELS)];
  if (types.length === 0 || types.some((t) => !BC5CDR_LABELS.includes(t)) || new Set(types).size !== types.length) {
    bc5cdr.fail(`types ${JSON.stringify(types)} must be distinct entity types of ${BC5CDR_LABELS.join(', ')}`);
  }
  // Disease before Chemical, whatever order they were given in (the merge priority and the table order).
  types.sort((a, b) => BC5CDR_LABELS.indexOf(a) - BC5CDR_LABELS.indexOf(b));
  return {
    types,
    method,
    labels,
    prompt: o.prompt ?? false,
    layers,
    r,
    alpha: bc5cdr.positive('alpha', o.alpha ?? 2 * r),
    dropout,
    lr: bc5cdr.positive('lr', o.lr ?? 1e-4),
    epochs: bc5cdr.positiveInt('epochs', o.epochs ?? 3),
    batchSize,
    microBatchSize: bc5cdr.positiveInt('microBatchSize', o.microBatchSize ?? batchSize),
    maxLength: bc5cdr.positiveInt('maxLength', o.maxLength ?? 256),
    evalBatchSize: bc5cdr.positiveInt('evalBatchSize', o.evalBatchSize ?? 16),
    weightDecay: o.weightDecay ?? 0,
    seed: o.seed ?? 42,
    limit,
    gradientCheckpointing: o.gradientCheckpointing ?? true,
    evaluateUntrained: o.evaluateUntrained ?? false,
  };
}

function predictionsJson(predictions: readonly NerPrediction[]): string {
  return `${JSON.stringify(predictions.map((p) => ({ id: p.id, text: p.tokens.join(' '), gold: p.gold, pred: p.pred, outputs: p.outputs, unaligned: p.unaligned })))}\n`;
}

async function readPredictions(
  store: RunStore,
  split: 'validation' | 'test',
  sentences: readonly Sentence[],
  labels: readonly string[],
): Promise<NerPrediction[] | null> {
  const rows = await readJson<
    { id: string; gold: NerPrediction['gold']; pred: NerPrediction['pred']; outputs: Record<string, string>; unaligned: number }[]
  >(store, `predictions/${split}.json`);
  if (!rows || rows.length !== sentences.length || rows.some((r, i) => r.id !== sentences[i]!.id)) return null;
  return rows.map((r, i) => ({
    id: r.id,
    tokens: sentences[i]!.tokens,
    gold: sentences[i]!.spans.filter((s) => labels.includes(s.type)),
    pred: r.pred,
    outputs: r.outputs,
    unaligned: r.unaligned,
  }));
}

type Settings = ReturnType<typeof resolveSettings>;

/** What every adapter of a run shares: the checked inputs, the corpus and the settings written with each. */
interface Prepared {
  s: Settings;
  config: ModelConfig;
  targetModules: string[];
  corpus: Bc5cdrCorpus;
  tokenizer: Tokenizer;
  data: NerData;
  settings: Bc5cdrResult['settings'] & { model: string };
  published: Bc5cdrPublishedNumber[];
}

/** Everything that can be wrong with the inputs is found here, before the weights are read. */
async function prepare(options: Bc5cdrOptions, log: (line: string) => void): Promise<Prepared> {
  const s = resolveSettings(options);
  const config = await bc5cdr.modelConfig(options.modelDir);
  const targetModules = bc5cdrTargetModules(s.layers, config.modelType);
  const corpus = await readBc5cdrCorpus(options.data);
  const tokenizer = await loadTokenizer(options.modelDir);
  const cut = (xs: readonly Sentence[], n: number | undefined) => (n === undefined ? xs : xs.slice(0, n));
  const data: NerData = {
    train: cut(corpus.sentences.train, s.limit.train),
    validation: cut(corpus.sentences.validation, s.limit.validation),
    test: cut(corpus.sentences.test, s.limit.test),
  };
  for (const split of ['train', 'validation', 'test'] as const) {
    if (data[split].length === 0) bc5cdr.fail(`the ${split} split of ${corpus.files[split]} has no sentences`);
  }
  const settings = {
    model: resolve(options.modelDir),
    modelType: config.modelType,
    data: corpus.dir,
    format: corpus.format,
    method: s.method,
    labels: s.labels,
    types: s.types,
    prompt: s.prompt,
    layers: s.layers,
    targetModules,
    r: s.r,
    alpha: s.alpha,
    dropout: s.dropout,
    lr: s.lr,
    epochs: s.epochs,
    batchSize: s.batchSize,
    maxLength: s.maxLength,
    seed: s.seed,
    sentences: { train: data.train.length, validation: data.validation.length, test: data.test.length },
  };
  // The study's overall numbers cover both types; a run on one type compares with its row only.
  const published = bc5cdrPublished({ method: s.method, labels: s.labels, prompt: s.prompt, layers: s.layers, r: s.r }).filter((p) =>
    p.row === 'overall' ? s.types.length === BC5CDR_LABELS.length : s.types.includes(p.row),
  );

  log(
    `BC5CDR (${corpus.format}, ${corpus.dir}): ${data.train.length} / ${data.validation.length} / ${data.test.length} sentences (train / dev / test)`,
  );
  if (corpus.documents)
    log(
      formatStatisticsTable(
        corpusStatistics({ train: corpus.documents.train, dev: corpus.documents.validation, test: corpus.documents.test }),
      ),
    );
  if (corpus.warnings.length > 0) log(`${corpus.warnings.length} mentions dropped while reading (first: ${corpus.warnings[0]})`);
  return { s, config, targetModules, corpus, tokenizer, data, settings, published };
}

/**
 * Study B end to end: reads BC5CDR, loads the model, trains a LoRA adapter per entity type (or one
 * for both), generates on the dev and test sentences with the best epoch's adapter, parses the
 * outputs back to spans, merges per-label predictions with priority Disease > Chemical and reports
 * entity-level P/R/F1 beside the study's numbers. Inputs are checked before anything is trained.
 */
export async function runBc5cdr(options: Bc5cdrOptions): Promise<Bc5cdrResult> {
  const started = performance.now();
  const log = recipeLog(options);
  const p = await prepare(options, log);
  const out = resolve(options.out);
  return withBackend(options, async (backend) => {
    const model = await loadModel(options.modelDir, { backend, dtype: bc5cdr.dtype(p.config, backend, options.dtype) });
    try {
      model.gradientCheckpointing = p.s.gradientCheckpointing;
      log(`model ${p.settings.model} (${p.config.modelType}, ${model.dtype}) on ${backend.name}${gemmNote(backend)}`);
      const runs: Bc5cdrRun[] = [];
      const validationRuns: NerPrediction[][] = [];
      const testRuns: NerPrediction[][] = [];
      for (const name of p.s.labels === 'per-label' ? [...p.s.types] : ['all']) {
        const one = await trainAdapter(options, p, { model, name, dir: join(out, name), first: runs.length === 0, log });
        runs.push(one.run);
        validationRuns.push(one.validation);
        testRuns.push(one.test);
      }
      const validation = scoreNer(mergeNerPredictions(validationRuns, BC5CDR_PRIORITY), p.s.types);
      const test = scoreNer(mergeNerPredictions(testRuns, BC5CDR_PRIORITY), p.s.types);
      const table = bc5cdrResultsTable(validation, test, p.s.types, p.published);
      const result: Bc5cdrResult = {
        out,
        settings: p.settings,
        runs,
        validation,
        test,
        published: p.published,
        table,
        seconds: (performance.now() - started) / 1000,
      };
      await report(result, p.s, log, options.communicator);
      return result;
    } finally {
      model.dispose();
    }
  });
}

/** Prints the scores beside the study's and writes results.json and results.md to the run folder. */
async function report(
  result: Bc5cdrResult,
  s: Settings,
  log: (line: string) => void,
  communicator: TrainCommunicator | undefined,
): Promise<void> {
  const { validation, test, table, runs } = result;
  const what = `${s.method} · ${s.labels} · ${s.prompt ? 'instruction prompt' : 'input only'} · LoRA ${typeof s.layers === 'string' ? s.layers : s.layers.join(',')} r=${s.r} α=${s.alpha}`;
  log('');
  log(
    `BC5CDR entity-level scores (exact span and type, %), ${what}${s.labels === 'per-label' ? ', per-label runs merged Disease > Chemical' : ''}:`,
  );
  log(table);
  log(
    `unaligned outputs: ${validation.unaligned} entities on dev, ${test.unaligned} on test (named by the model, not found in the sentence)`,
  );
  await writeResults(
    runStoreOf(result.out, communicator).store!,
    { title: `BC5CDR, ${what}`, table },
    {
      settings: result.settings,
      validation,
      test,
      published: result.published,
      runs: runs.map((r) => ({
        name: r.name,
        adapter: r.adapterDir,
        trainableLine: r.trainableLine,
        validation: r.validation,
        test: r.test,
      })),
      seconds: result.seconds,
    },
  );
  log(`run folder: ${result.out} (adapters: ${runs.map((r) => r.adapterDir).join(', ')})`);
  const curves = runs.flatMap((r) => (r.curves ? [r.curves] : []));
  if (curves.length > 0) log(`curves (training loss, validation entity F1): ${curves.join(', ')}`);
}

interface AdapterRun {
  model: CausalLM;
  /** `Disease`, `Chemical` or `all`. */
  name: string;
  dir: string;
  /** The first adapter of the run (its training text is shown). */
  first: boolean;
  log: (line: string) => void;
}

/**
 * Trains one adapter on the shared model (or reuses its finished run folder on resume), and
 * returns its best epoch's dev and its test predictions; the model is plain again afterwards.
 */
async function trainAdapter(
  options: Bc5cdrOptions,
  p: Prepared,
  a: AdapterRun,
): Promise<{ run: Bc5cdrRun; validation: NerPrediction[]; test: NerPrediction[] }> {
  const { s, data } = p;
  const { name, dir, log } = a;
  const runLabels = name === 'all' ? s.types : [name];
  const { store: runStore } = runStoreOf(dir, options.communicator);
  const store = runStore!;
  const runConfig = { ...p.settings, run: name };
  const lora = loraConfig({
    r: s.r,
    loraAlpha: s.alpha,
    loraDropout: s.dropout,
    targetModules: p.targetModules,
    taskType: 'CAUSAL_LM',
    baseModelNameOrPath: p.settings.model,
  });
  const generator = new Generator(s.seed);
  const peft: PeftModel<CausalLM> = getPeftModel(a.model, lora, { generator });
  try {
    const trainableLine = peft.parameterCounts().line;
    log(`[${name}] ${trainableLine}`);
    const task = new GenerativeNerTask({
      peft,
      tokenizer: p.tokenizer,
      data,
      method: s.method,
      labels: runLabels,
      perLabel: s.labels === 'per-label',
      instruction: s.prompt,
      maxLength: s.maxLength,
      evalBatchSize: s.evalBatchSize,
      priority: BC5CDR_PRIORITY,
      generator,
      describe: runConfig,
    });
    // The run's settings beside the adapter (peft_run.json), so that eval and predict reproduce it.
    saveBesideAdapter(task, {
      [RUN_SETTINGS_FILE]: runSettingsText({
        format: 1,
        study: 'bc5cdr',
        task: 'ner-generation',
        model: p.settings.model,
        modelType: p.config.modelType,
        data: p.corpus.dir,
        dtype: a.model.dtype,
        seed: s.seed,
        loraDropout: s.dropout,
        method: s.method,
        perLabel: s.labels === 'per-label',
        types: [...runLabels],
        instruction: s.prompt,
        maxLength: s.maxLength,
        evalBatchSize: s.evalBatchSize,
        limit: { ...s.limit },
        decoding: { strategy: 'greedy', stopStrings: ['\n'], maxNewTokensMargin: 8 },
      }),
    });
    if (name !== 'all' || a.first) {
      const ex = task.trainExamples[0]!;
      log(`[${name}] training text: ${JSON.stringify(ex.prompt + ex.answer)} (loss after "Answer:")`);
    }

    // A finished run folder is reused on resume: its adapter and predictions are on disk.
    let validation: NerPrediction[] | null = null;
    let test: NerPrediction[] | null = null;
    let result: TrainResult | null = null;
    let curves: string | null = null;
    // Over several processes rank 0 reads them and sends them, so that every rank reuses or trains alike.
    const reused = await fromRoot(options.communicator, async () => {
      if (!options.resume || !(await store.readFile('test-metrics.json')) || !(await store.readFile('adapter/adapter_config.json')))
        return null;
      const v = await readPredictions(store, 'validation', data.validation, runLabels);
      const t = await readPredictions(store, 'test', data.test, runLabels);
      return v && t ? { validation: v, test: t, curves: await curvesIn(dir) } : null;
    });
    if (reused) {
      ({ validation, test, curves } = reused);
      log(`[${name}] finished earlier: reusing ${dir}`);
    }
    if (!validation || !test) {
      const byEpoch = new Map<number, NerPrediction[]>();
      result = await train(task, {
        epochs: s.epochs,
        batchSize: s.batchSize,
        microBatchSize: s.microBatchSize,
        lr: s.lr,
        weightDecay: s.weightDecay,
        seed: s.seed,
        evaluateUntrained: s.evaluateUntrained,
        out: store,
        resume: options.resume,
        signal: options.signal,
        progress: options.progress,
        logEverySteps: options.logEverySteps,
        graph: options.graph,
        communicator: options.communicator,
        config: runConfig,
        onEpoch: ({ epoch }) => {
          const v = task.lastPredictions.get('validation');
          if (v) byEpoch.set(epoch, v);
        },
      });
      // The best epoch's dev predictions were kept when it was scored; after a resume they may be from another process.
      validation = byEpoch.get(result.best.epoch) ?? (await task.predict('validation'));
      test = task.lastPredictions.get('test') ?? (await task.predict('test'));
      await store.writeFile('predictions/validation.json', predictionsJson(validation));
      await store.writeFile('predictions/test.json', predictionsJson(test));
      curves = await drawCurves(store, dir, { scoreLabel: 'entity F1', title: `BC5CDR ${name}` });
    }
    const run: Bc5cdrRun = {
      name,
      dir,
      adapterDir: join(dir, 'adapter'),
      curves,
      trainableLine,
      train: result,
      validation: scoreNer(validation, runLabels),
      test: scoreNer(test, runLabels),
    };
    return { run, validation, test };
  } finally {
    // Back to the plain model (the adapter's tensors are freed) for the next label's adapter.
    peft.unload();
  }
}
