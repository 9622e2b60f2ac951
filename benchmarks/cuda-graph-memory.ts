/**
 * The CUDA backend's reserved memory while train() replays graphs of two micro-batch shapes (batch
 * 8 × 512 and 8 × 256 on the Llama-2-7B shape, bf16, LoRA r 16 on every projection, gradient
 * checkpointing), measured without a GPU: the emulated driver in dry mode, as
 * benchmarks/cuda-memory-plan.ts. `share` records every graph into one pool, as GraphCache does;
 * `separate` drops captureGraph's shareMemoryWith so each graph has a pool of its own. Prints the
 * graphs captured and replayed and the reserved memory after each of the 8 steps. Needs a C++ compiler.
 *
 *   pnpm bench:cuda-graph-memory [share|separate]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crossEntropy, Generator, getPeftModel, loraConfig, mul, reshape, type Tensor } from '@peft/core';
import { createModel, parseConfig } from '@peft/models';
import { type StepInput, type TrainTask, train } from '@peft/trainer';
import { useEmulator } from '../packages/backend-cuda/src/emulator.testkit.js';

process.env.PEFT_CUDA_EMU_DRY = '1';
process.env.PEFT_CUDA_EMU_TOTAL_GIB = '80';
if (!(await useEmulator())) process.exit(2);
const { createCudaBackend } = await import('@peft/backend-cuda');
const be = createCudaBackend();
const mode = process.argv[2] ?? 'share';
if (mode !== 'share' && mode !== 'separate') throw new Error(`cuda-graph-memory: mode ${JSON.stringify(mode)} is not share or separate`);
if (mode === 'separate') {
  const capture = be.captureGraph.bind(be);
  (be as { captureGraph: unknown }).captureGraph = (fn: () => void) => capture(fn);
}
const root = join(import.meta.dirname, '..');
const config = parseConfig(JSON.parse(readFileSync(join(root, 'fixtures', 'configs', 'llama-2-7b', 'config.json'), 'utf8')));
const model = createModel(config, { backend: be, dtype: 'bfloat16', init: 'transformers', generator: new Generator(0) });
model.freeze();
const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const peft = getPeftModel(model, loraConfig({ r: 16, loraAlpha: 32, loraDropout: 0, targetModules, taskType: 'CAUSAL_LM' }), {
  generator: new Generator(1),
});
model.gradientCheckpointing = true;
const trainable = [...peft.namedParameters()].filter(([, t]) => t.requiresGrad) as [string, Tensor][];
const B = 8;
const inputs = (indices: readonly number[]): Record<string, StepInput> => {
  const seq = indices.reduce((a, b) => a + b, 0) % 2 === 0 ? 512 : 256;
  const n = B * seq;
  const ids = Int32Array.from({ length: n }, (_, i) => 4 + ((i * 7919) % 31000));
  return {
    ids: { shape: [B, seq], dtype: 'int32', data: ids },
    positions: { shape: [B, seq], dtype: 'int32', data: Int32Array.from({ length: n }, (_, i) => i % seq) },
    targets: { shape: [n], dtype: 'int32', data: ids },
    invCount: { shape: [1], dtype: 'float32', data: [1 / n] },
  };
};
const task: TrainTask<number[]> = {
  trainSize: 64,
  trainable: () => trainable,
  batch: (indices) => [...indices],
  loss: () => {
    throw new Error('stepLoss only');
  },
  stepInputs: (indices) => inputs(indices),
  stepLoss: (t) => {
    const { logits } = (peft.model as typeof model).forward({ inputIds: t.ids!, positionIds: t.positions! });
    return mul(crossEntropy(reshape(logits, [t.targets!.size, config.vocabSize]), t.targets!, { reduction: 'sum' }), t.invCount!);
  },
  evaluate: async () => ({ score: 0, metrics: {} }),
};
const reservedAt: number[] = [];
const r = await train(task, {
  epochs: 1,
  batchSize: B,
  lr: 1e-4,
  evaluateUntrained: false,
  evaluateTest: false,
  progress: false,
  graph: true,
  onStep: () => void reservedAt.push(be.memoryStats().reserved),
});
const s = be.memoryStats();
const GiB = 2 ** 30;
console.log(
  `${mode}: ${r.steps} steps, graphs ${JSON.stringify(r.graphs)}, reserved ${(s.reserved / GiB).toFixed(2)} GiB (peak reserved ${(s.peakReserved / GiB).toFixed(2)} GiB); reserved after each step ${reservedAt.map((b) => (b / GiB).toFixed(2)).join(', ')} GiB`,
);
