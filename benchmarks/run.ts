/**
 * f32 GEMM benchmark: @peft/backend-cpu's GEMM (the engine `createCpuBackend()` picks, e.g. the
 * platform BLAS, and the WebAssembly SIMD engine; 1 thread and all threads) beside torch.matmul at
 * the same thread counts (a child Python: $PEFT_BENCH_PYTHON, else .venv-bench; one skip line
 * without it) and tfjs-core's `cpu` and `wasm` backends, square n³ products, median GFLOP/s; then the
 * WebGPU section (benchmarks/src/webgpu-suite.ts): @peft/backend-webgpu's GEMM beside tfjs-webgpu
 * and gpu.js on the same adapter, and LoRA training-step tokens/s.
 *
 *   pnpm bench                      full run: 256³, 1024³, 2048³ → benchmarks/results/gemm-<date>.json,
 *                                   WebGPU → benchmarks/results/webgpu-<date>.json
 *   pnpm bench --short              CI: 64³, 128³, 256³, few reps → benchmarks/results/*-<date>.short.json
 *   pnpm bench --backend cpu        only @peft/backend-cpu engines (also: torch, tfjs, tfjs-cpu, tfjs-wasm, "peft x1", "peft-wasm x1", "torch x1")
 *   pnpm bench --backend webgpu     only the WebGPU section (skipped, with the reason, without an adapter)
 *   pnpm bench --backend cuda       only the CUDA section (benchmarks/src/cuda-suite.ts): LoRA steps of a
 *                                   Llama-2-7B and a GPT-NeoX 3.6B shape beside PyTorch + PEFT on the same GPU
 *                                   → benchmarks/results/cuda-<date>.json; one skip line without a GPU. Never part
 *                                   of a run that does not name it. Its options: --only llama|neox, --warmup N,
 *                                   --steps N, --batch N, --seq N, --layers N, --python PATH, --no-python
 *   pnpm bench --backend cpu-step   only the CPU training-step section (benchmarks/src/cpu-step.ts): LoRA steps of a
 *                                   GPT-NeoX ~110M classifier and a Llama ~100M beside PyTorch + PEFT, each side in
 *                                   child processes → benchmarks/results/cpu-<date>.json. Its options: --only
 *                                   neox|neox-gc|llama, --threads 1,2, --rounds N, --warmup N, --steps N, --batch N,
 *                                   --seq N, --layers N, --profile, --gemm ENGINE, --python PATH, --no-python (benchmarks/README.md)
 *   pnpm bench --sizes 512,1024     custom sizes
 *   pnpm bench --out latest         results file name suffix instead of the date
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createSgemm } from '@peft/backend-cpu';
import type { CpuStepSuiteOptions } from './src/cpu-step.js';
import type { CudaSuiteOptions } from './src/cuda-suite.js';
import {
  benchPython,
  type GemmEngine,
  type Measurement,
  measureInterleaved,
  peftEngine,
  type TfjsWasmInfo,
  type TorchInfo,
  tfjsEngine,
  torchEngine,
} from './src/gemm.js';
import { runWebGpuSuite } from './src/webgpu-suite.js';

function parseArgs(argv: string[]) {
  const opts = {
    short: false,
    backends: [] as string[],
    sizes: undefined as number[] | undefined,
    out: undefined as string | undefined,
    cuda: {} as CudaSuiteOptions,
    cpuStep: {} as CpuStepSuiteOptions,
  };
  const int = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--short') opts.short = true;
    else if (a.startsWith('--backend')) opts.backends.push(...value().split(','));
    else if (a.startsWith('--sizes')) opts.sizes = value().split(',').map(Number);
    else if (a.startsWith('--out')) opts.out = value();
    else if (a.startsWith('--only')) opts.cuda.only = [...(opts.cuda.only ?? []), ...value().split(',')];
    else if (a.startsWith('--warmup')) opts.cuda.warmup = int('--warmup', value());
    else if (a.startsWith('--steps')) opts.cuda.steps = int('--steps', value());
    else if (a.startsWith('--batch')) opts.cuda.batch = int('--batch', value());
    else if (a.startsWith('--seq')) opts.cuda.seq = int('--seq', value());
    else if (a.startsWith('--layers')) opts.cuda.layers = int('--layers', value());
    else if (a.startsWith('--python')) opts.cuda.python = value();
    else if (a === '--no-python') opts.cuda.noPython = true;
    else if (a === '--no-graph') opts.cuda.noGraph = true;
    else if (a.startsWith('--threads'))
      opts.cpuStep.threads = value()
        .split(',')
        .map((t) => int('--threads', t));
    else if (a.startsWith('--rounds')) opts.cpuStep.rounds = int('--rounds', value());
    else if (a === '--profile') opts.cpuStep.profile = true;
    else if (a.startsWith('--gemm')) opts.cpuStep.gemm = value();
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: pnpm bench [--short] [--backend cpu|torch|tfjs|tfjs-cpu|tfjs-wasm|webgpu|cpu-step|cuda] [--sizes 256,1024] [--out latest]\n' +
          '       cuda only: [--only llama|neox] [--warmup N] [--steps N] [--batch N] [--seq N] [--layers N] [--python PATH] [--no-python] [--no-graph]\n' +
          '       cpu-step:  [--only neox|neox-gc|llama] [--threads 1,2] [--rounds N] [--warmup N] [--steps N] [--batch N] [--seq N]\n' +
          '                  [--layers N] [--profile] [--gemm auto|blas|wasm|js (ours)] [--python PATH] [--no-python]\n' +
          '       cpu-step Python (PyTorch + transformers + peft): --python PATH, else $PEFT_BENCH_PYTHON, else .venv-bench in the\n' +
          '                  checkout, created with python3 -m venv + pip install torch transformers peft when missing (pip gets\n' +
          '                  the indexes `pip config list` names); --short never installs and skips the PyTorch side instead',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

const selected = (backends: string[], id: string, backend: string) =>
  backends.length === 0 || backends.some((b) => b === backend || b === id || id.replace(' ', '') === b.replace(' ', ''));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // The CUDA section runs only when named; the others as before (all of them when none is named).
  const cuda = opts.backends.includes('cuda');
  const others = opts.backends.filter((b) => b !== 'cuda' && b !== 'cpu-step');
  const all = opts.backends.length === 0;
  const cpuStep = all || opts.backends.includes('cpu-step');
  const cpu = all || others.some((b) => !WEBGPU_IDS.includes(b));
  const webgpu = all || others.some((b) => WEBGPU_IDS.includes(b));
  if (cpu) await cpuGemm({ ...opts, backends: others });
  if (webgpu) {
    if (cpu) console.log();
    await runWebGpuSuite({ short: opts.short, sizes: opts.sizes, out: opts.out, engines: others.filter((b) => b !== 'webgpu') });
  }
  if (cpuStep) {
    if (cpu || webgpu) console.log();
    const { runCpuStepSuite } = await import('./src/cpu-step.js');
    const { only, warmup, steps, batch, seq, layers, python, noPython } = opts.cuda;
    await runCpuStepSuite({ only, warmup, steps, batch, seq, layers, python, noPython, ...opts.cpuStep, short: opts.short, out: opts.out });
  }
  if (cuda) {
    if (cpu || webgpu || cpuStep) console.log();
    // Imported only when asked for: the default run never loads the CUDA backend.
    const { runCudaSuite } = await import('./src/cuda-suite.js');
    await runCudaSuite({ ...opts.cuda, short: opts.short, out: opts.out });
  }
}

/** --backend values that select the WebGPU section (all of it, or one GEMM engine of it). */
const WEBGPU_IDS = ['webgpu', 'ours', 'tfjs-webgpu', 'gpu.js-webgpu', 'gpu.js'];

async function cpuGemm(opts: ReturnType<typeof parseArgs>) {
  const sizes = opts.sizes ?? (opts.short ? [64, 128, 256] : [256, 1024, 2048]);
  const timing = opts.short
    ? { maxReps: 15, budgetMs: 600, slowMs: 1000, warmMs: 50 }
    : { maxReps: 21, budgetMs: 8000, slowMs: 4000, warmMs: 300, minReps: 5 };
  const hw = os.availableParallelism?.() ?? os.cpus().length;
  const threadCounts = hw > 1 ? [1, hw] : [1];
  const cpuBackends = opts.backends.filter((b) => !WEBGPU_IDS.includes(b));

  console.log(
    `f32 GEMM, n³, median of reps; ${os.cpus()[0]?.model ?? 'cpu'} x${hw}, node ${process.version}${opts.short ? ' (short)' : ''}`,
  );
  // Which engine createCpuBackend() runs here ('auto'), and why; the wasm engine is timed beside it.
  const probe = createSgemm({ threads: 1 });
  const auto = probe.info;
  probe.destroy();
  console.log(`@peft/backend-cpu GEMM engine: ${auto.name}${auto.library ? ` (${auto.library})` : ''}: ${auto.reason}`);
  const python = benchPython();
  const wantTorch = threadCounts.some((t) => selected(cpuBackends, `torch x${t}`, 'torch'));
  if (wantTorch && !python) {
    console.log('  torch: skipped: no Python with torch (set PEFT_BENCH_PYTHON, or create .venv-bench at the repository root)');
  }

  type Made = GemmEngine & { wasmInfo?: TfjsWasmInfo; torch?: TorchInfo };
  const makers: { id: string; backend: string; make: () => Promise<Made> }[] = [];
  // Round order per thread count: torch, ours, the wasm engine (the same threads side by side).
  for (const t of threadCounts) {
    if (python) makers.push({ id: `torch x${t}`, backend: 'torch', make: () => torchEngine(python.python, t) });
    makers.push({ id: `peft x${t}`, backend: 'cpu', make: async () => peftEngine(t, 'auto') });
    if (auto.name !== 'wasm-simd') makers.push({ id: `peft-wasm x${t}`, backend: 'cpu', make: async () => peftEngine(t, 'wasm') });
  }
  makers.push({ id: 'tfjs-cpu', backend: 'tfjs', make: () => tfjsEngine('cpu') });
  makers.push({ id: 'tfjs-wasm', backend: 'tfjs', make: () => tfjsEngine('wasm') });

  const results: Measurement[] = [];
  const engines: { id: string; description: string }[] = [];
  const skipped: { id: string; reason: string }[] = [];
  let tfjsWasm: TfjsWasmInfo | undefined;
  let torch: TorchInfo | undefined;
  const report = (m: Measurement) =>
    console.log(
      `  ${m.engine.padEnd(14)} ${String(m.size).padStart(5)}³ ${m.gflops.toFixed(2).padStart(8)} GFLOP/s  (${m.medianMs.toFixed(2)} ms, ${m.reps} reps)`,
    );

  // tfjs-cpu runs alone (it is ~30x slower, and tfjs can only have one active backend); the others
  // run interleaved, round by round, so that load from other processes hits them alike.
  const wanted = makers.filter((mk) => selected(cpuBackends, mk.id, mk.backend));
  const alone = wanted.filter((mk) => mk.id === 'tfjs-cpu');
  const together = wanted.filter((mk) => mk.id !== 'tfjs-cpu');
  for (const group of [alone, together]) {
    if (group.length === 0) continue;
    const live: GemmEngine[] = [];
    for (const maker of group) {
      let engine: Made;
      try {
        engine = await maker.make();
      } catch (err) {
        if (maker.backend !== 'torch') throw err;
        const reason = (err as Error).message.split('\n')[0]!;
        skipped.push({ id: maker.id, reason });
        console.log(`  ${maker.id}: skipped: ${reason}`);
        continue;
      }
      if (engine.wasmInfo) tfjsWasm = engine.wasmInfo;
      if (engine.torch) torch = engine.torch;
      engines.push({ id: engine.id, description: engine.description });
      live.push(engine);
    }
    // Let worker threads start before timing (they start asynchronously; the engine works without them).
    await new Promise((r) => setTimeout(r, 100));
    for (const size of sizes) {
      for (const m of await measureInterleaved(live, size, timing)) {
        results.push(m);
        report(m);
      }
    }
    for (const engine of live) engine.dispose();
  }
  engines.sort((a, b) => makers.findIndex((m) => m.id === a.id) - makers.findIndex((m) => m.id === b.id));

  // Table: rows = sizes, columns = engines, then ours / torch at each thread count (the same run),
  // and ours (best) / tfjs-wasm.
  const ids = engines.map((e) => e.id);
  const get = (id: string, size: number) => results.find((r) => r.engine === id && r.size === size);
  const torchRatios: { size: number; threads: number; engine: string; torch: string; ratio: number }[] = [];
  const ratios: { size: number; engine: string; ratio: number }[] = [];
  const header = ['size', ...ids.map((id) => `${id} GFLOP/s`)];
  const pairs: { ours: string; torch: string; threads: number }[] = [];
  for (const t of threadCounts) {
    for (const ours of [`peft x${t}`, `peft-wasm x${t}`]) {
      if (ids.includes(ours) && ids.includes(`torch x${t}`)) pairs.push({ ours, torch: `torch x${t}`, threads: t });
    }
  }
  for (const p of pairs) header.push(`${p.ours} / ${p.torch}`);
  const haveRatio = ids.includes('tfjs-wasm') && ids.some((id) => id.startsWith('peft'));
  if (haveRatio) header.push('best peft / tfjs-wasm');
  const rows = sizes.map((size) => {
    const row = [`${size}³`, ...ids.map((id) => get(id, size)?.gflops.toFixed(2) ?? '-')];
    for (const p of pairs) {
      const ratio = get(p.ours, size)!.gflops / get(p.torch, size)!.gflops;
      torchRatios.push({ size, threads: p.threads, engine: p.ours, torch: p.torch, ratio });
      row.push(`${ratio.toFixed(2)}x`);
    }
    if (haveRatio) {
      const wasm = get('tfjs-wasm', size)!;
      const best = ids
        .filter((id) => id.startsWith('peft'))
        .map((id) => get(id, size)!)
        .reduce((a, b) => (b.gflops > a.gflops ? b : a));
      const ratio = best.gflops / wasm.gflops;
      ratios.push({ size, engine: best.engine, ratio });
      row.push(`${ratio.toFixed(2)}x (${best.engine})`);
    }
    return row;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log();
  for (const e of engines) console.log(`${e.id}: ${e.description}`);
  for (const s of skipped) console.log(`${s.id}: skipped: ${s.reason}`);
  console.log();
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));

  const date = new Date().toISOString().slice(0, 10);
  const name = `gemm-${opts.out ?? date}${opts.short ? '.short' : ''}.json`;
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const json = {
    benchmark: 'f32 gemm n^3',
    date: new Date().toISOString(),
    short: opts.short,
    machine: { cpu: os.cpus()[0]?.model, cores: hw, platform: `${process.platform}-${process.arch}`, node: process.version },
    gemmEngine: auto,
    engines,
    skipped,
    tfjsWasm,
    torch,
    results,
    ratiosVsTorch: torchRatios,
    ratiosVsTfjsWasm: ratios,
  };
  writeFileSync(dir + name, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwrote benchmarks/results/${name}`);
}

await main();
