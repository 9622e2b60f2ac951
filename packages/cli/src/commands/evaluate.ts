import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Backend } from '@peft/core';
import { loadAdapter, writeFileAtomic } from '@peft/core/node';
import { formatLivedoor, type LivedoorTemplate, splitLivedoor } from '@peft/datasets';
import { readLivedoor } from '@peft/datasets/node';
import { loadConfig, loadModel, loadTokenizer } from '@peft/models/node';
import { int, parse, str, UsageError } from '../args.js';
import { createBackend } from '../backends.js';
import { type AdapterTaskType, checkAdapter, readAdapterFacts } from '../recipes/adapter-check.js';
import { readBc5cdrCorpus } from '../recipes/bc5cdr.js';
import { loadLivedoorClassifier } from '../recipes/livedoor.js';
import { shownPath, userPath } from '../recipes/paths.js';
import { type RunSettings, readRunSettings, settingValue } from '../recipes/run-settings.js';
import { ClassificationTask } from '../tasks/classification.js';
import { BC5CDR_PRIORITY, GenerativeNerTask } from '../tasks/ner.js';

export const EVAL_HELP = `peft eval [livedoor|bc5cdr] --adapter <dir> [options]

Scores a trained adapter on the validation or test split with the settings of the run that made
it: the adapter folder's peft_run.json gives the study, model folder, data, template, max length,
seed, labels and decoding, so \`peft eval --adapter runs/x/adapter\` reproduces the run's test
metrics. A flag that differs from the run's value is used, with a warning naming both values.
livedoor: accuracy and macro precision / recall / F1 (scikit-learn semantics, zero_division 0);
bc5cdr (one run's adapter, e.g. runs/x/Chemical/adapter): entity-level P / R / F1.

The metrics are written as JSON into the run folder (eval-<split>-<time>.json beside
test-metrics.json, which stays as training wrote it), or to --out <file>.

Options:
  --model <dir>              the base model folder (default: the run's)
  --data <path>              the corpus (default: the run's)
  --split <validation|test>  default test
  --template <0|1|2>         livedoor input template (default: the run's; 2 without peft_run.json)
  --seed <n>                 livedoor split seed (default: the run's; 42)
  --max-length <n>           livedoor tokens per article (default: the run's; 512)
  --eval-batch-size <n>      rows per forward pass (default: the run's)
  --out <file>               write the metrics JSON here instead of the run folder
  --json                     print the metrics as JSON on standard output
  --backend <name>           cpu (default), webgpu, cuda
`;

type Study = 'livedoor' | 'bc5cdr';
const TASK_TYPE: Record<Study, AdapterTaskType> = { livedoor: 'SEQ_CLS', bc5cdr: 'CAUSAL_LM' };

export interface EvalOptions {
  /** livedoor or bc5cdr; default from peft_run.json, then from adapter_config.json's task_type. */
  study?: Study;
  adapter: string;
  model?: string;
  data?: string;
  split: 'validation' | 'test';
  template?: LivedoorTemplate;
  seed?: number;
  maxLength?: number;
  evalBatchSize?: number;
  backend: Backend;
  /** One line per overridden setting or mismatch (default stderr). */
  warn?: (line: string) => void;
}

export interface EvalReport {
  study: Study;
  split: 'validation' | 'test';
  adapter: string;
  model: string;
  data: string;
  /** The settings the split was scored with. */
  settings: Record<string, unknown>;
  /** Whether they came from the adapter's peft_run.json. */
  fromRunSettings: boolean;
  score: number;
  metrics: Record<string, unknown>;
  /** The run's own test score (test-metrics.json) when the adapter is a run's; null otherwise. */
  runTestScore: number | null;
  evaluatedAt: string;
}

const stderr = (line: string) => void process.stderr.write(`${line}\n`);

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

/** The run folder of a run's adapter (<run>/adapter with the run's config.json or test-metrics.json beside it), else null. */
export async function runFolderOf(adapter: string): Promise<string | null> {
  if (basename(adapter) !== 'adapter') return null;
  const run = dirname(adapter);
  for (const f of ['test-metrics.json', 'config.json']) if ((await stat(join(run, f)).catch(() => null))?.isFile()) return run;
  return null;
}

async function studyOf(o: EvalOptions, settings: RunSettings | null): Promise<Study> {
  if (settings && o.study && o.study !== settings.study) {
    throw new UsageError(
      `${o.adapter} is a ${settings.study} run's adapter (peft_run.json), not a ${o.study} one: run \`peft eval ${settings.study} --adapter ${o.adapter}\``,
    );
  }
  if (o.study) return o.study;
  if (settings) return settings.study;
  const facts = await readAdapterFacts(o.adapter);
  if (facts.taskType === 'SEQ_CLS') return 'livedoor';
  if (facts.taskType === 'CAUSAL_LM') return 'bc5cdr';
  throw new UsageError(
    `${o.adapter} has no peft_run.json and its task_type is ${facts.taskType ?? 'unset'}: name the study (peft eval livedoor|bc5cdr)`,
  );
}

async function runTestScore(adapter: string): Promise<number | null> {
  const run = await runFolderOf(adapter);
  if (!run) return null;
  try {
    const m = JSON.parse(await readFile(join(run, 'test-metrics.json'), 'utf8')) as { score?: unknown };
    return typeof m.score === 'number' ? m.score : null;
  } catch {
    return null;
  }
}

/**
 * Scores an adapter on one split with its run's settings (peft_run.json), flags overriding them
 * with a warning. Paths are used as given (resolve them first).
 */
export async function evaluateAdapter(o: EvalOptions): Promise<EvalReport> {
  const warn = o.warn ?? stderr;
  if (!(await isDir(o.adapter))) throw new UsageError(`adapter folder ${o.adapter} does not exist or is not a folder`);
  const settings = await readRunSettings(o.adapter);
  const study = await studyOf(o, settings);
  const model = o.model ?? settings?.model;
  const data = o.data ?? settings?.data;
  const missing = [!model && '--model <base model folder>', !data && '--data <corpus>'].filter(Boolean);
  if (!model || !data) {
    throw new UsageError(`${o.adapter} has no peft_run.json to take them from: pass ${missing.join(' and ')}`);
  }
  if (!settings) {
    warn(
      `warning: ${o.adapter} has no peft_run.json (an adapter from an older run or from Python PEFT): scoring with ${study === 'livedoor' ? `template ${o.template ?? 2}, max length ${o.maxLength ?? 512}, seed ${o.seed ?? 42}` : 'the defaults'}; pass the run's values if they differ`,
    );
  }
  if (settings && o.model && settings.model !== o.model) {
    warn(`warning: --model ${o.model} overrides the run's model folder ${settings.model} (peft_run.json)`);
  }
  if (settings && o.data && settings.data !== o.data) {
    warn(`warning: --data ${o.data} overrides the run's data ${settings.data} (peft_run.json)`);
  }
  const config = await loadConfig(model);
  await checkAdapter(o.adapter, model, config, { expected: TASK_TYPE[study], command: `peft eval ${study}`, warn });
  const base = { study, split: o.split, adapter: o.adapter, model, data, fromRunSettings: settings !== null };
  const evaluatedAt = new Date().toISOString();
  if (study === 'livedoor') {
    const run = settings?.study === 'livedoor' ? settings : undefined;
    const template = settingValue({ flag: 'template', what: 'template' }, o.template, run?.template, 2 as LivedoorTemplate, warn);
    const seed = settingValue({ flag: 'seed', what: 'split seed' }, o.seed, run?.seed, 42, warn);
    const maxLength = settingValue({ flag: 'max-length', what: 'max length' }, o.maxLength, run?.maxLength, 512, warn);
    const evalBatchSize = settingValue(
      { flag: 'eval-batch-size', what: 'evaluation batch size' },
      o.evalBatchSize,
      run?.evalBatchSize,
      32,
      warn,
    );
    const { peft, labels, tokenizer } = await loadLivedoorClassifier(model, o.adapter, { backend: o.backend, dtype: run?.dtype });
    try {
      if (run && run.labels.join('\n') !== labels.join('\n')) {
        throw new Error(`${o.adapter}: labels.json has [${labels.join(', ')}] but peft_run.json has [${run.labels.join(', ')}]`);
      }
      const corpus = await readLivedoor(data);
      if (corpus.labels.join('\n') !== labels.join('\n')) {
        throw new Error(`${o.adapter}/labels.json has [${labels.join(', ')}] but ${data} has categories [${corpus.labels.join(', ')}]`);
      }
      const split = splitLivedoor(corpus.examples, { seed });
      const texts = (xs: typeof split.test) => xs.map((e) => ({ text: formatLivedoor(e, template), label: e.label }));
      const task = new ClassificationTask({
        peft,
        tokenizer,
        labels,
        maxLength,
        evalBatchSize,
        data: { train: texts(split.train), validation: texts(split.validation), test: texts(split.test) },
      });
      task.setTraining(false);
      const ev = await task.evaluate(o.split);
      return {
        ...base,
        settings: { template, seed, maxLength, evalBatchSize, labels, dtype: peft.model.model.dtype },
        score: ev.score,
        metrics: ev.metrics,
        runTestScore: await runTestScore(o.adapter),
        evaluatedAt,
      };
    } finally {
      peft.dispose();
    }
  }
  const run = settings?.study === 'bc5cdr' ? settings : undefined;
  const evalBatchSize = settingValue(
    { flag: 'eval-batch-size', what: 'evaluation batch size' },
    o.evalBatchSize,
    run?.evalBatchSize,
    16,
    warn,
  );
  const maxLength = settingValue({ flag: 'max-length', what: 'max length' }, o.maxLength, run?.maxLength, 256, warn);
  if (o.template !== undefined) warn('warning: --template is a livedoor setting: a bc5cdr adapter ignores it');
  const method = run?.method ?? 'tagging';
  const types = run?.types ?? ['Chemical'];
  const perLabel = run?.perLabel ?? true;
  const instruction = run?.instruction ?? false;
  const limit = run?.limit ?? {};
  if (!run) warn(`warning: scoring as per-label tagging of ${types.join(', ')} without an instruction (no peft_run.json)`);
  const corpus = await readBc5cdrCorpus(data);
  const cut = <T>(xs: readonly T[], n: number | undefined) => (n === undefined ? xs : xs.slice(0, n));
  const sentences = {
    train: cut(corpus.sentences.train, limit.train),
    validation: cut(corpus.sentences.validation, limit.validation),
    test: cut(corpus.sentences.test, limit.test),
  };
  const causal = await loadModel(model, { backend: o.backend, dtype: run?.dtype });
  try {
    const peft = await loadAdapter(causal, o.adapter);
    peft.eval();
    const task = new GenerativeNerTask({
      peft,
      tokenizer: await loadTokenizer(model),
      data: sentences,
      method,
      labels: types,
      perLabel,
      instruction,
      maxLength,
      evalBatchSize,
      maxNewTokensMargin: run?.decoding.maxNewTokensMargin ?? 8,
      priority: BC5CDR_PRIORITY,
    });
    task.setTraining(false);
    const ev = await task.evaluate(o.split);
    return {
      ...base,
      settings: { method, types, perLabel, instruction, limit, evalBatchSize, dtype: causal.dtype, decoding: run?.decoding ?? null },
      score: ev.score,
      metrics: ev.metrics,
      runTestScore: await runTestScore(o.adapter),
      evaluatedAt,
    };
  } finally {
    causal.dispose();
  }
}

/** eval-<split>-<UTC time>.json: never the training's test-metrics.json, never an earlier evaluation's file. */
export function evalFileName(split: string, at: string): string {
  return `eval-${split}-${at.replace(/[:.]/g, '-')}.json`;
}

/** Writes the report atomically: into the run folder of a run's adapter, or to `out`; returns the path (null when neither). */
export async function writeEvalReport(report: EvalReport, out?: string): Promise<string | null> {
  const path =
    out ?? (await runFolderOf(report.adapter).then((run) => (run ? join(run, evalFileName(report.split, report.evaluatedAt)) : null)));
  if (!path) return null;
  await writeFileAtomic(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

const pct = (x: unknown) => (typeof x === 'number' ? (100 * x).toFixed(2) : '—');

/** The table the command prints. */
export function formatEvalReport(r: EvalReport): string {
  const m = r.metrics as Record<string, unknown>;
  if (r.study === 'livedoor') {
    return `| split | accuracy | precision | recall | F1 |\n|---|---|---|---|---|\n| ${r.split} | ${pct(m.accuracy)} | ${pct(m.precision)} | ${pct(m.recall)} | ${pct(m.f1)} |`;
  }
  const perType = (m.perType ?? {}) as Record<string, { precision: number; recall: number; f1: number; support: number }>;
  const lines = ['| entity type | P | R | F1 | gold |', '|---|---:|---:|---:|---:|'];
  for (const [t, v] of Object.entries(perType))
    lines.push(`| ${t} | ${pct(v.precision)} | ${pct(v.recall)} | ${pct(v.f1)} | ${v.support} |`);
  const gold = Object.values(perType).reduce((n, v) => n + v.support, 0);
  lines.push(`| overall (micro) | ${pct(m.precision)} | ${pct(m.recall)} | ${pct(m.f1)} | ${gold} |`);
  return lines.join('\n');
}

export async function evalCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values, positionals } = parse('eval', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string', default: 'test' },
    template: { type: 'string' },
    seed: { type: 'string' },
    'max-length': { type: 'string' },
    'eval-batch-size': { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    backend: { type: 'string', default: 'cpu' },
  });
  const [study, ...extra] = positionals;
  const adapterArg = str(values, 'adapter');
  if (values.help || !adapterArg) {
    out(EVAL_HELP);
    if (!values.help) throw new UsageError('--adapter <adapter folder> is required');
    return;
  }
  if (study !== undefined && study !== 'livedoor' && study !== 'bc5cdr')
    throw new UsageError(`study ${JSON.stringify(study)} is not livedoor or bc5cdr`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: options start with --`);
  const split = str(values, 'split');
  if (split !== 'validation' && split !== 'test') throw new UsageError(`--split ${split} is not validation or test`);
  const t = str(values, 'template');
  const template = t === undefined ? undefined : int(t, 'template');
  if (template !== undefined && template !== 0 && template !== 1 && template !== 2)
    throw new UsageError(`--template ${template} is not one of 0, 1, 2`);
  const positive = (name: string) => {
    const v = str(values, name);
    if (v === undefined) return undefined;
    const n = int(v, name);
    if (n < (name === 'seed' ? 0 : 1))
      throw new UsageError(`--${name} ${v} must be ${name === 'seed' ? 'at least 0' : 'a positive integer'}`);
    return n;
  };
  const adapter = userPath(adapterArg);
  if (!(await isDir(adapter))) throw new UsageError(`adapter folder ${shownPath(adapterArg)} does not exist or is not a folder`);
  const given = (name: string) => {
    const v = str(values, name);
    return v === undefined ? undefined : userPath(v);
  };
  const json = values.json === true;
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const report = await evaluateAdapter({
      study: study as Study | undefined,
      adapter,
      model: given('model'),
      data: given('data'),
      split,
      template: template as LivedoorTemplate | undefined,
      seed: positive('seed'),
      maxLength: positive('max-length'),
      evalBatchSize: positive('eval-batch-size'),
      backend,
    });
    const written = await writeEvalReport(report, given('out'));
    if (json) out(JSON.stringify(report, null, 2));
    else {
      out(formatEvalReport(report));
      if (report.runTestScore !== null && split === 'test') {
        const same = Math.abs(report.runTestScore - report.score) < 1e-12;
        out(
          same
            ? `the run's test score (test-metrics.json): ${pct(report.runTestScore)}, the same`
            : `the run's test score (test-metrics.json) was ${pct(report.runTestScore)}; this is ${pct(report.score)}`,
        );
      }
    }
    if (written) (json ? stderr : out)(`metrics: ${written}`);
  } finally {
    backend.destroy();
  }
}
