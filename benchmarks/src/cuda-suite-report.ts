/**
 * What the CUDA section reports: MFU, the comparison table and the bars (the faster of our two runs
 * against PyTorch + PEFT's tokens/s at its peak memory), and the results file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import type { CudaBenchConfig } from './cuda-suite.js';
import type { LoraStepResult } from './lora-step.js';

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

export interface PythonResult {
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

export type OursResult = LoraStepResult & { mfu: number | null; gemmCounts?: Record<string, number> };

export type Side<T> = { ok: true; result: T } | { ok: false; reason: string };

export interface Row {
  config: CudaBenchConfig & { layers: number };
  ours: Side<OursResult>;
  oursGraph: Side<OursResult>;
  pytorch: Side<PythonResult & { mfu: number | null }>;
}

/** The GPU our first backend reported, as the results file records it. */
export interface GpuInfo {
  name: string;
  computeCapability: string;
  totalBytes: number;
  driverVersion: string;
}

const GiB = 2 ** 30;

export const fmt = {
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

/** One row's ratios to PyTorch + PEFT (speed, the bars judged on the faster of our runs) and its table row. */
function compareRow(row: Row): { ratios: CudaSuiteReport['ratios'][number]; cells: string[] } {
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
  const skip = (s: Side<unknown>) => (s.ok ? '' : 'skipped');
  return {
    ratios: { config: row.config.id, tokensPerSecond: speed, graphTokensPerSecond: graphSpeed, best, peakMemory: mem, firstBar, goal },
    cells: [
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
    ],
  };
}

/** The GPU and MFU lines, the table, the bars met or not and what failed; returns each row's ratios. */
export function printComparison(
  rows: readonly Row[],
  gpu: GpuInfo | null,
  gemmLibrary: string | null,
  noGraph: boolean,
): CudaSuiteReport['ratios'] {
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
  const compared = rows.map(compareRow);
  const ratios = compared.map((c) => c.ratios);
  console.log();
  printTable(
    header,
    compared.map((c) => c.cells),
  );
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
    if (!row.oursGraph.ok && !noGraph) console.log(`${row.config.id}: ours (graph) failed: ${row.oursGraph.reason}`);
    if (!row.pytorch.ok) console.log(`${row.config.id}: PyTorch + PEFT skipped: ${row.pytorch.reason}`);
  }
  return ratios;
}

/**
 * The results file's name: cuda-<out or date>[-<config ids>][.short].json, the ids when `--only`
 * chose some configs (so that runs of one config each, as the GPU window makes, do not overwrite
 * each other).
 */
export function resultsName(opts: { out?: string; short?: boolean; only?: readonly string[] }): string {
  const date = new Date().toISOString().slice(0, 10);
  const ids = opts.only && opts.only.length > 0 ? `-${opts.only.join('-')}` : '';
  return `cuda-${opts.out ?? date}${ids}${opts.short ? '.short' : ''}.json`;
}

/**
 * Writes the results to benchmarks/results/<resultsName> (not in a GPU window stage, whose files
 * all go to its OUT folder), and to $OUT/cuda-bench[-<config ids>].json when $OUT is set.
 */
export function writeResults(root: string, opts: { out?: string; short?: boolean; only?: readonly string[] }, json: CudaSuiteReport): void {
  const name = resultsName(opts);
  const text = `${JSON.stringify(json, null, 2)}\n`;
  if (!process.env.PEFT_GPU_WINDOW_STAGE) {
    const dir = join(root, 'benchmarks', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), text);
    console.log(`\nwrote ${relative(process.cwd(), join(dir, name)) || name}`);
  }
  if (process.env.OUT) {
    const outName = `cuda-bench${opts.only && opts.only.length > 0 ? `-${opts.only.join('-')}` : ''}.json`;
    mkdirSync(process.env.OUT, { recursive: true });
    writeFileSync(join(process.env.OUT, outName), text);
    console.log(`wrote ${join(process.env.OUT, outName)}`);
  }
}

/** The results file's content. */
export function reportJson(
  run: { availability: string | undefined; smi: string | null; warmup: number; steps: number },
  gpu: GpuInfo | null,
  gemmLibrary: string | null,
  rows: readonly Row[],
  ratios: CudaSuiteReport['ratios'],
): CudaSuiteReport {
  const peak = gpu ? peakBf16Flops(gpu.name) : null;
  return {
    benchmark: 'cuda: LoRA training step vs PyTorch + transformers + peft (bf16, gradient checkpointing, AdamW)',
    date: new Date().toISOString(),
    gpu: { ...gpu, availability: run.availability, nvidiaSmi: run.smi, peakBf16Flops: peak?.flops ?? null },
    gemmLibrary,
    machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism?.() ?? os.cpus().length, node: process.version },
    mfuFormula: '6 * parameters * tokensPerSecond / peakBf16Flops (LoRA step ≈ 4 P T, + 2 P T forward recompute)',
    warmup: run.warmup,
    steps: run.steps,
    results: rows.map((r) => ({
      ...r.config,
      ours: r.ours.ok ? r.ours.result : { skipped: r.ours.reason },
      oursGraph: r.oursGraph.ok ? r.oursGraph.result : { skipped: r.oursGraph.reason },
      pytorch: r.pytorch.ok ? r.pytorch.result : { skipped: r.pytorch.reason },
    })),
    ratios,
  };
}
