// Fuzzes the checkpoint reader through the real resume path: a run of a toy model stopped in its
// last epoch, whose newest checkpoint has one file mutated, is resumed. Each case must resume to
// exactly the result of the undamaged resume (tensors, metrics, every file of the run folder) or
// refuse with a CheckpointError naming the damaged file, within the harness's time and memory bounds.
// A second set rewrites the manifest's checksum of the mutated file, as a consistent but edited
// checkpoint: it may then resume (to other numbers), or must refuse naming the file.
import { createHash } from 'node:crypto';
import { createCpuBackend } from '@peft/backend-cpu';
import { BINARY_MUTATORS, describeFailures, type FuzzTarget, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECKPOINT_DIR } from './checkpoint.js';
import { CheckpointError, TrainingDivergedError } from './errors.js';
import { memoryRunStore } from './store.js';
import { BlobTask, rawState } from './test-helpers.js';
import { type TrainOptions, type TrainResult, train } from './trainer.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

// 2 epochs × 3 steps, a checkpoint every step; the run stops in step 6, so the newest checkpoint is
// step 5 (epoch 2, step 2 of 3) and a resume trains one step, evaluates, and writes the run folder.
const settings: TrainOptions = {
  epochs: 2,
  batchSize: 8,
  microBatchSize: 4,
  lr: 0.05,
  warmupEpochs: 1,
  checkpointEverySteps: 1,
  progress: { write: () => {} },
};
const newTask = () => new BlobTask({ backend, trainSize: 24, hidden: 8, dropout: 0.2, initSeed: 6 });
const CKPT = `${CHECKPOINT_DIR}/step-00000005`;
const FILES = ['manifest.json', 'state.json', 'trainable.safetensors', 'optimizer.safetensors', 'best.safetensors'] as const;

let stopped: Map<string, Uint8Array>;
let undamaged: { result: TrainResult; state: Record<string, number[]>; files: Map<string, Uint8Array> };

type Outcome = { result: TrainResult; state: Record<string, number[]>; files: Map<string, Uint8Array> };
async function resume(replace: Map<string, Uint8Array>): Promise<Outcome> {
  const out = memoryRunStore('run');
  for (const [k, v] of stopped) out.files.set(k, replace.get(k) ?? v);
  const task = newTask();
  // log.csv's tokens/s and elapsed seconds measure the wall clock; stopped, a resume's files match byte for
  // byte. Only while training: the harness times each case with the real clock.
  const clock = vi.spyOn(performance, 'now').mockReturnValue(0);
  try {
    const result = await train(task, { ...settings, out, resume: true });
    return { result, state: await rawState(task), files: out.files };
  } finally {
    clock.mockRestore();
    task.dispose();
  }
}

beforeAll(async () => {
  const out = memoryRunStore('run');
  const task = newTask();
  const clock = vi.spyOn(performance, 'now').mockReturnValue(0);
  await expect(
    train(task, {
      ...settings,
      out,
      onStep: (s) => {
        if (s.step === 6) throw new Error('stop');
      },
    }),
  ).rejects.toThrow('stop');
  clock.mockRestore();
  task.dispose();
  stopped = new Map(out.files);
  expect([...stopped.keys()].filter((k) => k.startsWith(`${CKPT}/`)).sort()).toEqual(FILES.map((f) => `${CKPT}/${f}`).sort());
  undamaged = await resume(new Map());
  expect(undamaged.result.resumedFrom).toBe(`run/${CKPT}`);
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Why an outcome differs from the undamaged resume, or null. */
function difference(got: Outcome): string | null {
  if (JSON.stringify(got.result.validation) !== JSON.stringify(undamaged.result.validation)) return 'validation differs';
  if (JSON.stringify(got.result.test) !== JSON.stringify(undamaged.result.test)) return 'test result differs';
  if (got.result.steps !== undamaged.result.steps) return 'step count differs';
  if (JSON.stringify(got.state) !== JSON.stringify(undamaged.state)) return 'trained tensors differ';
  for (const [k, v] of undamaged.files)
    if (!k.startsWith(`${CHECKPOINT_DIR}/`) && sha256(got.files.get(k) ?? new Uint8Array()) !== sha256(v)) return `${k} differs`;
  return null;
}

/**
 * A fuzz target over one checkpoint file. `resign`: the manifest's SHA-256 of the file is rewritten to
 * match the mutated bytes. Besides the harness's checks, `wrong` collects cases that resumed to other
 * numbers (unsigned damage must never) and refusals that are not a CheckpointError naming the file.
 */
function target(file: (typeof FILES)[number], resign: boolean, cases: number, wrong: string[]): FuzzTarget {
  const seed = stopped.get(`${CKPT}/${file}`) as Uint8Array;
  const manifest = JSON.parse(text(stopped.get(`${CKPT}/manifest.json`) as Uint8Array));
  let n = 0;
  return {
    reader: `checkpoint-${file}${resign ? '-resigned' : ''}`,
    file: `run/${CKPT}/${file}`,
    seeds: [seed],
    cases,
    mutators: file.endsWith('.json') ? TEXT_MUTATORS : BINARY_MUTATORS,
    seed: 0x5eed + FILES.indexOf(file) * 2 + (resign ? 1 : 0),
    async read(bytes) {
      const name = `case ${++n}`;
      const replace = new Map([[`${CKPT}/${file}`, bytes]]);
      if (resign) {
        const m = { ...manifest, sha256: { ...manifest.sha256, [file]: sha256(bytes) } };
        replace.set(`${CKPT}/manifest.json`, new TextEncoder().encode(JSON.stringify(m)));
      }
      let got: Outcome;
      try {
        got = await resume(replace);
      } catch (error) {
        const e = error as Error;
        // Consistent edits can be refused elsewhere: settings that differ from the run's, or finite values
        // so large that the first step diverges (the run stops and says so).
        const settingsRefused = resign && file === 'state.json' && /: it was made with different settings: /.test(e.message);
        const diverged = resign && error instanceof TrainingDivergedError;
        if (!(error instanceof CheckpointError) && !settingsRefused && !diverged)
          wrong.push(`${name}: ${e?.constructor?.name} instead of a CheckpointError: ${String(e?.message).slice(0, 300)}`);
        else if (error instanceof CheckpointError && !e.message.includes(file))
          wrong.push(`${name}: the CheckpointError does not name ${file}: ${e.message.slice(0, 300)}`);
        throw error;
      }
      // Damage to a checksummed file is always refused; a manifest that still reads the same, and identical bytes, resume exactly.
      const why = difference(got);
      if (!resign && why) wrong.push(`${name}: resumed from a damaged ${file} with a different result (${why})`);
      if (!resign && file !== 'manifest.json' && sha256(bytes) !== sha256(seed))
        wrong.push(`${name}: resumed although ${file} no longer matches its checksum`);
    },
    // The harness requires each error to name the file; with the checksum rewritten, the checkpoint
    // (a changed-settings refusal and a diverged step name it; a CheckpointError must name the file, see above).
    mustName: resign ? CKPT : file,
    extraCases: extraCases(file),
  };
}

/** Hand-made damage: empty, a path out of the run folder, wrong dtypes and shapes, absurd sizes. */
function extraCases(file: (typeof FILES)[number]): { name: string; bytes: Uint8Array }[] {
  const enc = (s: string) => new TextEncoder().encode(s);
  const seed = stopped.get(`${CKPT}/${file}`) as Uint8Array;
  const out = [{ name: 'empty', bytes: new Uint8Array(0) }];
  if (file === 'manifest.json') {
    const m = JSON.parse(text(seed));
    out.push({ name: 'a file outside the folder', bytes: enc(JSON.stringify({ ...m, files: [...m.files, '../../config.json'] })) });
    out.push({ name: 'files not a list', bytes: enc(JSON.stringify({ ...m, files: 'state.json' })) });
    out.push({
      name: 'no best listed',
      bytes: enc(JSON.stringify({ ...m, files: m.files.filter((f: string) => f !== 'best.safetensors') })),
    });
    out.push({ name: 'format 1', bytes: enc(JSON.stringify({ ...m, format: 1 })) });
  }
  if (file === 'state.json') {
    const s = JSON.parse(text(seed));
    const edits: Record<string, unknown> = {
      'stepInEpoch 1000': { ...s, stepInEpoch: 1000 },
      'epochsDone 99': { ...s, epochsDone: 99 },
      '{}': {},
      'a log row of text': { ...s, log: [...s.log, 'x,y'] },
      'a log row with a string loss': { ...s, log: [{ ...s.log[0], loss: '1,2' }] },
      'trainable listed as a number': { ...s, fingerprint: { ...s.fingerprint, trainable: 7 } },
      'a trainable tensor renamed': { ...s, fingerprint: { ...s.fingerprint, trainable: ['fc9.weight float32 [8, 8]'] } },
      'optimizer steps of an untrained tensor': { ...s, optimizerSteps: { ...s.optimizerSteps, 'fc3.bias': 1 } },
      'a NaN best score': {
        ...s,
        best: { ...s.best, score: null },
        validation: s.validation.map((r: { epoch: number }) => (r.epoch === s.best.epoch ? { ...r, score: null } : r)),
      },
    };
    for (const [name, v] of Object.entries(edits)) out.push({ name, bytes: enc(JSON.stringify(v)) });
  }
  return out;
}

describe('checkpoint reader fuzz, through resume', () => {
  it('resumes exactly or refuses with a CheckpointError naming the damaged file', async () => {
    const wrong: string[] = [];
    for (const file of FILES) {
      const report = await runFuzz(target(file, false, file.endsWith('.json') ? 150 : 80, wrong));
      expect(report.failures, describeFailures(report)).toEqual([]);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('with the checksum rewritten, resumes or refuses with a CheckpointError naming the edited file', async () => {
    const wrong: string[] = [];
    for (const file of FILES) {
      if (file === 'manifest.json') continue;
      const report = await runFuzz(target(file, true, file === 'state.json' ? 150 : 80, wrong));
      expect(report.failures, describeFailures(report)).toEqual([]);
    }
    expect(wrong).toEqual([]);
  });
});
