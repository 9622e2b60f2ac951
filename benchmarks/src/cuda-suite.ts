/**
 * The CUDA section of `pnpm bench` (`--backend cuda`): a LoRA training step of a Llama-2-7B-shaped
 * and a GPT-NeoX 3.6B-shaped (rinna japanese-gpt-neox-3.6b) model with random bf16 weights, on
 * @peft/backend-cuda, beside the same step in PyTorch + transformers + peft
 * (benchmarks/python/peft_step.py) on the same GPU in the same run: tokens/s, median step time,
 * peak memory, MFU, first losses. Without a usable GPU it prints one line saying why and returns.
 * Results go to benchmarks/results/cuda-<date>[-<configs>].json (and $OUT/cuda-bench[-<configs>].json
 * when $OUT is set; the config ids when --only chose them); each run's figures also go to the GPU
 * window's figures file ($PEFT_GPU_WINDOW_FIGURES) as soon as the run ends.
 *
 * Our model is built, timed and freed (pool trimmed, backend destroyed) before the Python process
 * starts, so the two never hold GPU memory at the same time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type CudaAvailability, createCudaBackend, isAvailable } from '@peft/backend-cuda';
import type { Backend } from '@peft/core';
import { hangIfAsked, recordFigures } from '../../packages/backend-cuda/scripts/window/figures.js';
import { runPytorch } from './cuda-suite-python.js';
import {
  type CudaSuiteReport,
  fmt,
  type GpuInfo,
  mfu,
  type OursResult,
  peakBf16Flops,
  printComparison,
  type Row,
  reportJson,
  type Side,
  writeResults,
} from './cuda-suite-report.js';
import { type LoraStepOptions, runLoraStep } from './lora-step.js';

export { type CudaSuiteReport, mfu, peakBf16Flops } from './cuda-suite-report.js';

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

function nvidiaSmi(): string | null {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return r.status === 0 ? r.stdout.trim() : null;
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

/** Set by the first backend our runs create, for the table and the results file. */
interface Found {
  gpu: GpuInfo | null;
  gemmLibrary: string | null;
}

/**
 * Ours: the eager step, or (`graph`) the same step captured as a CUDA graph and replayed (its first
 * two steps, eager and capture, are warm-up). Each builds its model anew and frees it.
 */
async function runOurs(
  deps: CudaSuiteDeps,
  base: LoraStepOptions,
  warmup: number,
  graph: boolean,
  found: Found,
  progress: (p: { run: string; stepsDone: number; seconds: number }) => void = () => {},
): Promise<Side<OursResult>> {
  const label = graph ? 'ours (graph):  ' : 'ours:          ';
  let backend: SuiteBackend | null = null;
  try {
    backend = deps.createBackend();
    const d = backend.device;
    if (d) {
      found.gpu ??= {
        name: d.name,
        computeCapability: `sm_${d.computeCapability.join('')}`,
        totalBytes: d.totalBytes,
        driverVersion: `${Math.floor(d.driverVersion / 1000)}.${Math.floor((d.driverVersion % 1000) / 10)}`,
      };
    }
    found.gemmLibrary ??= backend.gemmLibrary ?? null;
    const t0 = performance.now();
    const onStep = (step: number) => {
      base.onStep?.(step);
      progress({ run: graph ? 'oursGraph' : 'ours', stepsDone: step + 1, seconds: (performance.now() - t0) / 1000 });
    };
    const r = await runLoraStep(backend, { ...base, warmup: graph ? Math.max(warmup, 2) : warmup, graph, onStep });
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
}

/** Runs the suite; returns what it wrote to the results file, or null when CUDA is unavailable (one line printed). */
export async function runCudaSuite(opts: CudaSuiteOptions = {}, deps: CudaSuiteDeps = CUDA_DEPS): Promise<CudaSuiteReport | null> {
  const configs = parseOnly(opts.only);
  await hangIfAsked();
  const availability = deps.isAvailable();
  recordFigures({ availability });
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

  const found: Found = { gpu: null, gemmLibrary: null };
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
    // Each side's figures are kept as soon as it ends: a run stopped later still leaves them.
    const figures: Record<string, unknown> = { config: cfg };
    const keep = <T>(key: string, side: Side<T>): Side<T> => {
      figures[key] = side.ok ? side.result : { skipped: side.reason };
      recordFigures({ [c.id]: figures, gemmLibrary: found.gemmLibrary, gpu: found.gpu });
      return side;
    };
    // How far the run in progress got (steps done, seconds since its build began), for a stage stopped mid-run.
    const progress = (p: { run: string; stepsDone: number; seconds: number }) => recordFigures({ [`${c.id}Progress`]: p });
    const ours = keep('ours', await runOurs(deps, base, warmup, false, found, progress));
    const oursGraph = keep<OursResult>(
      'oursGraph',
      opts.noGraph ? { ok: false, reason: '--no-graph' } : await runOurs(deps, base, warmup, true, found, progress),
    );
    // PyTorch + PEFT, same GPU, after ours was freed.
    const pytorch: Row['pytorch'] = keep(
      'pytorch',
      opts.noPython
        ? { ok: false, reason: '--no-python' }
        : await runPytorch({ python, script, root, batch, seq, warmup, steps, layers: opts.layers }, c),
    );
    rows.push({ config: cfg, ours, oursGraph, pytorch });
  }

  const ratios = printComparison(rows, found.gpu, found.gemmLibrary, opts.noGraph ?? false);
  const json = reportJson({ availability: availability.reason, smi, warmup, steps }, found.gpu, found.gemmLibrary, rows, ratios);
  recordFigures({ ratios });
  writeResults(root, { ...opts, only: opts.only?.length ? configs.map((c) => c.id) : undefined }, json);
  return json;
}
