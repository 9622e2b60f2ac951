import type { CrossEntropyParams } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

describe('crossEntropy', () => {
  it('computes lse − logit[target] per row; ignored rows give loss 0 but keep lse', async () => {
    const be = backend();
    const p: CrossEntropyParams = { rows: 3, classes: 3, ignoreIndex: -100 };
    const logits = [1, 2, 3, /**/ 1000, 1000, 0, /**/ 0, 0, 0];
    const loss = be.alloc('float32', 3);
    const lse = be.alloc('float32', 3);
    be.crossEntropy(loss, lse, upload(be, logits), upload(be, [0, 1, -100], 'int32'), p);
    const l0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expectClose(await download(be, lse), [l0, 1000 + Math.log(2), Math.log(3)], 1e-7);
    expectClose(await download(be, loss), [l0 - 1, Math.log(2), 0], 1e-6);
    be.destroy();
  });

  it('backward is (softmax − onehot)·dLoss, 0 on ignored rows, and matches finite differences', async () => {
    const be = backend();
    const p: CrossEntropyParams = { rows: 4, classes: 5, ignoreIndex: 2 };
    const logits = randomValues(20, 100, 3);
    const targets = upload(be, [4, 2, 0, 1], 'int32'); // row 1 ignored (target == ignoreIndex)
    const dLoss = [0.5, 3, -1, 2];
    const loss = be.alloc('float32', 4);
    const lse = be.alloc('float32', 4);
    const lb = upload(be, logits);
    be.crossEntropy(loss, lse, lb, targets, p);
    const d = be.alloc('float32', 20);
    be.crossEntropyBackward(d, upload(be, dLoss), lb, targets, lse, p);
    const grad = await download(be, d);
    expect(grad.slice(5, 10)).toEqual([0, 0, 0, 0, 0]);
    const forward = async (v: number[]) => {
      be.crossEntropy(loss, lse, upload(be, v), targets, p);
      return dot(dLoss, await download(be, loss));
    };
    expectGradClose(grad, await numericGrad(logits, 1e-2, forward));
    // row sums of (softmax − onehot) are 0
    for (let r = 0; r < 4; r++) expect(Math.abs(grad.slice(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0))).toBeLessThan(1e-6);
    be.destroy();
  });

  it('rejects a target outside the classes, naming the row and value', () => {
    const be = backend();
    const p: CrossEntropyParams = { rows: 2, classes: 3, ignoreIndex: -100 };
    const args = [be.alloc('float32', 2), be.alloc('float32', 2), upload(be, [0, 0, 0, 0, 0, 0])] as const;
    expect(() => be.crossEntropy(...args, upload(be, [0, 3], 'int32'), p)).toThrow(
      /crossEntropy: targets\[1\] = 3 is not a class: use 0..2 or ignoreIndex -100/,
    );
    expect(() => be.crossEntropy(...args, upload(be, [-1, 0], 'int32'), p)).toThrow(/targets\[0\] = -1/);
    expect(() => be.crossEntropy(be.alloc('bfloat16', 2), args[1], args[2], upload(be, [0, 0], 'int32'), p)).toThrow(
      /loss has dtype bfloat16 but must be float32/,
    );
    be.destroy();
  });
});
