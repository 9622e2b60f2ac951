/**
 * The WebGPU section of `pnpm bench`: f32 GEMM GFLOP/s of @peft/backend-webgpu, tfjs-webgpu and
 * gpu.js (webgpu mode) on one adapter, interleaved in one run, then LoRA training-step tokens/s
 * on the tiny checkpoint and a ~100M random GPT-NeoX. Never fails for want of an adapter: it says
 * why and skips. Results go to benchmarks/results/webgpu-<date>[.short].json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createCpuBackend } from '@peft/backend-cpu';
import { createWebGpuBackend } from '@peft/backend-webgpu';
import { type GemmEngine, type Measurement, measureInterleaved } from './gemm.js';
import { benchTrainStep, type StepBenchOptions, type StepResult } from './train-step.js';
import { gpujsWebGpuEngine, peftWebGpuEngine, setupWebGpu, tfjsWebGpuEngine } from './webgpu.js';

export interface WebGpuSuiteOptions {
  short: boolean;
  sizes?: number[];
  out?: string;
  /** GEMM engine ids to run (ours, tfjs-webgpu, gpu.js-webgpu); empty: all. */
  engines: string[];
}

export async function runWebGpuSuite(opts: WebGpuSuiteOptions): Promise<void> {
  const setup = await setupWebGpu();
  if ('reason' in setup) {
    console.log(`WebGPU: skipped: ${setup.reason}`);
    return;
  }
  const { gpu } = setup;
  console.log(
    `WebGPU f32 GEMM, n³, median of reps, product + read-back; adapter: ${setup.adapter}${setup.fallback ? ' (CPU fallback adapter)' : ''}${opts.short ? ' (short)' : ''}`,
  );
  // On a CPU-backed adapter every product costs ~1000× what it costs on a GPU: smaller sizes.
  const sizes = opts.sizes ?? (opts.short ? [64, 128, 256] : setup.fallback ? [128, 256, 512] : [256, 1024, 2048]);
  const timing = opts.short
    ? { maxReps: 7, budgetMs: 3000, slowMs: 1500, warmMs: 0 }
    : { maxReps: 15, budgetMs: 8000, slowMs: 5000, warmMs: 300 };

  const ids = ['ours', 'tfjs-webgpu', 'gpu.js-webgpu'];
  const known = opts.engines.filter((e) => ids.includes(e) || e === 'gpu.js');
  const want = (id: string) => known.length === 0 || known.includes(id) || (id === 'gpu.js-webgpu' && known.includes('gpu.js'));
  const makers: { id: string; make: () => Promise<GemmEngine> }[] = [
    { id: 'ours', make: () => peftWebGpuEngine(gpu) },
    { id: 'tfjs-webgpu', make: tfjsWebGpuEngine },
    { id: 'gpu.js-webgpu', make: gpujsWebGpuEngine },
  ];
  const engines: GemmEngine[] = [];
  const skipped: { id: string; reason: string }[] = [];
  for (const mk of makers.filter((m) => want(m.id))) {
    try {
      engines.push(await mk.make());
    } catch (err) {
      skipped.push({ id: mk.id, reason: (err as Error).message.split('\n')[0]! });
      console.log(`  ${mk.id}: skipped: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  // Our other GEMM kernel, for the record (full runs only): `tiled` on a CPU adapter, `registers` on a GPU.
  if (!opts.short && want('ours')) {
    const probe = await createWebGpuBackend({ gpu });
    const other = probe.gemm === 'registers' ? 'tiled' : 'registers';
    probe.destroy();
    engines.push(await peftWebGpuEngine(gpu, other));
  }
  const results: Measurement[] = [];
  for (const size of sizes) {
    for (const m of await measureInterleaved(engines, size, timing)) {
      results.push(m);
      console.log(
        `  ${m.engine.padEnd(14)} ${String(m.size).padStart(5)}³ ${m.gflops.toFixed(3).padStart(8)} GFLOP/s  (${m.medianMs.toFixed(1)} ms, ${m.reps} reps)`,
      );
    }
  }
  for (const e of engines) e.dispose();

  const get = (id: string, size: number) => results.find((r) => r.engine === id && r.size === size);
  const header = ['size', ...engines.map((e) => `${e.id} GFLOP/s`)];
  const peers = engines.filter((e) => e.id === 'tfjs-webgpu' || e.id === 'gpu.js-webgpu').map((e) => e.id);
  const haveOurs = engines.some((e) => e.id === 'ours');
  if (haveOurs) for (const p of peers) header.push(`ours / ${p}`);
  const ratios: { size: number; peer: string; ratio: number }[] = [];
  const rows = sizes.map((size) => {
    const row = [`${size}³`, ...engines.map((e) => get(e.id, size)?.gflops.toFixed(3) ?? '-')];
    if (haveOurs) {
      for (const p of peers) {
        const ratio = get('ours', size)!.gflops / get(p, size)!.gflops;
        ratios.push({ size, peer: p, ratio });
        row.push(`${ratio.toFixed(2)}x`);
      }
    }
    return row;
  });
  console.log();
  for (const e of engines) console.log(`${e.id}: ${e.description}`);
  for (const s of skipped) console.log(`${s.id}: skipped (${s.reason})`);
  console.log();
  printTable(header, rows);

  // LoRA training step.
  console.log();
  const steps: StepResult[] = [];
  const stepSkipped: string[] = [];
  // Training steps belong to the whole section, not to one selected GEMM engine.
  const runs: { on: 'webgpu' | 'cpu'; o: StepBenchOptions }[] =
    known.length > 0
      ? []
      : opts.short
        ? [{ on: 'webgpu', o: { model: 'tiny', batch: 4, seq: 32, warmup: 1, steps: 3 } }]
        : [
            { on: 'webgpu', o: { model: 'tiny', batch: 4, seq: 64, warmup: 1, steps: 3 } },
            { on: 'cpu', o: { model: 'tiny', batch: 4, seq: 64, warmup: 1, steps: 3 } },
            // One short row: on SwiftShader a step of this model takes the better part of a minute.
            { on: 'webgpu', o: { model: '100m', batch: 1, seq: 32, warmup: 1, steps: 2 } },
            { on: 'cpu', o: { model: '100m', batch: 1, seq: 32, warmup: 1, steps: 2 } },
          ];
  if (known.length > 0) stepSkipped.push(`training steps: only with the whole section (--backend webgpu), not with ${known.join(', ')}`);
  else if (opts.short) stepSkipped.push('gpt-neox ~100M: full runs only (pnpm bench without --short)');
  console.log('LoRA training step (forward, backward, loss read-back, AdamW), SequenceClassifier, r 8 on query_key_value:');
  for (const { on, o } of runs) {
    const backend = on === 'webgpu' ? await createWebGpuBackend({ gpu }) : createCpuBackend();
    try {
      const r = await benchTrainStep(backend, o);
      steps.push(r);
      console.log(
        `  ${r.model.padEnd(24)} ${r.backend.padEnd(7)} ${(r.parameters / 1e6).toFixed(2).padStart(7)}M params, batch ${r.batch}×${r.seq}: ` +
          `${r.tokensPerSecond.toFixed(1).padStart(8)} tokens/s (${r.medianStepMs.toFixed(0)} ms/step, loss ${r.losses[0]!.toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)})`,
      );
    } finally {
      backend.destroy();
    }
  }
  for (const s of stepSkipped) console.log(`  skipped: ${s}`);

  const date = new Date().toISOString().slice(0, 10);
  const name = `webgpu-${opts.out ?? date}${opts.short ? '.short' : ''}.json`;
  const dir = fileURLToPath(new URL('../results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const json = {
    benchmark: 'webgpu: f32 gemm n^3 (product + read-back) and LoRA training step',
    date: new Date().toISOString(),
    short: opts.short,
    machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism?.() ?? os.cpus().length, node: process.version },
    adapter: { description: setup.adapter, fallback: setup.fallback },
    engines: engines.map((e) => ({ id: e.id, description: e.description })),
    skipped,
    gemm: results,
    ratios,
    trainStep: steps.map(({ losses, ...r }) => ({ ...r, firstLoss: losses[0], lastLoss: losses.at(-1) })),
    trainStepSkipped: stepSkipped,
  };
  writeFileSync(dir + name, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwrote benchmarks/results/${name}`);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}
