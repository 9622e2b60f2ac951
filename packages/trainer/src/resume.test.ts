import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, TrainingAbortedError, TrainingDivergedError } from './errors.js';
import { nodeRunStore } from './node/index.js';
import { memoryRunStore } from './store.js';
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

  it('refuses to resume with other settings: a CheckpointError naming state.json, each setting with both values, and the ways out', async () => {
    const out = memoryRunStore('run');
    const first = newTask();
    await train(first, { ...settings('refused'), out, epochs: 1, evaluateTest: false });
    first.dispose();
    const other = newTask();
    const changed = { lr: 0.05, weightDecay: 0, eps: 1e-6, maxGradNorm: null, seed: 7 };
    const error = await train(other, { ...settings('refused'), out, epochs: 1, ...changed, resume: true }).catch((e: unknown) => e);
    other.dispose();
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as CheckpointError).file).toBe('run/checkpoints/step-00000005/state.json');
    expect((error as Error).message).toBe(
      'train: cannot resume from run/checkpoints/step-00000005: it was made with different settings: lr 0.03 there, 0.05 now; ' +
        'weightDecay 0.01 there, 0 now; eps 1e-8 there, 0.000001 now; maxGradNorm 1 there, null now; and 1 more (seed) (as its state.json records). ' +
        'Resume with the original settings (lr 0.03, weightDecay 0.01, eps 1e-8, maxGradNorm 1), or start a new run: in another run folder, ' +
        'or in this one without resume (--overwrite), which removes its checkpoints.',
    );
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

describe('resume from a damaged checkpoint', () => {
  // A run stopped in update 9 with checkpoints every 2 updates, the newest 2 kept: step 6 and step 8 (epoch 2, step 3 of 5).
  const damaged = { ...settings('damaged'), checkpointEverySteps: 2, keepCheckpoints: 2 };
  let cases = 0;
  const base = async () => {
    if (existsSync(join(root, 'damaged'))) return;
    const task = newTask();
    await expect(
      train(task, {
        ...damaged,
        onStep: (s) => {
          if (s.step === 9) throw new Error('crash');
        },
      }),
    ).rejects.toThrow('crash');
    task.dispose();
    expect(readdirSync(join(root, 'damaged', 'checkpoints'))).toEqual(['step-00000006', 'step-00000008']);
  };
  /** A copy of the stopped run with its newest checkpoint changed by `damage(dir)`; resumes it and returns the error. */
  const resumeAfter = async (damage: (dir: string) => void): Promise<CheckpointError> => {
    await base();
    const name = `damaged-${++cases}`;
    cpSync(join(root, 'damaged'), join(root, name), { recursive: true });
    damage(join(root, name, 'checkpoints', 'step-00000008'));
    const task = newTask();
    const error = await train(task, { ...damaged, out: nodeRunStore(join(root, name)), resume: true }).catch((e: unknown) => e);
    task.dispose();
    expect(error).toBeInstanceOf(CheckpointError);
    // Refused before anything was trained or saved.
    expect(existsSync(join(root, name, 'test-metrics.json'))).toBe(false);
    expect(existsSync(join(root, name, 'adapter'))).toBe(false);
    return error as CheckpointError;
  };
  const flipByte = (file: string) => {
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0x10;
    writeFileSync(file, bytes);
  };
  /** Rewrites state.json and its checksum, as a consistent but wrong checkpoint would be. */
  const editState = (edit: (state: Record<string, unknown>) => unknown) => (dir: string) => {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    const text = JSON.stringify(edit(state));
    writeFileSync(join(dir, 'state.json'), text);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    manifest.sha256['state.json'] = createHash('sha256').update(text).digest('hex');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  };
  const set = (patch: Record<string, unknown>) => editState((s) => ({ ...s, ...patch }));

  it('records a SHA-256 per file in the manifest', async () => {
    await base();
    const dir = join(root, 'damaged', 'checkpoints', 'step-00000008');
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.files.sort()).toEqual(['best.safetensors', 'optimizer.safetensors', 'state.json', 'trainable.safetensors']);
    for (const f of manifest.files)
      expect(manifest.sha256[f]).toBe(
        createHash('sha256')
          .update(readFileSync(join(dir, f)))
          .digest('hex'),
      );
  });

  it('refuses a missing best.safetensors, naming the file and the older checkpoint to fall back to', async () => {
    const e = await resumeAfter((dir) => rmSync(join(dir, 'best.safetensors')));
    expect(e.file).toBe(join(root, `damaged-${cases}`, 'checkpoints/step-00000008/best.safetensors'));
    expect(e.message).toContain('best.safetensors is listed in manifest.json but missing.');
    expect(e.message).toContain(`The older checkpoint ${join(root, `damaged-${cases}`, 'checkpoints/step-00000006')} is still kept`);
  });

  it.each(['trainable.safetensors', 'optimizer.safetensors', 'best.safetensors', 'state.json'])(
    'refuses one flipped bit in %s',
    async (file) => {
      const e = await resumeAfter((dir) => flipByte(join(dir, file)));
      expect(e.message).toMatch(
        new RegExp(`${file.replace('.', '\\.')} is damaged: its SHA-256 is [0-9a-f]{64}, but [0-9a-f]{64} was recorded`),
      );
    },
  );

  it.each<[string, (dir: string) => void, string]>([
    ['{}', editState(() => ({})), 'field "format" is missing; expected 1'],
    ['null', editState(() => null), 'field "(the whole file)" is null; expected an object with the checkpoint state'],
    ['stepInEpoch 1000', set({ stepInEpoch: 1000 }), 'field "stepInEpoch" is 1000; expected an integer from 0 to 4 (5 steps per epoch)'],
    ['epochsDone 99', set({ epochsDone: 99 }), 'field "epochsDone" is 99; expected an integer from 0 to 3 (the run has 3 epochs)'],
    [
      'epochsDone 3 mid-epoch',
      set({ epochsDone: 3 }),
      'field "stepInEpoch" is 3; expected an integer from 0 to 0 (5 steps per epoch, and all epochs are done)',
    ],
    ['step out of line', set({ step: 9 }), 'field "step" is 9; expected 8 (epochsDone 1 × 5 steps per epoch + stepInEpoch 3)'],
    ['step a string', set({ step: '8' }), 'field "step" is "8"; expected an integer from 0'],
    ['a negative generator offset', set({ epochStartRng: { seed: 42, offset: -1 } }), 'field "epochStartRng" is {"seed":42,"offset":-1}'],
    ['a missing task generator', set({ generators: {} }), 'field "generators.'],
    ['optimizer steps beyond step', set({ optimizerSteps: { x: 99 } }), 'field "optimizerSteps.x" is 99; expected an integer from 0 to 8'],
    [
      'best from a future epoch',
      editState((s) => ({ ...s, best: { ...(s.best as object), epoch: 2 } })),
      'field "best.epoch" is 2; expected an integer from 0 to 1',
    ],
    [
      'best not in the history',
      editState((s) => ({ ...s, best: { ...(s.best as object), step: 1 } })),
      'expected one of the records in "validation"',
    ],
    [
      'best null with best.safetensors',
      set({ best: null }),
      'field "best" is null; expected a validation record, since manifest.json lists best.safetensors',
    ],
    ['validation not a list', set({ validation: {} }), 'field "validation" is {}; expected an array of validation records'],
    ['log missing', set({ log: undefined }), 'field "log" is missing; expected an array of log rows'],
    [
      'a counter NaN',
      editState((s) => ({ ...s, counters: { ...(s.counters as object), lastLr: null } })),
      'field "counters.lastLr" is null; expected a finite number',
    ],
    ['fingerprint missing', set({ fingerprint: undefined }), 'field "fingerprint" is missing; expected an object of settings'],
  ])('refuses state.json with %s, naming the field, the value and what was expected', async (_, damage, message) => {
    const e = await resumeAfter(damage);
    expect(e.message).toContain('/checkpoints/step-00000008: state.json field "');
    expect(e.message).toContain(message);
    expect(e.file.endsWith('step-00000008/state.json')).toBe(true);
  });

  /** Changes a file's bytes and rewrites its checksum, as a consistent but wrong checkpoint would have it. */
  const resign = (file: string, change: (bytes: Buffer) => void) => (dir: string) => {
    const bytes = readFileSync(join(dir, file));
    change(bytes);
    writeFileSync(join(dir, file), bytes);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    manifest.sha256[file] = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  };
  /** The byte offset of a tensor's data in a safetensors file. */
  const dataAt = (bytes: Buffer, name: string) => {
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    return 8 + headerLength + header[name].data_offsets[0];
  };

  it.each<[string, (dir: string) => void, string, string]>([
    [
      'a NaN in a trained tensor',
      resign('trainable.safetensors', (b) => b.writeUInt32LE(0x7fc00000, dataAt(b, 'fc2.weight') + 4)),
      'trainable.safetensors',
      'has a NaN or infinite value in "fc2.weight" at element 1, which training never writes',
    ],
    [
      'a negative second moment',
      resign('optimizer.safetensors', (b) => b.writeFloatLE(-1, dataAt(b, 'fc1.bias.exp_avg_sq'))),
      'optimizer.safetensors',
      'has a negative, NaN or infinite value in "fc1.bias.exp_avg_sq" at element 0',
    ],
    [
      'a trained tensor of another shape',
      editState((s) => {
        const f = s.fingerprint as { trainable: string[] };
        return {
          ...s,
          fingerprint: { ...f, trainable: f.trainable.map((t) => t.replace('fc2.bias float32 [3]', 'fc2.bias float32 [4]')) },
        };
      }),
      'trainable.safetensors',
      `has "fc2.bias" as float32 [3]; expected float32 [4] as state.json's fingerprint.trainable lists it`,
    ],
    ['a log row that is not a row', editState((s) => ({ ...s, log: [...(s.log as unknown[]), 'x,y'] })), 'state.json', 'field "log['],
    [
      'a log row with a text loss',
      editState((s) => ({ ...s, log: (s.log as object[]).map((r) => ({ ...r, loss: '1,2' })) })),
      'state.json',
      'field "log[0].loss" is "1,2"; expected a number or null',
    ],
    [
      'optimizer steps of a tensor that is not trained',
      editState((s) => ({ ...s, optimizerSteps: { ...(s.optimizerSteps as object), 'fc9.bias': 1 } })),
      'state.json',
      'field "optimizerSteps.fc9.bias" names a tensor that is not trained',
    ],
    [
      'a manifest listing a file outside the checkpoint',
      (dir) => {
        const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
        manifest.files.push('../../config.json');
        writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
      },
      'manifest.json',
      'manifest.json lists "../../config.json", which is not a checkpoint file',
    ],
  ])('refuses %s with a CheckpointError naming the file', async (_, damage, file, message) => {
    const e = await resumeAfter(damage);
    expect(e.file.endsWith(`step-00000008/${file}`)).toBe(true);
    expect(e.message).toContain(message);
  });

  it('resumes a NaN validation score (null in state.json) as NaN, as the uninterrupted run has it', async () => {
    await base();
    cpSync(join(root, 'damaged'), join(root, 'nan-score'), { recursive: true });
    const dir = join(root, 'nan-score', 'checkpoints', 'step-00000008');
    editState((s) => {
      const validation = (s.validation as { score: number | null }[]).map((r, i) => (i === 0 ? { ...r, score: null } : r));
      return { ...s, validation };
    })(dir);
    const task = newTask();
    const resumed = await train(task, {
      ...damaged,
      out: nodeRunStore(join(root, 'nan-score')),
      resume: true,
      progress: { write: () => {} },
    });
    task.dispose();
    expect(resumed.validation[0]!.score).toBeNaN();
  });

  it('still resumes an undamaged copy to the uninterrupted result', async () => {
    await base();
    const whole = await uninterrupted();
    cpSync(join(root, 'damaged'), join(root, 'damaged-ok'), { recursive: true });
    const task = newTask();
    const resumed = await train(task, { ...damaged, out: nodeRunStore(join(root, 'damaged-ok')), resume: true });
    expect(resumed.test).toEqual(whole.result.test);
    expect(await rawState(task)).toEqual(whole.state);
    task.dispose();
  });
});
