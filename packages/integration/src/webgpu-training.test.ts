// LoRA training of the tiny GPT-NeoX classifier on WebGPU: the same losses as the CPU backend from
// the same initial state, and GPU memory that stops growing once the pool holds a step's buffers.
import { createCpuBackend } from '@peft/backend-cpu';
import { createWebGpuBackend, type WebGpuBackend, webGpuAvailable } from '@peft/backend-webgpu';
import { adamwStep, type Backend, backward, memoryInfo, noGrad, type Tensor, zeros } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { toyBatch, toyClassifier } from './toy.js';

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU training tests: no adapter (${gpu.reason})`);

/**
 * The toy classifier (toy.ts) trained by adamwStep directly: lr 5e-3, weight decay 0.01 on every
 * trainable tensor (the score head's included).
 */
async function classifier(backend: Backend) {
  const peft = await toyClassifier(backend);
  const params = [...peft.namedParameters()].filter(([, t]) => t.requiresGrad).map(([, t]) => t);
  const moments = params.map((p) => [zeros(p.shape, { backend }), zeros(p.shape, { backend })] as const);
  const batch = toyBatch(500);
  let step = 0;
  return {
    peft,
    params,
    /** One AdamW step on the batch; returns the loss before the update. */
    async step(): Promise<number> {
      step++;
      const loss = peft.model.loss(batch, batch.labels);
      backward(loss);
      const value = await loss.item();
      loss.dispose();
      noGrad(() => {
        params.forEach((p, i) => {
          const [m, v] = moments[i]!;
          adamwStep(p, p.grad as Tensor, m, v, { lr: 5e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 });
          p.grad?.dispose();
          p.grad = null;
        });
      });
      return value;
    },
    dispose() {
      for (const [m, v] of moments) {
        m.dispose();
        v.dispose();
      }
      peft.dispose();
    },
  };
}

describe.skipIf(!gpu.available)(`LoRA training on WebGPU — ${gpu.reason}`, () => {
  it('20 steps give the CPU backend’s losses within 2e-4 (relative)', async () => {
    const cpu = createCpuBackend();
    const webgpu = await createWebGpuBackend();
    const onCpu = await classifier(cpu);
    const onGpu = await classifier(webgpu);
    expect(onGpu.params.length).toBe(onCpu.params.length);
    expect(onGpu.params.length).toBe(5); // lora_A and lora_B of 2 layers + score
    const cpuLosses: number[] = [];
    const gpuLosses: number[] = [];
    for (let i = 0; i < 20; i++) {
      cpuLosses.push(await onCpu.step());
      gpuLosses.push(await onGpu.step());
    }
    const rel = gpuLosses.map((l, i) => Math.abs(l - cpuLosses[i]!) / Math.abs(cpuLosses[i]!));
    const worst = Math.max(...rel);
    console.log(
      `losses cpu ${cpuLosses[0]!.toFixed(6)} → ${cpuLosses[19]!.toFixed(6)}, webgpu ${gpuLosses[0]!.toFixed(6)} → ${gpuLosses[19]!.toFixed(6)}; ` +
        `worst relative difference ${worst.toExponential(2)} (step ${rel.indexOf(worst) + 1}), first step ${rel[0]!.toExponential(2)}`,
    );
    // Both compute in float32 from bit-identical weights, inputs and dropout masks; only the order
    // of summation differs (tiled GEMM and workgroup-tree reductions vs the CPU's loops), about
    // 1e-6 relative per op. AdamW's early updates are ≈ lr·sign(grad), so those differences
    // reach the parameters only through gradients near zero and the loss drifts slowly: 2e-4 leaves
    // a margin of well over 10× above what both drift by here, while a wrong kernel (a missing
    // scale, a dropped term, a mask off by one) moves the loss by 1e-2 or more within a few steps.
    expect(worst).toBeLessThan(2e-4);
    expect(rel[0]!).toBeLessThan(1e-5);
    // And training does something: the loss falls on both.
    expect(gpuLosses[19]!).toBeLessThan(gpuLosses[0]! * 0.5);
    onCpu.dispose();
    onGpu.dispose();
    cpu.destroy();
    webgpu.destroy();
    // ~4 s alone on SwiftShader with two cores; the margin is for a loaded machine (parallel test files).
  }, 120_000);

  it('100 steps: GPU memory (bytes and pooled bytes) stays flat after the first steps', async () => {
    const webgpu: WebGpuBackend = await createWebGpuBackend();
    const run = await classifier(webgpu);
    const losses: number[] = [];
    let after: { bytes: number; pooledBytes: number; buffers: number; tensors: number } | null = null;
    const WARM = 3;
    for (let i = 1; i <= 100; i++) {
      losses.push(await run.step());
      const m = webgpu.memory();
      const now = { bytes: m.bytes, pooledBytes: m.pooledBytes, buffers: m.buffers, tensors: memoryInfo(webgpu).tensors };
      if (i === WARM) after = now;
      if (i > WARM) expect(now, `after step ${i} (step ${WARM}: ${JSON.stringify(after)})`).toEqual(after);
    }
    console.log(
      `100 steps: GPU bytes ${after!.bytes} (pooled ${after!.pooledBytes}, ${after!.buffers} buffers handed out) from step ${WARM} to 100; ` +
        `loss ${losses[0]!.toFixed(4)} → ${losses[99]!.toFixed(4)}`,
    );
    expect(after!.bytes).toBeGreaterThan(0);
    expect(losses[99]!).toBeLessThan(losses[0]!);
    run.dispose();
    webgpu.destroy();
    // ~13 s alone on SwiftShader with two cores.
  }, 120_000);
});
