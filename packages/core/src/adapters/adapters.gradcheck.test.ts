import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { backward, noGrad } from '../autograd/tape.js';
import { tidy } from '../memory.js';
import { setDropoutExamples } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { add, affine, div, mul, scale, sqrt, square } from '../ops/elementwise.js';
import { embedding } from '../ops/embedding.js';
import { linear, matmul } from '../ops/matmul.js';
import { sum } from '../ops/reduce.js';
import { transpose } from '../ops/shape.js';
import { Generator } from '../random/generator.js';
import { philoxUniform } from '../random/philox.js';
import { type Tensor, tensor } from '../tensor.js';
import { getPeftModel, type LoraEmbedding, type LoraLinear } from './index.js';

/**
 * LoRA gradients against central differences (float32 on the CPU backend): L = Σ f ⊙ R for a fixed
 * random R, analytic dL/dθ from the tape, numeric from L(θ ± ε). DoRA detaches its weight norm in
 * forward (PEFT and the paper's §4.3), so its A/B gradients are checked against differences of the
 * same function with the norm held at its value: that is the gradient DoRA defines.
 */
const backend = createCpuBackend();
afterAll(() => backend.destroy());

let seed = 500;
const uniform = (n: number, lo = -1, hi = 1) => Array.from(philoxUniform(seed++, 0, n, lo, hi));

function holder(layer: Module, name: string, modelType = 'x'): Module {
  const m = new (class extends Module {
    readonly config = { modelType };
  })();
  m.registerModule(name, layer);
  return m;
}

async function setValues(t: Tensor, values: number[]): Promise<void> {
  backend.write(t.buffer(), new Float32Array(values));
}

/** Analytic gradients of Σ f()⊙R for `params`, and numeric ones of Σ g()⊙R (g defaults to f). */
async function check(params: Tensor[], f: () => Tensor, opts: { g?: () => Tensor; eps?: number; tol?: number } = {}): Promise<void> {
  const eps = opts.eps ?? 1e-2;
  const tol = opts.tol ?? 2e-2;
  const g = opts.g ?? f;
  const probe = noGrad(f);
  const r = tensor(uniform(probe.size), probe.shape, { backend });
  probe.dispose();
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
  const loss = tidy(() => sum(mul(f(), r)));
  backward(loss);
  loss.dispose();
  const lossOf = async (): Promise<number> => {
    const y = noGrad(() => tidy(() => sum(mul(g(), r))));
    const v = await y.item();
    y.dispose();
    return v;
  };
  let checked = 0;
  for (const [pi, p] of params.entries()) {
    expect(p.grad, `parameter ${pi} got a gradient`).not.toBeNull();
    const analytic = await p.grad!.data();
    const values = Array.from(await p.data());
    for (let j = 0; j < p.size; j++) {
      const plus = [...values];
      const minus = [...values];
      plus[j]! += eps;
      minus[j]! -= eps;
      await setValues(p, plus);
      const lp = await lossOf();
      await setValues(p, minus);
      const lm = await lossOf();
      await setValues(p, values);
      const numeric = (lp - lm) / (2 * eps);
      const err = Math.abs(analytic[j]! - numeric);
      if (err > tol * Math.max(1, Math.abs(numeric)))
        throw new Error(`parameter ${pi} element ${j}: autograd ${analytic[j]} vs finite difference ${numeric}`);
      checked++;
    }
  }
  expect(checked).toBeGreaterThan(0);
  r.dispose();
}

function linearLora(opts: { useDora?: boolean; bias?: boolean; dropout?: number } = {}) {
  const base = new Linear(5, 4, { backend, generator: new Generator(1), bias: opts.bias ?? true });
  const p = getPeftModel(holder(base, 'proj'), {
    targetModules: ['proj'],
    r: 3,
    loraAlpha: 6,
    useDora: opts.useDora,
    loraDropout: opts.dropout ?? 0,
  });
  const layer = p.model.getSubmodule('proj') as LoraLinear;
  const { a, b } = layer.factors('default');
  noGrad(() => {
    backend.write(a.buffer(), new Float32Array(uniform(a.size)));
    backend.write(b.buffer(), new Float32Array(uniform(b.size)));
  });
  return { p, layer, a, b };
}

function embeddingLora(useDora = false) {
  const base = new Embedding(7, 4, { backend, generator: new Generator(2) });
  const p = getPeftModel(holder(base, 'embed_tokens'), { targetModules: ['embed_tokens'], r: 2, loraAlpha: 3, useDora });
  const layer = p.model.getSubmodule('embed_tokens') as LoraEmbedding;
  const { a, b } = layer.factors('default');
  backend.write(a.buffer(), new Float32Array(uniform(a.size)));
  return { p, layer, a, b };
}

describe('LoRA gradients agree with finite differences', () => {
  it('Linear: A and B (and the input) through base + s·B·A·x', async () => {
    const { p, layer, a, b } = linearLora();
    const x = tensor(uniform(2 * 3 * 5), [2, 3, 5], { backend, requiresGrad: true });
    await check([a, b, x], () => layer.forward(x));
    expect(layer.baseLayer.weight.grad).toBeNull();
    x.dispose();
    p.dispose();
  });

  it('Linear with dropout: the same mask in every evaluation', async () => {
    const { p, layer, a, b } = linearLora({ dropout: 0.3 });
    const gen = (layer.lora_dropout.get('default') as unknown as { generator: Generator }).generator;
    const x = tensor(uniform(4 * 5), [4, 5], { backend });
    await check([a, b], () => {
      gen.manualSeed(11);
      return layer.forward(x);
    });
    x.dispose();
    p.dispose();
  });

  it('Linear with per-example dropout masks: each row its own mask, the same in every evaluation', async () => {
    const { p, layer, a, b } = linearLora({ dropout: 0.3 });
    expect(setDropoutExamples(p, { step: 3, keys: [8, 1] })).toBe(1);
    expect(layer.lora_dropout.get('default')!.training).toBe(true);
    const x = tensor(uniform(2 * 3 * 5), [2, 3, 5], { backend });
    await check([a, b], () => layer.forward(x));
    x.dispose();
    p.dispose();
  });

  it('Embedding: A [r, vocab] and B [dim, r] through embedding(ids, Aᵀ)·Bᵀ, repeated ids included', async () => {
    const { p, layer, a, b } = embeddingLora();
    const ids = tensor([3, 0, 3, 6, 1, 3], [2, 3], { backend, dtype: 'int32' });
    await check([a, b], () => layer.forward(ids));
    ids.dispose();
    p.dispose();
  });

  it('DoRA on Linear: magnitude exactly; A and B with the norm held fixed (detached as in PEFT)', async () => {
    for (const bias of [true, false]) {
      const { p, layer, a, b } = linearLora({ useDora: true, bias });
      const m = (layer.lora_magnitude_vector.get('default') as unknown as { weight: Tensor }).weight;
      backend.write(m.buffer(), new Float32Array(uniform(m.size, 0.5, 2)));
      const x = tensor(uniform(3 * 5), [3, 5], { backend });
      const w = layer.weight;
      const s = layer.scaling.get('default')!;
      const frozen = noGrad(() => sqrt(sum(square(add(w, scale(matmul(b, a), s))), 1)));
      // y = base(x) + (m/n − 1)·W x + (m/n)·s·B A x with n fixed.
      const reference = () => {
        const factor = div(m, frozen);
        const wx = linear(x, w);
        return add(add(layer.baseLayer.forward(x), mul(affine(factor, 1, -1), wx)), scale(mul(factor, linear(linear(x, a), b)), s));
      };
      await check([m], () => layer.forward(x));
      await check([a, b], () => layer.forward(x), { g: reference });
      const y = noGrad(() => layer.forward(x));
      const yr = noGrad(reference);
      const [yv, rv] = [await y.data(), await yr.data()];
      for (let i = 0; i < yv.length; i++) expect(yv[i]).toBeCloseTo(rv[i]!, 5);
      for (const t of [x, frozen, y, yr]) t.dispose();
      p.dispose();
    }
  });

  it('DoRA on Embedding: magnitude per feature; A and B with the column norm held fixed', async () => {
    const { p, layer, a, b } = embeddingLora(true);
    const m = (layer.lora_magnitude_vector.get('default') as unknown as { weight: Tensor }).weight;
    expect(m.shape).toEqual([4]);
    backend.write(m.buffer(), new Float32Array(uniform(m.size, 0.5, 2)));
    const ids = tensor([2, 5, 2, 0], [4], { backend, dtype: 'int32' });
    const s = layer.scaling.get('default')!;
    const w = layer.weight;
    const frozen = noGrad(() => sqrt(sum(square(add(w, scale(matmul(a, b, { transA: true, transB: true }), s))), 0)));
    const reference = () => {
      const factor = div(m, frozen);
      const lora = matmul(embedding(transpose(a), ids), b, { transB: true });
      return add(mul(factor, embedding(w, ids)), scale(mul(factor, lora), s));
    };
    await check([m], () => layer.forward(ids));
    await check([a, b], () => layer.forward(ids), { g: reference });
    for (const t of [ids, frozen]) t.dispose();
    p.dispose();
  });
});
