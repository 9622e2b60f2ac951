// LoRA training of tiny models, the same on two backends, for the CUDA backend's bar "training
// the tiny models for 20 steps gives the CPU backend's losses within a stated tolerance". Used by
// cuda-emulated-training.test.ts (CUDA kernels on the host emulator) and by
// packages/backend-cuda/scripts/device-check.ts (on a GPU). Every random draw (LoRA A, score head,
// dropout masks, the headDim-64 model's weights) comes from seeded Generators, whose Philox streams
// are bit for bit the same on every backend.
import { join } from 'node:path';
import { type Backend, backward, crossEntropy, Generator, getPeftModel, loraConfig, mul, reshape, type Tensor } from '@peft/core';
import { CausalLMHead } from '@peft/heads';
import { createModel, parseConfig } from '@peft/models';
import { loadModel } from '@peft/models/node';
import { AdamW, TrainingStep } from '@peft/trainer';
import { findFixtures, toyBatch, toyClassifier } from './toy.js';

export type TrainingKind = 'neox-classifier' | 'llama-causal-lm' | 'llama-head-dim-64';

/** A small Llama with headDim 64, so that 16-bit attention takes the tensor-core kernels; random weights from a seeded Generator. */
export const LLAMA_HEAD_DIM_64 = {
  model_type: 'llama',
  hidden_size: 128,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_hidden_layers: 2,
  intermediate_size: 256,
  vocab_size: 520,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  hidden_act: 'silu',
  tie_word_embeddings: false,
};

/** LoRA on the tiny checkpoint with every random draw from seeded Generators (Philox: the same bits on every backend). */
export async function trainer(backend: Backend, kind: TrainingKind, dtype: 'float32' | 'bfloat16' = 'float32', fixtures = findFixtures()) {
  const batch = toyBatch();
  let model: { loss(): Tensor; dispose(): void; params: [string, Tensor][] };
  if (kind === 'neox-classifier') {
    const peft = await toyClassifier(backend, dtype, fixtures);
    model = {
      loss: () => peft.model.loss(batch, batch.labels),
      dispose: () => peft.dispose(),
      params: [...peft.namedParameters()].filter(([, t]) => t.requiresGrad),
    };
  } else {
    const causal =
      kind === 'llama-head-dim-64'
        ? createModel(parseConfig(LLAMA_HEAD_DIM_64), { backend, dtype, init: 'random', generator: new Generator(7) })
        : await loadModel(join(fixtures, 'tiny-llama'), { backend, dtype });
    const head = new CausalLMHead(causal);
    const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const peft = getPeftModel(head, loraConfig({ r: 4, loraAlpha: 8, loraDropout: 0.05, targetModules, taskType: 'CAUSAL_LM' }), {
      modelType: causal.config.modelType,
      generator: new Generator(3),
    });
    causal.gradientCheckpointing = true;
    peft.train();
    model = {
      loss: () => peft.model.loss({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, labels: batch.lmLabels }),
      dispose: () => peft.dispose(),
      params: [...peft.namedParameters()].filter(([, t]) => t.requiresGrad),
    };
  }
  // Weight decay on every trainable tensor (no name-based exemptions), lr 5e-3.
  const optimizer = new AdamW(model.params, { weightDecay: 0.01, noDecay: () => false });
  return {
    params: model.params.map(([, t]) => t),
    async step(): Promise<number> {
      const loss = model.loss();
      backward(loss);
      const value = await loss.item();
      loss.dispose();
      optimizer.step(5e-3);
      optimizer.zeroGrad();
      return value;
    },
    dispose() {
      optimizer.dispose();
      model.dispose();
    },
  };
}

export interface TrainingComparison {
  kind: TrainingKind;
  dtype: 'float32' | 'bfloat16';
  cpuLosses: number[];
  otherLosses: number[];
  /** |other − cpu| / |cpu| per step. */
  relative: number[];
  /** |other − cpu| over the step's allowed difference (see tolerance()): 1 is the edge. */
  used: number[];
  /** Whether every step is within the stated tolerance (see tolerance()) and the loss fell. */
  ok: boolean;
  tolerance: string;
}

/** bfloat16's unit roundoff: 8 significant bits, so one rounding moves a value by at most 2^-8 of it. */
export const BF16_UNIT_ROUNDOFF = 2 ** -8;

/**
 * The stated tolerance: `allowed(cpu, step, first)` is the largest |other − cpu| accepted at
 * `step` (0-based) when the CPU's loss is `cpu` and its first loss `first`.
 *
 * float32: the first step within 1e-5 and every step within 2e-4 relative (only the order of
 * float32 sums differs).
 *
 * bfloat16: u · n · (2 |loss| + |first loss| / 100) at step n = 1, 2, …, with u = 2^-8 the unit
 * roundoff. Both runs start from the same bits; a sum in another order (a GEMM's split of k, a
 * warp's reduction tree) rounds to a neighbouring bfloat16 now and then, so each step can move
 * the loss by about one rounding of its size in the forward and one more through the update it
 * makes (AdamW's sign-like steps pass a flipped rounding on at full size), and the steps add up:
 * 2 u |loss| per step. Once the tiny batch is nearly memorised (loss 8.0 → 0.08 in 20 steps) the
 * loss is a small difference of logits of the first loss's size, whose roundings do not shrink
 * with it: u |first| / 100 per step covers that. At 20 steps that is 15.6% of the loss + 0.8% of
 * the first loss; a wrong kernel moves the loss by far more within a few steps. On the host
 * emulator (another summation order than the CPU backend's, as a GPU's cuBLASLt has) the tiny
 * Llama uses at most 16% of it (2.3% off at step 16), the headDim-64 Llama 5%: room for a GPU's
 * GEMM algorithms, which split and order sums otherwise again.
 */
export function tolerance(dtype: 'float32' | 'bfloat16'): {
  text: string;
  allowed(cpu: number, step: number, first: number): number;
  check(cpu: number, other: number, step: number, first: number): boolean;
} {
  const allowed =
    dtype === 'float32'
      ? (c: number, i: number) => Math.abs(c) * (i === 0 ? 1e-5 : 2e-4)
      : (c: number, i: number, first: number) => BF16_UNIT_ROUNDOFF * (i + 1) * (2 * Math.abs(c) + Math.abs(first) / 100);
  return {
    text:
      dtype === 'float32'
        ? 'step 1 within 1e-5, every step within 2e-4 (relative)'
        : 'step n within u · n · (2 |loss| + |first loss| / 100), u = 2^-8 (bfloat16 unit roundoff)',
    allowed,
    check: (c, o, i, first) => Math.abs(o - c) < allowed(c, i, first),
  };
}

/** Trains `kind` for `steps` AdamW steps on the CPU backend and on `other` from the same state; compares the losses. */
export async function compareTraining(
  other: Backend,
  cpu: Backend,
  kind: TrainingKind,
  dtype: 'float32' | 'bfloat16',
  steps = 20,
): Promise<TrainingComparison> {
  const onCpu = await trainer(cpu, kind, dtype);
  const onOther = await trainer(other, kind, dtype);
  const cpuLosses: number[] = [];
  const otherLosses: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      cpuLosses.push(await onCpu.step());
      otherLosses.push(await onOther.step());
    }
  } finally {
    onCpu.dispose();
    onOther.dispose();
  }
  const tol = tolerance(dtype);
  const relative = otherLosses.map((l, i) => Math.abs(l - cpuLosses[i]!) / Math.abs(cpuLosses[i]!));
  const used = otherLosses.map((l, i) => Math.abs(l - cpuLosses[i]!) / tol.allowed(cpuLosses[i]!, i, cpuLosses[0]!));
  const ok = otherLosses.every((l, i) => tol.check(cpuLosses[i]!, l, i, cpuLosses[0]!)) && otherLosses[steps - 1]! < otherLosses[0]!;
  return { kind, dtype, cpuLosses, otherLosses, relative, used, ok, tolerance: tol.text };
}

// --- a training step replayed as a CUDA graph -----------------------------------------------------

const GRAPH_BATCH = 3;
const GRAPH_SEQ = 12;

/**
 * Step i's batch for `graphTrainer`: [3, 12] token ids from a seeded LCG, positions 0…11, targets
 * shifted by one (the next id; −100 on the last position and on a prompt whose length changes
 * from step to step, so the number of targets, an input too, changes).
 */
export function graphBatch(i: number, vocab: number) {
  let s = 777 + 31 * i;
  const ids = new Int32Array(GRAPH_BATCH * GRAPH_SEQ);
  for (let j = 0; j < ids.length; j++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    ids[j] = 4 + (s % (vocab - 4));
  }
  const positions = new Int32Array(ids.length).map((_, j) => j % GRAPH_SEQ);
  const targets = new Int32Array(ids.length).fill(-100);
  let count = 0;
  for (let b = 0; b < GRAPH_BATCH; b++) {
    const prompt = (i + b) % 5; // positions before this predict nothing
    for (let t = prompt; t < GRAPH_SEQ - 1; t++) {
      targets[b * GRAPH_SEQ + t] = ids[b * GRAPH_SEQ + t + 1]!;
      count++;
    }
  }
  return { ids, positions, targets, invCount: Float32Array.of(1 / count) };
}

/** Learning rate of step i in `graphTrainer` runs: changes every step, as a schedule does. */
export const graphLr = (i: number) => 4e-3 * (1 - i / 40);

/**
 * The tiny Llama with LoRA on every projection (r 4, dropout `dropout`), gradient checkpointing,
 * trained by a `TrainingStep` (clipping at 1.0, AdamW with weight decay) whose inputs are the
 * ids, positions, shifted targets and 1 / (number of targets): a step that can be captured as a
 * CUDA graph (`graph`), with nothing in it that a replay would repeat wrongly.
 */
export async function graphTrainer(
  backend: Backend,
  o: { graph: boolean | 'auto'; dropout?: number; dtype?: 'float32' | 'bfloat16'; fixtures?: string },
) {
  const causal = await loadModel(join(o.fixtures ?? findFixtures(), 'tiny-llama'), { backend, dtype: o.dtype ?? 'float32' });
  const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const peft = getPeftModel(causal, loraConfig({ r: 4, loraAlpha: 8, loraDropout: o.dropout ?? 0, targetModules, taskType: 'CAUSAL_LM' }), {
    generator: new Generator(3),
  });
  causal.gradientCheckpointing = true;
  peft.train();
  const optimizer = new AdamW(
    [...peft.namedParameters()].filter(([, t]) => t.requiresGrad),
    { weightDecay: 0.01 },
  );
  const vocab = causal.config.vocabSize;
  const n = GRAPH_BATCH * GRAPH_SEQ;
  const step = new TrainingStep({
    backend,
    optimizer,
    graph: o.graph,
    maxGradNorm: 1,
    inputs: {
      ids: { shape: [GRAPH_BATCH, GRAPH_SEQ], dtype: 'int32' },
      positions: { shape: [GRAPH_BATCH, GRAPH_SEQ], dtype: 'int32' },
      targets: { shape: [n], dtype: 'int32' },
      invCount: { shape: [1], dtype: 'float32' },
    },
    loss: ({ ids, positions, targets, invCount }) => {
      const { logits } = causal.forward({ inputIds: ids, positionIds: positions });
      const sum = crossEntropy(reshape(logits, [n, vocab]), targets, { reduction: 'sum', ignoreIndex: -100 });
      return mul(sum, invCount);
    },
  });
  let i = 0;
  return {
    step,
    optimizer,
    async run() {
      const r = await step.run(graphBatch(i, vocab), graphLr(i));
      i++;
      return r;
    },
    dispose() {
      step.dispose();
      optimizer.dispose();
      peft.dispose();
    },
  };
}
