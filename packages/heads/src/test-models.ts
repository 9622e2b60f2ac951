// Test helpers (not exported): the tiny fixture checkpoints and host-side reference math.
import { join } from 'node:path';
import type { Backend } from '@peft/core';
import type { CausalLM } from '@peft/models';
import { loadModel } from '@peft/models/node';

export const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
export const TINY_MODELS = ['tiny-gpt-neox', 'tiny-llama'] as const;

export function loadTiny(name: string, backend: Backend): Promise<CausalLM> {
  return loadModel(join(FIXTURES, name), { backend });
}

/** Deterministic token rows of the given lengths, ids in [lo, vocab). */
export function tokenRows(lengths: readonly number[], vocab: number, seed = 1, lo = 4): number[][] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return lo + (s % (vocab - lo));
  };
  return lengths.map((n) => Array.from({ length: n }, next));
}

/** Rows padded to one length on the `side`, with their attention mask. */
export function pad(
  rows: readonly (readonly number[])[],
  side: 'left' | 'right',
  id = 0,
): { inputIds: number[][]; attentionMask: number[][] } {
  const width = Math.max(...rows.map((r) => r.length));
  const join = <T>(padding: T[], real: T[]) => (side === 'left' ? [...padding, ...real] : [...real, ...padding]);
  const inputIds = rows.map((r) => join(Array(width - r.length).fill(id), [...r]));
  const attentionMask = rows.map((r) =>
    join(
      Array(width - r.length).fill(0),
      r.map(() => 1),
    ),
  );
  return { inputIds, attentionMask };
}

/** Mean softmax cross-entropy in float64 over rows of `logits` whose target is not −100. */
export function referenceCrossEntropy(logits: ArrayLike<number>, classes: number, targets: readonly number[]): number {
  let total = 0;
  let count = 0;
  targets.forEach((target, row) => {
    if (target === -100) return;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[row * classes + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[row * classes + c]! - max);
    total += Math.log(sum) + max - logits[row * classes + target]!;
    count++;
  });
  return total / count;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length} differ`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}
