import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, crossEntropy, keep, Linear, reshape, type Tensor, tidy } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { CausalLM } from './causal-lm.js';
import { parseConfig } from './config.js';
import { KVCache } from './models/common.js';
import { loadModel } from './node/index.js';
import { fusedRope, ropeFrequencies } from './rope.js';

// Checkpoints written by transformers' save_pretrained (5.18: rope_parameters; 4.57: rope_theta,
// rope_scaling, rotary_pct, rotary_emb_base) and goldens computed by transformers from the saved
// folders: packages/models/scripts/make-hf-models.py.
const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

interface Batch {
  inputIds: number[][];
  attentionMask: number[][];
  logits: number[][][];
}
interface Golden {
  producer: string;
  rows: number[][];
  right: Batch;
  left: Batch;
  alone: number[][][];
  loss: number;
  targets: number[][];
  linearInputGrads: Record<string, number[][][]>;
}

const FOLDERS = readdirSync(FIXTURES)
  .filter((d) => /^hf-.*-v[45]/.test(d))
  .sort();
const golden = (dir: string): Golden => JSON.parse(readFileSync(join(FIXTURES, dir, 'golden.json'), 'utf8'));
const configOf = (dir: string) => JSON.parse(readFileSync(join(FIXTURES, dir, 'config.json'), 'utf8')) as Record<string, unknown>;

/** Max |ours − golden| over the real tokens of a batch. */
async function maxLogitError(model: CausalLM, inputIds: number[][], attentionMask: number[][], expected: number[][][]): Promise<number> {
  const { logits } = model.forward({ inputIds, attentionMask });
  const values = await logits.data();
  const [, seq, vocab] = logits.shape as [number, number, number];
  logits.dispose();
  let worst = 0;
  attentionMask.forEach((mask, b) => {
    let k = 0;
    mask.forEach((m, t) => {
      if (!m) return;
      const row = expected[b]![k++]!;
      for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(values[(b * seq + t) * vocab + v]! - row[v]!));
    });
  });
  return worst;
}

describe('every model type in both config styles: logits equal transformers (float32, CPU backend)', () => {
  it('has a v5 and a v4 checkpoint of each supported model type', () => {
    for (const type of ['gpt-neox', 'llama', 'mistral', 'qwen2']) {
      for (const style of ['v5', 'v4']) expect(FOLDERS).toContain(`hf-${type}-${style}`);
    }
  });
  for (const dir of FOLDERS) {
    const raw = configOf(dir);
    const what = raw.rope_parameters ? `rope_parameters ${JSON.stringify(raw.rope_parameters)}` : `legacy keys`;
    it(`${dir} (${raw.model_type}, ${what})`, async () => {
      const g = golden(dir);
      const model = await loadModel(join(FIXTURES, dir), { backend, dtype: 'float32' });
      const errors = {
        right: await maxLogitError(model, g.right.inputIds, g.right.attentionMask, g.right.logits),
        left: await maxLogitError(model, g.left.inputIds, g.left.attentionMask, g.left.logits),
        alone: 0,
      };
      for (const [i, row] of g.rows.entries()) {
        errors.alone = Math.max(errors.alone, await maxLogitError(model, [row], [row.map(() => 1)], [g.alone[i]!]));
      }
      // Measured max |Δ| (recorded in packages/models/README.md).
      console.log(
        `${dir}: max |Δ| right ${errors.right.toExponential(2)}, left ${errors.left.toExponential(2)}, alone ${errors.alone.toExponential(2)}`,
      );
      expect(errors.right).toBeLessThan(1e-4);
      expect(errors.left).toBeLessThan(1e-4);
      expect(errors.alone).toBeLessThan(1e-4);
      model.dispose();
    });
  }
});

async function linearInputGrads(model: CausalLM, g: Golden): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  model.freeze();
  const inputs = new Map<string, Tensor>();
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    const forward = m.forward.bind(m);
    m.forward = (x: Tensor) => {
      x.retainGrad = true;
      if (!inputs.has(path)) inputs.set(path, keep(x));
      return forward(x);
    };
  }
  const embedName = model.config.modelType === 'gpt_neox' ? 'gpt_neox.embed_in.weight' : 'model.embed_tokens.weight';
  model.getParameter(embedName).requiresGrad = true;
  const loss = tidy(() => {
    const { logits } = model.forward({ inputIds: g.right.inputIds, attentionMask: g.right.attentionMask });
    return crossEntropy(reshape(logits, [-1, model.config.vocabSize]), g.targets.flat());
  });
  const value = await loss.item();
  backward(loss);
  const grads = new Map<string, Float32Array>();
  for (const [path, x] of inputs) {
    if (!x.grad) throw new Error(`${path}: no gradient at its input`);
    grads.set(path, (await x.grad.data()) as Float32Array);
  }
  // q, k and v (and GPT-NeoX's parallel branches) share one input tensor: dispose each once.
  for (const x of new Set(inputs.values())) x.dispose();
  loss.dispose();
  return { loss: value, grads };
}

describe('gradients at the input of every linear layer equal transformers', () => {
  for (const dir of FOLDERS) {
    it(dir, async () => {
      const g = golden(dir);
      const model = await loadModel(join(FIXTURES, dir), { backend, dtype: 'float32' });
      const { loss, grads } = await linearInputGrads(model, g);
      expect(loss).toBeCloseTo(g.loss, 5);
      // transformers 5 calls GPT-NeoX's output layer lm_head (its weight is still saved as embed_out.weight).
      const name = (path: string) => (model.config.modelType === 'gpt_neox' && path === 'lm_head' ? 'embed_out' : path);
      const wanted = Object.fromEntries(Object.entries(g.linearInputGrads).map(([path, v]) => [name(path), v]));
      expect([...grads.keys()].sort()).toEqual(Object.keys(wanted).sort());
      for (const [path, got] of grads) {
        const want = wanted[path]!.flat(2);
        let scale = 0;
        let worst = 0;
        for (const [i, v] of want.entries()) {
          scale = Math.max(scale, Math.abs(v));
          worst = Math.max(worst, Math.abs(got[i]! - v));
        }
        expect(worst / scale, `${path}: max |Δ| ${worst} over max |g| ${scale}`).toBeLessThan(1e-4);
      }
      model.dispose();
    });
  }

  it('gradient checkpointing recomputes cos/sin-table rope (llama3, yarn) to the same gradients', async () => {
    for (const dir of ['hf-llama-v5', 'hf-qwen2-v5']) {
      const g = golden(dir);
      const embedGrad = async (checkpointing: boolean) => {
        const model = await loadModel(join(FIXTURES, dir), { backend, dtype: 'float32' });
        model.gradientCheckpointing = checkpointing;
        const embed = model.getParameter('model.embed_tokens.weight');
        embed.requiresGrad = true;
        const loss = tidy(() => {
          const { logits } = model.forward({ inputIds: g.right.inputIds, attentionMask: g.right.attentionMask });
          return crossEntropy(reshape(logits, [-1, model.config.vocabSize]), g.targets.flat());
        });
        const value = await loss.item();
        backward(loss);
        const grad = (await embed.grad!.data()) as Float32Array;
        loss.dispose();
        model.dispose();
        return { value, grad };
      };
      const plain = await embedGrad(false);
      const recomputed = await embedGrad(true);
      expect(recomputed.value).toBeCloseTo(g.loss, 5);
      const scale = Math.max(...plain.grad.map(Math.abs));
      const worst = Math.max(...plain.grad.map((v, i) => Math.abs(recomputed.grad[i]! - v)));
      expect(worst / scale, dir).toBeLessThan(1e-6);
    }
  });
});

describe('KV cache with cos/sin-table rope', () => {
  for (const dir of ['hf-llama-v5', 'hf-qwen2-v4']) {
    it(`${dir}: token-by-token decoding of a left-padded batch equals the full forward`, async () => {
      const g = golden(dir);
      const model = await loadModel(join(FIXTURES, dir), { backend });
      const { inputIds, attentionMask } = g.left;
      const seq = inputIds[0]!.length;
      const vocab = model.config.vocabSize;
      const full = await model.forward({ inputIds, attentionMask }).logits.data();
      const cache = new KVCache();
      let worst = 0;
      for (let end = seq - 3; end <= seq; end++) {
        const start = end === seq - 3 ? 0 : end - 1;
        const step = model.forward(
          { inputIds: inputIds.map((r) => r.slice(start, end)), attentionMask: attentionMask.map((r) => r.slice(0, end)) },
          { cache },
        );
        const values = await step.logits.data();
        const n = end - start;
        for (let b = 0; b < inputIds.length; b++) {
          for (let v = 0; v < vocab; v++) {
            worst = Math.max(worst, Math.abs(values[(b * n + n - 1) * vocab + v]! - full[(b * seq + end - 1) * vocab + v]!));
          }
        }
        step.logits.dispose();
      }
      expect(worst).toBeLessThan(1e-5);
      cache.dispose();
      model.dispose();
    });
  }
});

interface RopeCase {
  name: string;
  config: Record<string, unknown>;
  lengths: Record<string, { invFreq: number[]; attentionScaling: number }>;
}

describe("rope: inverse frequencies and attention scaling equal transformers' rotary embedding", () => {
  for (const style of ['v5', 'v4']) {
    const file = JSON.parse(readFileSync(join(FIXTURES, 'hf-rope', `golden-${style}.json`), 'utf8')) as { cases: RopeCase[] };
    for (const c of file.cases) {
      it(c.name, () => {
        const config = parseConfig(c.config);
        for (const [length, want] of Object.entries(c.lengths)) {
          const got = ropeFrequencies(config.rope, Number(length));
          expect(got.invFreq.length, `length ${length}`).toBe(want.invFreq.length);
          for (const [i, w] of want.invFreq.entries()) {
            expect(Math.abs(got.invFreq[i]! - w) / w, `length ${length}, frequency ${i}: ${got.invFreq[i]} vs ${w}`).toBeLessThan(1e-6);
          }
          expect(Math.abs(got.attentionScaling - want.attentionScaling), `length ${length}: attention scaling`).toBeLessThan(1e-6);
          // The fused rotary op's base^(−2i/dim) / positionScale, where it is used, gives the same frequencies.
          const fused = fusedRope(config.rope, Number(length));
          if (fused) {
            for (const [i, w] of want.invFreq.entries()) {
              const f = fused.base ** ((-2 * i) / config.rotaryDim) / fused.positionScale;
              expect(Math.abs(f - w) / w, `fused, length ${length}, frequency ${i}`).toBeLessThan(1e-6);
            }
          }
        }
      });
    }
  }
});

const LLAMA = {
  model_type: 'llama',
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};

describe('rope and attention settings that cannot be honoured are errors naming the key and value', () => {
  const parse =
    (extra: Record<string, unknown>, base: Record<string, unknown> = LLAMA) =>
    () =>
      parseConfig({ ...base, ...extra });
  it('an unknown rope_type', () => {
    expect(parse({ rope_parameters: { rope_type: 'proportional', rope_theta: 10000 } })).toThrow(
      'config.json: rope_parameters.rope_type "proportional" is not supported: supported are default, linear, dynamic, llama3, yarn, longrope',
    );
    expect(parse({ rope_scaling: { type: 'su', factor: 2 } })).toThrow('rope_scaling.rope_type "su" is not supported');
  });
  it('a key the rope_type does not read', () => {
    expect(parse({ rope_parameters: { rope_type: 'linear', factor: 2, mrope_section: [2, 2] } })).toThrow(
      'config.json: rope_parameters.mrope_section = [2,2] is not understood with rope_type "linear"',
    );
    expect(parse({ rope_scaling: { rope_type: 'default', factor: 4 } })).toThrow(
      'rope_scaling.factor = 4 is not understood with rope_type "default"',
    );
  });
  it('a missing parameter', () => {
    expect(parse({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1 } })).toThrow(
      'rope_scaling.high_freq_factor is missing: rope_type "llama3" needs it',
    );
    expect(parse({ rope_parameters: { rope_type: 'linear' } })).toThrow('rope_parameters.factor is missing');
  });
  it('two keys that give one setting differently', () => {
    expect(parse({ rope_theta: 1000, rope_parameters: { rope_type: 'default', rope_theta: 500 } })).toThrow(
      'rope_parameters.rope_theta 500 and rope_theta 1000 disagree',
    );
    expect(parse({ rope_parameters: { rope_type: 'default' }, rope_scaling: { rope_type: 'linear', factor: 2 } })).toThrow(
      'rope_parameters {"rope_type":"default"} and rope_scaling {"rope_type":"linear","factor":2} disagree',
    );
    expect(parse({ rope_scaling: { rope_type: 'linear', type: 'dynamic', factor: 2 } })).toThrow(
      'rope_scaling.rope_type "linear" and rope_scaling.type "dynamic" disagree',
    );
    const neox = { ...LLAMA, model_type: 'gpt_neox' };
    expect(parse({ rotary_pct: 0.5, rope_parameters: { rope_type: 'default', partial_rotary_factor: 1 } }, neox)).toThrow(
      'rope_parameters.partial_rotary_factor 1 and rotary_pct 0.5 disagree',
    );
    expect(parse({ rotary_emb_base: 10000, rope_theta: 500 }, neox)).toThrow(
      "rope_theta 500 is not what transformers' gpt_neox uses: it reads rotary_emb_base (10000)",
    );
  });
  it('legacy configs that transformers 4 and 5 compute differently', () => {
    expect(parse({ rope_scaling: { rope_type: 'linear', factor: 2, rope_theta: 500 } })).toThrow(
      'rope_scaling.rope_theta 500: transformers 4 ignores it',
    );
    const longrope = { rope_type: 'longrope', short_factor: [1, 1, 1, 1], long_factor: [2, 2, 2, 2] };
    expect(parse({ max_position_embeddings: 64, rope_scaling: { ...longrope, factor: 2, original_max_position_embeddings: 16 } })).toThrow(
      'rope_scaling (longrope): transformers 4 reads original_max_position_embeddings 64 and factor 2, transformers 5 16 and 2',
    );
    expect(parse({ max_position_embeddings: 64, original_max_position_embeddings: 16, rope_scaling: { ...longrope, factor: 2 } })).toThrow(
      'transformers 4 reads original_max_position_embeddings 16 and factor 4, transformers 5 16 and 2',
    );
    // The same settings in transformers 5's form are read as transformers 5 reads them.
    expect(
      parseConfig({
        ...LLAMA,
        max_position_embeddings: 64,
        rope_parameters: { ...longrope, factor: 2, original_max_position_embeddings: 16 },
      }).rope,
    ).toMatchObject({ type: 'longrope', factor: 2, originalMaxPositionEmbeddings: 16 });
  });
  it('partial rotary on a Llama-shaped model, and an odd rotary size', () => {
    expect(parse({ partial_rotary_factor: 0.5 })).toThrow('partial_rotary_factor 0.5 is not supported for llama');
    expect(parse({ rope_parameters: { rope_type: 'default', partial_rotary_factor: 0.5 } }, { ...LLAMA, model_type: 'qwen2' })).toThrow(
      'rope_parameters.partial_rotary_factor 0.5 is not supported for qwen2',
    );
    expect(parse({ rotary_pct: 0.3 }, { ...LLAMA, model_type: 'gpt_neox', hidden_size: 40 })).toThrow(
      'partial rotary factor 0.3 of head size 10 gives 3 rotary features per head: must be even and > 0',
    );
  });
  it('longrope factors of the wrong length', () => {
    expect(parse({ rope_parameters: { rope_type: 'longrope', short_factor: [1, 1], long_factor: [2, 2, 2, 2] } })).toThrow(
      'rope_parameters.short_factor is [1,1]: expected 4 positive numbers (rotary features / 2)',
    );
  });
  it('a sliding window shorter than the sequence (Mistral, Qwen2)', async () => {
    const mistral = parseConfig({ ...LLAMA, model_type: 'mistral', num_key_value_heads: 2, sliding_window: 4 });
    expect(mistral.slidingWindows).toEqual([4, 4]);
    const { createModel } = await import('./causal-lm.js');
    const model = createModel(mistral, { backend });
    // Up to the window, full causal attention is what sliding-window attention computes.
    model.forward({ inputIds: [[1, 2, 3, 4]] }).logits.dispose();
    expect(() => model.forward({ inputIds: [[1, 2, 3, 4, 5]] })).toThrow(
      'mistral config.json sets sliding_window 4 for layer 0: this pass attends over 5 tokens (cached + new), more than the window, and sliding-window attention is not implemented',
    );
    const cache = new KVCache();
    model.forward({ inputIds: [[1, 2, 3, 4]], attentionMask: [[1, 1, 1, 1]] }, { cache }).logits.dispose();
    expect(() => model.forward({ inputIds: [[5]], attentionMask: [[1, 1, 1, 1, 1]] }, { cache })).toThrow('attends over 5 tokens');
    cache.dispose();
    model.dispose();
    const qwen = { ...LLAMA, model_type: 'qwen2', num_key_value_heads: 2, sliding_window: 4 };
    expect(parseConfig({ ...qwen, use_sliding_window: false }).slidingWindows).toEqual([null, null]);
    expect(parseConfig({ ...qwen, use_sliding_window: true, max_window_layers: 1 }).slidingWindows).toEqual([null, 4]);
    expect(parseConfig({ ...qwen, use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention'] }).slidingWindows).toEqual(
      [4, null],
    );
    expect(() => parseConfig({ ...qwen, use_sliding_window: true, layer_types: ['chunked_attention', 'full_attention'] })).toThrow(
      'field "layer_types" is ["chunked_attention","full_attention"]',
    );
    // transformers' MistralConfig default when the key is absent.
    expect(parseConfig({ ...LLAMA, model_type: 'mistral', num_key_value_heads: 4 }).slidingWindows).toEqual([4096, 4096]);
  });
});

describe('what each model type reads', () => {
  it('Qwen2: biases on q, k and v only; Mistral: none; head_dim when given', () => {
    const qwen = parseConfig({ ...LLAMA, model_type: 'qwen2', num_key_value_heads: 2 });
    expect([qwen.attentionBias, qwen.attentionOutputBias, qwen.mlpBias]).toEqual([true, false, false]);
    const mistral = parseConfig({ ...LLAMA, model_type: 'mistral', head_dim: 12, num_key_value_heads: 2, attention_bias: true });
    // transformers' defaults for a missing num_key_value_heads: Mistral 8, Qwen2 32.
    expect(() => parseConfig({ ...LLAMA, model_type: 'mistral' })).toThrow(
      'num_attention_heads 4 is not a multiple of num_key_value_heads 8',
    );
    expect([mistral.attentionBias, mistral.attentionOutputBias, mistral.mlpBias, mistral.headDim]).toEqual([false, false, false, 12]);
  });
  it("GPT-NeoX without rotary_pct rotates a quarter of each head (transformers' default)", () => {
    const c = parseConfig({ ...LLAMA, model_type: 'gpt_neox', hidden_size: 64 });
    expect([c.rotaryDim, c.headDim, c.ropeTheta]).toEqual([4, 16, 10000]);
  });
  it('rope_parameters (transformers 5) and the legacy keys give the same settings', () => {
    const v5 = parseConfig({
      ...LLAMA,
      rope_parameters: {
        rope_type: 'llama3',
        rope_theta: 500000,
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    });
    const v4 = parseConfig({
      ...LLAMA,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    expect(v5.rope).toEqual(v4.rope);
    expect(v5.rope).toMatchObject({ type: 'llama3', theta: 500000, factor: 8, originalMaxPositionEmbeddings: 8192 });
  });
});
