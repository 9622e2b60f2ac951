// Random initialisation: 'transformers' starts where transformers' from_config does
// (_init_weights: Linear and Embedding weights N(0, initializer_range²), biases zero, norms one).
import { createCpuBackend } from '@peft/backend-cpu';
import { Generator } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from './causal-lm.js';
import { parseConfig } from './config.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const std = (v: Float32Array) => {
  let s = 0;
  let s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const m = s / v.length;
  return Math.sqrt(s2 / v.length - m * m);
};

describe("createModel({ init: 'transformers' })", () => {
  it('draws Linear and Embedding weights from N(0, initializer_range²), zeros biases, leaves norms at one', async () => {
    const config = parseConfig({
      model_type: 'gpt_neox',
      hidden_size: 128,
      num_attention_heads: 4,
      num_hidden_layers: 1,
      intermediate_size: 512,
      vocab_size: 512,
      initializer_range: 0.05,
    });
    const model = createModel(config, { backend, init: 'transformers', generator: new Generator(3) });
    const params = Object.fromEntries(model.namedParameters());
    for (const name of ['gpt_neox.embed_in.weight', 'gpt_neox.layers.0.mlp.dense_h_to_4h.weight', 'embed_out.weight']) {
      const v = (await params[name]!.data()) as Float32Array;
      // 65,536 samples: the sample std is within 1.5% of 0.05 with overwhelming probability.
      expect(Math.abs(std(v) / 0.05 - 1), name).toBeLessThan(0.015);
    }
    expect(
      Array.from((await params['gpt_neox.layers.0.attention.query_key_value.bias']!.data()) as Float32Array).every((x) => x === 0),
    ).toBe(true);
    expect(Array.from((await params['gpt_neox.layers.0.input_layernorm.weight']!.data()) as Float32Array).every((x) => x === 1)).toBe(true);
    // PyTorch's default for comparison: U(±1/√128) has std 1/√(3·128) ≈ 0.051 for the MLP, N(0, 1) for the embedding.
    const dflt = createModel(config, { backend, generator: new Generator(3) });
    const emb = (await Object.fromEntries(dflt.namedParameters())['gpt_neox.embed_in.weight']!.data()) as Float32Array;
    expect(std(emb)).toBeGreaterThan(0.9);
    model.dispose();
    dflt.dispose();
  });
});
