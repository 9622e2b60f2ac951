import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, crossEntropy, keep, Linear, reshape, type Tensor, tidy } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { CausalLM } from './causal-lm.js';
import { loadModel } from './node/index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

interface Golden {
  producer: string;
  rows: number[][];
  right: { inputIds: number[][]; attentionMask: number[][]; logits: number[][][] };
  left: { inputIds: number[][]; attentionMask: number[][]; logits: number[][][] };
  alone: number[][][];
  loss?: number;
  targets?: number[][];
  linearInputGrads?: Record<string, number[][][]>;
}

function golden(name: string): Golden {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
}

/** Max |a − b| over the real tokens' logits. */
async function maxLogitError(model: CausalLM, batch: Golden['right'], expected: number[][][]): Promise<number> {
  const { logits } = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
  const values = await logits.data();
  const [, seq, vocab] = logits.shape as [number, number, number];
  logits.dispose();
  let worst = 0;
  batch.attentionMask.forEach((mask, b) => {
    let k = 0;
    mask.forEach((m, t) => {
      if (!m) return;
      const row = expected[b]![k++]!;
      for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(values[(b * seq + t) * vocab + v]! - row[v]!));
    });
  });
  return worst;
}

const CASES = [
  ['tiny-gpt-neox', 'model.safetensors (GPT-NeoX: parallel residual, rotary_pct 0.25, gelu)'],
  ['tiny-gpt-neox/bin', 'pytorch_model.bin of the same model'],
  ['tiny-gpt-neox-seq', 'sharded safetensors (sequential residual, gelu_new, tied embeddings)'],
  ['tiny-llama', 'model.safetensors (Llama: GQA 4/2, SwiGLU, RMSNorm)'],
  ['tiny-llama/bin', 'pytorch_model.bin of the same model'],
  ['tiny-llama-bias', 'pytorch_model.bin (Llama: biases, linear rope scaling, tied embeddings)'],
] as const;

describe('logits equal the PyTorch goldens (float32, CPU backend)', () => {
  for (const [dir, what] of CASES) {
    it(`${dir}: ${what}`, async () => {
      const g = golden(dir.split('/')[0]!);
      const model = await loadModel(join(FIXTURES, dir), { backend, dtype: 'float32' });
      expect(await maxLogitError(model, g.right, g.right.logits)).toBeLessThan(1e-4);
      expect(await maxLogitError(model, g.left, g.left.logits)).toBeLessThan(1e-4);
      // Each real token of a padded batch gets the output it gets alone.
      expect(await maxLogitError(model, g.right, g.alone)).toBeLessThan(1e-4);
      expect(await maxLogitError(model, g.left, g.alone)).toBeLessThan(1e-4);
      model.dispose();
    });
  }
});

describe('gradients at the input of every linear layer equal the PyTorch goldens', () => {
  for (const name of ['tiny-gpt-neox', 'tiny-llama']) {
    it(name, async () => {
      const g = golden(name);
      const model = await loadModel(join(FIXTURES, name), { backend, dtype: 'float32' });
      model.freeze();
      const inputs = new Map<string, Tensor>();
      for (const [path, m] of model.namedModules()) {
        if (!(m instanceof Linear)) continue;
        const forward = m.forward.bind(m);
        m.forward = (x: Tensor) => {
          // The input needs a gradient to get one: make it a non-leaf that retains its grad.
          x.retainGrad = true;
          if (!inputs.has(path)) inputs.set(path, keep(x));
          return forward(x);
        };
      }
      // Embedding output must require grad so that gradients flow to the linear inputs.
      const embedName = model.config.modelType === 'gpt_neox' ? 'gpt_neox.embed_in.weight' : 'model.embed_tokens.weight';
      model.getParameter(embedName).requiresGrad = true;
      const loss = tidy(() => {
        const { logits } = model.forward({ inputIds: g.right.inputIds, attentionMask: g.right.attentionMask });
        return crossEntropy(reshape(logits, [-1, model.config.vocabSize]), g.targets!.flat());
      });
      expect(await loss.item()).toBeCloseTo(g.loss!, 5);
      backward(loss);
      const expectedNames = Object.keys(g.linearInputGrads!).sort();
      expect([...inputs.keys()].sort()).toEqual(expectedNames);
      for (const [path, x] of inputs) {
        const got = await x.grad!.data();
        const want = g.linearInputGrads![path]!.flat(2);
        let scale = 0;
        for (const v of want) scale = Math.max(scale, Math.abs(v));
        let worst = 0;
        for (const [i, v] of want.entries()) worst = Math.max(worst, Math.abs(got[i]! - v));
        // Relative to the largest gradient entry of that input.
        expect(worst / scale, `${path}: max |Δ| ${worst} over max |g| ${scale}`).toBeLessThan(1e-4);
      }
      for (const x of inputs.values()) x.dispose();
      loss.dispose();
      model.dispose();
    });
  }
});

describe('bfloat16 and float16 storage', () => {
  // bf16 keeps 8 significant bits (rounding error 2⁻⁹ ≈ 0.2 % per value); the forward pass stores
  // every intermediate tensor in the weights' dtype (about 20 roundings per layer, as PyTorch does
  // in bf16) and errors add up over 2 layers and a 64-wide inner product per logit: a few percent
  // of the logit scale. The bar is max |Δ| < 10 % of the RMS logit for bf16 and < 2 % for f16
  // (2⁻¹¹ rounding, 4× finer). Measured: bf16 5.5 % / 4.9 %, f16 0.9 % / 0.7 % (GPT-NeoX / Llama).
  for (const name of ['tiny-gpt-neox', 'tiny-llama']) {
    it(`${name} against the float32 goldens`, async () => {
      const g = golden(name);
      const rms = Math.sqrt(g.right.logits.flat(2).reduce((s, v) => s + v * v, 0) / g.right.logits.flat(2).length);
      for (const [dtype, bound] of [
        ['bfloat16', 0.1],
        ['float16', 0.02],
      ] as const) {
        const model = await loadModel(join(FIXTURES, name), { backend, dtype });
        expect(model.parameters().every((p) => p.dtype === dtype)).toBe(true);
        const err = await maxLogitError(model, g.right, g.right.logits);
        expect(err / rms, `${dtype}: max |Δ| ${err}, RMS logit ${rms}`).toBeLessThan(bound);
        expect(err).toBeGreaterThan(1e-4); // really computed in the low-precision dtype
        model.dispose();
      }
    });
  }
});
