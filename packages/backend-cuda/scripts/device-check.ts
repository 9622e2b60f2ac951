/**
 * The GPU machine's test run, bundled into one file with its dependencies (but koffi) by
 * scripts/bundle-device.mjs, because that machine has Node (packed) but no package registry:
 * the conformance suite and the gradient checks of @peft/core/testing against the CPU backend,
 * 20 LoRA training steps of the tiny models against the CPU backend's losses
 * (packages/integration/src/training-check.ts; run from the repository checkout, which has
 * fixtures/), then kernel timings. Prints one line per failure and a summary; writes JSON to $OUT if set.
 *
 *   node device-check.mjs [--only NAME] [--no-bench]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import type { MatmulParams } from '@peft/core';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { compareTraining, graphTrainer, type TrainingKind } from '../../integration/src/training-check.js';
import { type CudaBackend, createCudaBackend, isAvailable } from '../src/index.js';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

async function runCases(title: string, cases: { name: string; run: () => Promise<void> }[]) {
  let passed = 0;
  const failures: { name: string; error: string }[] = [];
  const started = Date.now();
  for (const c of cases) {
    if (only && !c.name.includes(only) && !c.name.startsWith('destroy')) continue;
    try {
      await c.run();
      passed++;
    } catch (err) {
      failures.push({ name: c.name, error: (err as Error).message });
      console.log(`FAIL ${title} › ${c.name}\n  ${(err as Error).message.split('\n').join('\n  ')}`);
    }
  }
  console.log(`${title}: ${passed} passed, ${failures.length} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { title, passed, failures };
}

async function timeIt(backend: CudaBackend, fn: () => void, reps = 20): Promise<number> {
  fn();
  await backend.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await backend.sync();
  return (performance.now() - t0) / reps;
}

async function bench(): Promise<Record<string, number>> {
  const b = createCudaBackend();
  const out: Record<string, number> = {};
  const mm = (m: number, n: number, k: number, dt: 'bfloat16' | 'float32') => {
    const a = b.alloc(dt, m * k);
    const w = b.alloc(dt, n * k);
    const o = b.alloc(dt, m * n);
    b.fill(a, 0.01);
    b.fill(w, 0.01);
    const p: MatmulParams = {
      batch: 1,
      m,
      n,
      k,
      transA: false,
      transB: true,
      strideA: 0,
      strideB: 0,
      strideOut: 0,
      alpha: 1,
      accumulate: false,
    };
    return {
      run: () => b.matmul(o, a, w, p),
      free: () => {
        for (const x of [a, w, o]) b.free(x);
      },
    };
  };
  for (const [m, n, k] of [
    [4096, 4096, 4096],
    [8192, 4096, 11008],
  ]) {
    const g = mm(m, n, k, 'bfloat16');
    const ms = await timeIt(b, g.run);
    out[`gemm bf16 ${m}x${n}x${k} TFLOP/s`] = (2 * m * n * k) / ms / 1e9;
    g.free();
  }
  const [B, S, H, D] = [4, 1024, 32, 128];
  const q = b.alloc('bfloat16', B * S * H * D);
  const o = b.alloc('bfloat16', B * S * H * D);
  const lse = b.alloc('float32', B * H * S);
  const dq = b.alloc('bfloat16', B * S * H * D);
  const dk = b.alloc('bfloat16', B * S * H * D);
  const dv = b.alloc('bfloat16', B * S * H * D);
  b.random(q, { seed: 1, offset: 0, distribution: 'normal', low: 0, high: 1 });
  const ap = { batch: B, seqQ: S, seqK: S, heads: H, kvHeads: H, headDim: D, scale: 1 / Math.sqrt(D), causal: true };
  const fwd = await timeIt(b, () => b.attention(o, lse, q, q, q, null, ap), 5);
  const bwd = await timeIt(b, () => b.attentionBackward(dq, dk, dv, o, q, q, q, o, lse, null, ap), 5);
  const flops = (4 * B * H * S * S * D) / 2; // causal
  out[`attention fwd causal ${B}x${S}x${H}x${D} ms`] = fwd;
  out['attention fwd TFLOP/s'] = flops / fwd / 1e9;
  out[`attention bwd ms`] = bwd;
  out['attention bwd TFLOP/s'] = (2.5 * flops) / bwd / 1e9;
  // The same forward on the float32 CUDA-core kernel (tensorCores: false), for the ratio.
  const f32 = createCudaBackend({ tensorCores: false });
  const [q2, o2, lse2] = [f32.alloc('bfloat16', B * S * H * D), f32.alloc('bfloat16', B * S * H * D), f32.alloc('float32', B * H * S)];
  f32.random(q2, { seed: 1, offset: 0, distribution: 'normal', low: 0, high: 1 });
  const fwd32 = await timeIt(f32, () => f32.attention(o2, lse2, q2, q2, q2, null, ap), 5);
  const [dq2, dk2, dv2] = [0, 1, 2].map(() => f32.alloc('bfloat16', B * S * H * D));
  const bwd32 = await timeIt(f32, () => f32.attentionBackward(dq2!, dk2!, dv2!, o2, q2, q2, q2, o2, lse2, null, ap), 3);
  out['attention fwd, float32 kernel, ms'] = fwd32;
  out['attention fwd tensor-core speedup'] = fwd32 / fwd;
  out['attention bwd, float32 kernel, ms'] = bwd32;
  out['attention bwd tensor-core speedup'] = bwd32 / bwd;
  f32.destroy();
  const logits = b.alloc('bfloat16', 8192 * 32000);
  const targets = b.alloc('int32', 8192);
  b.fill(logits, 0.5);
  b.fill(targets, 3);
  const loss = b.alloc('float32', 8192);
  const l2 = b.alloc('float32', 8192);
  out['crossEntropy 8192x32000 bf16 ms'] = await timeIt(b, () =>
    b.crossEntropy(loss, l2, logits, targets, { rows: 8192, classes: 32000, ignoreIndex: -100 }),
  );
  out['crossEntropy GB/s'] = (8192 * 32000 * 2) / out['crossEntropy 8192x32000 bf16 ms'] / 1e6;
  console.log(JSON.stringify({ gemm: b.gemmLibrary, memory: b.memoryStats() }));
  b.destroy();
  Object.assign(out, await loraGemms());
  return out;
}

/**
 * LoRA's mixed-dtype products at the Llama-2-7B bench shape (4096 tokens, r 16; in 4096 and
 * 11008), on the skinny kernels (mixedKernels, the default) and widened for cuBLASLt: which path
 * should be the default is this ratio. x · Aᵀ reads 2 bytes per element of x; dA = dhᵀ · x too.
 */
async function loraGemms(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const T = 4096;
  const r = 16;
  for (const hidden of [4096, 11008]) {
    const ms: Record<string, number> = {};
    for (const mixedKernels of [true, false]) {
      const b = createCudaBackend({ mixedKernels });
      const x = b.alloc('bfloat16', T * hidden);
      const A = b.alloc('float32', r * hidden);
      const dh = b.alloc('float32', T * r);
      const h = b.alloc('float32', T * r);
      const dA = b.alloc('float32', r * hidden);
      for (const t of [x, A, dh]) b.fill(t, 0.01);
      const common = { batch: 1, strideA: 0, strideB: 0, strideOut: 0, alpha: 1, accumulate: false };
      const key = mixedKernels ? 'skinny' : 'widened';
      ms[`xA ${key}`] = await timeIt(b, () => b.matmul(h, x, A, { ...common, m: T, n: r, k: hidden, transA: false, transB: true }));
      ms[`dA ${key}`] = await timeIt(b, () => b.matmul(dA, dh, x, { ...common, m: r, n: hidden, k: T, transA: true, transB: false }));
      b.destroy();
    }
    const gbps = (key: string) => (T * hidden * 2) / ms[key]! / 1e6;
    for (const op of ['xA', 'dA']) {
      out[`LoRA ${op} ${T}x${hidden} r${r} skinny ms`] = ms[`${op} skinny`]!;
      out[`LoRA ${op} ${T}x${hidden} r${r} skinny GB/s of x`] = gbps(`${op} skinny`);
      out[`LoRA ${op} ${T}x${hidden} r${r} widened ms`] = ms[`${op} widened`]!;
      out[`LoRA ${op} ${T}x${hidden} r${r} skinny speedup`] = ms[`${op} widened`]! / ms[`${op} skinny`]!;
    }
  }
  return out;
}

async function main() {
  const a = isAvailable();
  console.log(`isAvailable: ${JSON.stringify(a)}`);
  if (!a.available) process.exit(2);
  const results = [];
  results.push(
    await runCases(
      'conformance',
      conformanceCases({
        create: () => createCudaBackend(),
        dtypes: ['float32', 'float16', 'bfloat16'],
        reference: () => createCpuBackend(),
      }),
    ),
  );
  results.push(
    await runCases(
      'conformance (tiled GEMM)',
      conformanceCases({ create: () => createCudaBackend({ cublas: false }), dtypes: ['float32', 'bfloat16'] }).filter(
        (c) => c.name.startsWith('matmul') || c.name.startsWith('destroy'),
      ),
    ),
  );
  results.push(
    await runCases(
      'conformance (attention on the float32 kernels)',
      conformanceCases({ create: () => createCudaBackend({ tensorCores: false }), dtypes: ['float16', 'bfloat16'] }).filter(
        (c) => c.name.startsWith('attention') || c.name.startsWith('destroy'),
      ),
    ),
  );
  results.push(await runCases('gradcheck', gradcheckCases({ create: () => createCudaBackend() })));
  const trainingCases = (
    [
      ['neox-classifier', 'float32'],
      ['llama-causal-lm', 'float32'],
      ['llama-causal-lm', 'bfloat16'],
      ['llama-head-dim-64', 'bfloat16'],
    ] as [TrainingKind, 'float32' | 'bfloat16'][]
  ).map(([kind, dtype]) => ({
    name: `training ${kind} ${dtype}: 20 LoRA steps vs the CPU backend`,
    run: async () => {
      const cpu = createCpuBackend();
      const cuda = createCudaBackend();
      try {
        const r = await compareTraining(cuda, cpu, kind, dtype);
        const worst = Math.max(...r.relative);
        console.log(
          `${r.kind} ${r.dtype}: losses cpu ${r.cpuLosses[0]!.toFixed(6)} → ${r.cpuLosses.at(-1)!.toFixed(6)}, cuda ${r.otherLosses[0]!.toFixed(6)} → ` +
            `${r.otherLosses.at(-1)!.toFixed(6)}; worst relative difference ${worst.toExponential(2)} (step ${r.relative.indexOf(worst) + 1}); ` +
            `GEMMs ${JSON.stringify(cuda.gemmCounts)}`,
        );
        if (!r.ok)
          throw new Error(
            `outside the tolerance (${r.tolerance}): cpu ${JSON.stringify(r.cpuLosses)}, cuda ${JSON.stringify(r.otherLosses)}`,
          );
      } finally {
        cpu.destroy();
        cuda.destroy();
      }
    },
  }));
  trainingCases.push({
    name: 'training llama-causal-lm float32: a LoRA step captured as a CUDA graph replays to the eager steps',
    run: async () => {
      const cuda = createCudaBackend();
      const eager = await graphTrainer(cuda, { graph: false });
      const graphed = await graphTrainer(cuda, { graph: true });
      try {
        const modes: string[] = [];
        for (let i = 0; i < 8; i++) {
          const e = await eager.run();
          const g = await graphed.run();
          modes.push(g.mode);
          // The same kernels on the same GPU in the same order (cuBLASLt's plans cached per shape):
          // equal on the emulator; 1e-6 leaves room for a GEMM algorithm that is not bitwise
          // reproducible, far below what a stale learning rate or step count moves (1e-4 and up).
          const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
          if (rel(g.loss, e.loss) > 1e-6 || rel(g.gradNorm, e.gradNorm) > 1e-6) {
            throw new Error(`step ${i + 1} (${g.mode}): loss ${g.loss} / norm ${g.gradNorm}, eager ${e.loss} / ${e.gradNorm}`);
          }
        }
        console.log(`captured LoRA step: ${modes.join(', ')}; losses equal to the eager run's`);
        if (modes.at(-1) !== 'replay') throw new Error(`the step was not replayed: ${modes.join(', ')}`);
      } finally {
        eager.dispose();
        graphed.dispose();
        cuda.destroy();
      }
    },
  });
  results.push(await runCases('training', trainingCases));
  const timings = args.includes('--no-bench') ? {} : await bench();
  for (const [k, v] of Object.entries(timings)) console.log(`${k}: ${v.toFixed(2)}`);
  const failed = results.reduce((s, r) => s + r.failures.length, 0);
  if (process.env.OUT)
    writeFileSync(join(process.env.OUT, 'device-check.json'), JSON.stringify({ availability: a, results, timings }, null, 2));
  console.log(`device-check: ${results.reduce((s, r) => s + r.passed, 0)} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
