/**
 * The CUDA backend's memory for the two CUDA bench configurations (benchmarks/src/cuda-suite.ts),
 * measured without a GPU: the backend runs unchanged on the emulated driver of
 * packages/backend-cuda/test/emu in dry mode (PEFT_CUDA_EMU_DRY: kernels skipped, allocations
 * reserved but not committed, an 80 GiB device), so the caching allocator's numbers are the
 * ones a GPU run of the same step would report: weights, and the peak of a LoRA training step
 * (forward with gradient checkpointing, backward, AdamW). Needs a C++ compiler. Times are not
 * measured here; the losses are garbage.
 *
 *   pnpm bench:cuda-memory [--only llama|neox] [--layers N] [--batch B] [--seq S] [--graph]
 *
 * --graph: the step as @peft/trainer's TrainingStep, captured as a CUDA graph at the second step
 * and replayed at the third; the graph's buffers are a pool of their own, so reserved memory is
 * the figure to read there.
 */
import { join } from 'node:path';
import { useEmulator } from '../packages/backend-cuda/src/emulator.testkit.js';
import { benchStep, CUDA_CONFIGS } from './src/cuda-suite.js';
import { runLoraStep } from './src/lora-step.js';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
process.env.PEFT_CUDA_EMU_DRY = '1';
process.env.PEFT_CUDA_EMU_TOTAL_GIB = process.env.PEFT_CUDA_EMU_TOTAL_GIB ?? '80';
if (!(await useEmulator())) process.exit(2);
const { createCudaBackend } = await import('@peft/backend-cuda');
const GiB = 2 ** 30;
for (const c of CUDA_CONFIGS) {
  if (opt('--only') && c.id !== opt('--only')) continue;
  const backend = createCudaBackend();
  const layers = opt('--layers') ? Number(opt('--layers')) : undefined;
  const batch = opt('--batch') ? Number(opt('--batch')) : c.batch;
  const seq = opt('--seq') ? Number(opt('--seq')) : c.seq;
  const t0 = performance.now();
  // Launches and GEMMs of the second step alone (the first also loads kernels; the build is before it).
  const count = () => ({
    launches: Object.values(backend.kernelLaunches()).reduce((a, b) => a + b, 0),
    gemms: backend.gemmCounts.cublasLt + backend.gemmCounts.tiled + backend.gemmCounts.skinny,
  });
  const graph = args.includes('--graph');
  const warmup = graph ? 2 : 1;
  let after1 = count();
  let after2 = count();
  const onStep = (step: number) => {
    if (step === warmup - 1) after1 = count();
    else if (step === warmup) after2 = count();
  };
  const r = await runLoraStep(
    backend,
    benchStep(join(import.meta.dirname, '..'), c, { onStep, layers, batch, seq, warmup, steps: 1, graph }),
  );
  const s = backend.memoryStats();
  const launches = after2.launches - after1.launches;
  const gemms = after2.gemms - after1.gemms;
  console.log(
    `${c.title}${graph ? ` (${r.mode})` : ''}: ${r.layers} layers, ${(r.parameters / 1e9).toFixed(2)}B parameters + ${(r.trainable / 1e6).toFixed(1)}M LoRA, batch ${batch} × ${seq}, ` +
      `gradient checkpointing: weights ${(r.modelBytes / GiB).toFixed(2)} GiB, step peak ${(r.peakBytes / GiB).toFixed(2)} GiB ` +
      `(${((r.peakBytes - r.modelBytes) / GiB).toFixed(2)} GiB above the weights), reserved at peak ${(s.peakReserved / GiB).toFixed(2)} GiB, ` +
      `${s.deviceAllocs} cuMemAlloc calls; a step enqueues ${launches} kernels and ${gemms} GEMMs in ${r.stepMs[warmup]!.toFixed(0)} ms of host time (the GPU's work skipped); ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  backend.destroy();
}
