// LoRA training of the tiny checkpoints with the CUDA kernels run on the host emulator (see
// emulated.test.ts): 20 steps give the CPU backend's losses, for Study A's classifier on
// GPT-NeoX and for Study B's causal-LM loss on Llama (RMSNorm, SwiGLU, GQA, full rotary), and
// the caching allocator stops asking the device for memory after the first step.
// The models, batches and tolerances are scripts/training-check.ts's, which device-check.ts runs
// on a GPU.
import { createCpuBackend } from '@peft/backend-cpu';
import { describe, expect, it } from 'vitest';
import { compareTraining, trainer } from '../scripts/training-check.js';
import { useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();

describe.skipIf(!emu)('LoRA training with the CUDA kernels on the host emulator', async () => {
  const { createCudaBackend } = await import('./index.js');

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
      // Every GEMM on cuBLASLt, the mixed 16-bit × float32 ones of LoRA included.
      expect(cuda.gemmCounts.cublasLt).toBeGreaterThan(0);
      expect(cuda.gemmCounts.tiled).toBe(0);
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
    it(`${what} in bfloat16 (weights and activations; float32 adapters, as PEFT keeps them): 20 steps give the CPU backend’s bfloat16 losses within 1% + 2e-3`, async () => {
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
      // then (0.4% steps), and the runs drift apart by that much as the loss falls (seen: ≤ 0.12% + 1.1e-3).
      expect(r.ok, `${r.tolerance}: ${JSON.stringify({ cpuLosses, cudaLosses })}`).toBe(true);
      expect(cudaLosses[19]!).toBeLessThan(cudaLosses[0]!);
      console.log(`GEMMs: ${JSON.stringify(cuda.gemmCounts)}`);
      expect(cuda.gemmCounts.tiled).toBe(0);
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
});
