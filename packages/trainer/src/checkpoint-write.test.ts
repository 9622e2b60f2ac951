// A checkpoint write that fails at any point (disk full, read-only) keeps the previous checkpoint
// whole and readable, leaves no temporary folder, and says so naming the file and the cause.
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_DIR,
  type CheckpointParts,
  listCheckpoints,
  pruneCheckpoints,
  readLatestCheckpoint,
  writeCheckpoint,
} from './checkpoint.js';
import { RunFolderError } from './errors.js';
import { memoryRunStore, type RunStore } from './store.js';
import { BlobTask } from './test-helpers.js';
import { train } from './trainer.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const errno = (code: string, syscall: string) => Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall });

/**
 * A store whose `failAt`-th file system operation (each writeFile, each chunk written, each rename
 * and remove, counted from 1) fails with `code`, as a disk that fills up or turns read-only would.
 */
function failingStore(inner: RunStore, failAt: number, code: string): RunStore & { ops: number } {
  const s = {
    name: inner.name,
    ops: 0,
    hit(what: string) {
      if (++s.ops === failAt) throw errno(code, what);
    },
    async writeFile(path: string, data: Parameters<RunStore['writeFile']>[1]) {
      s.hit('open');
      if (typeof data !== 'function') return inner.writeFile(path, data);
      return inner.writeFile(path, (sink) =>
        data({
          async write(chunk) {
            s.hit('write');
            await sink.write(chunk);
          },
        }),
      );
    },
    readFile: (path: string) => inner.readFile(path),
    list: (path: string) => inner.list(path),
    async rename(from: string, to: string) {
      s.hit('rename');
      return inner.rename(from, to);
    },
    async remove(path: string) {
      s.hit('rmdir');
      return inner.remove(path);
    },
  };
  return s;
}

const clone = (store: ReturnType<typeof memoryRunStore>) => {
  const copy = memoryRunStore(store.name);
  for (const [k, v] of store.files) copy.files.set(k, v.slice());
  return copy;
};

const options = { epochs: 2, batchSize: 8, microBatchSize: 8, lr: 0.05, warmupEpochs: 1, progress: false as const };
const expectations = { epochs: 2, stepsPerEpoch: 3, generators: ['dropout'] };

describe('writeCheckpoint when the disk fails', () => {
  it('keeps the previous checkpoint whole at every point of a failing write and prune, and removes the unfinished one', async () => {
    // A run of 2 epochs × 3 steps stopped in step 5, checkpoints every 2 steps and at the end of epoch 1, 2 kept: step 3 and step 4.
    const task = new BlobTask({ backend, trainSize: 24 });
    const run = memoryRunStore('/runs/a');
    await expect(
      train(task, {
        ...options,
        out: run,
        checkpointEverySteps: 2,
        keepCheckpoints: 2,
        onStep: (s) => {
          if (s.step === 5) throw new Error('crash');
        },
      }),
    ).rejects.toThrow('crash');
    task.dispose();
    expect((await listCheckpoints(run)).map((c) => c.name)).toEqual(['step-00000003', 'step-00000004']);
    const next = (await readLatestCheckpoint(run, expectations)) as CheckpointParts & { path: string };
    await run.remove(next.path);
    const previous = (await readLatestCheckpoint(run, expectations)) as CheckpointParts & { path: string };
    expect(previous.path).toBe(`${CHECKPOINT_DIR}/step-00000003`);

    // Count the operations of one whole checkpoint (write, then prune to 1 as the trainer does), then fail each in turn.
    const counter = failingStore(clone(run), 0, 'ENOSPC');
    await writeCheckpoint(counter, next);
    await pruneCheckpoints(counter, 1);
    expect(counter.ops).toBeGreaterThan(10);
    const outcomes = new Set<string>();
    for (let n = 1; n <= counter.ops; n++) {
      for (const code of ['ENOSPC', 'EROFS']) {
        const inner = clone(run);
        const store = failingStore(inner, n, code);
        const error = await writeCheckpoint(store, next)
          .then(() => pruneCheckpoints(store, 1))
          .then(
            () => null,
            (e: unknown) => e,
          );
        expect(error, `operation ${n}`).not.toBeNull();
        const newest = await readLatestCheckpoint(inner, expectations);
        // Never without a checkpoint, never a damaged one: the old one whole, or the new one complete.
        expect(newest, `operation ${n}`).not.toBeNull();
        expect([previous.path, next.path]).toContain(newest!.path);
        expect(newest!.state).toEqual(newest!.path === previous.path ? previous.state : next.state);
        if (newest!.path === previous.path) {
          expect(await inner.list(CHECKPOINT_DIR), `operation ${n}: no temporary folder left`).not.toContainEqual(
            expect.stringMatching(/^\.tmp-/),
          );
          // The write itself failed: the error names the checkpoint, the file, the cause and the intact checkpoint.
          expect(error).toBeInstanceOf(RunFolderError);
          const e = error as RunFolderError;
          expect(e.code).toBe(code);
          const words = code === 'ENOSPC' ? 'the disk is full' : 'the file system is read-only';
          const remedy = code === 'ENOSPC' ? 'free some space on the disk' : 'make the run folder writable';
          expect(e.message).toMatch(
            new RegExp(
              `^cannot write checkpoint /runs/a/checkpoints/step-00000004: writing (trainable\\.safetensors|optimizer\\.safetensors|best\\.safetensors|state\\.json|manifest\\.json|\\(renaming \\S+ to \\S+\\)) failed: ${words} \\(${code} at /runs/a/checkpoints/\\.tmp-step-00000004-${process.pid}-[0-9a-z]+/`,
            ),
          );
          expect(e.message).toContain(
            `The unfinished checkpoint was removed. The newest complete checkpoint /runs/a/checkpoints/step-00000003 (step 3) is intact: ${remedy}, then run again with resume to continue from it.`,
          );
          outcomes.add(e.message.split(' failed:')[0]!.split('writing ')[1]!.split(' ')[0]!);
        } else {
          // The prune failed: an old checkpoint may be left whole, or renamed aside (removed at the next prune or start), never half removed.
          for (const name of await inner.list(CHECKPOINT_DIR))
            if (/^step-/.test(name)) expect(await inner.readFile(`${CHECKPOINT_DIR}/${name}/trainable.safetensors`)).not.toBeNull();
          expect(error).toBeInstanceOf(RunFolderError);
          expect((error as Error).message).toMatch(
            new RegExp(
              `^cannot remove old checkpoints in /runs/a/checkpoints: .* \\(${code} at .*\\)\\. The newest complete checkpoint /runs/a/checkpoints/step-00000004 \\(step 4\\) is intact: `,
            ),
          );
          outcomes.add('prune');
        }
      }
    }
    // Every file of the checkpoint, the rename into place and the prune afterwards were each made to fail.
    expect([...outcomes].sort()).toEqual(
      ['(renaming', 'best.safetensors', 'manifest.json', 'optimizer.safetensors', 'prune', 'state.json', 'trainable.safetensors'].sort(),
    );
  });

  it('writes a new checkpoint before an earlier folder of the same step is removed', async () => {
    const task = new BlobTask({ backend, trainSize: 24 });
    const run = memoryRunStore('/runs/b');
    await train(task, { ...options, epochs: 1, out: run });
    task.dispose();
    const last = (await readLatestCheckpoint(run)) as CheckpointParts & { path: string };
    // Writing the same step again moves the earlier folder aside, renames the new one into place, then removes the old.
    const counting = failingStore(clone(run), 0, 'EROFS');
    await writeCheckpoint(counting, last);
    expect(await counting.list(CHECKPOINT_DIR)).toEqual([last.path.split('/')[1]]);
    // A rename into place that fails puts the earlier folder back.
    const failing = failingStore(run, counting.ops - 1, 'EROFS');
    await expect(writeCheckpoint(failing, last)).rejects.toThrow(/writing \(renaming .* failed: the file system is read-only/);
    expect((await readLatestCheckpoint(run))!.state).toEqual(last.state);
    expect(await run.list(CHECKPOINT_DIR)).toEqual([last.path.split('/')[1]]);
  });
});
