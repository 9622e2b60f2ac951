import { createCpuBackend } from '@peft/backend-cpu';
import { type Tensor, tensor } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW } from './adamw.js';
import { clipCoefficient } from './clip.js';
import { applyUpdateAt, gradientScale } from './update.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

function params(): [string, Tensor][] {
  return [
    ['a.weight', tensor([0.5, -1, 2, 0.25], [2, 2], { backend, requiresGrad: true })],
    ['b.bias', tensor([1, -0.5, 0.125], [3], { backend, requiresGrad: true })],
  ];
}

const GRADS: Record<string, number[]>[] = [
  { 'a.weight': [3, -4, 1, 2], 'b.bias': [0.5, 0.25, -1] },
  { 'a.weight': [-2, 1, 0.5, 3] }, // b.bias has no gradient: it stays one update behind
  { 'a.weight': [1, 1, -1, 0.5], 'b.bias': [2, -3, 0.75] },
];

describe('gradientScale', () => {
  it('gives the global norm and clip_grad_norm_’s factor on the device, 1 when clipping is off', async () => {
    const grads = [tensor([3, -4], [2], { backend }), tensor([12], [1], { backend })];
    for (const maxNorm of [0.5, 100, null, Number.POSITIVE_INFINITY]) {
      const { norm, coef } = gradientScale(grads, maxNorm, backend);
      expect(await norm.item()).toBeCloseTo(13, 5);
      expect(await coef.item()).toBeCloseTo(clipCoefficient(13, maxNorm), 7);
      norm.dispose();
      coef.dispose();
    }
    const none = gradientScale([], 1, backend);
    expect([await none.norm.item(), await none.coef.item()]).toEqual([0, 1]);
    for (const t of [...grads, none.norm, none.coef]) t.dispose();
  });
});

describe('applyUpdateAt', () => {
  it('updates as AdamW.step, each parameter with its own update number', async () => {
    const ref = params();
    const ours = params();
    const refOpt = new AdamW(ref, { weightDecay: 0.1 });
    const opt = new AdamW(ours, { weightDecay: 0.1 });
    const lrs = [0.1, 0.05, 0.2];
    for (const [i, grads] of GRADS.entries()) {
      for (const list of [ref, ours]) {
        for (const [name, t] of list) t.grad = grads[name] ? tensor(grads[name], t.shape, { backend }) : null;
      }
      const all = ours.flatMap(([, t]) => (t.grad ? [t.grad] : []));
      const { norm, coef } = gradientScale(all, 1, backend);
      refOpt.step(lrs[i]!, clipCoefficient((await norm.item()) as number, 1));
      const updated = applyUpdateAt(opt, lrs[i]!, coef);
      expect(updated.sort()).toEqual(Object.keys(grads).sort());
      for (const t of [norm, coef]) t.dispose();
      refOpt.zeroGrad();
      opt.zeroGrad();
    }
    expect([opt.stepsOf('a.weight'), opt.stepsOf('b.bias')]).toEqual([3, 2]);
    for (const [k, [name, t]] of ref.entries()) {
      const a = (await t.raw()) as Float32Array;
      const b = (await ours[k]![1].raw()) as Float32Array;
      for (let j = 0; j < a.length; j++) expect(b[j], `${name}[${j}]`).toBeCloseTo(a[j]!, 6);
    }
    for (const o of [refOpt, opt]) o.dispose();
    for (const [, t] of [...ref, ...ours]) t.dispose();
  });
});
