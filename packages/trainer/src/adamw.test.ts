import { createCpuBackend } from '@peft/backend-cpu';
import { Generator, Linear, linear, mul, scale, square, sub, sum, type Tensor, tensor } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, hfNoDecay } from './adamw.js';
import { readLatestCheckpoint } from './checkpoint.js';
import { memoryRunStore } from './store.js';
import { type StepInfo, train } from './trainer.js';
import type { TrainTask } from './types.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

// pred_i = (W x_i + b) ⊙ g, loss = mean_i ½‖pred_i − y_i‖². Parameter names: W decays, b and g (a norm weight) do not.
const X = [
  [0.5, -1.0],
  [1.5, 0.25],
  [-0.75, 2.0],
  [1.0, 1.0],
];
const Y = [
  [1, 0, -1],
  [0.5, 2, 0],
  [-1, 1, 1],
  [2, -0.5, 0.5],
];
const W0 = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6];
const B0 = [0.05, -0.1, 0.2];
const G0 = [1.0, 0.9, 1.1];

class QuadTask implements TrainTask<number[]> {
  readonly trainSize = 4;
  readonly W = tensor(W0, [3, 2], { backend, requiresGrad: true });
  readonly b = tensor(B0, [3], { backend, requiresGrad: true });
  readonly g = tensor(G0, [3], { backend, requiresGrad: true });
  *trainable(): Iterable<[string, Tensor]> {
    yield ['layer.weight', this.W];
    yield ['layer.bias', this.b];
    yield ['norm.weight', this.g];
  }
  batch(indices: readonly number[]) {
    return [...indices];
  }
  loss(rows: number[]): Tensor {
    const x = tensor(
      rows.flatMap((i) => X[i]!),
      [rows.length, 2],
      { backend },
    );
    const y = tensor(
      rows.flatMap((i) => Y[i]!),
      [rows.length, 3],
      { backend },
    );
    return scale(sum(square(sub(mul(linear(x, this.W, this.b), this.g), y))), 0.5 / rows.length);
  }
  evaluations = 0;
  // Each evaluation scores higher, so the last state is the best one and stays in the tensors.
  async evaluate() {
    return { score: ++this.evaluations, metrics: {} };
  }
  dispose() {
    for (const [, t] of this.trainable()) t.dispose();
  }
}

/** float64 gradients of the loss over all four rows. */
function grads(W: number[], b: number[], g: number[]) {
  const gW = new Array(6).fill(0);
  const gb = new Array(3).fill(0);
  const gg = new Array(3).fill(0);
  const n = X.length;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 3; j++) {
      const h = W[j * 2]! * X[i]![0]! + W[j * 2 + 1]! * X[i]![1]! + b[j]!;
      const r = h * g[j]! - Y[i]![j]!;
      gg[j] += (r * h) / n;
      gb[j] += (r * g[j]!) / n;
      gW[j * 2] += (r * g[j]! * X[i]![0]!) / n;
      gW[j * 2 + 1] += (r * g[j]! * X[i]![1]!) / n;
    }
  }
  return [gW, gb, gg];
}

/** torch.optim.AdamW written out in float64, with clip_grad_norm_ before it. */
function reference(steps: number, o: { lr: number; wd: number; maxNorm: number | null; decayAll?: boolean }) {
  const params = [[...W0], [...B0], [...G0]];
  const wds = o.decayAll ? [o.wd, o.wd, o.wd] : [o.wd, 0, 0];
  const m = params.map((p) => p.map(() => 0));
  const v = params.map((p) => p.map(() => 0));
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const coefs: number[] = [];
  for (let t = 1; t <= steps; t++) {
    const gs = grads(params[0]!, params[1]!, params[2]!);
    const norm = Math.sqrt(gs.flat().reduce((s, x) => s + x * x, 0));
    const coef = o.maxNorm === null ? 1 : Math.min(1, o.maxNorm / (norm + 1e-6));
    coefs.push(coef);
    params.forEach((p, k) => {
      for (let i = 0; i < p.length; i++) {
        const gi = gs[k]![i]! * coef;
        p[i] = p[i]! * (1 - o.lr * wds[k]!);
        m[k]![i] = b1 * m[k]![i]! + (1 - b1) * gi;
        v[k]![i] = b2 * v[k]![i]! + (1 - b2) * gi * gi;
        p[i] = p[i]! - (o.lr * (m[k]![i]! / (1 - b1 ** t))) / (Math.sqrt(v[k]![i]! / (1 - b2 ** t)) + eps);
      }
    });
  }
  return { params, coefs };
}

async function trained(task: QuadTask) {
  return [Array.from(await task.W.data()), Array.from(await task.b.data()), Array.from(await task.g.data())];
}

function expectClose(actual: number[][], expected: number[][], tol: number) {
  actual.flat().forEach((a, i) => {
    expect(Math.abs(a - expected.flat()[i]!)).toBeLessThan(tol);
  });
}

describe('AdamW through the trainer', () => {
  it('equals a hand-written torch AdamW for 3 steps, with no decay for the bias and the norm weight', async () => {
    const task = new QuadTask();
    await train(task, {
      epochs: 3,
      batchSize: 4,
      lr: 0.05,
      weightDecay: 0.1,
      schedule: 'constant',
      maxGradNorm: null,
      evaluateUntrained: false,
      evaluateTest: false,
      progress: false,
    });
    const ref = reference(3, { lr: 0.05, wd: 0.1, maxNorm: null });
    const actual = await trained(task);
    expectClose(actual, ref.params, 1e-6);
    // Decaying the bias and the norm weight too would be visible: off by more than 1e-4.
    const decayAll = reference(3, { lr: 0.05, wd: 0.1, maxNorm: null, decayAll: true });
    expect(Math.abs(actual[2]![2]! - decayAll.params[2]![2]!)).toBeGreaterThan(1e-4);
    task.dispose();
  });

  it('clips the global gradient norm to maxGradNorm (one read back per step), then AdamW as torch', async () => {
    const task = new QuadTask();
    const out = memoryRunStore();
    const info: StepInfo[] = [];
    await train(task, {
      epochs: 1,
      batchSize: 4,
      lr: 0.05,
      weightDecay: 0.1,
      schedule: 'constant',
      maxGradNorm: 0.5,
      evaluateUntrained: false,
      evaluateTest: false,
      progress: false,
      out,
      onStep: (s) => {
        info.push(s);
      },
    });
    const [gW, gb, gg] = grads(W0, B0, G0);
    const norm = Math.sqrt([...gW!, ...gb!, ...gg!].reduce((s, x) => s + x * x, 0));
    expect(norm).toBeGreaterThan(1); // the clip is active
    expect(info[0]!.gradNorm).toBeCloseTo(norm, 5);
    expect(info[0]!.clipCoefficient).toBeCloseTo(0.5 / (norm + 1e-6), 7);
    // After one step the first moment is (1 − β1)·(clipped gradient): its norm is maxGradNorm.
    const ckpt = await readLatestCheckpoint(out);
    const moments = [...ckpt!.moments].filter(([k]) => k.endsWith('.exp_avg')).flatMap(([, h]) => Array.from(h.data));
    const clippedNorm = Math.sqrt(moments.reduce((s, x) => s + x * x, 0)) / 0.1;
    expect(clippedNorm).toBeCloseTo(0.5, 6);
    expectClose(await trained(task), reference(1, { lr: 0.05, wd: 0.1, maxNorm: 0.5 }).params, 1e-6);
    task.dispose();
  });

  it('matches the reference over 3 clipped steps', async () => {
    const task = new QuadTask();
    const coefs: number[] = [];
    await train(task, {
      epochs: 3,
      batchSize: 4,
      microBatchSize: 2,
      lr: 0.05,
      schedule: 'constant',
      maxGradNorm: 0.5,
      weightDecay: 0.1,
      evaluateUntrained: false,
      evaluateTest: false,
      progress: false,
      onStep: (s) => {
        coefs.push(s.clipCoefficient);
      },
    });
    const ref = reference(3, { lr: 0.05, wd: 0.1, maxNorm: 0.5 });
    expect(coefs).toHaveLength(3);
    for (const [i, c] of coefs.entries()) expect(c).toBeCloseTo(ref.coefs[i]!, 6);
    expectClose(await trained(task), ref.params, 1e-6);
    task.dispose();
  });
});

describe('AdamW', () => {
  it('follows the HF Trainer’s no-decay rule by name', () => {
    const noDecay = [
      'fc.bias',
      'gpt_neox.layers.0.input_layernorm.weight',
      'gpt_neox.layers.0.post_attention_layernorm.bias',
      'gpt_neox.final_layer_norm.weight',
      'model.layers.3.post_attention_layernorm.weight',
      'model.norm.weight',
      'transformer.ln_f.weight',
      'transformer.h.0.ln_1.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.bias',
    ];
    const decay = [
      'score.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.default.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight',
      'lm_head.weight',
      'gpt_neox.embed_in.weight',
      'normalizer.weight',
    ];
    expect(noDecay.filter((n) => !hfNoDecay(n))).toEqual([]);
    expect(decay.filter((n) => hfNoDecay(n))).toEqual([]);
    const t = tensor([1], [1], { backend, requiresGrad: true });
    const opt = new AdamW(
      [
        ['a.weight', t],
        ['a.bias', t],
      ],
      { weightDecay: 0.3 },
    );
    expect(opt.params.map((p) => p.weightDecay)).toEqual([0.3, 0]);
    const custom = new AdamW([['a.bias', t]], { weightDecay: 0.3, noDecay: () => false });
    expect(custom.params[0]!.weightDecay).toBe(0.3);
    t.dispose();
  });

  it('skips tensors without a gradient and restores its state exactly', async () => {
    const a = tensor([1, 2], [2], { backend, requiresGrad: true });
    const b = tensor([3], [1], { backend, requiresGrad: true });
    const opt = new AdamW([
      ['a', a],
      ['b', b],
    ]);
    a.grad = tensor([0.5, -0.25], [2], { backend });
    opt.step(0.1);
    expect(opt.stepsOf('a')).toBe(1);
    expect(opt.stepsOf('b')).toBe(0);
    expect(Array.from(await b.data())).toEqual([3]);
    // Adam's first step moves each element by lr (sign of the gradient), after the decay.
    const [a0, a1] = Array.from(await a.data());
    expect(a0).toBeCloseTo(1 * (1 - 0.1 * 0.01) - 0.1, 6);
    expect(a1).toBeCloseTo(2 * (1 - 0.1 * 0.01) + 0.1, 6);
    const state = await opt.state();
    expect([...state.moments.keys()]).toEqual(['a.exp_avg', 'a.exp_avg_sq']);
    const copy = new AdamW([
      ['a', a],
      ['b', b],
    ]);
    copy.setState(state);
    const again = await copy.state();
    expect(again.steps).toEqual({ a: 1 });
    expect(again.moments).toEqual(state.moments);
    expect(() => copy.setState({ steps: { c: 1 }, moments: new Map() })).toThrow('the state has parameter "c"');
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    for (const t of [a, b]) t.dispose();
    opt.dispose();
    copy.dispose();
  });

  it('takes a model: its tensors that require grad, by name, and a default learning rate (torch.optim.AdamW(model.parameters(), lr))', async () => {
    const model = new Linear(2, 1, { backend, generator: new Generator(0) });
    model.bias!.requiresGrad = false;
    const opt = new AdamW(model, { lr: 0.1 });
    expect(opt.params.map((p) => p.name)).toEqual(['weight']);
    expect(opt.lr).toBe(0.1);
    const before = Array.from(await model.weight.data());
    model.weight.grad = tensor([1, -1], [1, 2], { backend });
    opt.step();
    const after = Array.from(await model.weight.data());
    expect(after[0]).toBeCloseTo(before[0]! * (1 - 0.1 * 0.01) - 0.1, 6);
    expect(after[1]).toBeCloseTo(before[1]! * (1 - 0.1 * 0.01) + 0.1, 6);
    expect(new AdamW(model).lr).toBe(1e-3);
    model.freeze();
    expect(() => new AdamW(model)).toThrow('the Linear has no tensor that requires grad');
    expect(() => new AdamW([], { lr: -1 })).toThrow('AdamW: lr -1 must be a finite number >= 0');
    opt.dispose();
    model.dispose();
  });
});
