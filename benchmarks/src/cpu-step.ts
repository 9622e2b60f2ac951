/**
 * The CPU training-step section of `pnpm bench` (`--backend cpu-step`): LoRA training steps of
 * @peft/backend-cpu beside PyTorch + transformers + peft on the same machine, in one run.
 *
 *   neox     GPT-NeoX ~110M (fixtures/configs/gpt-neox-110m), last-token classifier (9 labels),
 *            LoRA r 32 α 16 dropout 0.1 on query_key_value, `score` trained; batch 8 × 128
 *   neox-gc  the same with gradient checkpointing
 *   llama    Llama ~100M (fixtures/configs/llama-100m), LoRA r 16 α 32 dropout 0.05 on every
 *            linear layer, causal-LM loss on the second half of each sequence; batch 8 × 128
 *
 * Every run is a child process (ours: cpu-step-child.ts, PyTorch: benchmarks/python/cpu_step.py)
 * given the same job, so peak RSS is each side's own; per config and thread count the children
 * alternate ours, PyTorch, ours, PyTorch…, pinned with taskset to as many CPUs as threads when
 * taskset is there. Tokens/s is the median over the timed steps of all of a side's runs.
 * Results go to benchmarks/results/cpu-<date>.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { type CpuStepJob, type CpuStepResult, type KernelProfile, median } from './cpu-step-job.js';
import { matmulRows, profileRows } from './kernel-profile.js';
import { findPython } from './python-env.js';

export interface CpuStepConfig {
  id: 'neox' | 'neox-gc' | 'llama';
  /** The shape, for --only. */
  shape: 'neox' | 'llama';
  /** Folder under fixtures/configs holding config.json. */
  dir: string;
  title: string;
  task: CpuStepJob['task'];
  numLabels?: number;
  r: number;
  alpha: number;
  dropout: number;
  targets: string[];
  gradientCheckpointing: boolean;
  batch: number;
  seq: number;
  /** config.json overrides for --short (a tiny version of the shape). */
  tiny: Record<string, unknown>;
}

const NEOX = {
  shape: 'neox',
  dir: 'gpt-neox-110m',
  task: 'seq-cls',
  numLabels: 9,
  r: 32,
  alpha: 16,
  dropout: 0.1,
  targets: ['query_key_value'],
  batch: 8,
  seq: 128,
  tiny: { hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 256 },
} as const;

export const CPU_STEP_CONFIGS: readonly CpuStepConfig[] = [
  {
    ...NEOX,
    id: 'neox',
    title: 'GPT-NeoX ~110M classifier',
    gradientCheckpointing: false,
    targets: [...NEOX.targets],
    tiny: { ...NEOX.tiny },
  },
  {
    ...NEOX,
    id: 'neox-gc',
    title: 'GPT-NeoX ~110M classifier, gradient checkpointing',
    gradientCheckpointing: true,
    targets: [...NEOX.targets],
    tiny: { ...NEOX.tiny },
  },
  {
    id: 'llama',
    shape: 'llama',
    dir: 'llama-100m',
    title: 'Llama ~100M, answer-only causal LM',
    task: 'causal-lm',
    r: 16,
    alpha: 32,
    dropout: 0.05,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    gradientCheckpointing: false,
    batch: 8,
    seq: 128,
    tiny: { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 172 },
  },
];

/** The short run's sizes: a tiny version of each shape. */
const SHORT_BATCH = 2;
const SHORT_SEQ = 16;

export interface CpuStepSuiteOptions {
  /** Shapes or config ids (neox = neox and neox-gc; neox-gc; llama); empty or absent: all. */
  only?: string[];
  /** Thread counts, each run for every config (default 1,2; --short: 1). */
  threads?: number[];
  /** Children per side per config and thread count, alternating (default 2; --short: 1). */
  rounds?: number;
  warmup?: number;
  steps?: number;
  batch?: number;
  seq?: number;
  /** num_hidden_layers override, both sides. */
  layers?: number;
  /** The tiny shapes, few steps. */
  short?: boolean;
  /** Results file name suffix instead of the date. */
  out?: string;
  python?: string;
  noPython?: boolean;
  /** Time each of our kernels and print their shares. */
  profile?: boolean;
  /** Our GEMM engine: createCpuBackend's `gemm` option (auto, blas, wasm, js), where the backend has it. */
  gemm?: string;
  seed?: number;
  root?: string;
}

export function selectConfigs(only: readonly string[] | undefined): CpuStepConfig[] {
  if (!only || only.length === 0) return [...CPU_STEP_CONFIGS];
  for (const o of only) {
    if (!CPU_STEP_CONFIGS.some((c) => c.id === o || c.shape === o)) {
      throw new Error(`--only ${o}: choose from neox, neox-gc, llama`);
    }
  }
  return CPU_STEP_CONFIGS.filter((c) => only.includes(c.id) || only.includes(c.shape));
}

/** Token ids in [4, vocab): a fixed 32-bit LCG, exact in JavaScript and the same on every run. */
export function tokenIds(batch: number, seq: number, vocab: number, seed: number): number[][] {
  let s = (seed * 2654435761 + 7) >>> 0;
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return 4 + (s % (vocab - 4));
    }),
  );
}

export interface JobSettings {
  short: boolean;
  batch?: number;
  seq?: number;
  layers?: number;
  warmup: number;
  steps: number;
  threads: number;
  profile: boolean;
  seed: number;
  /** Ours only. */
  gemm?: string;
}

/** The job for config `c` (its config.json read from `root`), the same for both sides. */
export function makeJob(root: string, c: CpuStepConfig, s: JobSettings): CpuStepJob {
  const file = join(root, 'fixtures', 'configs', c.dir, 'config.json');
  const base = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const config: Record<string, unknown> = {
    ...base,
    ...(s.short ? c.tiny : {}),
    ...(s.layers !== undefined ? { num_hidden_layers: s.layers } : {}),
  };
  const batch = s.batch ?? (s.short ? SHORT_BATCH : c.batch);
  const seq = s.seq ?? (s.short ? SHORT_SEQ : c.seq);
  const vocab = config.vocab_size;
  if (typeof vocab !== 'number' || vocab <= 4) throw new Error(`${file}: vocab_size ${JSON.stringify(vocab)} must be a number > 4`);
  const ids = tokenIds(batch, seq, vocab, s.seed);
  // causal-lm: the first half of each row is the prompt (no loss), the second half the answer.
  const prompt = Math.floor(seq / 2);
  const labels =
    c.task === 'seq-cls' ? ids.map((_, i) => i % c.numLabels!) : ids.map((row) => row.map((id, j) => (j < prompt ? -100 : id)));
  return {
    id: c.id,
    config,
    task: c.task,
    ids,
    labels,
    ...(c.numLabels ? { numLabels: c.numLabels } : {}),
    r: c.r,
    alpha: c.alpha,
    dropout: c.dropout,
    targets: [...c.targets],
    gradientCheckpointing: c.gradientCheckpointing,
    lr: 1e-4,
    weightDecay: 0.01,
    seed: s.seed,
    warmup: s.warmup,
    steps: s.steps,
    threads: s.threads,
    ...(s.profile ? { profile: true } : {}),
    ...(s.gemm ? { gemm: s.gemm } : {}),
  };
}

/** CPUs in a Linux cpu list ("0-3,6,8-9"). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`cpu list ${JSON.stringify(list)}: cannot read ${JSON.stringify(part)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs this process may run on (Linux), else null. */
export function allowedCpus(): number[] | null {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
    return line ? parseCpuList(line[1]!) : null;
  } catch {
    return null;
  }
}

/** The command prefix that pins a child to `threads` CPUs (the first ones allowed), or none. */
export function pinPrefix(threads: number, cpus: readonly number[] | null, taskset: boolean): { prefix: string[]; note: string } {
  if (!taskset || !cpus || cpus.length === 0) return { prefix: [], note: 'not pinned (no taskset)' };
  const chosen = cpus.slice(0, Math.min(threads, cpus.length));
  const note = `taskset -c ${chosen.join(',')}${threads > cpus.length ? ` (${threads} threads on ${cpus.length} CPUs)` : ''}`;
  return { prefix: ['taskset', '-c', chosen.join(',')], note };
}

export type Side<T> = { ok: true; result: T } | { ok: false; reason: string; skipped?: boolean };

/**
 * A child's answer: the last line of stdout that starts with `{`, parsed. `{"skipped": …}` is a
 * skip (the side is unavailable); no JSON, bad JSON or a non-zero exit a failure naming the
 * command, the exit and the end of stderr.
 */
export function parseChildOutput(
  what: string,
  stdout: string,
  code: number | null,
  signal: string | null,
  stderrTail: string,
): Side<CpuStepResult> {
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.trimStart().startsWith('{'));
  let json: (Partial<CpuStepResult> & { skipped?: string }) | undefined;
  let parseError = '';
  if (line) {
    try {
      json = JSON.parse(line);
    } catch (err) {
      parseError = `: its last JSON line does not parse (${(err as Error).message})`;
    }
  }
  if (json && typeof json.skipped === 'string') return { ok: false, reason: json.skipped, skipped: true };
  const last = stderrTail.trim().split('\n').slice(-3).join(' | ');
  if (code !== 0 || !json) {
    const exit = code === null ? `was killed (${signal ?? 'signal'})` : `exited with ${code}`;
    return { ok: false, reason: `${what} ${exit}${parseError || (json ? '' : ', no JSON result')}${last ? `: ${last}` : ''}` };
  }
  for (const k of ['stepMs', 'losses'] as const) {
    if (!Array.isArray(json[k])) return { ok: false, reason: `${what}: result has no ${k} array: ${line!.slice(0, 200)}` };
  }
  for (const k of ['warmup', 'tokensPerSecond', 'buildSeconds', 'peakRssBytes'] as const) {
    if (typeof json[k] !== 'number') return { ok: false, reason: `${what}: result field ${k} is ${JSON.stringify(json[k])}, not a number` };
  }
  return { ok: true, result: json as CpuStepResult };
}

export interface ChildRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderrTail: string;
}

/** Runs a child with `input` on its stdin; its stderr passes through (indented by the child itself). */
export function runChild(
  cmd: string,
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
  timeoutMs: number,
): Promise<ChildRun> {
  return new Promise((resolve) => {
    let stdout = '';
    let tail = '';
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env, cwd });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      process.stderr.write(s);
      tail = (tail + s).slice(-2000);
    });
    child.stdin.on('error', () => {
      // a child that exits before reading its job: reported by its exit status below
    });
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderrTail: `cannot run ${cmd}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderrTail: tail });
    });
  });
}

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

/** The checkout holding fixtures/configs and benchmarks/python/cpu_step.py: $PEFT_REPO, or upwards from here and from the working directory. */
export function findRoot(): string {
  const ok = (d: string) => existsSync(join(d, 'fixtures', 'configs')) && existsSync(join(d, 'benchmarks', 'python', 'cpu_step.py'));
  const env = process.env.PEFT_REPO;
  if (env) {
    if (!ok(env)) throw new Error(`PEFT_REPO=${env} has no fixtures/configs and benchmarks/python/cpu_step.py`);
    return env;
  }
  for (const start of [import.meta.dirname, process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      if (ok(d)) return d;
      if (dirname(d) === d) break;
    }
  }
  throw new Error(
    `cannot find the checkout (fixtures/configs, benchmarks/python/cpu_step.py) above ${import.meta.dirname} or ${process.cwd()}: set PEFT_REPO`,
  );
}

function git(root: string, args: string[]): string | null {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Children's environment: the thread count for every OpenMP / BLAS runtime either side may load. */
export function childEnv(threads: number, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const n = String(threads);
  return { ...base, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, PYTHONUNBUFFERED: '1' };
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

/** Runs the section; returns what it wrote to the results file. */
export async function runCpuStepSuite(opts: CpuStepSuiteOptions = {}): Promise<CpuStepReport> {
  const configs = selectConfigs(opts.only);
  const root = opts.root ?? findRoot();
  const short = opts.short ?? false;
  const threadsList = opts.threads ?? (short ? [1] : [1, 2]);
  for (const t of threadsList) if (!(Number.isInteger(t) && t > 0)) throw new Error(`--threads ${t}: needs positive integers`);
  const rounds = opts.rounds ?? (short ? 1 : 2);
  if (!(Number.isInteger(rounds) && rounds > 0)) throw new Error(`--rounds ${rounds}: needs a positive integer`);
  const warmup = opts.warmup ?? 1;
  const steps = opts.steps ?? 2;
  const seed = opts.seed ?? 0;
  const cpus = allowedCpus();
  const taskset = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
  const childTimeoutMs = (short ? 5 : 60) * 60_000;
  const load0 = os.loadavg();

  console.log(
    `CPU LoRA training step, ours (@peft/backend-cpu) vs PyTorch + transformers + peft${short ? ' (short: tiny shapes)' : ''}; ${os.cpus()[0]?.model ?? 'cpu'}, ${cpus?.length ?? os.cpus().length} CPUs allowed, load ${load0.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(
    `float32, random weights, AdamW; a step = forward + backward + AdamW + zero grad + loss read; ${warmup} warm-up + ${steps} timed steps per run, ${rounds} runs per side alternating, threads ${threadsList.join(', ')}`,
  );

  let python: CpuStepReport['python'];
  if (opts.noPython) python = { skipped: '--no-python' };
  else {
    const found = await findPython({ python: opts.python, root, install: !short });
    python = found.ok ? { executable: found.python, how: found.how } : { skipped: found.reason };
  }
  if ('skipped' in python) console.log(`PyTorch + PEFT: skipped — ${python.skipped}`);
  else console.log(`PyTorch + PEFT: ${python.executable} (from ${python.how})`);
  let pythonSkip: string | null = 'skipped' in python ? python.skipped : null;

  // Written after every config and thread count, so that a run cut short keeps what it measured.
  const date = new Date().toISOString().slice(0, 10);
  const reportPath = join(root, 'benchmarks', 'results', `cpu-${opts.out ?? date}${short ? '.short' : ''}.json`);
  const status = git(root, ['status', '--porcelain', '--untracked-files=no']);
  const writeReport = (complete: boolean): CpuStepReport => {
    const json: CpuStepReport = {
      complete,
      benchmark: 'cpu: LoRA training step, @peft/backend-cpu vs PyTorch + transformers + peft (float32, random weights, AdamW)',
      date: new Date().toISOString(),
      commit: git(root, ['rev-parse', 'HEAD']),
      dirty: status === null ? null : status.length > 0,
      short,
      machine: {
        cpu: os.cpus()[0]?.model,
        cores: os.cpus().length,
        allowedCpus: cpus,
        taskset,
        loadAverageBefore: load0,
        loadAverageAfter: os.loadavg(),
        platform: `${process.platform}-${process.arch}`,
        node: process.version,
      },
      settings: { warmup, steps, rounds, threads: threadsList, seed, gemm: opts.gemm ?? null },
      python,
      results: cells.map((c) => ({
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
      })),
    };
    mkdirSync(dirname(reportPath), { recursive: true });
    writeFileSync(reportPath, `${JSON.stringify(json, null, 2)}\n`);
    return json;
  };

  const oursCmd = [process.execPath, '--conditions=@peft/source', '--import', 'tsx', join(root, 'benchmarks', 'src', 'cpu-step-child.ts')];
  const pyScript = join(root, 'benchmarks', 'python', 'cpu_step.py');
  const cells: Cell[] = [];
  for (const c of configs) {
    for (const threads of threadsList) {
      const job = makeJob(root, c, {
        short,
        batch: opts.batch,
        seq: opts.seq,
        layers: opts.layers,
        warmup,
        steps,
        threads,
        profile: false,
        seed,
      });
      const input = JSON.stringify(job);
      const oursInput = JSON.stringify({ ...job, ...(opts.profile ? { profile: true } : {}), ...(opts.gemm ? { gemm: opts.gemm } : {}) });
      const [batch, seq] = [job.ids.length, job.ids[0]!.length];
      const layers = job.config.num_hidden_layers as number;
      const pin = pinPrefix(threads, cpus, taskset);
      const env = childEnv(threads);
      console.log(
        `\n${c.title}${short ? ' (tiny)' : ''}: fixtures/configs/${c.dir}, ${layers} layers, batch ${batch} × ${seq}, LoRA r ${c.r} α ${c.alpha} dropout ${c.dropout} on ${c.targets.join(', ')}${c.gradientCheckpointing ? ', gradient checkpointing' : ''}; ${threads} thread${threads > 1 ? 's' : ''}, ${pin.note}`,
      );
      const ours: Side<CpuStepResult>[] = [];
      const pytorch: Side<CpuStepResult>[] = [];
      for (let round = 1; round <= rounds; round++) {
        const [cmd, ...args] = [...pin.prefix, ...oursCmd];
        const o = await runChild(cmd!, args, oursInput, env, root, childTimeoutMs);
        const side = parseChildOutput('ours (cpu-step-child.ts)', o.stdout, o.code, o.signal, o.stderrTail);
        ours.push(side);
        report(`ours    run ${round}`, side);
        if (pythonSkip === null && !('skipped' in python)) {
          const [pcmd, ...pargs] = [...pin.prefix, python.executable, pyScript];
          const p = await runChild(pcmd!, pargs, input, env, root, childTimeoutMs);
          const pside = parseChildOutput(`${python.executable} cpu_step.py`, p.stdout, p.code, p.signal, p.stderrTail);
          pytorch.push(pside);
          report(`PyTorch run ${round}`, pside);
          if (!pside.ok && pside.skipped) {
            pythonSkip = pside.reason;
            console.log(`  PyTorch + PEFT: skipped from here on — ${pside.reason}`);
          }
        }
      }
      const tokens = batch * seq;
      const oursOk = ours.flatMap((s) => (s.ok ? [s.result] : []));
      const pyOk = pytorch.flatMap((s) => (s.ok ? [s.result] : []));
      const oursSummary = summarize(oursOk, tokens);
      const pySummary = summarize(pyOk, tokens);
      if (ours.some((s) => !s.ok)) process.exitCode = 1;
      cells.push({
        config: c,
        threads,
        batch,
        seq,
        layers,
        pin: pin.note,
        ours: { runs: ours, summary: oursSummary },
        pytorch: { runs: pytorch, summary: pySummary, ...(pythonSkip !== null && pyOk.length === 0 ? { skipped: pythonSkip } : {}) },
        ratios: ratios(oursSummary, pySummary),
        profile: mergeProfiles(oursOk.flatMap((r) => (r.profile ? [r.profile] : []))),
        buildProfile: mergeProfiles(oursOk.flatMap((r) => (r.buildProfile ? [r.buildProfile] : []))),
      });
      writeReport(false);
    }
  }

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
  if (opts.profile) {
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

  const json = writeReport(true);
  console.log(`\nwrote ${relative(process.cwd(), reportPath) || reportPath}`);
  return json;
}

function report(label: string, s: Side<CpuStepResult>): void {
  if (!s.ok) {
    console.log(`  ${label}: ${s.skipped ? 'skipped' : 'failed'} — ${s.reason}`);
    return;
  }
  const r = s.result;
  console.log(
    `  ${label}: ${fmt.tps(r.tokensPerSecond)} tokens/s (${(r.medianStepMs / 1000).toFixed(2)} s/step), build ${fmt.sec(r.buildSeconds)}, start-up ${fmt.sec(r.startSeconds)}, peak RSS ${fmt.mib(r.peakRssBytes)}, losses ${r.losses.map((l) => l.toFixed(4)).join(', ')}; ${r.engine}`,
  );
}
