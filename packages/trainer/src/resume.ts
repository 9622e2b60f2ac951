import { shortValue } from '@peft/core';
import { CHECKPOINT_DIR, type CheckpointState, readLatestCheckpoint } from './checkpoint.js';
import { checkpointSource, peers } from './data-parallel.js';
import { CheckpointError } from './errors.js';
import type { Run, RunState } from './run.js';
import { restore } from './state.js';

/** A value for a message, cut short when long (the list of trainable tensors); a setting a checkpoint lacks is "nothing". */
const shown = (v: unknown): string => (v === undefined ? 'nothing' : shortValue(v, { max: 77, ellipsis: '...' }));

/**
 * The refusal to resume from a checkpoint whose state.json records settings that differ from this
 * run's: each differing setting with both values (at most four), and the ways out.
 */
function settingsRefusal(
  checkpoint: string,
  diff: readonly string[],
  there: Record<string, unknown>,
  now: Record<string, unknown>,
): CheckpointError {
  const listed = diff.slice(0, 4);
  const more = diff.length > listed.length ? `; and ${diff.length - listed.length} more (${diff.slice(4).join(', ')})` : '';
  const file = `${checkpoint}/state.json`;
  return new CheckpointError(
    `train: cannot resume from ${checkpoint}: it was made with different settings: ${listed
      .map((k) => `${k} ${shown(there[k])} there, ${shown(now[k])} now`)
      .join('; ')}${more} (as its state.json records). Resume with the original settings ` +
      `(${listed.map((k) => `${k} ${shown(there[k])}`).join(', ')}), or start a new run: in another run folder, ` +
      'or in this one without resume (--overwrite), which removes its checkpoints.',
    file,
  );
}

/**
 * With `resume`, loads the newest complete checkpoint of the run folder into the run (tensors,
 * optimizer, generators, position, history), after checking that it was made with this run's
 * settings. Without one the run starts afresh. Over several processes rank 0 reads it from its
 * run folder and sends its files to the other ranks, which read them from memory.
 */
export async function resumeRun(run: Run<unknown>): Promise<void> {
  const { o, fingerprint, progress, state, marks } = run;
  if (!run.options.resume) return;
  const comm = peers(run);
  const out = comm ? await checkpointSource(comm, run.out) : run.out;
  if (!out) return;
  const ckpt = await readLatestCheckpoint(out, {
    epochs: o.epochs,
    stepsPerEpoch: o.stepsPerEpoch,
    generators: Object.keys(run.generators),
  });
  if (!ckpt) {
    progress?.line(`no checkpoint in ${out.name}/${CHECKPOINT_DIR} to resume from: starting afresh`);
    return;
  }
  const s: CheckpointState = ckpt.state;
  const diff = Object.keys(fingerprint).filter((k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(s.fingerprint[k]));
  if (diff.length > 0) throw settingsRefusal(`${out.name}/${ckpt.path}`, diff, s.fingerprint, fingerprint);
  restore(run.named, ckpt.trainable, `resume from ${ckpt.path}`);
  run.optimizer.setState({ steps: s.optimizerSteps, moments: new Map([...ckpt.moments].map(([k, h]) => [k, h.data])) });
  for (const [name, g] of Object.entries(run.generators)) {
    const st = s.generators[name];
    if (!st) throw new Error(`train: checkpoint ${ckpt.path} has no state for generator "${name}"`);
    g.setState(st);
  }
  // readLatestCheckpoint checks this too; the run must never report a best state it does not hold.
  if ((s.best === null) !== (ckpt.best === null))
    throw new Error(`train: checkpoint ${ckpt.path} has a best record without its tensors, or tensors without a record`);
  const restored: RunState = {
    step: s.step,
    epochsDone: s.epochsDone,
    stepInEpoch: s.stepInEpoch,
    epochStartRng: s.epochStartRng,
    best: s.best,
    bestState: ckpt.best,
    validation: s.validation,
    log: s.log,
    counters: s.counters,
  };
  Object.assign(state, restored);
  run.pace.elapsedBase = s.counters.elapsedSeconds;
  marks.resumedFrom = `${out.name}/${ckpt.path}`;
  marks.lastCheckpoint = marks.resumedFrom;
  marks.lastCheckpointStep = s.step;
  progress?.line(
    `resuming from ${marks.resumedFrom}: epoch ${s.epochsDone + 1}, step ${s.stepInEpoch}/${o.stepsPerEpoch} (${s.step}/${o.totalSteps})`,
  );
}
