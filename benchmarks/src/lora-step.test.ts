import { createCpuBackend } from '@peft/backend-cpu';
import { describe, expect, it } from 'vitest';
import { useEmulator } from '../../packages/backend-cuda/src/emulator.testkit.js';
import { liveTensors, runLoraStep } from './lora-step.js';

// Llama-shaped, tiny: what the CUDA suite runs at 7B, here on the CPU backend.
const TINY_LLAMA = {
  model_type: 'llama',
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
};

const LLAMA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

describe('the CUDA suite’s LoRA step, on the CPU backend', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`trains a tiny Llama (${dtype}): finite, falling loss; memory released`, async () => {
      const backend = createCpuBackend();
      try {
        const before = backend.memory().bytes;
        const r = await runLoraStep(backend, {
          config: TINY_LLAMA,
          dtype,
          r: 16,
          alpha: 32,
          targets: LLAMA_TARGETS,
          batch: 2,
          seq: 16,
          warmup: 0,
          steps: 2,
          lr: 1e-2,
        });
        expect(r.losses).toHaveLength(2);
        for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
        // Random ids, untrained model: about ln(vocab).
        expect(Math.abs(r.losses[0]! - Math.log(256))).toBeLessThan(1.5);
        expect(r.losses[1]!).toBeLessThan(r.losses[0]!);
        expect(r.layers).toBe(2);
        expect(r.trainable).toBe(2 * 16 * (4 * (64 + 64) + 3 * (64 + 172)));
        expect(r.peakBytes).toBeGreaterThan(r.modelBytes);
        expect(r.tokensPerSecond).toBeGreaterThan(0);
        expect(liveTensors(backend)).toBe(0);
        expect(backend.memory().bytes).toBe(before);
      } finally {
        backend.destroy();
      }
    });
  }
});

const emu = await useEmulator();
const STEP = { config: TINY_LLAMA, r: 16, alpha: 32, targets: LLAMA_TARGETS, batch: 2, seq: 16, warmup: 1, steps: 3, lr: 1e-2 } as const;

describe('the CUDA suite’s LoRA step as a TrainingStep (graph: true)', () => {
  it('gives the eager step’s losses on the CPU backend, which runs it eagerly', async () => {
    const backend = createCpuBackend();
    try {
      const eager = await runLoraStep(backend, { ...STEP, dtype: 'float32' });
      const graph = await runLoraStep(backend, { ...STEP, dtype: 'float32', graph: true });
      expect([eager.mode, graph.mode]).toEqual(['eager', 'eager']);
      for (const [i, l] of graph.losses.entries()) expect(l).toBeCloseTo(eager.losses[i]!, 5);
      expect(liveTensors(backend)).toBe(0);
    } finally {
      backend.destroy();
    }
  });

  it.skipIf(!emu)(
    'is captured and replayed on the emulated CUDA device, to the eager step’s losses',
    async () => {
      const { createCudaBackend } = await import('@peft/backend-cuda');
      const backend = createCudaBackend();
      try {
        const eager = await runLoraStep(backend, { ...STEP, dtype: 'bfloat16' });
        const graph = await runLoraStep(backend, { ...STEP, dtype: 'bfloat16', graph: true });
        expect([eager.mode, graph.mode]).toEqual(['eager', 'graph']);
        // bfloat16 activations; the eager step gathers the target rows before the LM head, the
        // captured one takes every row's logits: the same sum in another order.
        for (const [i, l] of graph.losses.entries()) expect(Math.abs(l - eager.losses[i]!) / eager.losses[i]!).toBeLessThan(5e-3);
        expect(liveTensors(backend)).toBe(0);
      } finally {
        backend.destroy();
      }
    },
    120_000,
  );
});
