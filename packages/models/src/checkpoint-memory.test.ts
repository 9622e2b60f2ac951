// Gradient checkpointing holds one layer's activations at a time: the peak of a training forward
// pass does not grow with depth beyond the saved layer inputs.
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, Generator, sum } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from './causal-lm.js';
import { parseConfig } from './config.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

/** Bytes above the model's own during a forward (with grad) and during its backward. */
function peaks(layers: number, checkpointing: boolean): { forward: number; backward: number } {
  const config = parseConfig({
    model_type: 'llama',
    hidden_size: 64,
    num_attention_heads: 4,
    num_hidden_layers: layers,
    intermediate_size: 256,
    vocab_size: 128,
    max_position_embeddings: 128,
  });
  const model = createModel(config, { backend, init: 'random', generator: new Generator(0) });
  model.freeze();
  // Something to train in the first layer, so that backward runs through every layer.
  for (const [name, p] of model.namedParameters()) if (name === 'model.layers.0.self_attn.q_proj.weight') p.requiresGrad = true;
  model.gradientCheckpointing = checkpointing;
  const ids = Array.from({ length: 4 }, (_, b) => Array.from({ length: 64 }, (_, i) => (b * 31 + i * 7) % 128));
  const base = backend.memory().bytes;
  backend.resetPeak();
  const out = model.forward({ inputIds: ids }).logits;
  const loss = sum(out);
  const forward = backend.memory().peakBytes - base;
  backend.resetPeak();
  backward(loss);
  const backwardPeak = backend.memory().peakBytes - base;
  for (const t of [out, loss]) t.dispose();
  model.dispose();
  return { forward, backward: backwardPeak };
}

describe('gradient checkpointing memory', () => {
  it('keeps the forward peak nearly flat in depth (2 → 8 layers), unlike no checkpointing', () => {
    const shallow = peaks(2, true);
    const deep = peaks(8, true);
    const plain2 = peaks(2, false);
    const plain8 = peaks(8, false);
    // One layer input is 4·64·64 float32 = 64 KiB; six more layers add their inputs and little else.
    const perLayerCkpt = (deep.forward - shallow.forward) / 6;
    const perLayerPlain = (plain8.forward - plain2.forward) / 6;
    console.log(
      `forward peak per extra layer: ${(perLayerCkpt / 1024).toFixed(0)} KiB with checkpointing, ${(perLayerPlain / 1024).toFixed(0)} KiB without; ` +
        `backward peak ${(shallow.backward / 1024).toFixed(0)} → ${(deep.backward / 1024).toFixed(0)} KiB`,
    );
    expect(perLayerCkpt).toBeLessThanOrEqual(2 * 64 * 1024);
    expect(perLayerPlain).toBeGreaterThan(8 * perLayerCkpt);
  });
});
