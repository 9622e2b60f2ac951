import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { type Backend, type DType, Generator, getPeftModel, loraConfig, type PeftModel } from '@peft/core';
import {
  BC5CDR_LABELS,
  type BiomedicalDocument,
  corpusStatistics,
  documentsToSentences,
  formatStatisticsTable,
  type NerMethod,
  type Sentence,
} from '@peft/datasets';
import { readBio, readBioC, readPubTator } from '@peft/datasets/node';
import type { CausalLM, ModelConfig } from '@peft/models';
import { loadConfig, loadModel, loadTokenizer } from '@peft/models/node';
import { type ProgressOptions, type RunStore, readJson, type TrainResult, train } from '@peft/trainer';
import { nodeRunStore } from '@peft/trainer/node';
import { createBackend, gemmNote } from '../backends.js';
import {
  BC5CDR_PRIORITY,
  GenerativeNerTask,
  mergeNerPredictions,
  type NerData,
  type NerPrediction,
  type NerScores,
  scoreNer,
} from '../tasks/ner.js';
import { CURVES_FILE, writeCurves } from './curves.js';
import { RUN_SETTINGS_FILE, runSettingsText } from './run-settings.js';

/** Study B's LoRA layer sets (finding 3). */
export type Bc5cdrLayers = 'q' | 'qk' | 'qkv' | 'qkvo' | 'all';
export const BC5CDR_LAYER_SETS: readonly Bc5cdrLayers[] = ['q', 'qk', 'qkv', 'qkvo', 'all'];

/** Llama module names of each layer set; `all` is every trainable layer of the study (the MLP, the embedding and the LM head too). */
export const BC5CDR_LLAMA_LAYERS: Readonly<Record<Bc5cdrLayers, readonly string[]>> = {
  q: ['q_proj'],
  qk: ['q_proj', 'k_proj'],
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  qkvo: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  all: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj', 'gate_proj', 'embed_tokens', 'lm_head'],
};

/** GPT-NeoX has one fused QKV projection, so only the sets that take q, k and v together exist there. */
const NEOX_LAYERS: Readonly<Partial<Record<Bc5cdrLayers, readonly string[]>>> = {
  qkv: ['query_key_value'],
  qkvo: ['query_key_value', 'dense'],
  all: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'embed_in', 'embed_out'],
};

/** The LoRA target module names of a layer set for a model type. */
export function bc5cdrTargetModules(layers: Bc5cdrLayers | readonly string[], modelType: string): string[] {
  if (typeof layers !== 'string') {
    if (layers.length === 0) throw new Error('bc5cdr: layers is an empty list: name at least one module (e.g. q_proj)');
    return [...layers];
  }
  if (!BC5CDR_LAYER_SETS.includes(layers))
    throw new Error(`bc5cdr: layers "${layers}" is unknown: use one of ${BC5CDR_LAYER_SETS.join(', ')}`);
  // Mistral and Qwen2 have Llama's module names.
  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2') return [...BC5CDR_LLAMA_LAYERS[layers]];
  const neox = NEOX_LAYERS[layers];
  if (modelType === 'gpt_neox' && neox) return [...neox];
  throw new Error(
    `bc5cdr: layers "${layers}" is defined for Llama (q_proj, k_proj, …); a ${modelType} model has ${modelType === 'gpt_neox' ? 'a fused query_key_value: use qkv, qkvo or all, or' : 'other module names:'} give the module names as a list`,
  );
}

export type Bc5cdrFormat = 'pubtator' | 'bioc' | 'bio';
type SplitName = 'train' | 'validation' | 'test';

/** File names looked for, by format: the BC5CDR release's (PubTator, BioC) and the common BIO layouts. */
const CORPUS_NAMES: readonly { format: Bc5cdrFormat; files: Record<SplitName, readonly string[]> }[] = [
  {
    format: 'pubtator',
    files: {
      train: ['CDR_TrainingSet.PubTator.txt'],
      validation: ['CDR_DevelopmentSet.PubTator.txt'],
      test: ['CDR_TestSet.PubTator.txt'],
    },
  },
  {
    format: 'bioc',
    files: { train: ['CDR_TrainingSet.BioC.xml'], validation: ['CDR_DevelopmentSet.BioC.xml'], test: ['CDR_TestSet.BioC.xml'] },
  },
  {
    format: 'bio',
    files: {
      train: ['CDR_TrainingSet.BIO.tsv', 'train.tsv', 'train.txt'],
      validation: ['CDR_DevelopmentSet.BIO.tsv', 'devel.tsv', 'dev.tsv', 'devel.txt', 'dev.txt'],
      test: ['CDR_TestSet.BIO.tsv', 'test.tsv', 'test.txt'],
    },
  },
];

export interface Bc5cdrFiles {
  format: Bc5cdrFormat;
  /** The folder the files are in (the given one, or a folder inside it such as `CDR.Corpus.v010516`). */
  dir: string;
  files: Record<SplitName, string>;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function lookedFor(): string {
  return CORPUS_NAMES.map(
    (c) =>
      `${c.format === 'pubtator' ? 'PubTator' : c.format === 'bioc' ? 'BioC XML' : 'BIO'}: ${[...c.files.train, ...c.files.validation, ...c.files.test].join(', ')}`,
  ).join('; ');
}

/**
 * Finds the BC5CDR train / development / test files in `dir` (or in one of its folders, e.g. the
 * release's `CDR.Corpus.v010516`): PubTator first, then BioC XML, then BIO. Errors name what was
 * looked for, and which split is missing when only some files are there.
 */
export async function findBc5cdrFiles(dir: string): Promise<Bc5cdrFiles> {
  const root = resolve(dir);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(root);
  } catch {
    throw new Error(`BC5CDR data folder ${dir} does not exist: pass --data <folder with CDR_TrainingSet.PubTator.txt, …> (${lookedFor()})`);
  }
  if (!st.isDirectory()) {
    throw new Error(`BC5CDR data path ${dir} is a file, not a folder: pass the folder that holds the three split files (${lookedFor()})`);
  }
  const dirs = [root];
  for (const name of (await readdir(root)).sort()) if (await isDir(join(root, name))) dirs.push(join(root, name));
  const partial: string[] = [];
  for (const d of dirs) {
    const names = new Set(await readdir(d));
    for (const c of CORPUS_NAMES) {
      const found: Partial<Record<SplitName, string>> = {};
      for (const split of ['train', 'validation', 'test'] as const) {
        const hit = c.files[split].find((n) => names.has(n));
        if (hit) found[split] = join(d, hit);
      }
      const have = Object.keys(found).length;
      if (have === 3) return { format: c.format, dir: d, files: found as Record<SplitName, string> };
      if (have > 0) {
        const missing = (['train', 'validation', 'test'] as const).filter((s) => !found[s]);
        partial.push(
          `${d} has ${Object.values(found).join(', ')} but no ${missing.map((s) => `${s} file (${c.files[s].join(' or ')})`).join(', ')}`,
        );
      }
    }
  }
  if (partial.length > 0) throw new Error(`BC5CDR data in ${dir} is incomplete: ${partial.join('; ')}`);
  throw new Error(`no BC5CDR corpus in ${dir}: looked for ${lookedFor()}`);
}

export interface Bc5cdrCorpus extends Bc5cdrFiles {
  sentences: NerData;
  /** Documents per split (PubTator and BioC; null for BIO, which has sentences only). */
  documents: Record<SplitName, BiomedicalDocument[]> | null;
  /** Mentions dropped while reading or splitting (text mismatches, overlaps, sentence-crossing mentions). */
  warnings: string[];
}

/** Reads the corpus in a folder into sentences per split (see `findBc5cdrFiles`). */
export async function readBc5cdrCorpus(dir: string): Promise<Bc5cdrCorpus> {
  const found = await findBc5cdrFiles(dir);
  const warnings: string[] = [];
  const sentences = {} as Record<SplitName, Sentence[]>;
  if (found.format === 'bio') {
    for (const split of ['train', 'validation', 'test'] as const) sentences[split] = await readBio(found.files[split]);
    return { ...found, sentences, documents: null, warnings };
  }
  const documents = {} as Record<SplitName, BiomedicalDocument[]>;
  for (const split of ['train', 'validation', 'test'] as const) {
    const read = found.format === 'pubtator' ? readPubTator : readBioC;
    const r = await read(found.files[split], { mismatch: 'warn' });
    warnings.push(...r.warnings);
    documents[split] = r.documents;
    const s = documentsToSentences(r.documents);
    warnings.push(...s.warnings);
    sentences[split] = s.sentences;
  }
  return { ...found, sentences, documents, warnings };
}

/** One number of the study beside the setting that reproduces it. */
export interface Bc5cdrPublishedNumber {
  /** Study B's finding (see the example's README). */
  finding: 1 | 2 | 3 | 4;
  split: 'validation' | 'test';
  /** `overall` is the micro average over both types. */
  row: 'overall' | 'Disease' | 'Chemical';
  /** F1 in percent, or a range over the rank grid (`89.0–89.5`). */
  f1: string;
  note: string;
}

export interface Bc5cdrSetting {
  method: NerMethod;
  labels: 'per-label' | 'all';
  prompt: boolean;
  layers: Bc5cdrLayers | readonly string[];
  r: number;
}

const RANK_GRID = [2, 4, 8, 64, 128];
const LAYER_F1: Record<Bc5cdrLayers, string> = { q: '65–69', qk: '60–64', qkv: '88–89', qkvo: '88–89', all: '89.0–89.5' };

/**
 * Study B's published numbers for a setting (Llama-2-7B unless noted). Findings 3 and 4 do not say
 * which output format they used; they are matched to tagging, per-label, no prompt (the formats
 * findings 1 and 2 found best).
 */
export function bc5cdrPublished(s: Bc5cdrSetting): Bc5cdrPublishedNumber[] {
  const out: Bc5cdrPublishedNumber[] = [];
  if (s.method === 'tagging' && s.labels === 'per-label') {
    out.push(
      s.prompt
        ? { finding: 1, split: 'validation', row: 'Chemical', f1: '93.1', note: 'Llama-2-chat-7B with the instruction' }
        : { finding: 1, split: 'validation', row: 'Chemical', f1: '93.6', note: 'input only (Llama-2-chat-7B: 93.4)' },
    );
  }
  if (!s.prompt) {
    const f2: Record<string, string> = {
      'tagging per-label': '88.6',
      'tagging all': '88.4',
      'extraction per-label': '85.8',
      'extraction all': '86.5',
    };
    out.push({ finding: 2, split: 'validation', row: 'overall', f1: f2[`${s.method} ${s.labels}`]!, note: `${s.method}, ${s.labels}` });
  }
  if (!s.prompt && s.method === 'tagging' && s.labels === 'per-label' && typeof s.layers === 'string' && RANK_GRID.includes(s.r)) {
    out.push({
      finding: 3,
      split: 'validation',
      row: 'overall',
      f1: LAYER_F1[s.layers],
      note: `LoRA on ${s.layers}, r ∈ {${RANK_GRID.join(', ')}}`,
    });
    if (s.layers === 'all' && s.r === 128) {
      out.push({ finding: 4, split: 'test', row: 'overall', f1: '88.9', note: 'full fine-tuning 89.3; BINDER (PubMedBERT) 91.9' });
    }
  }
  return out;
}

export interface Bc5cdrOptions {
  /** A local Hugging Face model folder (Llama-2-7B for the study; the bundled tiny Llama for a smoke run). */
  modelDir: string;
  /** The BC5CDR folder: CDR_*Set.PubTator.txt, CDR_*Set.BioC.xml, or BIO files (see findBc5cdrFiles). */
  data: string;
  /** The run folder: one trainer run folder per adapter (`Disease/`, `Chemical/` or `all/`), results.json, results.md. */
  out: string;
  /** A backend name ('cpu', the default; 'webgpu', 'cuda' when their package is installed) or a Backend instance (yours to destroy). */
  backend?: string | Backend;
  /** GEMM worker threads of the CPU backend made for 'cpu' (default: every core). */
  threads?: number;
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
  /** Lines of the report (trainable parameters, corpus, results table). Default console.log. */
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

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw new Error(`bc5cdr: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function positive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`bc5cdr: ${name} must be a number > 0, got ${String(v)}`);
  return v;
}

function resolveSettings(o: Bc5cdrOptions) {
  const method = o.method ?? 'tagging';
  if (method !== 'tagging' && method !== 'extraction') throw new Error(`bc5cdr: method "${method}" is unknown: use tagging or extraction`);
  const labels = o.labels ?? 'per-label';
  if (labels !== 'per-label' && labels !== 'all') throw new Error(`bc5cdr: labels "${labels}" is unknown: use per-label or all`);
  const layers = o.layers ?? 'all';
  if (typeof layers === 'string' && !BC5CDR_LAYER_SETS.includes(layers)) {
    throw new Error(`bc5cdr: layers "${layers}" is unknown: use one of ${BC5CDR_LAYER_SETS.join(', ')} (or a list of module names)`);
  }
  const r = positiveInt('r', o.r ?? 128);
  const dropout = o.dropout ?? 0.05;
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`bc5cdr: dropout must be in [0, 1), got ${dropout}`);
  const limit = typeof o.limit === 'number' ? { train: o.limit, validation: o.limit, test: o.limit } : (o.limit ?? {});
  for (const [k, v] of Object.entries(limit)) if (v !== undefined) positiveInt(`limit.${k}`, v);
  const batchSize = positiveInt('batchSize', o.batchSize ?? 8);
  const types = [...(o.types ?? BC5CDR_LABELS)];
  if (types.length === 0 || types.some((t) => !BC5CDR_LABELS.includes(t)) || new Set(types).size !== types.length) {
    throw new Error(`bc5cdr: types ${JSON.stringify(types)} must be distinct entity types of ${BC5CDR_LABELS.join(', ')}`);
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
    alpha: positive('alpha', o.alpha ?? 2 * r),
    dropout,
    lr: positive('lr', o.lr ?? 1e-4),
    epochs: positiveInt('epochs', o.epochs ?? 3),
    batchSize,
    microBatchSize: positiveInt('microBatchSize', o.microBatchSize ?? batchSize),
    maxLength: positiveInt('maxLength', o.maxLength ?? 256),
    evalBatchSize: positiveInt('evalBatchSize', o.evalBatchSize ?? 16),
    weightDecay: o.weightDecay ?? 0,
    seed: o.seed ?? 42,
    limit,
    gradientCheckpointing: o.gradientCheckpointing ?? true,
    evaluateUntrained: o.evaluateUntrained ?? false,
  };
}

async function checkModelDir(dir: string): Promise<ModelConfig> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(dir);
  } catch {
    throw new Error(
      `model folder ${dir} does not exist: pass --model <a local Hugging Face folder with config.json, the weights and tokenizer files>`,
    );
  }
  if (!st.isDirectory())
    throw new Error(`model path ${dir} is not a folder: pass the Hugging Face model folder (config.json, weights, tokenizer)`);
  return loadConfig(dir);
}

/** bfloat16 for a 16-bit checkpoint on a backend that stores it (Llama-2 ships float16); float32 stays float32. */
function baseDtype(config: ModelConfig, backend: Backend, requested?: DType): DType {
  if (requested) {
    if (!backend.dtypes.includes(requested)) {
      throw new Error(`bc5cdr: backend "${backend.name}" does not store ${requested}: it stores ${backend.dtypes.join(', ')}`);
    }
    return requested;
  }
  if (config.torchDtype === null || config.torchDtype === 'float32') return 'float32';
  return backend.dtypes.includes('bfloat16') ? 'bfloat16' : 'float32';
}

const pct = (x: number) => (100 * x).toFixed(2);

/** The results table: P / R / F1 per type and overall for dev and test, the study's numbers beside. */
export function bc5cdrResultsTable(
  validation: NerScores,
  test: NerScores,
  labels: readonly string[],
  published: readonly Bc5cdrPublishedNumber[],
): string {
  const head = '| entity type | dev P | dev R | dev F1 | test P | test R | test F1 | study F1 (Llama-2-7B) |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---|';
  const pub = (rowName: string) =>
    published
      .filter((p) => p.row === rowName)
      .map((p) => `${p.split === 'test' ? 'test' : 'dev'} ${p.f1} (finding ${p.finding}: ${p.note})`)
      .join('; ') || '—';
  const line = (name: string, v: { precision: number; recall: number; f1: number }, t: typeof v, key: string) =>
    `| ${name} | ${pct(v.precision)} | ${pct(v.recall)} | ${pct(v.f1)} | ${pct(t.precision)} | ${pct(t.recall)} | ${pct(t.f1)} | ${pub(key)} |`;
  const rows = labels.map((l) => line(l, validation.perType[l]!, test.perType[l]!, l));
  rows.push(line('overall (micro)', validation, test, 'overall'));
  return [head, rule, ...rows].join('\n');
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

/**
 * Study B end to end: reads BC5CDR, loads the model, trains a LoRA adapter per entity type (or one
 * for both), generates on the dev and test sentences with the best epoch's adapter, parses the
 * outputs back to spans, merges per-label predictions with priority Disease > Chemical and reports
 * entity-level P/R/F1 beside the study's numbers. Inputs are checked before anything is trained.
 */
export async function runBc5cdr(options: Bc5cdrOptions): Promise<Bc5cdrResult> {
  const started = performance.now();
  const log = options.log ?? ((line: string) => console.log(line));
  const s = resolveSettings(options);
  // Everything that can be wrong with the inputs is found before the weights are read.
  const config = await checkModelDir(options.modelDir);
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
    if (data[split].length === 0) throw new Error(`bc5cdr: the ${split} split of ${corpus.files[split]} has no sentences`);
  }
  const labels = s.types;
  const settings = {
    model: resolve(options.modelDir),
    modelType: config.modelType,
    data: corpus.dir,
    format: corpus.format,
    method: s.method,
    labels: s.labels,
    types: labels,
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
    p.row === 'overall' ? labels.length === BC5CDR_LABELS.length : labels.includes(p.row),
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

  const ownBackend = options.backend === undefined || typeof options.backend === 'string';
  const backend: Backend =
    options.backend === undefined || options.backend === 'cpu'
      ? createCpuBackend(options.threads === undefined ? {} : { threads: options.threads })
      : typeof options.backend === 'string'
        ? await createBackend(options.backend)
        : options.backend;
  const out = resolve(options.out);
  const root = nodeRunStore(out);
  let model: CausalLM | null = null;
  try {
    model = await loadModel(options.modelDir, { backend, dtype: baseDtype(config, backend, options.dtype) });
    model.gradientCheckpointing = s.gradientCheckpointing;
    log(`model ${settings.model} (${config.modelType}, ${model.dtype}) on ${backend.name}${gemmNote(backend)}`);

    const runNames = s.labels === 'per-label' ? [...labels] : ['all'];
    const runs: Bc5cdrRun[] = [];
    const validationRuns: NerPrediction[][] = [];
    const testRuns: NerPrediction[][] = [];
    for (const name of runNames) {
      const runLabels = name === 'all' ? labels : [name];
      const dir = join(out, name);
      const store = nodeRunStore(dir);
      const runConfig = { ...settings, run: name };
      const lora = loraConfig({
        r: s.r,
        loraAlpha: s.alpha,
        loraDropout: s.dropout,
        targetModules,
        taskType: 'CAUSAL_LM',
        baseModelNameOrPath: settings.model,
      });
      const generator = new Generator(s.seed);
      const peft: PeftModel<CausalLM> = getPeftModel(model, lora, { generator });
      try {
        const trainableLine = peft.parameterCounts().line;
        log(`[${name}] ${trainableLine}`);
        const task = new GenerativeNerTask({
          peft,
          tokenizer,
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
        const saveAdapter = task.saveArtifacts.bind(task);
        const runSettings = runSettingsText({
          format: 1,
          study: 'bc5cdr',
          task: 'ner-generation',
          model: settings.model,
          modelType: config.modelType,
          data: corpus.dir,
          dtype: model.dtype,
          seed: s.seed,
          method: s.method,
          perLabel: s.labels === 'per-label',
          types: [...runLabels],
          instruction: s.prompt,
          maxLength: s.maxLength,
          evalBatchSize: s.evalBatchSize,
          limit: { ...s.limit },
          decoding: { strategy: 'greedy', stopStrings: ['\n'], maxNewTokensMargin: 8 },
        });
        task.saveArtifacts = async (sink) => {
          await saveAdapter(sink);
          await sink.writeFile(RUN_SETTINGS_FILE, runSettings);
        };
        if (name !== 'all' || runs.length === 0) {
          const ex = task.trainExamples[0]!;
          log(`[${name}] training text: ${JSON.stringify(ex.prompt + ex.answer)} (loss after "Answer:")`);
        }

        // A finished run folder is reused on resume: its adapter and predictions are on disk.
        let validation: NerPrediction[] | null = null;
        let test: NerPrediction[] | null = null;
        let result: TrainResult | null = null;
        if (options.resume && (await store.readFile('test-metrics.json')) && (await store.readFile('adapter/adapter_config.json'))) {
          validation = await readPredictions(store, 'validation', data.validation, runLabels);
          test = await readPredictions(store, 'test', data.test, runLabels);
          if (validation && test) log(`[${name}] finished earlier: reusing ${dir}`);
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
            config: runConfig,
            onEpoch: ({ epoch }) => {
              const p = task.lastPredictions.get('validation');
              if (p) byEpoch.set(epoch, p);
            },
          });
          // The best epoch's dev predictions were kept when it was scored; after a resume they may be from another process.
          validation = byEpoch.get(result.best.epoch) ?? (await task.predict('validation'));
          test = task.lastPredictions.get('test') ?? (await task.predict('test'));
          await store.writeFile('predictions/validation.json', predictionsJson(validation));
          await store.writeFile('predictions/test.json', predictionsJson(test));
          await writeCurves(store, { scoreLabel: 'entity F1', title: `BC5CDR ${name}` });
        }
        const curves = (await store.readFile(CURVES_FILE)) ? join(dir, CURVES_FILE) : null;
        validationRuns.push(validation);
        testRuns.push(test);
        runs.push({
          name,
          dir,
          adapterDir: join(dir, 'adapter'),
          curves,
          trainableLine,
          train: result,
          validation: scoreNer(validation, runLabels),
          test: scoreNer(test, runLabels),
        });
      } finally {
        // Back to the plain model (the adapter's tensors are freed) for the next label's adapter.
        peft.unload();
      }
    }

    const validation = scoreNer(mergeNerPredictions(validationRuns, BC5CDR_PRIORITY), labels);
    const test = scoreNer(mergeNerPredictions(testRuns, BC5CDR_PRIORITY), labels);
    const what = `${s.method} · ${s.labels} · ${s.prompt ? 'instruction prompt' : 'input only'} · LoRA ${typeof s.layers === 'string' ? s.layers : s.layers.join(',')} r=${s.r} α=${s.alpha}`;
    const table = bc5cdrResultsTable(validation, test, labels, published);
    const seconds = (performance.now() - started) / 1000;
    log('');
    log(
      `BC5CDR entity-level scores (exact span and type, %), ${what}${s.labels === 'per-label' ? ', per-label runs merged Disease > Chemical' : ''}:`,
    );
    log(table);
    log(
      `unaligned outputs: ${validation.unaligned} entities on dev, ${test.unaligned} on test (named by the model, not found in the sentence)`,
    );
    const result: Bc5cdrResult = { out, settings, runs, validation, test, published, table, seconds };
    await root.writeFile(
      'results.json',
      `${JSON.stringify(
        {
          settings,
          validation,
          test,
          published,
          runs: runs.map((r) => ({
            name: r.name,
            adapter: r.adapterDir,
            trainableLine: r.trainableLine,
            validation: r.validation,
            test: r.test,
          })),
          seconds,
        },
        null,
        2,
      )}\n`,
    );
    await root.writeFile('results.md', `# BC5CDR, ${what}\n\n${table}\n`);
    log(`run folder: ${out} (adapters: ${runs.map((r) => r.adapterDir).join(', ')})`);
    const curves = runs.flatMap((r) => (r.curves ? [r.curves] : []));
    if (curves.length > 0) log(`curves (training loss, validation entity F1): ${curves.join(', ')}`);
    return result;
  } finally {
    model?.dispose();
    if (ownBackend) backend.destroy();
  }
}
