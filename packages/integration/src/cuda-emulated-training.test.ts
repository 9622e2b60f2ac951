// LoRA training of the tiny checkpoints with the CUDA kernels run on the host emulator (see
// packages/backend-cuda/src/emulated.test.ts): 20 steps give the CPU backend's losses, for Study A's classifier on
// GPT-NeoX and for Study B's causal-LM loss on Llama (RMSNorm, SwiGLU, GQA, full rotary), and
// the caching allocator stops asking the device for memory after the first step.
// The models, batches and tolerances are training-check.ts's, which
// packages/backend-cuda/scripts/device-check.ts runs on a GPU.
import { createCpuBackend } from '@peft/backend-cpu';
import { describe, expect, it } from 'vitest';
// The emulator's build lives with the kernels it compiles (as for benchmarks/cuda-memory-plan.ts).
import { useEmulator } from '../../backend-cuda/src/emulator.testkit.js';
import { compareTraining, graphTrainer, trainer } from './training-check.js';

const emu = await useEmulator();

describe.skipIf(!emu)('LoRA training with the CUDA kernels on the host emulator', async () => {
  const { createCudaBackend } = await import('@peft/backend-cuda');

  for (const [kind, count] of [
    ['neox-classifier', 5], // lora_A and lora_B of query_key_value in 2 layers + score
    ['llama-causal-lm', 28], // lora_A and lora_B of 7 projections in 2 layers
  ] as const) {
    it(`${kind}: 20 steps give the CPU backend’s losses within 2e-4 (relative); no device allocations after step 1`, async () => {
      const cpu = createCpuBackend();
      const cuda = createCudaBackend();
      const onCpu = await trainer(cpu, kind);
      const onCuda = await trainer(cuda, kind);
      expect(onCuda.params.length).toBe(count);
      expect(onCpu.params.length).toBe(count);
      const cpuLosses: number[] = [];
      const cudaLosses: number[] = [];
      let allocsAfterFirst = 0;
      for (let i = 0; i < 20; i++) {
        cpuLosses.push(await onCpu.step());
        cudaLosses.push(await onCuda.step());
        if (i === 1) allocsAfterFirst = cuda.memoryStats().deviceAllocs;
      }
      const rel = cudaLosses.map((l, i) => Math.abs(l - cpuLosses[i]!) / Math.abs(cpuLosses[i]!));
      const worst = Math.max(...rel);
      console.log(
        `${kind}: losses cpu ${cpuLosses[0]!.toFixed(6)} → ${cpuLosses[19]!.toFixed(6)}, cuda (emulated) ${cudaLosses[0]!.toFixed(6)} → ` +
          `${cudaLosses[19]!.toFixed(6)}; worst relative difference ${worst.toExponential(2)} (step ${rel.indexOf(worst) + 1})`,
      );
      // float32 on both from bit-identical weights, inputs and dropout masks; only the order of
      // summation differs (tiled GEMM, warp-tree reductions), ~1e-6 relative per op. The margin
      // is the one the WebGPU training test uses; a wrong kernel moves the loss by 1e-2 or more.
      expect(rel[0]!).toBeLessThan(1e-5);
      expect(worst).toBeLessThan(2e-4);
      expect(cudaLosses[19]!).toBeLessThan(cudaLosses[0]!);
      // Steps 3–20 reuse the pooled blocks of the first two.
      expect(cuda.memoryStats().deviceAllocs).toBe(allocsAfterFirst);
      // Every GEMM on cuBLASLt (float32 throughout: nothing for the mixed-dtype kernels).
      expect(cuda.gemmCounts.cublasLt).toBeGreaterThan(0);
      expect(cuda.gemmCounts.tiled).toBe(0);
      expect(cuda.gemmCounts.skinny).toBe(0);
      onCpu.dispose();
      onCuda.dispose();
      cpu.destroy();
      cuda.destroy();
    }, 180_000);
  }

  for (const [kind, what] of [
    ['llama-causal-lm', 'tiny Llama'],
    ['llama-head-dim-64', 'Llama with headDim 64 (attention on tensor cores)'],
  ] as const) {
    it(`${what} in bfloat16 (weights and activations; float32 adapters, as PEFT keeps them): 20 steps give the CPU backend’s bfloat16 losses (training-check’s tolerance)`, async () => {
      const cpu = createCpuBackend();
      const cuda = createCudaBackend();
      const r = await compareTraining(cuda, cpu, kind, 'bfloat16');
      const [cpuLosses, cudaLosses, rel] = [r.cpuLosses, r.otherLosses, r.relative];
      const worst = Math.max(...rel);
      console.log(
        `${kind} bfloat16: losses cpu ${cpuLosses[0]!.toFixed(5)} → ${cpuLosses[19]!.toFixed(5)}, cuda (emulated) ${cudaLosses[0]!.toFixed(5)} → ` +
          `${cudaLosses[19]!.toFixed(5)}; worst relative difference ${worst.toExponential(2)} (step ${rel.indexOf(worst) + 1})`,
      );
      // bfloat16 keeps 8 bits: an f32 sum in another order rounds to a neighbouring bfloat16 now and
      // then (0.4% steps), and the runs drift apart by that much as the loss falls; training-check's
      // tolerance grows with the unit roundoff and the step (the emulated runs use 5–16% of it).
      expect(r.ok, `${r.tolerance}: ${JSON.stringify({ cpuLosses, cudaLosses })}`).toBe(true);
      expect(cudaLosses[19]!).toBeLessThan(cudaLosses[0]!);
      console.log(`GEMMs: ${JSON.stringify(cuda.gemmCounts)}`);
      expect(cuda.gemmCounts.tiled).toBe(0);
      // LoRA's bfloat16 × float32 products (x · Aᵀ, dhᵀ · x) on the skinny kernels.
      expect(cuda.gemmCounts.skinny).toBeGreaterThan(0);
      const launches = cuda.kernelLaunches();
      const tc = Object.keys(launches).filter((k) => k.includes('_tc_'));
      if (kind === 'llama-head-dim-64') {
        expect(tc.sort()).toEqual(['attention_bwd_dkdv_tc_bf16_64', 'attention_bwd_dq_tc_bf16_64', 'attention_fwd_tc_bf16_64']);
        // 2 layers × 20 steps, twice: gradient checkpointing runs the forward again in backward.
        expect(launches.attention_fwd_tc_bf16_64).toBe(2 * 20 * 2);
        expect(launches.attention_bwd_dq_tc_bf16_64).toBe(2 * 20);
        // Nothing on the float32 kernels: the gradient reaching attention is bfloat16 too.
        expect(Object.keys(launches).filter((k) => /^attention_(fwd|bwd_dq|bwd_dkdv)_\d$/.test(k))).toEqual([]);
      } else {
        expect(tc).toEqual([]);
      }
      cpu.destroy();
      cuda.destroy();
    }, 180_000);
  }

  it('a LoRA step captured as a CUDA graph replays to the eager steps’ losses, gradient norms and weights; the CPU backend agrees', async () => {
    const cuda = createCudaBackend();
    const cpu = createCpuBackend();
    const eager = await graphTrainer(cuda, { graph: false });
    const graphed = await graphTrainer(cuda, { graph: true });
    const onCpu = await graphTrainer(cpu, { graph: 'auto' });
    const total = () => Object.values(cuda.kernelLaunches()).reduce((a, b) => a + b, 0);
    const modes: string[] = [];
    const rows: string[] = [];
    let launchesAtReplay = 0;
    for (let i = 0; i < 8; i++) {
      const e = await eager.run();
      if (i === 2) launchesAtReplay = total();
      const g = await graphed.run();
      const c = await onCpu.run();
      modes.push(g.mode);
      rows.push(`${i + 1}: loss ${g.loss.toFixed(6)} norm ${g.gradNorm.toFixed(4)} clip ${g.clipCoefficient.toFixed(4)}`);
      // The same kernels in the same order on the same device: the same bits.
      expect([g.loss, g.gradNorm, g.clipCoefficient]).toEqual([e.loss, e.gradNorm, e.clipCoefficient]);
      expect(g.step).toBe(i + 1);
      expect(Math.abs(g.loss - c.loss) / c.loss).toBeLessThan(2e-4);
      expect(Math.abs(g.gradNorm - c.gradNorm) / c.gradNorm).toBeLessThan(2e-3);
    }
    console.log(`captured LoRA step (emulated): ${modes.join(', ')}\n  ${rows.join('\n  ')}`);
    expect(modes).toEqual(['eager', 'capture', 'replay', 'replay', 'replay', 'replay', 'replay', 'replay']);
    expect(graphed.step.captured).toBe(true);
    // Replays enqueue nothing from the host: only the eager runs of steps 4–8 (five) launched
    // kernels after the count taken at step 3.
    const eagerPerStep = (total() - launchesAtReplay) / 5;
    expect(eagerPerStep).toBeGreaterThan(100);
    expect(Number.isInteger(eagerPerStep)).toBe(true);
    // Clipping at 1.0 acted in some steps (each step has another batch, so the loss need not fall).
    expect(rows.some((r) => !r.endsWith('clip 1.0000'))).toBe(true);
    const params = [...eager.optimizer.params].map((p, i) => [p, graphed.optimizer.params[i]!] as const);
    for (const [a, b] of params) {
      expect(Array.from((await b.tensor.raw()) as Float32Array)).toEqual(Array.from((await a.tensor.raw()) as Float32Array));
      expect(graphed.optimizer.stepsOf(b.name)).toBe(8);
    }
    for (const t of [eager, graphed, onCpu]) t.dispose();
    cuda.destroy();
    cpu.destroy();
  }, 180_000);

  it('a step with dropout is not captured (random numbers would repeat): run eagerly with the reason, or refused with graph: true', async () => {
    const cuda = createCudaBackend();
    const eager = await graphTrainer(cuda, { graph: false, dropout: 0.1 });
    const auto = await graphTrainer(cuda, { graph: 'auto', dropout: 0.1 });
    for (let i = 0; i < 4; i++) {
      const e = await eager.run();
      const a = await auto.run();
      expect(a.mode).toBe('eager');
      expect(a.step).toBe(e.step);
      if (i === 0) expect([a.loss, a.gradNorm]).toEqual([e.loss, e.gradNorm]);
      // The failed attempt drew its dropout masks before it stopped, so the eager retry of step 2
      // draws the next ones: the same model and batch under other masks.
      else expect(Math.abs(a.loss - e.loss) / e.loss).toBeLessThan(2e-2);
    }
    // Nothing else was left behind: no gradients, and the step counts of one update per call.
    expect(auto.optimizer.params.every((p) => p.tensor.grad === null && auto.optimizer.stepsOf(p.name) === 4)).toBe(true);
    expect(auto.step.graphError).toMatch(/dropout: random numbers cannot be captured in a CUDA graph/);
    const strict = await graphTrainer(cuda, { graph: true, dropout: 0.1 });
    await strict.run();
    await expect(strict.run()).rejects.toThrow(/TrainingStep: capturing the step failed: dropout: random numbers cannot be captured/);
    for (const t of [eager, auto, strict]) t.dispose();
    cuda.destroy();
  }, 180_000);

  it('a parameter whose first gradient would come under capture is refused (its zeroed moments would be replayed)', async () => {
    const { Linear, crossEntropy, Generator, add } = await import('@peft/core');
    const { AdamW, TrainingStep } = await import('@peft/trainer');
    const cuda = createCudaBackend();
    const a = new Linear(4, 3, { backend: cuda, generator: new Generator(1) });
    const b = new Linear(4, 3, { backend: cuda, generator: new Generator(2) });
    let calls = 0;
    const optimizer = new AdamW([...a.namedParameters(), ...[...b.namedParameters()].map(([k, t]) => [`b.${k}`, t] as const)]);
    const step = new TrainingStep({
      backend: cuda,
      optimizer,
      graph: true,
      inputs: { x: { shape: [2, 4], dtype: 'float32' }, y: { shape: [2], dtype: 'int32' } },
      // b joins the loss from the second call on.
      loss: ({ x, y }) => crossEntropy(calls++ === 0 ? a.forward(x) : add(a.forward(x), b.forward(x)), y, { count: 2 }),
    });
    const data = { x: [1, 2, 3, 4, 4, 3, 2, 1], y: [0, 2] };
    expect((await step.run(data, 0.1)).mode).toBe('eager');
    await expect(step.run(data, 0.1)).rejects.toThrow(
      /capturing the step failed: parameter "b.weight" got its first gradient during the capture/,
    );
    // Nothing ran: a's count is still 1 and no gradient is left.
    expect(optimizer.stepsOf('weight')).toBe(1);
    expect(optimizer.stepsOf('b.weight')).toBe(0);
    expect(a.weight.grad).toBeNull();
    // b's moments, made under the failed capture, are gone with it: b's first eager update makes new ones.
    expect((await optimizer.state()).moments.has('b.weight.exp_avg')).toBe(false);
    step.dispose();
    optimizer.dispose();
    a.dispose();
    b.dispose();
    cuda.destroy();
  });
});
