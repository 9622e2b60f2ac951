import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { countLoraParameters, describeModel, getPeftModel } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from './causal-lm.js';
import { parseConfig } from './config.js';
import { describeParameters, outputHeadName } from './lora-count.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** Llama-2-7B's config.json (meta-llama/Llama-2-7b-hf). */
const LLAMA2_7B = parseConfig({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  torch_dtype: 'float16',
});

const strip = (shapes: ReturnType<typeof describeModel>) =>
  shapes.map(({ className: _c, ...s }) => ({
    ...s,
    tied: !!s.tied,
    bias: s.kind === 'linear' ? !!s.bias : undefined,
    params: s.kind === 'other' ? (s.params ?? 0) : undefined,
    biasParams: s.kind === 'other' ? (s.biasParams ?? 0) : undefined,
  }));

describe('parameter counts from a config alone', () => {
  it('describeParameters(config) is the module tree createModel builds, for every tiny checkpoint', () => {
    for (const name of ['tiny-gpt-neox', 'tiny-gpt-neox-seq', 'tiny-llama', 'tiny-llama-bias']) {
      const config = parseConfig(JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')));
      const model = createModel(config, { backend, init: 'zeros' });
      expect(strip(describeParameters(config)), name).toEqual(strip(describeModel(model)));
      // And the counts agree with a real getPeftModel on it.
      for (const cfg of [
        { r: 4 },
        { r: 2, targetModules: 'all-linear' },
        { r: 3, targetModules: ['dense', 'q_proj', 'up_proj', 'embed_in', 'embed_tokens'], useDora: true },
      ]) {
        const targets = cfg.targetModules;
        if (Array.isArray(targets) && !targets.some((t) => describeParameters(config).some((s) => s.name.endsWith(`.${t}`)))) continue;
        const counts = countLoraParameters(describeParameters(config), cfg, {
          modelType: config.modelType,
          outputEmbeddings: outputHeadName(config),
        });
        const peft = getPeftModel(model, cfg);
        const real = peft.parameterCounts();
        expect([counts.trainable, counts.total, counts.line], `${name} ${JSON.stringify(cfg)}`).toEqual([
          real.trainable,
          real.total,
          real.line,
        ]);
        peft.unload();
      }
      model.dispose();
    }
  });

  it('Study B: Llama-2-7B has 6,738,415,616 parameters; LoRA counts for every layer set and rank of the grid', () => {
    const shapes = describeParameters(LLAMA2_7B);
    const opts = { modelType: 'llama', outputEmbeddings: 'lm_head' };
    const base = countLoraParameters(shapes, { r: 8 }, opts).base;
    expect(base).toBe(6_738_415_616);
    // in + out of each target (Llama-2-7B: hidden 4096, MLP 11008, vocabulary 32000, 32 layers).
    const dims: Record<string, number> = {
      q_proj: 4096 + 4096,
      k_proj: 4096 + 4096,
      v_proj: 4096 + 4096,
      o_proj: 4096 + 4096,
      up_proj: 4096 + 11008,
      down_proj: 11008 + 4096,
      gate_proj: 4096 + 11008,
    };
    const sets: Record<string, string[]> = {
      q: ['q_proj'],
      'q,k': ['q_proj', 'k_proj'],
      'q,k,v': ['q_proj', 'k_proj', 'v_proj'],
      'q,k,v,o': ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      all: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj', 'gate_proj', 'embed_tokens', 'lm_head'],
    };
    for (const [setName, targets] of Object.entries(sets)) {
      for (const r of [2, 4, 8, 16, 32, 64, 128]) {
        const perLayer = targets.filter((t) => t in dims).reduce((n, t) => n + dims[t]!, 0);
        const heads = (targets.includes('embed_tokens') ? 32000 + 4096 : 0) + (targets.includes('lm_head') ? 4096 + 32000 : 0);
        const expected = r * (32 * perLayer + heads);
        const counts = countLoraParameters(shapes, { r, loraAlpha: 2 * r, targetModules: targets }, opts);
        expect(counts.trainable, `${setName} r=${r}`).toBe(expected);
        expect(counts.total).toBe(base + expected);
        expect(counts.targets).toHaveLength(32 * targets.filter((t) => t in dims).length + (setName === 'all' ? 2 : 0));
      }
    }
    const all128 = countLoraParameters(shapes, { r: 128, targetModules: sets.all }, opts);
    expect(all128.trainable).toBe(329_056_256);
    expect(all128.line).toBe('trainable params: 329,056,256 || all params: 7,067,471,872 || trainable%: 4.6559');
    // q only at r = 8 (the smallest setting of the grid besides lower ranks): 32 · 8 · 8192.
    expect(countLoraParameters(shapes, { r: 8, targetModules: ['q_proj'] }, opts).trainable).toBe(2_097_152);
    // PEFT's default for llama is q_proj, v_proj.
    expect(countLoraParameters(shapes, { r: 8 }, opts).trainable).toBe(4_194_304);
  });
});
