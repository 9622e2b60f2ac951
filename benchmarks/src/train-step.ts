/**
 * LoRA training-step throughput: a GPT-NeoX sequence classifier (Study A's head on the last real
 * token), LoRA r 8 on query_key_value, the score head trained fully, AdamW; one step is forward,
 * backward, the loss read back, and the optimizer update. Reports real tokens per second.
 */
import { join } from 'node:path';
import { adamwStep, type Backend, backward, Generator, getPeftModel, loraConfig, noGrad, type Tensor, zeros } from '@peft/core';
import { SequenceClassifier } from '@peft/heads';
import { type CausalLM, createModel, parseConfig } from '@peft/models';
import { loadModel } from '@peft/models/node';

export const TINY_DIR = join(import.meta.dirname, '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');

/** A ~100M-parameter GPT-NeoX (pythia-160m's shape with a 32,000 vocabulary: 110M in the classifier), random weights. */
export const NEOX_100M = {
  model_type: 'gpt_neox',
  vocab_size: 32000,
  hidden_size: 768,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  intermediate_size: 3072,
  rotary_pct: 0.25,
  max_position_embeddings: 2048,
  use_parallel_residual: true,
  hidden_act: 'gelu',
  eos_token_id: 0,
};

export interface StepBenchOptions {
  model: 'tiny' | '100m';
  batch: number;
  seq: number;
  /** Untimed steps first (pipeline compilation, pool warm-up). */
  warmup: number;
  steps: number;
}

export interface StepResult {
  model: string;
  backend: string;
  parameters: number;
  trainable: number;
  batch: number;
  seq: number;
  steps: number;
  medianStepMs: number;
  tokensPerSecond: number;
  losses: number[];
}

async function build(backend: Backend, model: StepBenchOptions['model']): Promise<CausalLM> {
  if (model === 'tiny') return loadModel(TINY_DIR, { backend, dtype: 'float32' });
  return createModel(parseConfig(NEOX_100M), { backend, init: 'random', generator: new Generator(0) });
}

export async function benchTrainStep(backend: Backend, o: StepBenchOptions): Promise<StepResult> {
  const causal = await build(backend, o.model);
  causal.freeze();
  const head = new SequenceClassifier(causal, { numLabels: 3, generator: new Generator(1) });
  // The classifier's parameters: the decoder and the score head (not the unused LM output head).
  const parameters = [...head.parameters()].reduce((n, t) => n + t.size, 0);
  const peft = getPeftModel(head, loraConfig({ r: 8, loraAlpha: 16, loraDropout: 0.05, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), {
    modelType: causal.config.modelType,
    generator: new Generator(2),
  });
  peft.train();
  const params = [...peft.parameters()].filter((t) => t.requiresGrad);
  const moments = params.map((p) => [zeros(p.shape, { backend }), zeros(p.shape, { backend })] as const);
  const vocab = causal.config.vocabSize;
  let s = 7;
  const inputIds = Array.from({ length: o.batch }, () =>
    Array.from({ length: o.seq }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return 4 + (s % (vocab - 4));
    }),
  );
  const batch = { inputIds, attentionMask: inputIds.map((r) => r.map(() => 1)) };
  const labels = inputIds.map((_, i) => i % 3);
  const losses: number[] = [];
  const times: number[] = [];
  try {
    for (let step = 1; step <= o.warmup + o.steps; step++) {
      const t0 = performance.now();
      const loss = peft.model.loss(batch, labels);
      backward(loss);
      losses.push(await loss.item());
      loss.dispose();
      noGrad(() => {
        params.forEach((p, i) => {
          const [m, v] = moments[i]!;
          adamwStep(p, p.grad as Tensor, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step, gradScale: 1 });
          p.grad?.dispose();
          p.grad = null;
        });
      });
      await backend.sync();
      if (step > o.warmup) times.push(performance.now() - t0);
    }
  } finally {
    for (const [m, v] of moments) {
      m.dispose();
      v.dispose();
    }
    peft.dispose();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianStepMs = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    model: o.model === 'tiny' ? 'tiny-gpt-neox' : 'gpt-neox ~100M (random)',
    backend: backend.name,
    parameters,
    trainable: params.reduce((n, t) => n + t.size, 0),
    batch: o.batch,
    seq: o.seq,
    steps: o.steps,
    medianStepMs,
    tokensPerSecond: (o.batch * o.seq) / (medianStepMs / 1000),
    losses,
  };
}
