/**
 * What the CPU training-step section reports: each side's summary over its runs, the ratios, the
 * comparison and profile tables, the results file's JSON, and the lines printed along the way.
 */
import os from 'node:os';
import type { CpuStepConfig } from './cpu-step-config.js';
import { type CpuStepResult, type KernelProfile, median } from './cpu-step-job.js';
import type { Side } from './cpu-step-runner.js';
import { matmulRows, profileRows } from './kernel-profile.js';

/** One side of one (config, threads) cell, over its rounds. */
export interface SideSummary {
  runs: number;
  /** Median over the timed steps of every run. */
  medianStepMs: number;
  tokensPerSecond: number;
  /** The largest peak RSS of the runs. */
  peakRssBytes: number;
  /** Median of the runs' build times. */
  buildSeconds: number;
  startSeconds: number;
  firstLoss: number | null;
  parameters: number;
  trainable: number;
  engine: string;
}

/** Summary of a side's runs; null when none succeeded. */
export function summarize(results: readonly CpuStepResult[], tokensPerStep: number): SideSummary | null {
  if (results.length === 0) return null;
  const timed = results.flatMap((r) => {
    const t = r.stepMs.slice(r.warmup);
    return t.length > 0 ? t : r.stepMs;
  });
  const medianStepMs = median(timed);
  return {
    runs: results.length,
    medianStepMs,
    tokensPerSecond: tokensPerStep / (medianStepMs / 1000),
    peakRssBytes: Math.max(...results.map((r) => r.peakRssBytes)),
    buildSeconds: median(results.map((r) => r.buildSeconds)),
    startSeconds: median(results.map((r) => r.startSeconds ?? Number.NaN)),
    firstLoss: results[0]!.losses[0] ?? null,
    parameters: results[0]!.parameters,
    trainable: results[0]!.trainable,
    engine: results[0]!.engine,
  };
}

export interface Ratios {
  /** ours ÷ PyTorch: above 1 is faster. */
  tokensPerSecond: number | null;
  /** ours ÷ PyTorch: below 1 is less memory. */
  peakRss: number | null;
  /** ours ÷ PyTorch: below 1 is a faster build. */
  buildSeconds: number | null;
}

export function ratios(ours: SideSummary | null, torch: SideSummary | null): Ratios {
  if (!ours || !torch) return { tokensPerSecond: null, peakRss: null, buildSeconds: null };
  const div = (a: number, b: number) => (b > 0 && Number.isFinite(a) && Number.isFinite(b) ? a / b : null);
  return {
    tokensPerSecond: div(ours.tokensPerSecond, torch.tokensPerSecond),
    peakRss: div(ours.peakRssBytes, torch.peakRssBytes),
    buildSeconds: div(ours.buildSeconds, torch.buildSeconds),
  };
}

/** A Markdown table, the first column left-aligned and the others right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    `| ${widths.map((w, i) => (i === 0 ? (r[i] ?? '').padEnd(w) : (r[i] ?? '').padStart(w))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)];
}

const MiB = 2 ** 20;
export const fmt = {
  tps: (v: number | undefined) =>
    v === undefined || !Number.isFinite(v) ? '-' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1),
  mib: (v: number | undefined) => (v === undefined ? '-' : `${Math.round(v / MiB).toLocaleString('en-US')} MiB`),
  ratio: (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}×`),
  sec: (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v >= 10 ? `${v.toFixed(1)} s` : `${v.toFixed(2)} s`),
  params: (v: number | undefined) => (v === undefined ? '-' : v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : `${(v / 1e3).toFixed(1)}k`),
  pct: (v: number) => `${(100 * v).toFixed(1)}%`,
};

export interface Cell {
  config: CpuStepConfig;
  threads: number;
  batch: number;
  seq: number;
  layers: number;
  pin: string;
  ours: { runs: Side<CpuStepResult>[]; summary: SideSummary | null };
  pytorch: { runs: Side<CpuStepResult>[]; summary: SideSummary | null; skipped?: string };
  ratios: Ratios;
  profile: KernelProfile | null;
  /** Ours' build (config to first step), summed over the runs; one "step" per run. */
  buildProfile: KernelProfile | null;
}

/** The comparison table: one row per config and thread count. */
export function comparisonTable(cells: readonly Cell[]): string[] {
  const header = [
    'config',
    'threads',
    'tokens/s ours',
    'tokens/s PyTorch',
    'ours / PyTorch',
    'peak RSS ours',
    'peak RSS PyTorch',
    'RSS ours / PyTorch',
    'build ours',
    'build PyTorch',
    'loss₁ ours',
    'loss₁ PyTorch',
  ];
  const rows = cells.map((c) => {
    const o = c.ours.summary;
    const p = c.pytorch.summary;
    return [
      `${c.config.id} ${c.layers}L ${c.batch}×${c.seq}`,
      String(c.threads),
      o ? fmt.tps(o.tokensPerSecond) : 'failed',
      p ? fmt.tps(p.tokensPerSecond) : c.pytorch.skipped ? 'skipped' : 'failed',
      fmt.ratio(c.ratios.tokensPerSecond),
      fmt.mib(o?.peakRssBytes),
      fmt.mib(p?.peakRssBytes),
      fmt.ratio(c.ratios.peakRss),
      fmt.sec(o?.buildSeconds),
      fmt.sec(p?.buildSeconds),
      o?.firstLoss?.toFixed(4) ?? '-',
      p?.firstLoss?.toFixed(4) ?? '-',
    ];
  });
  return formatTable(header, rows);
}

/** Sums profiles of several runs of one cell. */
export function mergeProfiles(profiles: readonly KernelProfile[]): KernelProfile | null {
  if (profiles.length === 0) return null;
  const out: KernelProfile = { kernels: {}, matmul: {}, stepMs: 0, steps: 0 };
  for (const p of profiles) {
    out.stepMs += p.stepMs;
    out.steps += p.steps;
    for (const [k, v] of Object.entries(p.kernels)) {
      const o = (out.kernels[k] ??= { calls: 0, ms: 0 });
      o.calls += v.calls;
      o.ms += v.ms;
    }
    for (const [k, v] of Object.entries(p.matmul)) {
      const o = (out.matmul[k] ??= { calls: 0, ms: 0, flops: v.flops });
      o.calls += v.calls;
      o.ms += v.ms;
    }
  }
  return out;
}

/** The per-kernel share table of a profile, and its slowest matmul shapes. */
export function profileTables(p: KernelProfile, topShapes = 12): string[] {
  const kernels = profileRows(p).map((r) => [
    r.kernel,
    r.callsPerStep ? r.callsPerStep.toFixed(0) : '',
    r.msPerStep.toFixed(1),
    fmt.pct(r.share),
  ]);
  const shapes = matmulRows(p)
    .slice(0, topShapes)
    .map((r) => [r.shape, r.callsPerStep.toFixed(0), r.msPerStep.toFixed(1), fmt.pct(r.share), r.gflops.toFixed(1)]);
  return [
    ...formatTable(['kernel', 'calls/step', 'ms/step', 'share of step'], kernels),
    '',
    ...formatTable(['matmul m×n×k', 'calls/step', 'ms/step', 'share of step', 'GFLOP/s'], shapes),
  ];
}

/** The kernels of our build (one "step" per run), largest first: where the build time goes. */
export function buildProfileTable(p: KernelProfile, top = 10): string[] {
  const rows = profileRows(p);
  const outside = rows.pop()!;
  const shown = [...rows.slice(0, top), outside];
  return formatTable(
    ['kernel', 'calls/run', 'ms/run', 'share of build'],
    shown.map((r) => [r.kernel, r.callsPerStep ? r.callsPerStep.toFixed(0) : '', r.msPerStep.toFixed(1), fmt.pct(r.share)]),
  );
}

export interface CpuStepReport {
  /** False while the run is under way (the file is rewritten after each config and thread count). */
  complete: boolean;
  benchmark: string;
  date: string;
  commit: string | null;
  dirty: boolean | null;
  short: boolean;
  machine: Record<string, unknown>;
  settings: { warmup: number; steps: number; rounds: number; threads: number[]; seed: number; gemm: string | null };
  python: { executable: string; how: string } | { skipped: string };
  results: Record<string, unknown>[];
}

/** What a results file records besides its cells. */
export interface ReportHeader {
  commit: string | null;
  dirty: boolean | null;
  short: boolean;
  cpus: number[] | null;
  taskset: boolean;
  loadAverageBefore: number[];
  settings: CpuStepReport['settings'];
  python: CpuStepReport['python'];
}

/** The results file's content: `complete` once every cell has run; the date and load average are now's. */
export function reportJson(complete: boolean, h: ReportHeader, cells: readonly Cell[]): CpuStepReport {
  return {
    complete,
    benchmark: 'cpu: LoRA training step, @peft/backend-cpu vs PyTorch + transformers + peft (float32, random weights, AdamW)',
    date: new Date().toISOString(),
    commit: h.commit,
    dirty: h.dirty,
    short: h.short,
    machine: {
      cpu: os.cpus()[0]?.model,
      cores: os.cpus().length,
      allowedCpus: h.cpus,
      taskset: h.taskset,
      loadAverageBefore: h.loadAverageBefore,
      loadAverageAfter: os.loadavg(),
      platform: `${process.platform}-${process.arch}`,
      node: process.version,
    },
    settings: h.settings,
    python: h.python,
    results: cells.map(cellJson),
  };
}

/** One cell of the results file: its config, each side's summary, the ratios and every run. */
function cellJson(c: Cell): Record<string, unknown> {
  return {
    config: c.config.id,
    title: c.config.title,
    dir: c.config.dir,
    task: c.config.task,
    layers: c.layers,
    batch: c.batch,
    seq: c.seq,
    r: c.config.r,
    alpha: c.config.alpha,
    dropout: c.config.dropout,
    targets: c.config.targets,
    gradientCheckpointing: c.config.gradientCheckpointing,
    threads: c.threads,
    pinning: c.pin,
    ours: c.ours.summary,
    pytorch: c.pytorch.summary ?? { skipped: c.pytorch.skipped ?? 'failed' },
    ratios: c.ratios,
    runs: {
      ours: c.ours.runs.map((r) => (r.ok ? { ...r.result, profile: undefined, buildProfile: undefined } : { failed: r.reason })),
      pytorch: c.pytorch.runs.map((r) => (r.ok ? r.result : { [r.skipped ? 'skipped' : 'failed']: r.reason })),
    },
    ...(c.profile ? { profile: c.profile } : {}),
    ...(c.buildProfile ? { buildProfile: c.buildProfile } : {}),
  };
}

/** The line printed after each child: its speed, build, start-up, peak RSS and losses, or why it failed. */
export function printRun(label: string, s: Side<CpuStepResult>): void {
  if (!s.ok) {
    console.log(`  ${label}: ${s.skipped ? 'skipped' : 'failed'} — ${s.reason}`);
    return;
  }
  const r = s.result;
  console.log(
    `  ${label}: ${fmt.tps(r.tokensPerSecond)} tokens/s (${(r.medianStepMs / 1000).toFixed(2)} s/step), build ${fmt.sec(r.buildSeconds)}, start-up ${fmt.sec(r.startSeconds)}, peak RSS ${fmt.mib(r.peakRssBytes)}, losses ${r.losses.map((l) => l.toFixed(4)).join(', ')}; ${r.engine}`,
  );
}

/** After the last cell: the GEMM engines, the comparison table, the failures, and with `profile` each cell's kernel tables. */
export function printSummary(cells: readonly Cell[], profile: boolean): void {
  const engines = [...new Set(cells.flatMap((c) => [c.ours.summary?.engine, c.pytorch.summary?.engine]).filter((e): e is string => !!e))];
  console.log(`\nGEMM: ${engines.join('; ') || 'n/a'}`);
  console.log(
    'tokens/s: batch × seq ÷ median step over the timed steps of all runs; peak RSS: the largest of the runs (getrusage); build: config to first step (model, adapter, head, optimizer), median of the runs',
  );
  console.log();
  for (const line of comparisonTable(cells)) console.log(line);
  for (const cell of cells) {
    for (const [side, runs] of [
      ['ours', cell.ours.runs],
      ['PyTorch', cell.pytorch.runs],
    ] as const) {
      for (const r of runs) if (!r.ok && !r.skipped) console.log(`${cell.config.id} x${cell.threads} ${side}: ${r.reason}`);
    }
  }
  if (profile) {
    for (const cell of cells) {
      if (!cell.profile) continue;
      const p = cell.profile;
      console.log(
        `\nprofile, ours: ${cell.config.id} ${cell.layers}L ${cell.batch}×${cell.seq}, ${cell.threads} thread${cell.threads > 1 ? 's' : ''} (${p.steps} timed steps, ${(p.stepMs / p.steps / 1000).toFixed(2)} s/step; kernel time as the calls return)`,
      );
      for (const line of profileTables(p)) console.log(line);
      const b = cell.buildProfile;
      if (b) {
        console.log(`\nbuild, ours: ${(b.stepMs / b.steps / 1000).toFixed(2)} s per run (model, adapter, head, optimizer)`);
        for (const line of buildProfileTable(b)) console.log(line);
      }
    }
  }
}
