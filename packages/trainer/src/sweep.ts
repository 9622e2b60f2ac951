import { jsonText, type RunStore, readJson, subStore } from './store.js';
import { lineChartSvg } from './svg.js';
import type { Evaluation, ValidationRecord } from './types.js';

export type GridValue = string | number | boolean;
/** Values to try per setting; the sweep runs every combination. */
export type Grid = Readonly<Record<string, readonly GridValue[]>>;
export type SweepConfig = Record<string, GridValue>;

/** What a sweep needs from a run (a `TrainResult` has it). */
export interface RunOutcome {
  best: ValidationRecord;
  test: Evaluation | null;
  validation: ValidationRecord[];
}

export interface SweepRun {
  /** The run's folder name in the sweep folder, e.g. `lr=0.0001,template=0`. */
  name: string;
  config: SweepConfig;
  result: RunOutcome;
  /** True when the result was read back from a finished run folder instead of run (resume). */
  reused: boolean;
}

export interface SweepContext {
  name: string;
  index: number;
  total: number;
  /** The configuration's own run folder inside the sweep folder (pass it as `out` to `train`). */
  out: RunStore | undefined;
  /** Pass on to `train`: continue an interrupted configuration from its checkpoint. */
  resume: boolean;
}

export interface MetricColumn {
  key: string;
  label: string;
}

export interface SweepOptions {
  /** The sweep folder: one run folder per configuration, summary.md, val-f1.svg and sweep.json. */
  out?: RunStore;
  /** Reuse configurations whose run folder is finished (has test-metrics.json) and resume the interrupted one. */
  resume?: boolean;
  /** Default true. */
  greaterIsBetter?: boolean;
  /** Header of the validation-score column and the plot's axis. Default "val F1". */
  scoreLabel?: string;
  /** Test-metric columns (keys of `test.metrics`). Default: every numeric test metric of the selected run, in order. */
  metrics?: readonly (string | MetricColumn)[];
  /** Show scores and metrics in percent with 2 decimals (as the study's tables). Default true. */
  percent?: boolean;
  /** Plot title. */
  title?: string;
  /** A line per configuration as it starts and ends. Default: none. */
  log?: (line: string) => void;
}

export interface SweepResult {
  runs: SweepRun[];
  /** The run with the best validation score (the first one on ties). */
  best: SweepRun;
  /** summary.md's text. */
  summary: string;
  /** val-f1.svg's text. */
  svg: string;
}

/** Every combination of the grid's values, the first setting varying slowest (lr × template: lr=1e-4 with each template, then lr=3e-4, …). */
export function expandGrid(grid: Grid): SweepConfig[] {
  const keys = Object.keys(grid);
  for (const k of keys) {
    const values = grid[k]!;
    if (!Array.isArray(values) || values.length === 0)
      throw new Error(`expandGrid: "${k}" needs a non-empty list of values, got ${JSON.stringify(values)}`);
  }
  let configs: SweepConfig[] = [{}];
  for (const k of keys) configs = configs.flatMap((c) => grid[k]!.map((v) => ({ ...c, [k]: v })));
  return configs;
}

/** A folder name for a configuration: `lr=0.0001,template=0` (characters outside [A-Za-z0-9._=,+-] become `_`). */
export function configName(config: SweepConfig): string {
  const name = Object.entries(config)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return (name || 'run').replace(/[^A-Za-z0-9._=,+-]/g, '_');
}

function better(a: number, b: number, greater: boolean): boolean {
  return greater ? a > b : a < b;
}

/** Index of the run with the best validation score; NaN scores never win, ties keep the first. */
export function selectBest(runs: readonly { result: RunOutcome }[], greaterIsBetter = true): number {
  let at = -1;
  runs.forEach((r, i) => {
    const s = r.result.best.score;
    if (Number.isNaN(s)) return;
    if (at < 0 || better(s, runs[at]!.result.best.score, greaterIsBetter)) at = i;
  });
  return Math.max(0, at);
}

function columnsOf(spec: SweepOptions['metrics'], run: SweepRun | undefined): MetricColumn[] {
  if (spec) return spec.map((c) => (typeof c === 'string' ? { key: c, label: c } : c));
  const metrics = run?.result.test?.metrics ?? {};
  return Object.entries(metrics)
    .filter(([, v]) => typeof v === 'number')
    .map(([key]) => ({ key, label: key }));
}

/**
 * The sweep as a markdown table like the study's: one row per configuration with its settings,
 * the selected epoch, the validation score, and the test metrics of the selected state
 * (percent, 2 decimals); the selected configuration's validation score in bold.
 */
export function sweepMarkdown(runs: readonly SweepRun[], opts: SweepOptions = {}): string {
  if (runs.length === 0) return 'No runs.\n';
  const percent = opts.percent ?? true;
  const fmt = (v: unknown) =>
    typeof v === 'number' ? (Number.isFinite(v) ? (percent ? (v * 100).toFixed(2) : String(v)) : String(v)) : '';
  const bestAt = selectBest(runs, opts.greaterIsBetter ?? true);
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))];
  const columns = columnsOf(opts.metrics, runs[bestAt]);
  const scoreLabel = opts.scoreLabel ?? 'val F1';
  const header = [...keys, 'epoch', scoreLabel, ...columns.map((c) => c.label)];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  runs.forEach((r, i) => {
    const val = fmt(r.result.best.score);
    const cells = [
      ...keys.map((k) => String(r.config[k] ?? '')),
      String(r.result.best.epoch),
      i === bestAt ? `**${val}**` : val,
      ...columns.map((c) => fmt(r.result.test?.metrics[c.key])),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  });
  const best = runs[bestAt]!;
  const setting = Object.entries(best.config)
    .map(([k, v]) => `${k} = ${v}`)
    .join(', ');
  const testPart = best.result.test ? `; test score ${fmt(best.result.test.score)}` : '';
  lines.push(
    '',
    `Selected by ${scoreLabel}: ${setting || best.name} (epoch ${best.result.best.epoch}, ${scoreLabel} ${fmt(best.result.best.score)}${testPart}).` +
      (percent ? ' Values in percent.' : ''),
  );
  return `${lines.join('\n')}\n`;
}

/** Validation score per epoch, one line per configuration, the selected one drawn thicker. */
export function sweepSvg(runs: readonly SweepRun[], opts: SweepOptions = {}): string {
  const label = opts.scoreLabel ?? 'val F1';
  return lineChartSvg(
    runs.map((r) => ({ label: r.name, points: r.result.validation.map((v) => [v.epoch, v.score] as const) })),
    {
      title: opts.title ?? `${label} per epoch`,
      xLabel: 'epoch',
      yLabel: (opts.percent ?? true) ? `${label} (%)` : label,
      percent: opts.percent ?? true,
      highlight: runs.length ? selectBest(runs, opts.greaterIsBetter ?? true) : undefined,
    },
  );
}

async function finishedRun(store: RunStore): Promise<RunOutcome | null> {
  const test = await readJson<{
    epoch: number;
    step: number;
    validationScore: number;
    score: number | null;
    metrics: Record<string, unknown> | null;
  }>(store, 'test-metrics.json');
  if (!test) return null;
  const validation = (await readJson<ValidationRecord[]>(store, 'val-metrics.json')) ?? [];
  const best = validation.find((v) => v.epoch === test.epoch) ?? {
    epoch: test.epoch,
    step: test.step,
    score: test.validationScore,
    metrics: {},
  };
  return { best, test: test.score === null ? null : { score: test.score, metrics: test.metrics ?? {} }, validation };
}

/**
 * Runs a grid of configurations one after another, each in its own run folder, selects the one
 * with the best validation score, and writes `summary.md`, `val-f1.svg` and `sweep.json` into the
 * sweep folder (after every configuration, so an interrupted sweep still has its table).
 */
export async function runSweep(
  grid: Grid,
  run: (config: SweepConfig, ctx: SweepContext) => Promise<RunOutcome>,
  opts: SweepOptions = {},
): Promise<SweepResult> {
  const configs = expandGrid(grid);
  const names = configs.map(configName);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`runSweep: two configurations map to the run folder "${dup}": make the grid's values distinct`);
  const runs: SweepRun[] = [];
  const write = async () => {
    if (!opts.out) return;
    const summary = sweepMarkdown(runs, opts);
    await opts.out.writeFile('summary.md', summary);
    await opts.out.writeFile('val-f1.svg', sweepSvg(runs, opts));
    const best = runs[selectBest(runs, opts.greaterIsBetter ?? true)];
    await opts.out.writeFile(
      'sweep.json',
      jsonText({
        grid,
        best: best?.name ?? null,
        runs: runs.map((r) => ({ name: r.name, config: r.config, best: r.result.best, test: r.result.test })),
      }),
    );
  };
  for (let i = 0; i < configs.length; i++) {
    const config = configs[i]!;
    const name = names[i]!;
    const out = opts.out ? subStore(opts.out, name) : undefined;
    const done = out && opts.resume ? await finishedRun(out) : null;
    if (done) {
      opts.log?.(`[${i + 1}/${configs.length}] ${name}: finished before, reusing its results`);
      runs.push({ name, config, result: done, reused: true });
    } else {
      opts.log?.(`[${i + 1}/${configs.length}] ${name}`);
      const result = await run(config, { name, index: i, total: configs.length, out, resume: opts.resume ?? false });
      runs.push({ name, config, result: { best: result.best, test: result.test, validation: result.validation }, reused: false });
      opts.log?.(`[${i + 1}/${configs.length}] ${name}: validation ${result.best.score.toFixed(4)} at epoch ${result.best.epoch}`);
    }
    await write();
  }
  const best = runs[selectBest(runs, opts.greaterIsBetter ?? true)]!;
  return { runs, best, summary: sweepMarkdown(runs, opts), svg: sweepSvg(runs, opts) };
}
