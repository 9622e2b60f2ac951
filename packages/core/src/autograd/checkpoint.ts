import { keep, tidy } from '../memory.js';
import { recordDraws, replayDraws } from '../random/generator.js';
import type { Tensor } from '../tensor.js';
import { backward, enableGrad, isGradEnabled, noGrad, record } from './tape.js';

/**
 * Gradient checkpointing: runs `fn(...inputs)` without keeping its activations and runs it again
 * during backward to get gradients. Parameters that `fn` uses get their gradients directly;
 * inputs get theirs through the returned node. Random draws (dropout) are replayed so the
 * recomputation sees the same masks.
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  // tidy: the block's intermediates are released as soon as it returns, not when the caller's
  // scope ends (a model's forward over 32 checkpointed layers would otherwise hold all of them).
  const { result: y, draws } = recordDraws(() => noGrad(() => tidy(() => fn(...inputs))));
  const saved = inputs.map((t) => keep(t.share()));
  record(
    'checkpoint',
    inputs,
    [y],
    saved,
    ([g]) => {
      const grads = tidy(() => {
        const detached = saved.map((s, i) => {
          const d = s.share();
          d.requiresGrad = inputs[i]!.requiresGrad;
          return d;
        });
        const out = enableGrad(() => replayDraws(draws, () => fn(...detached)));
        if (out.requiresGrad) backward(out, g!);
        const result = detached.map((d) => {
          const dg = d.grad;
          d.grad = null;
          return dg;
        });
        return keep(result);
      });
      return grads;
    },
    true,
  );
  return y;
}
