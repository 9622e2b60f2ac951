import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { TrainingAbortedError, TrainingDivergedError } from './errors.js';
import { nodeRunStore } from './node/index.js';
import { BlobTask, rawState } from './test-helpers.js';
import { type TrainOptions, train } from './trainer.js';

// Several GEMM threads: resuming must be exact on the real engine too.
const backend = createCpuBackend({ threads: 2 });
const root = mkdtempSync(join(tmpdir(), 'peft-trainer-resume-'));
afterAll(() => {
  backend.destroy();
  rmSync(root, { recursive: true, force: true });
});

// 80 examples, batch 16 → 5 steps per epoch, 15 in all; dropout on, so the dropout generator's state matters too.
const settings = (dir: string): TrainOptions => ({
  epochs: 3,
  batchSize: 16,
  microBatchSize: 8,
  lr: 0.03,
  warmupEpochs: 1,
  out: nodeRunStore(join(root, dir)),
  progress: false,
});
const newTask = () => new BlobTask({ backend, trainSize: 80, dropout: 0.2, initSeed: 9 });

async function uninterrupted() {
  const task = newTask();
  const result = await train(task, settings('whole'));
  const state = await rawState(task);
  task.dispose();
  return { result, state };
}

describe('resume', () => {
  it('continues a run stopped mid-epoch 2 to the same metrics and the same tensors, bit for bit', async () => {
    const whole = await uninterrupted();

    // Checkpoints every 2 updates; a crash in update 9 (epoch 2, step 4 of 5) leaves checkpoint 8 (epoch 2, step 3)
    // and loses update 9.
    const first = newTask();
    const crash = new Error('simulated crash');
    await expect(
      train(first, {
        ...settings('stopped'),
        checkpointEverySteps: 2,
        onStep: (s) => {
          if (s.step === 9) throw crash;
        },
      }),
    ).rejects.toBe(crash);
    first.dispose();
    expect(readdirSync(join(root, 'stopped', 'checkpoints'))).toEqual(['step-00000008']);

    // A new process: fresh tensors with the untrained init, then resume.
    const second = newTask();
    const resumed = await train(second, { ...settings('stopped'), checkpointEverySteps: 2, resume: true });
    expect(resumed.resumedFrom).toBe(join(root, 'stopped', 'checkpoints/step-00000008'));
    expect(resumed.validation).toEqual(whole.result.validation);
    expect(resumed.best).toEqual(whole.result.best);
    expect(resumed.test).toEqual(whole.result.test);
    expect(await rawState(second)).toEqual(whole.state);
    second.dispose();
  });

  it('continues from the last epoch-end checkpoint when no step checkpoints are written', async () => {
    const whole = await uninterrupted();
    const first = newTask();
    await expect(
      train(first, {
        ...settings('epoch-end'),
        onStep: (s) => {
          if (s.step === 8) throw new Error('crash');
        },
      }),
    ).rejects.toThrow('crash');
    first.dispose();
    expect(readdirSync(join(root, 'epoch-end', 'checkpoints'))).toEqual(['step-00000005']);
    const second = newTask();
    const resumed = await train(second, { ...settings('epoch-end'), resume: true });
    expect(resumed.resumedFrom).toBe(join(root, 'epoch-end', 'checkpoints/step-00000005'));
    expect(resumed.test).toEqual(whole.result.test);
    expect(await rawState(second)).toEqual(whole.state);
    second.dispose();
  });

  it('checkpoints at the step boundary when an AbortSignal fires, resumes from there, and refuses different settings', async () => {
    const whole = await uninterrupted();
    const controller = new AbortController();
    const first = newTask();
    const error = await train(first, {
      ...settings('aborted'),
      signal: controller.signal,
      onStep: (s) => {
        if (s.step === 7) controller.abort(new Error('user pressed ctrl-c'));
      },
    }).catch((e: unknown) => e);
    first.dispose();
    expect(error).toBeInstanceOf(TrainingAbortedError);
    expect((error as Error).message).toContain('training aborted at epoch 2, step 2/5 (7/15); continue it with resume: true from');
    // Aborting writes a checkpoint at the step boundary.
    expect((error as TrainingAbortedError).checkpoint).toBe(join(root, 'aborted', 'checkpoints/step-00000007'));

    const other = newTask();
    await expect(train(other, { ...settings('aborted'), lr: 0.05, resume: true })).rejects.toThrow(
      /cannot resume from .*step-00000007: it was made with different settings: lr 0.03 there, 0.05 now/,
    );
    const second = newTask();
    const resumed = await train(second, { ...settings('aborted'), resume: true });
    expect(resumed.test).toEqual(whole.result.test);
    expect(resumed.validation).toEqual(whole.result.validation);
    expect(await rawState(second)).toEqual(whole.state);
    second.dispose();
    other.dispose();
  });

  it('stops on a NaN loss with the epoch and step named, keeping the last good checkpoint', async () => {
    const task = new BlobTask({ backend, trainSize: 80, nanAtStep: 7 });
    const before = await rawState(task);
    const error = await train(task, { ...settings('nan') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    const e = error as TrainingDivergedError;
    const kept = join(root, 'nan', 'checkpoints/step-00000005');
    expect(e.message).toBe(
      `training stopped: the loss is NaN at epoch 2, step 3/5 (update 8 of 15); that update was not applied. The last good checkpoint is kept at ${kept}. Lower the learning rate or clip gradients (maxGradNorm), then start again.`,
    );
    expect([e.epoch, e.stepInEpoch, e.step, e.checkpoint]).toEqual([2, 3, 7, kept]);
    expect(readdirSync(join(root, 'nan', 'checkpoints'))).toEqual(['step-00000005']);
    expect(readdirSync(join(root, 'nan', 'checkpoints', 'step-00000005')).sort()).toEqual([
      'best.safetensors',
      'manifest.json',
      'optimizer.safetensors',
      'state.json',
      'trainable.safetensors',
    ]);
    expect(readdirSync(join(root, 'nan')).sort()).toEqual(['checkpoints', 'config.json', 'log.csv', 'val-metrics.json']);
    // The tensors were trained until the bad step and no grad is left behind.
    expect(await rawState(task)).not.toEqual(before);
    for (const [, t] of task.trainable()) expect(t.grad).toBeNull();
    task.dispose();
  });
});
