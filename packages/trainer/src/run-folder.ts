import {
  CHECKPOINT_DIR,
  type CheckpointState,
  intactCheckpointNote,
  pruneCheckpoints,
  STATE_FORMAT,
  writeCheckpoint,
} from './checkpoint.js';
import { causeInWords, errorCode, RunFolderError } from './errors.js';
import { logCsv } from './log.js';
import { elapsed, type Run } from './run.js';
import { type HostState, snapshot, writeHostState } from './state.js';
import { jsonText, type RunStore, subStore } from './store.js';
import type { Evaluation, ValidationRecord } from './types.js';

/** log.csv and val-metrics.json, rewritten whole. */
export async function writeLogs(run: Run<unknown>): Promise<void> {
  if (!run.out) return;
  await run.out.writeFile('log.csv', logCsv(run.state.log));
  await run.out.writeFile('val-metrics.json', jsonText(run.state.validation));
}

/** config.json: the settings, the trainable tensors with their weight decay, the run's length and the task's description. */
export async function writeConfig(run: Run<unknown>): Promise<void> {
  const { out, named, optimizer, o, task } = run;
  if (!out) return;
  await out.writeFile(
    'config.json',
    jsonText({
      ...run.fingerprint,
      trainable: named.map(([n, t]) => ({
        name: n,
        dtype: t.dtype,
        shape: t.shape,
        weightDecay: optimizer.params.find((p) => p.name === n)!.weightDecay,
      })),
      trainableParameters: named.reduce((s, [, t]) => s + t.size, 0),
      stepsPerEpoch: o.stepsPerEpoch,
      totalSteps: o.totalSteps,
      greaterIsBetter: o.greaterIsBetter,
      task: task.describe?.() ?? {},
    }),
  );
}

/** Removes the checkpoints of an earlier run in the folder (a run that does not resume starts clean). */
export async function clearCheckpoints(run: Run<unknown>): Promise<void> {
  if (run.out && !run.marks.resumedFrom) await run.out.remove(CHECKPOINT_DIR);
}

/**
 * Writes a checkpoint of the run as it stands (none without a run folder, or when the newest is
 * of this step), keeps the newest `keepCheckpoints`, and rewrites the logs.
 */
export async function checkpoint(run: Run<unknown>): Promise<void> {
  const { out, state: s, marks, optimizer } = run;
  if (!out || marks.lastCheckpointStep === s.step) return;
  s.counters.elapsedSeconds = elapsed(run);
  const moments = await optimizer.state();
  const state: CheckpointState = {
    format: STATE_FORMAT,
    fingerprint: run.fingerprint,
    step: s.step,
    epochsDone: s.epochsDone,
    stepInEpoch: s.stepInEpoch,
    epochStartRng: s.epochStartRng,
    generators: Object.fromEntries(Object.entries(run.generators).map(([k, g]) => [k, g.state()])),
    optimizerSteps: moments.steps,
    best: s.best,
    validation: s.validation,
    log: s.log,
    counters: s.counters,
  };
  const hostMoments: HostState = new Map(
    [...moments.moments].map(([k, data]) => [k, { dtype: 'float32' as const, shape: [data.length], data }]),
  );
  const path = await writeCheckpoint(out, { state, trainable: await snapshot(run.named), moments: hostMoments, best: s.bestState });
  marks.lastCheckpoint = `${out.name}/${path}`;
  marks.lastCheckpointStep = s.step;
  await pruneCheckpoints(out, run.o.keepCheckpoints);
  await writeLogs(run);
}

/** The run's results (the best state is loaded): the logs, the adapter (the task's artifacts) and test-metrics.json. */
export async function writeResults(run: Run<unknown>, chosen: ValidationRecord, test: Evaluation | null): Promise<void> {
  const { out, task } = run;
  if (!out) return;
  await writeLogs(run);
  await replaceAdapter(out, run.state.step, async (sink) => {
    if (task.saveArtifacts) await task.saveArtifacts(sink);
    else await writeHostState(sink, 'trainable.safetensors', await snapshot(run.named));
  });
  await out.writeFile(
    'test-metrics.json',
    jsonText({
      epoch: chosen.epoch,
      step: chosen.step,
      validationScore: chosen.score,
      score: test?.score ?? null,
      metrics: test?.metrics ?? null,
    }),
  );
}

const ADAPTER_DIR = 'adapter';

/** The process id where there is one (Node), for temporary names that the stale-file sweep of `nodeRunStore` recognises. */
const pid = (): number => (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;

/**
 * Writes the run's result into `adapter/` so that a failed write leaves the previous one as it was:
 * the new files go into a temporary folder beside it, then the old folder is moved aside, the new
 * one moved in, and the old one removed; a failed move puts the old one back. The temporary names
 * (`.tmp-step-NNNNNNNN-<pid>-adapter`, `…-oldadapter`) follow the checkpoints' temporary folders,
 * so that what a killed run leaves is removed by the next one.
 */
async function replaceAdapter(out: RunStore, step: number, write: (sink: RunStore) => Promise<void>): Promise<void> {
  const base = `.tmp-step-${String(step).padStart(8, '0')}-${pid()}-`;
  const tmp = `${base}adapter`;
  const aside = `${base}oldadapter`;
  const hadOld = (await out.list('')).includes(ADAPTER_DIR);
  /** The error for a failed step; a store's own RunFolderError (cause in words, intact checkpoint) is kept, its temporary path shown as the adapter's. */
  const failed = async (error: unknown, file: string, doing: string, kept = true): Promise<RunFolderError> => {
    const previous = !hadOld
      ? ''
      : kept
        ? ' (the previous one is unchanged)'
        : ` (the previous one could not be moved back: it is in ${out.name}/${aside}; move it to ${out.name}/${ADAPTER_DIR} by hand)`;
    const head = `cannot write the adapter ${out.name}/${ADAPTER_DIR}${previous}: `;
    if (error instanceof RunFolderError) {
      const shownAs = (text: string) => (doing.startsWith('writing') ? text.split(tmp).join(ADAPTER_DIR) : text);
      return new RunFolderError(head + shownAs(error.message), shownAs(error.file), error.code, { cause: error });
    }
    const code = errorCode(error) ?? 'unknown';
    const why =
      code === 'unknown' ? (error instanceof Error ? error.message : String(error)).slice(0, 300) : `${causeInWords(code)} (${code})`;
    return new RunFolderError(`${head}${doing} failed: ${why}. ${await intactCheckpointNote(out, code)}`, file, code, { cause: error });
  };
  await out.remove(tmp);
  let writing = '';
  const inner = subStore(out, tmp);
  const sink: RunStore = {
    ...inner,
    name: inner.name,
    writeFile: (path, data) => {
      writing = path;
      return inner.writeFile(path, data);
    },
  };
  try {
    await write(sink);
  } catch (error) {
    await out.remove(tmp).catch(() => {});
    const file = `${out.name}/${ADAPTER_DIR}/${writing}`;
    throw await failed(error, file, `writing ${ADAPTER_DIR}/${writing || '(its first file)'}`);
  }
  if (hadOld) {
    await out.remove(aside);
    try {
      await out.rename(ADAPTER_DIR, aside);
    } catch (error) {
      await out.remove(tmp).catch(() => {});
      throw await failed(error, `${out.name}/${ADAPTER_DIR}`, `moving the previous ${ADAPTER_DIR} aside`);
    }
  }
  try {
    await out.rename(tmp, ADAPTER_DIR);
  } catch (error) {
    const back =
      !hadOld ||
      (await out.rename(aside, ADAPTER_DIR).then(
        () => true,
        () => false,
      ));
    await out.remove(tmp).catch(() => {});
    throw await failed(error, `${out.name}/${ADAPTER_DIR}`, `moving the new ${ADAPTER_DIR} into place`, back);
  }
  // What a failed removal leaves is a temporary folder that the next run's sweep removes.
  if (hadOld) await out.remove(aside).catch(() => {});
}
