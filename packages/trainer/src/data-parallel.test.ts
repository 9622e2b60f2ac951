// Data-parallel training with an in-process group of "ranks": each rank is a train() call on its
// own copy of the task, run concurrently as promises, and the collectives meet in memory (sums in
// float32, as MPI's). The real multi-process runs are in @peft/cli's mpi tests.
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { rankShare } from './data-parallel.js';
import { TrainingAbortedError } from './errors.js';
import { memoryRunStore } from './store.js';
import { BlobTask } from './test-helpers.js';
import { type TrainOptions, type TrainResult, train } from './trainer.js';
import type { TrainCommunicator, TrainTask } from './types.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

/** `size` communicators whose collectives meet in memory; every rank must call the same ones in the same order. */
function inProcessGroup(size: number): TrainCommunicator[] {
  type Meeting = { parts: unknown[]; arrived: number; done: ((v: unknown[]) => void)[] };
  const meetings = new Map<number, Meeting>();
  return Array.from({ length: size }, (_, rank) => {
    let calls = 0;
    const meet = (value: unknown): Promise<unknown[]> =>
      new Promise((resolve) => {
        const id = calls++;
        const m: Meeting = meetings.get(id) ?? { parts: new Array(size), arrived: 0, done: [] };
        meetings.set(id, m);
        m.parts[rank] = value;
        m.done.push(resolve);
        if (++m.arrived === size) {
          meetings.delete(id);
          for (const d of m.done) d(m.parts);
        }
      });
    return {
      rank,
      size,
      async allReduce(data, op = 'sum') {
        const parts = (await meet(Float32Array.from(data))) as Float32Array[];
        const sum = new Float32Array(data.length);
        for (const p of parts) for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + p[i]!;
        data.set(sum);
        if (op === 'mean') for (let i = 0; i < data.length; i++) data[i] = data[i]! / size;
        return data;
      },
      async broadcast(data, root = 0) {
        const parts = (await meet(data.slice())) as (typeof data)[];
        data.set(parts[root]! as never);
        return data;
      },
      async barrier() {
        await meet(null);
      },
      async allGatherObjects<T>(value: T) {
        return (await meet(JSON.parse(JSON.stringify(value)))) as T[];
      },
    };
  });
}

// 97 examples: 6 global batches of 16 and a last one of 1, which rank 1 takes alone (rank 0's share is empty).
const newTask = () => new BlobTask({ backend, trainSize: 97, dropout: 0, initSeed: 4 });
const base: TrainOptions = { epochs: 2, batchSize: 16, lr: 0.05, warmupSteps: 2, logEverySteps: 1, progress: false };

async function values(task: BlobTask): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const [, t] of task.trainable()) out.push(Float32Array.from(await t.data()));
  return out;
}

function expectClose(a: readonly number[] | Float32Array, b: readonly number[] | Float32Array, tolerance: number, what: string): void {
  expect(a.length, what).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const scale = Math.max(Math.abs(a[i]!), Math.abs(b[i]!), 1e-3);
    if (Math.abs(a[i]! - b[i]!) / scale > tolerance) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]} (tolerance ${tolerance})`);
  }
}

/** Runs `train` on every rank of a group of `size` at once; each rank gets its own task and options. */
async function trainTogether(
  size: number,
  options: (rank: number) => TrainOptions,
  tasks: BlobTask[] = Array.from({ length: size }, newTask),
): Promise<{ tasks: BlobTask[]; results: PromiseSettledResult<TrainResult>[]; losses: number[][] }> {
  const comms = inProcessGroup(size);
  const losses: number[][] = comms.map(() => []);
  const results = await Promise.allSettled(
    comms.map((communicator, r) => train(tasks[r]!, { ...options(r), communicator, onStep: (s) => void losses[r]!.push(s.loss) })),
  );
  return { tasks, results, losses };
}

describe('rankShare', () => {
  it('cuts a global batch into contiguous parts as even as can be, every example once', () => {
    const batch = Array.from({ length: 16 }, (_, i) => 100 + i);
    expect(rankShare(batch, 2, 0)).toEqual(batch.slice(0, 8));
    expect(rankShare(batch, 2, 1)).toEqual(batch.slice(8));
    expect([0, 1, 2].map((r) => rankShare([1, 2, 3, 4, 5], 3, r))).toEqual([[1], [2, 3], [4, 5]]);
    expect([0, 1].map((r) => rankShare([7], 2, r))).toEqual([[], [7]]);
    expect(rankShare([], 2, 1)).toEqual([]);
  });
});

describe('train over an in-process group of 2 ranks', () => {
  it('stops every rank at the first update when one rank has a bad micro-batch weight', async () => {
    const tasks = [newTask(), newTask()];
    (tasks[1] as TrainTask<{ y: number[] }>).weight = (b) => (b.y.length > 0 ? Number.NaN : 0);
    const { results } = await trainTogether(2, () => ({ ...base, batchSize: 8 }), tasks);
    expect(results.map((r) => (r as PromiseRejectedResult).reason?.message)).toEqual([
      "train: the micro-batch weights of every rank sum to NaN: each must be finite and >= 0, and not all 0 (this rank's: [8])",
      'train: rank 1: micro-batch weights must be finite and >= 0, got [NaN]',
    ]);
    for (const t of tasks) t.dispose();
  });

  it('sees step by step the examples of one process with twice the batch, and ends with its losses and tensors', async () => {
    const single = newTask();
    const singleLosses: number[] = [];
    const one = await train(single, { ...base, onStep: (s) => void singleLosses.push(s.loss) });

    const stores = [memoryRunStore('rank0'), memoryRunStore('rank1')];
    // Each rank's task is asked to evaluate with the communicator (the blob task scores the whole split alone).
    const evaluatedBy: (number | undefined)[][] = [[], []];
    const twoTasks = [newTask(), newTask()];
    for (const [r, t] of twoTasks.entries()) {
      const evaluate = t.evaluate.bind(t);
      (t as TrainTask).evaluate = (split, options) => {
        evaluatedBy[r]!.push(options?.communicator?.rank);
        return evaluate(split);
      };
    }
    const { tasks, results, losses } = await trainTogether(2, (r) => ({ ...base, batchSize: 8, out: stores[r] }), twoTasks);
    // Epoch 0, 1, 2 and the test split.
    expect(evaluatedBy).toEqual([
      [0, 0, 0, 0],
      [1, 1, 1, 1],
    ]);
    const [r0, r1] = results.map((r) => (r.status === 'fulfilled' ? r.value : Promise.reject(r.reason))) as TrainResult[];

    // 7 updates per epoch: 6 of 8 + 8 examples and one of a single example (rank 0 has none).
    expect(one.stepsPerEpoch).toBe(7);
    expect(r0!.stepsPerEpoch).toBe(7);
    const seen = (t: BlobTask) => t.batchesSeen.filter((b) => b.length > 0);
    const merged: number[][] = [];
    let i0 = 0;
    let i1 = 0;
    for (let step = 0; step < 14; step++) {
      const last = step % 7 === 6;
      const a = last ? [] : seen(tasks[0]!)[i0++]!;
      const b = seen(tasks[1]!)[i1++]!;
      merged.push([...a, ...b]);
    }
    expect(merged).toEqual(single.batchesSeen);
    expect(tasks[0]!.batchesSeen.filter((b) => b.length === 0)).toEqual([]);

    expect(losses[0]).toHaveLength(14);
    expect(losses[1]).toEqual(losses[0]);
    expectClose(losses[0]!, singleLosses, 1e-5, 'loss');
    const [v0, v1, vs] = [await values(tasks[0]!), await values(tasks[1]!), await values(single)];
    v0.forEach((t, k) => {
      expect(Array.from(v1[k]!)).toEqual(Array.from(t));
      expectClose(t, vs[k]!, 1e-5, `tensor ${k}`);
    });
    expect(r1!.best).toEqual(r0!.best);
    // Only rank 0 writes its run folder; the log has one row per update with the global loss.
    expect([...stores[1]!.files.keys()]).toEqual([]);
    const rows = new TextDecoder().decode(stores[0]!.files.get('log.csv')).trim().split('\n').slice(1);
    const training = rows.map((l) => l.split(',')).filter((c) => c[4] === '');
    expect(training.map((c) => Number(c[1]))).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expectClose(
      training.map((c) => Number(c[3])),
      losses[0]!,
      1e-5,
      'log.csv loss',
    );
    const configJson = JSON.parse(new TextDecoder().decode(stores[0]!.files.get('config.json')));
    expect(configJson.ranks).toBe(2);
    for (const t of [single, ...tasks]) t.dispose();
  });

  it('stops every rank at the same step when one is interrupted, and resumes from rank 0 alone to the uninterrupted result', async () => {
    const whole = await trainTogether(2, () => ({ ...base, batchSize: 8 }));
    const wholeValues = await values(whole.tasks[0]!);

    // Rank 1 alone gets the Ctrl-C, during update 9; rank 1 has no run folder.
    const store = memoryRunStore('run');
    const controller = new AbortController();
    const tasks = [newTask(), newTask()];
    const loss = tasks[1]!.loss.bind(tasks[1]!);
    tasks[1]!.loss = (b, ctx) => {
      if (ctx.step === 8) controller.abort(new Error('Ctrl-C'));
      return loss(b, ctx);
    };
    const options = (r: number): TrainOptions => ({ ...base, batchSize: 8, out: r === 0 ? store : undefined });
    const stopped = await trainTogether(2, (r) => ({ ...options(r), signal: r === 1 ? controller.signal : undefined }), tasks);
    for (const r of stopped.results) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as TrainingAbortedError;
      expect(reason).toBeInstanceOf(TrainingAbortedError);
      expect(reason.step).toBe(9);
    }
    expect([...store.files.keys()].some((k) => k.startsWith('checkpoints/step-00000009/'))).toBe(true);

    // Rank 1 reads rank 0's checkpoint from what rank 0 sends it.
    const resumed = await trainTogether(2, (r) => ({ ...options(r), resume: true }));
    for (const r of resumed.results) expect(r.status).toBe('fulfilled');
    const [r0, r1] = resumed.results.map((r) => (r as PromiseFulfilledResult<TrainResult>).value);
    expect(r0!.resumedFrom).toBe('run/checkpoints/step-00000009');
    expect(r1!.resumedFrom).toBe('run/checkpoints/step-00000009');
    expect(resumed.losses[0]).toEqual(whole.losses[0]!.slice(9));
    expect(resumed.losses[1]).toEqual(whole.losses[0]!.slice(9));
    for (const t of resumed.tasks) {
      const v = await values(t);
      expect(v.map((x) => Array.from(x))).toEqual(wholeValues.map((x) => Array.from(x)));
    }
    expect(r0!.best).toEqual(whole.results[0]!.status === 'fulfilled' ? whole.results[0].value.best : null);
    for (const t of [...whole.tasks, ...tasks, ...resumed.tasks]) t.dispose();
  });
});
