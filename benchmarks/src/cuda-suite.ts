/**
 * The CUDA section of `pnpm bench` (`--backend cuda`): a LoRA training step of a Llama-2-7B-shaped
 * and a GPT-NeoX 3.6B-shaped (rinna japanese-gpt-neox-3.6b) model with random bf16 weights, on
 * @peft/backend-cuda, beside the same step in PyTorch + transformers + peft
 * (benchmarks/python/peft_step.py) on the same GPU in the same run: tokens/s, median step time,
 * peak memory, MFU, first losses. Without a usable GPU it prints one line saying why and returns.
 * Results go to benchmarks/results/cuda-<date>.json (and $OUT/cuda-bench.json when $OUT is set).
 *
 * Our model is built, timed and freed (pool trimmed, backend destroyed) before the Python process
 * starts, so the two never hold GPU memory at the same time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { type CudaAvailability, createCudaBackend, isAvailable } from '@peft/backend-cuda';
import type { Backend } from '@peft/core';
import { type LoraStepOptions, type LoraStepResult, runLoraStep } from './lora-step.js';

export interface CudaBenchConfig {
  id: 'llama' | 'neox';
  /** Folder under fixtures/configs holding config.json. */
  dir: string;
  title: string;
  r: number;
  alpha: number;
  targets: string[];
  batch: number;
  seq: number;
}

export const CUDA_CONFIGS: readonly CudaBenchConfig[] = [
  {
    id: 'llama',
    dir: 'llama-2-7b',
    title: 'Llama-2-7B shape',
    r: 16,
    alpha: 32,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    batch: 8,
    seq: 512,
  },
  {
    id: 'neox',
    dir: 'rinna-japanese-gpt-neox-3.6b',
    title: 'rinna japanese-gpt-neox-3.6b shape',
    r: 32,
    alpha: 64,
    targets: ['query_key_value'],
    batch: 32,
    seq: 512,
  },
];

/**
 * The bench step of config `c` for `runLoraStep`: its config.json from `root`/fixtures/configs,
 * random bf16 weights, its LoRA, gradient checkpointing; batch, seq and the rest from `o`.
 */
export function benchStep(
  root: string,
  c: CudaBenchConfig,
  o: Omit<LoraStepOptions, 'config' | 'dtype' | 'r' | 'alpha' | 'targets' | 'batch' | 'seq'> & { batch?: number; seq?: number },
): LoraStepOptions {
  const config = JSON.parse(readFileSync(join(root, 'fixtures', 'configs', c.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return {
    config,
    dtype: 'bfloat16',
    r: c.r,
    alpha: c.alpha,
    targets: c.targets,
    batch: c.batch,
    seq: c.seq,
    gradientCheckpointing: true,
    ...o,
  };
}

export interface CudaSuiteOptions {
  /** Config ids to run (llama, neox); empty or absent: both. */
  only?: string[];
  warmup?: number;
  steps?: number;
  batch?: number;
  seq?: number;
  /** num_hidden_layers override, on both sides (a quick look). */
  layers?: number;
  /** Fewer steps (warm-up 1, 3 timed) unless --warmup/--steps say otherwise. */
  short?: boolean;
  /** Results file name suffix instead of the date. */
  out?: string;
  /** Python executable; default $PEFT_BENCH_PYTHON or python3. */
  python?: string;
  /** Skip the PyTorch + PEFT side. */
  noPython?: boolean;
  /** Skip our second run, the step captured as a CUDA graph (TrainingStep) and replayed. */
  noGraph?: boolean;
  /** The repository checkout (fixtures/configs, benchmarks/python); found by looking upwards when absent. */
  root?: string;
}

/** What the suite needs of a backend: the CUDA backend's extras are optional so that a test can run the suite on the CPU backend. */
export interface SuiteBackend extends Backend {
  readonly device?: { name: string; computeCapability: readonly number[]; totalBytes: number; driverVersion: number };
  readonly gemmLibrary?: string;
  /** GEMMs per path (cuBLASLt, the tiled kernel) since creation. */
  readonly gemmCounts?: Readonly<Record<string, number>>;
  trimPool?(): void;
}

/** The suite's outside world, replaceable in tests. */
export interface CudaSuiteDeps {
  isAvailable(): CudaAvailability;
  createBackend(): SuiteBackend;
}

const CUDA_DEPS: CudaSuiteDeps = { isAvailable: () => isAvailable(), createBackend: () => createCudaBackend() };

/** Dense bf16 tensor-core peak (no sparsity) by GPU name, FLOP/s; null when the GPU is not in the table. */
export function peakBf16Flops(name: string): { flops: number; label: string } | null {
  const n = name.toUpperCase();
  if (n.includes('H200')) return { flops: 989e12, label: 'H200' };
  if (n.includes('H100')) {
    if (n.includes('PCIE')) return { flops: 756e12, label: 'H100 PCIe' };
    if (n.includes('NVL')) return { flops: 835e12, label: 'H100 NVL' };
    return { flops: 989e12, label: 'H100 SXM' };
  }
  if (n.includes('A100')) return { flops: 312e12, label: 'A100' };
  if (/\bL4\b/.test(n)) return { flops: 121e12, label: 'L4' };
  return null;
}

/**
 * Model FLOPs utilisation: a LoRA step with a frozen base costs ≈ 4 × parameters × tokens (forward
 * 2, input gradients 2, no weight gradients), 6 × with gradient checkpointing (the forward again).
 */
export function mfu(parameters: number, tokensPerSecond: number, peak: number | null, recompute: boolean): number | null {
  if (!peak) return null;
  return ((recompute ? 6 : 4) * parameters * tokensPerSecond) / peak;
}

/** The checkout holding fixtures/configs and benchmarks/python: from $PEFT_REPO, or upwards from here and from the working directory. */
export function findRepoRoot(): string {
  const ok = (d: string) => existsSync(join(d, 'fixtures', 'configs')) && existsSync(join(d, 'benchmarks', 'python', 'peft_step.py'));
  const env = process.env.PEFT_REPO;
  if (env) {
    if (!ok(env)) throw new Error(`PEFT_REPO=${env} has no fixtures/configs and benchmarks/python/peft_step.py`);
    return env;
  }
  for (const start of [import.meta.dirname, process.cwd()]) {
    let d = start;
    for (;;) {
      if (ok(d)) return d;
      const up = dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  throw new Error(
    `cannot find the repository checkout (fixtures/configs, benchmarks/python/peft_step.py) above ${import.meta.dirname} or ${process.cwd()}: run from the checkout or set PEFT_REPO`,
  );
}

interface PythonResult {
  tokensPerSecond: number;
  medianStepMs: number;
  stepMs: number[];
  peakBytes: number | null;
  parameters: number;
  trainable: number;
  losses: number[];
  device: string;
  versions: Record<string, string | number | null>;
  [key: string]: unknown;
}

export interface CudaSuiteReport {
  benchmark: string;
  date: string;
  gpu: Record<string, unknown>;
  gemmLibrary: string | null;
  machine: Record<string, unknown>;
  mfuFormula: string;
  warmup: number;
  steps: number;
  results: (CudaBenchConfig & {
    layers: number;
    ours: OursResult | { skipped: string };
    /** The same step captured as a CUDA graph and replayed. */
    oursGraph: OursResult | { skipped: string };
    pytorch: (PythonResult & { mfu: number | null }) | { skipped: string };
  })[];
  ratios: {
    config: string;
    /** Ours (eager) ÷ PyTorch + PEFT. */
    tokensPerSecond: number | null;
    /** Ours (captured graph) ÷ PyTorch + PEFT. */
    graphTokensPerSecond: number | null;
    /** The faster of our two runs ÷ PyTorch + PEFT's, its peak memory ÷ PyTorch's. */
    best: 'eager' | 'graph' | null;
    peakMemory: number | null;
    firstBar: boolean | null;
    goal: boolean | null;
  }[];
}

type OursResult = LoraStepResult & { mfu: number | null; gemmCounts?: Record<string, number> };

type Side<T> = { ok: true; result: T } | { ok: false; reason: string };

interface Row {
  config: CudaBenchConfig & { layers: number };
  ours: Side<OursResult>;
  oursGraph: Side<OursResult>;
  pytorch: Side<PythonResult & { mfu: number | null }>;
}

const GiB = 2 ** 30;
const PYTHON_TIMEOUT_MS = 30 * 60_000;

/** Runs `python peft_step.py …`, its stderr passed through; the last JSON line of its stdout. */
function runPython(python: string, script: string, args: string[]): Promise<Side<PythonResult>> {
  return new Promise((resolve) => {
    let stdout = '';
    let tail = '';
    const child = spawn(python, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      process.stderr.write(s);
      tail = (tail + s).slice(-2000);
    });
    // A 7B build and 13 steps take a few minutes at most; a hung process must not hold the run.
    const timer = setTimeout(() => child.kill('SIGKILL'), PYTHON_TIMEOUT_MS);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `cannot run ${python}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      let json: (PythonResult & { skipped?: string }) | undefined;
      try {
        json = line ? JSON.parse(line) : undefined;
      } catch {
        json = undefined;
      }
      if (json?.skipped) resolve({ ok: false, reason: json.skipped });
      else if (json && code === 0) resolve({ ok: true, result: json });
      else {
        const last = tail.trim().split('\n').slice(-3).join(' | ');
        resolve({
          ok: false,
          reason: `${python} ${relative(process.cwd(), script)} exited with ${code ?? signal}${last ? `: ${last}` : ''}`,
        });
      }
    });
  });
}

function nvidiaSmi(): string | null {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return r.status === 0 ? r.stdout.trim() : null;
}

const fmt = {
  tps: (v: number) => Math.round(v).toLocaleString('en-US'),
  bytes: (v: number | null | undefined) =>
    v == null ? 'n/a' : v >= GiB ? `${(v / GiB).toFixed(2)} GiB` : `${(v / 2 ** 20).toFixed(1)} MiB`,
  params: (v: number | undefined) => (v == null ? '-' : v >= 1e9 ? `${(v / 1e9).toFixed(2)}B` : `${(v / 1e6).toFixed(2)}M`),
  pct: (v: number | null) => (v == null ? 'n/a' : `${(100 * v).toFixed(1)}%`),
  losses: (l: number[]) =>
    l
      .slice(0, 3)
      .map((x) => x.toFixed(3))
      .join(', '),
};

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

function parseOnly(only: string[] | undefined): CudaBenchConfig[] {
  if (!only || only.length === 0) return [...CUDA_CONFIGS];
  for (const o of only) {
    if (!CUDA_CONFIGS.some((c) => c.id === o)) {
      throw new Error(`--only ${o}: choose from ${CUDA_CONFIGS.map((c) => c.id).join(', ')}`);
    }
  }
  return CUDA_CONFIGS.filter((c) => only.includes(c.id));
}

/** Runs the suite; returns what it wrote to the results file, or null when CUDA is unavailable (one line printed). */
export async function runCudaSuite(opts: CudaSuiteOptions = {}, deps: CudaSuiteDeps = CUDA_DEPS): Promise<CudaSuiteReport | null> {
  const configs = parseOnly(opts.only);
  const availability = deps.isAvailable();
  if (!availability.available) {
    console.log(`cuda: skipped — ${availability.reason}`);
    return null;
  }
  const root = opts.root ?? findRepoRoot();
  const python = opts.python ?? process.env.PEFT_BENCH_PYTHON ?? 'python3';
  const script = join(root, 'benchmarks', 'python', 'peft_step.py');
  const warmup = opts.warmup ?? (opts.short ? 1 : 3);
  const steps = opts.steps ?? (opts.short ? 3 : 10);
  const smi = nvidiaSmi();
  console.log(`CUDA LoRA training step vs PyTorch + PEFT: ${availability.reason}${smi ? ` (nvidia-smi: ${smi})` : ''}`);
  console.log(
    `bf16 weights (random), gradient checkpointing, AdamW on the adapter, ${warmup} warm-up + ${steps} timed steps; a step ends with the loss read back`,
  );

  type GpuInfo = { name: string; computeCapability: string; totalBytes: number; driverVersion: string };
  // Set inside runOurs (a closure): typed by assertion, or TypeScript narrows them to null below.
  let gpu = null as GpuInfo | null;
  let gemmLibrary = null as string | null;
  const rows: Row[] = [];
  for (const c of configs) {
    const batch = opts.batch ?? c.batch;
    const seq = opts.seq ?? c.seq;
    const base = benchStep(root, c, { layers: opts.layers, warmup, steps, batch, seq });
    const layers = opts.layers ?? (base.config.num_hidden_layers as number);
    const cfg = { ...c, batch, seq, layers };
    console.log(
      `\n${c.title} (fixtures/configs/${c.dir}, ${layers} layers), batch ${batch} × ${seq}, LoRA r ${c.r} α ${c.alpha} on ${c.targets.join(', ')}`,
    );

    // Ours: the eager step, then the same step captured as a CUDA graph and replayed (its first
    // two steps, eager and capture, are warm-up). Each builds its model anew and frees it.
    const runOurs = async (graph: boolean): Promise<Side<OursResult>> => {
      const label = graph ? 'ours (graph):  ' : 'ours:          ';
      let backend: SuiteBackend | null = null;
      try {
        backend = deps.createBackend();
        const d = backend.device;
        if (d) {
          gpu ??= {
            name: d.name,
            computeCapability: `sm_${d.computeCapability.join('')}`,
            totalBytes: d.totalBytes,
            driverVersion: `${Math.floor(d.driverVersion / 1000)}.${Math.floor((d.driverVersion % 1000) / 10)}`,
          };
        }
        gemmLibrary ??= backend.gemmLibrary ?? null;
        const r = await runLoraStep(backend, { ...base, warmup: graph ? Math.max(warmup, 2) : warmup, graph });
        const peak = d ? peakBf16Flops(d.name) : null;
        const gemms = backend.gemmCounts ? { ...backend.gemmCounts } : undefined;
        console.log(
          `  ${label} ${fmt.tps(r.tokensPerSecond)} tokens/s, ${r.medianStepMs.toFixed(1)} ms/step, peak ${fmt.bytes(r.peakBytes)} (model ${fmt.bytes(r.modelBytes)}), losses ${fmt.losses(r.losses)}, built in ${r.buildSeconds.toFixed(1)} s${graph ? `, timed steps ran ${r.mode === 'graph' ? 'as graph replays' : 'eagerly (no capture)'}` : ''}${gemms ? `, GEMMs so far ${JSON.stringify(gemms)}` : ''}`,
        );
        return { ok: true, result: { ...r, mfu: mfu(r.parameters, r.tokensPerSecond, peak?.flops ?? null, true), gemmCounts: gemms } };
      } catch (err) {
        console.log(`  ${label} failed — ${(err as Error).stack ?? (err as Error).message}`);
        process.exitCode = 1;
        return { ok: false, reason: (err as Error).message.split('\n')[0]! };
      } finally {
        if (backend) {
          try {
            backend.trimPool?.();
          } catch {
            // a backend in an error state still gets destroyed below
          }
          backend.destroy();
        }
      }
    };
    const ours = await runOurs(false);
    const oursGraph: Side<OursResult> = opts.noGraph ? { ok: false, reason: '--no-graph' } : await runOurs(true);

    // PyTorch + PEFT, same GPU, after ours was freed.
    let pytorch: Row['pytorch'];
    if (opts.noPython) pytorch = { ok: false, reason: '--no-python' };
    else {
      const args = [
        '--config',
        join(root, 'fixtures', 'configs', c.dir, 'config.json'),
        '--batch',
        String(batch),
        '--seq',
        String(seq),
        '--r',
        String(c.r),
        '--alpha',
        String(c.alpha),
        '--targets',
        c.targets.join(','),
        '--warmup',
        String(warmup),
        '--steps',
        String(steps),
        ...(opts.layers !== undefined ? ['--layers', String(opts.layers)] : []),
      ];
      const p = await runPython(python, script, args);
      if (p.ok) {
        const peak = peakBf16Flops(String(p.result.device));
        pytorch = { ok: true, result: { ...p.result, mfu: mfu(p.result.parameters, p.result.tokensPerSecond, peak?.flops ?? null, true) } };
        console.log(
          `  PyTorch + PEFT: ${fmt.tps(p.result.tokensPerSecond)} tokens/s, ${p.result.medianStepMs.toFixed(1)} ms/step, peak ${fmt.bytes(p.result.peakBytes)}, losses ${fmt.losses(p.result.losses)}`,
        );
      } else {
        pytorch = p;
        console.log(`  PyTorch + PEFT: skipped — ${p.reason}`);
      }
    }
    rows.push({ config: cfg, ours, oursGraph, pytorch });
  }

  // The table.
  const peak = gpu ? peakBf16Flops(gpu.name) : null;
  console.log(
    `\nGPU: ${gpu?.name ?? 'n/a'} (${gpu?.computeCapability ?? '?'}, CUDA driver API ${gpu?.driverVersion ?? '?'}), GEMMs: ${gemmLibrary ?? 'n/a'}`,
  );
  console.log(
    `MFU = 6 × parameters × tokens/s ÷ ${peak ? `${(peak.flops / 1e12).toFixed(0)} TFLOP/s (${peak.label} dense bf16)` : 'peak (GPU not in the table: n/a)'}`,
  );
  const header = [
    'model',
    'params',
    'tokens/s ours',
    'tokens/s ours graph',
    'tokens/s PyTorch',
    'ours / PyTorch',
    'graph / PyTorch',
    'peak ours',
    'peak PyTorch',
    'MFU ours',
    'MFU PyTorch',
    'loss₁ ours',
    'loss₁ PyTorch',
  ];
  const table: string[][] = [];
  const ratios: CudaSuiteReport['ratios'] = [];
  for (const row of rows) {
    const eager = row.ours.ok ? row.ours.result : null;
    const graph = row.oursGraph.ok && row.oursGraph.result.mode === 'graph' ? row.oursGraph.result : null;
    const p = row.pytorch.ok ? row.pytorch.result : null;
    const speed = eager && p ? eager.tokensPerSecond / p.tokensPerSecond : null;
    const graphSpeed = graph && p ? graph.tokensPerSecond / p.tokensPerSecond : null;
    // The bars are judged on the faster of our two runs, at that run's peak memory.
    const best =
      eager && graph ? (graph.tokensPerSecond > eager.tokensPerSecond ? 'graph' : 'eager') : eager ? 'eager' : graph ? 'graph' : null;
    const o = best === 'graph' ? graph : eager;
    const bestSpeed = best === 'graph' ? graphSpeed : speed;
    const mem = o && p?.peakBytes ? o.peakBytes / p.peakBytes : null;
    const firstBar = bestSpeed != null && mem != null ? bestSpeed >= 1 && mem <= 1 : null;
    const goal = bestSpeed != null && mem != null ? bestSpeed >= 2 && mem <= 1 : null;
    ratios.push({ config: row.config.id, tokensPerSecond: speed, graphTokensPerSecond: graphSpeed, best, peakMemory: mem, firstBar, goal });
    const skip = (s: Side<unknown>) => (s.ok ? '' : 'skipped');
    table.push([
      `${row.config.id} ${row.config.layers}L ${row.config.batch}×${row.config.seq}`,
      fmt.params((o ?? p)?.parameters),
      eager ? fmt.tps(eager.tokensPerSecond) : skip(row.ours) || 'failed',
      graph ? fmt.tps(graph.tokensPerSecond) : row.oursGraph.ok ? 'not captured' : skip(row.oursGraph) || 'failed',
      p ? fmt.tps(p.tokensPerSecond) : skip(row.pytorch),
      speed != null ? `${speed.toFixed(2)}×` : '-',
      graphSpeed != null ? `${graphSpeed.toFixed(2)}×` : '-',
      o ? fmt.bytes(o.peakBytes) : '-',
      p ? fmt.bytes(p.peakBytes) : '-',
      o ? fmt.pct(o.mfu) : '-',
      p ? fmt.pct(p.mfu) : '-',
      o?.losses[0]?.toFixed(4) ?? '-',
      p?.losses[0]?.toFixed(4) ?? '-',
    ]);
  }
  console.log();
  printTable(header, table);
  for (const r of ratios) {
    if (r.firstBar == null) continue;
    const ratio = r.best === 'graph' ? r.graphTokensPerSecond : r.tokensPerSecond;
    console.log(
      `${r.config}: ours (${r.best}) ${ratio!.toFixed(2)}× PyTorch + PEFT's tokens/s at ${r.peakMemory!.toFixed(2)}× its peak memory: ` +
        `first bar (≥ 1.0× at ≤ 1.0× memory) ${r.firstBar ? 'met' : 'not met'}, goal (2×) ${r.goal ? 'met' : 'not met'}`,
    );
  }
  for (const row of rows) {
    if (!row.ours.ok) console.log(`${row.config.id}: ours failed: ${row.ours.reason}`);
    if (!row.oursGraph.ok && !opts.noGraph) console.log(`${row.config.id}: ours (graph) failed: ${row.oursGraph.reason}`);
    if (!row.pytorch.ok) console.log(`${row.config.id}: PyTorch + PEFT skipped: ${row.pytorch.reason}`);
  }

  const date = new Date().toISOString().slice(0, 10);
  const name = `cuda-${opts.out ?? date}${opts.short ? '.short' : ''}.json`;
  const json: CudaSuiteReport = {
    benchmark: 'cuda: LoRA training step vs PyTorch + transformers + peft (bf16, gradient checkpointing, AdamW)',
    date: new Date().toISOString(),
    gpu: { ...gpu, availability: availability.reason, nvidiaSmi: smi, peakBf16Flops: peak?.flops ?? null },
    gemmLibrary,
    machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism?.() ?? os.cpus().length, node: process.version },
    mfuFormula: '6 * parameters * tokensPerSecond / peakBf16Flops (LoRA step ≈ 4 P T, + 2 P T forward recompute)',
    warmup,
    steps,
    results: rows.map((r) => ({
      ...r.config,
      ours: r.ours.ok ? r.ours.result : { skipped: r.ours.reason },
      oursGraph: r.oursGraph.ok ? r.oursGraph.result : { skipped: r.oursGraph.reason },
      pytorch: r.pytorch.ok ? r.pytorch.result : { skipped: r.pytorch.reason },
    })),
    ratios,
  };
  const text = `${JSON.stringify(json, null, 2)}\n`;
  const dir = join(root, 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), text);
  console.log(`\nwrote ${relative(process.cwd(), join(dir, name)) || name}`);
  if (process.env.OUT) {
    mkdirSync(process.env.OUT, { recursive: true });
    writeFileSync(join(process.env.OUT, 'cuda-bench.json'), text);
    console.log(`wrote ${join(process.env.OUT, 'cuda-bench.json')}`);
  }
  return json;
}
