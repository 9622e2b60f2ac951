// Ctrl-C during an evaluation: a task that evaluates in batches gets the run's signal and stops
// between batches; the run stops as between steps, and a resume ends byte-identical to an
// uninterrupted run (the evaluation, and the steps after the newest checkpoint, are redone).
import { createCpuBackend } from '@peft/backend-cpu';
import { argmax, noGrad, tidy } from '@peft/core';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TrainingAbortedError } from './errors.js';
import { memoryRunStore, type RunStore } from './store.js';
import { BlobTask, classificationMetrics } from './test-helpers.js';
import { type TrainOptions, train } from './trainer.js';
import type { Evaluation, Split } from './types.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());
// log.csv and state.json record times: the clock stands still, so that the files can be compared byte for byte.
beforeEach(() => {
  vi.spyOn(performance, 'now').mockReturnValue(0);
});
afterEach(() => {
  vi.restoreAllMocks();
});

const DIM = 8;
const EVAL_BATCH = 20;

/** The toy task, evaluating 20 examples at a time and checking the signal before each batch. */
class BatchedEvalTask extends BlobTask {
  /** Every evaluation batch started, as "split#evaluation.batch" (evaluations of a split counted from 1). */
  readonly seen: string[] = [];
  readonly #count: Record<Split, number> = { validation: 0, test: 0 };
  onBatch: ((split: Split, evaluation: number, batch: number) => void) | null = null;

  override async evaluate(split: Split, options?: { signal?: AbortSignal }): Promise<Evaluation> {
    const d = this.data[split];
    const n = d.y.length;
    const evaluation = ++this.#count[split];
    const pred = new Int32Array(n);
    for (let start = 0, batch = 0; start < n; start += EVAL_BATCH, batch++) {
      this.seen.push(`${split}#${evaluation}.${batch}`);
      this.onBatch?.(split, evaluation, batch);
      options?.signal?.throwIfAborted();
      const rows = Math.min(EVAL_BATCH, n - start);
      const t = noGrad(() => tidy(() => argmax(this.logits(d.x.slice(start * DIM, (start + rows) * DIM), rows))));
      try {
        pred.set((await t.data()) as Int32Array, start);
      } finally {
        t.dispose();
      }
    }
    const m = classificationMetrics(d.y, pred);
    return { score: m.f1, metrics: m };
  }
}

const newTask = () => new BatchedEvalTask({ backend, trainSize: 48, dropout: 0.2, initSeed: 5 });
// 48 examples, batch 16: 3 steps per epoch, 9 in all; a checkpoint every 2 steps besides those after each epoch.
const settings = (out: RunStore): TrainOptions => ({
  epochs: 3,
  batchSize: 16,
  microBatchSize: 8,
  lr: 0.05,
  warmupEpochs: 1,
  checkpointEverySteps: 2,
  out,
  progress: false,
});

async function uninterrupted() {
  const out = memoryRunStore('whole');
  const task = newTask();
  await train(task, settings(out));
  task.dispose();
  return out.files;
}

describe('Ctrl-C during an evaluation', () => {
  const cases: {
    name: string;
    split: Split;
    evaluation: number;
    message: string;
    checkpoint: string | null;
  }[] = [
    {
      name: 'the untrained validation',
      split: 'validation',
      evaluation: 1,
      message:
        'training aborted during the validation evaluation at epoch 0, step 0/3 (0/9); no checkpoint was written yet, so start the run again',
      checkpoint: null,
    },
    {
      name: "epoch 2's validation",
      split: 'validation',
      evaluation: 3,
      message:
        'training aborted during the validation evaluation at epoch 2, step 3/3 (6/9); continue it with resume: true from run/checkpoints/step-00000004 (steps 5 to 6 and the evaluation are redone)',
      checkpoint: 'run/checkpoints/step-00000004',
    },
    {
      name: 'the final test',
      split: 'test',
      evaluation: 1,
      message:
        'training aborted during the test evaluation at epoch 3, step 0/3 (9/9); continue it with resume: true from run/checkpoints/step-00000009 (the evaluation is redone)',
      checkpoint: 'run/checkpoints/step-00000009',
    },
  ];

  for (const c of cases) {
    it(`stops at the second batch of ${c.name}, and a resume ends byte-identical to an uninterrupted run`, async () => {
      const whole = await uninterrupted();
      const out = memoryRunStore('run');
      const controller = new AbortController();
      const first = newTask();
      first.onBatch = (split, evaluation, batch) => {
        if (split === c.split && evaluation === c.evaluation && batch === 1) controller.abort(new Error('ctrl-c'));
      };
      const error = await train(first, { ...settings(out), signal: controller.signal }).catch((e: unknown) => e);
      first.dispose();
      expect(error).toBeInstanceOf(TrainingAbortedError);
      expect((error as Error).message).toBe(c.message);
      expect((error as TrainingAbortedError).checkpoint).toBe(c.checkpoint);
      // The evaluation stopped at its second batch instead of running to its end.
      const tag = `${c.split}#${c.evaluation}`;
      expect(first.seen.filter((s) => s.startsWith(`${tag}.`))).toEqual([`${tag}.0`, `${tag}.1`]);
      expect(first.seen.at(-1)).toBe(`${tag}.1`);
      expect([...out.files.keys()].filter((k) => k.startsWith('adapter/'))).toEqual([]);

      const second = newTask();
      const result = await train(second, { ...settings(out), resume: true });
      second.dispose();
      expect(result.resumedFrom).toBe(c.checkpoint);
      expect([...out.files.keys()].sort()).toEqual([...whole.keys()].sort());
      for (const [path, bytes] of whole) expect(Buffer.from(out.files.get(path)!).equals(Buffer.from(bytes)), `${path} differs`).toBe(true);
    });
  }
});
