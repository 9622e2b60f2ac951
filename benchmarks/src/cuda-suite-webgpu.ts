/**
 * The GPU window's `webgpu` stage (scripts/gpu-window.sh): @peft/backend-webgpu on the GPU
 * machine's own GPU through Dawn (the `webgpu` package's dawn.node, carried compressed in
 * .device) and the GPU's Vulkan driver: the conformance suite against the CPU backend (float32,
 * float16, bfloat16; one backend for all cases, as the package's test does, so that each
 * pipeline compiles once), float32 GEMM GFLOP/s of both our GEMM kernels, and the LoRA training
 * step of the ~100M GPT-NeoX in tokens/s. Each figure goes to the window's figures file as soon as
 * it is measured. Exit status 0 = passed, 1 = failures, 2 = no WebGPU adapter (the reason printed).
 *
 *   node window-webgpu.mjs [--only NAME] [--sizes 1024,2048,4096] [--batch 8] [--seq 128]
 */
import { parseArgs } from 'node:util';
import { createCpuBackend } from '@peft/backend-cpu';
import { createWebGpuBackend, type WebGpuBackend } from '@peft/backend-webgpu';
import { conformanceCases } from '@peft/core/testing';
import { appendFigure, hangIfAsked, recordFigures } from '../../packages/backend-cuda/scripts/window/figures.js';
import { measureInterleaved } from './gemm.js';
import { benchTrainStep } from './train-step.js';
import { peftWebGpuEngine, setupWebGpu } from './webgpu.js';

const { values } = parseArgs({
  options: { only: { type: 'string' }, sizes: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' } },
});

/** A backend whose destroy() does nothing: the suite's "destroy" cases leave the shared one alone. */
function keepAlive(backend: WebGpuBackend): WebGpuBackend {
  return new Proxy(backend, {
    get(target, key) {
      if (key === 'destroy') return () => {};
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function conformance(gpu: GPU): Promise<number> {
  const backend = await createWebGpuBackend({ gpu });
  recordFigures({ gemmKernel: backend.gemm });
  let passed = 0;
  let failed = 0;
  const t0 = performance.now();
  for (const c of conformanceCases({
    create: () => keepAlive(backend),
    dtypes: ['float32', 'float16', 'bfloat16'],
    reference: () => createCpuBackend(),
  })) {
    if (values.only && !c.name.includes(values.only) && !c.name.startsWith('destroy')) continue;
    try {
      await c.run();
      passed++;
    } catch (err) {
      failed++;
      const error = (err as Error).message;
      console.log(`FAIL webgpu conformance › ${c.name}\n  ${error.split('\n').join('\n  ')}`);
      appendFigure('failures', { name: c.name, error });
    }
    // The counts so far, so that a stage stopped at its time-out still says how far it got.
    recordFigures({ conformance: { passed, failed, seconds: (performance.now() - t0) / 1000, done: false } });
  }
  backend.destroy();
  const seconds = (performance.now() - t0) / 1000;
  console.log(`webgpu conformance: ${passed} passed, ${failed} failed in ${seconds.toFixed(1)} s`);
  recordFigures({ conformance: { passed, failed, seconds, done: true } });
  return failed;
}

async function gemm(gpu: GPU): Promise<void> {
  const sizes = values.sizes ? values.sizes.split(',').map(Number) : [1024, 2048, 4096];
  const ours = await peftWebGpuEngine(gpu);
  const other = await peftWebGpuEngine(gpu, ours.kind === 'registers' ? 'tiled' : 'registers');
  try {
    for (const size of sizes) {
      for (const m of await measureInterleaved([ours, other], size, { maxReps: 10, budgetMs: 3000, slowMs: 5000, warmMs: 200 })) {
        console.log(
          `  ${m.engine.padEnd(14)} ${String(m.size).padStart(5)}³ ${m.gflops.toFixed(1).padStart(9)} GFLOP/s (${m.medianMs.toFixed(2)} ms, ${m.reps} reps)`,
        );
        appendFigure('gemm', m);
      }
    }
  } finally {
    ours.dispose();
    other.dispose();
  }
}

async function trainingStep(gpu: GPU): Promise<void> {
  const backend = await createWebGpuBackend({ gpu });
  try {
    const r = await benchTrainStep(backend, {
      model: '100m',
      batch: Number(values.batch ?? 8),
      seq: Number(values.seq ?? 128),
      warmup: 1,
      steps: 3,
    });
    console.log(
      `  LoRA step ${r.model}, batch ${r.batch}×${r.seq}: ${r.tokensPerSecond.toFixed(0)} tokens/s (${r.medianStepMs.toFixed(0)} ms/step, loss ${r.losses[0]!.toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)})`,
    );
    recordFigures({ trainStep: r });
  } finally {
    backend.destroy();
  }
}

async function main(): Promise<number> {
  await hangIfAsked();
  const setup = await setupWebGpu();
  if ('reason' in setup) {
    console.log(`webgpu: no adapter: ${setup.reason}`);
    recordFigures({ reason: setup.reason });
    return 2;
  }
  console.log(`webgpu: adapter ${setup.adapter}${setup.fallback ? ' (a CPU fallback adapter, not the GPU)' : ''}`);
  recordFigures({ adapter: setup.adapter, fallback: setup.fallback });
  const failed = await conformance(setup.gpu);
  console.log('f32 GEMM, product + read-back, median:');
  await gemm(setup.gpu);
  console.log('LoRA training step (forward, backward, loss read-back, AdamW), SequenceClassifier, r 8 on query_key_value:');
  await trainingStep(setup.gpu);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
