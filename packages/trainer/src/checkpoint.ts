import type { GeneratorState } from '@peft/core';
import { CheckpointError, causeInWords, errorCode, RunFolderError, remedyFor } from './errors.js';
import type { LogRow } from './log.js';
import type { HostState, HostTensor } from './state.js';
import { hostStateFromBytes, writeHostState } from './state.js';
import { jsonText, type RunStore, readJson } from './store.js';
import type { ValidationRecord } from './types.js';

export const CHECKPOINT_DIR = 'checkpoints';
/** 2: the manifest records a SHA-256 per file. */
const FORMAT = 2;
/** The format of state.json. */
export const STATE_FORMAT = 1;
const REQUIRED = ['trainable.safetensors', 'optimizer.safetensors', 'state.json'];
const KNOWN = [...REQUIRED, 'best.safetensors'];

async function sha256(bytes: Uint8Array): Promise<string> {
  // Web Crypto: the same in Node (20+) and browsers, so this module stays free of node: imports.
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** Everything besides tensors that a resumed run needs to continue exactly where it stopped. */
export interface CheckpointState {
  format: number;
  /** The settings that decide the numbers; a resume with different ones is refused. */
  fingerprint: Record<string, unknown>;
  /** Optimizer updates completed. */
  step: number;
  /** Epochs completed and evaluated (0: none; the untrained state may have been evaluated). */
  epochsDone: number;
  /** Updates completed in epoch `epochsDone + 1`. */
  stepInEpoch: number;
  /** The data-order generator at the start of epoch `epochsDone + 1`, before that epoch's shuffle. */
  epochStartRng: GeneratorState;
  /** The task's generators (dropout), by name. */
  generators: Record<string, GeneratorState>;
  /** AdamW update count per parameter. */
  optimizerSteps: Record<string, number>;
  best: ValidationRecord | null;
  validation: ValidationRecord[];
  log: LogRow[];
  counters: RunCounters;
}

/** Running sums that the logs need, carried across a resume. */
export interface RunCounters {
  epochLossSum: number;
  epochSteps: number;
  windowLossSum: number;
  windowSteps: number;
  windowTokens: number;
  windowSeconds: number;
  lastLr: number;
  elapsedSeconds: number;
}

export interface CheckpointParts {
  state: CheckpointState;
  trainable: HostState;
  moments: HostState;
  best: HostState | null;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function stepOf(name: string): number | null {
  const m = /^step-(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** The process id where there is one (Node), written into temporary names so that a later run knows whether their writer is alive. */
const pid = (): number => (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;

/**
 * `checkpoints/.tmp-step-NNNNNNNN-<pid>-<random>`: a checkpoint being written (or left by a writer
 * that was killed). Groups: step, pid (absent in names written before the pid was added).
 */
export const CHECKPOINT_TEMP_PATTERN = /^\.tmp-step-(\d+)-(?:(\d+)-)?[0-9a-z]+$/;

/**
 * What became of the checkpoints when a write failed, as sentences for an error message: the newest
 * complete checkpoint (intact: checkpoints are renamed into place only when complete, and older
 * ones removed only after that) and how to continue from it.
 */
export async function intactCheckpointNote(store: RunStore, code: string): Promise<string> {
  const all = await listCheckpoints(store).catch(() => null);
  const remedy = remedyFor(code);
  if (all === null) return `${remedy[0]!.toUpperCase()}${remedy.slice(1)}, then resume the run.`;
  const last = all.at(-1);
  if (!last) return `No checkpoint of this run has been written yet: ${remedy}, then start the run again.`;
  return (
    `The newest complete checkpoint ${store.name}/${CHECKPOINT_DIR}/${last.name} (step ${last.step}) is intact: ` +
    `${remedy}, then run again with resume to continue from it.`
  );
}

/**
 * Writes a checkpoint so that it appears whole or not at all: every file goes into a temporary
 * folder, the manifest last, and the folder is then renamed to `checkpoints/step-NNNNNNNN`. An
 * older checkpoint is never touched here (`pruneCheckpoints` removes old ones once this returned);
 * an earlier folder of the same step is moved aside first and removed only after the rename.
 * A failing write (disk full, read-only, ...) removes the temporary folder and ends in a
 * `RunFolderError` naming the file, the cause, and the newest checkpoint, which is intact.
 * Returns the checkpoint's path in the store.
 */
export async function writeCheckpoint(store: RunStore, parts: CheckpointParts): Promise<string> {
  const name = checkpointName(parts.state.step);
  const unique = () => `${pid()}-${Math.random().toString(36).slice(2, 10)}`;
  const tmp = `${CHECKPOINT_DIR}/.tmp-${name}-${unique()}`;
  const final = `${CHECKPOINT_DIR}/${name}`;
  const files = [...REQUIRED];
  let doing = 'trainable.safetensors';
  try {
    await writeHostState(store, `${tmp}/trainable.safetensors`, parts.trainable);
    doing = 'optimizer.safetensors';
    await writeHostState(store, `${tmp}/optimizer.safetensors`, parts.moments);
    if (parts.best) {
      doing = 'best.safetensors';
      await writeHostState(store, `${tmp}/best.safetensors`, parts.best);
      files.push('best.safetensors');
    }
    doing = 'state.json';
    await store.writeFile(`${tmp}/state.json`, jsonText(parts.state));
    // Checksums of the bytes as they landed in the store (read back), so that a bad write is caught on resume too.
    const sums: Record<string, string> = {};
    for (const f of files) {
      doing = f;
      const bytes = await store.readFile(`${tmp}/${f}`);
      if (!bytes) throw new Error(`${store.name}/${tmp}/${f}: just written but cannot be read back`);
      sums[f] = await sha256(bytes);
    }
    doing = 'manifest.json';
    await store.writeFile(`${tmp}/manifest.json`, jsonText({ format: FORMAT, step: parts.state.step, files, sha256: sums }));
    doing = `(renaming ${tmp} to ${final})`;
    // A folder of the same step (one without a manifest, which no resume would use) is replaced only
    // once the new one is in place.
    const aside = (await store.list(final)).length > 0 ? `${CHECKPOINT_DIR}/.tmp-${name}-${unique()}` : null;
    if (aside) await store.rename(final, aside);
    try {
      await store.rename(tmp, final);
    } catch (error) {
      if (aside) await store.rename(aside, final).catch(() => {});
      throw error;
    }
    if (aside) await store.remove(aside).catch(() => {});
    return final;
  } catch (error) {
    const removed = await store.remove(tmp).then(
      () => true,
      () => false,
    );
    const code = errorCode(error);
    if (!code) throw error;
    const file = (error as { file?: unknown; path?: unknown }).file ?? (error as { path?: unknown }).path;
    const at = typeof file === 'string' ? file : `${store.name}/${tmp}/${doing}`;
    const left = removed
      ? 'The unfinished checkpoint was removed.'
      : `The unfinished checkpoint ${store.name}/${tmp} could not be removed; it is removed on the next start.`;
    throw new RunFolderError(
      `cannot write checkpoint ${store.name}/${final}: writing ${doing} failed: ${causeInWords(code)} (${code} at ${at}). ${left} ${await intactCheckpointNote(store, code)}`,
      at,
      code,
      { cause: error },
    );
  }
}

/** Completed checkpoints (renamed into place, with a manifest), oldest first. */
export async function listCheckpoints(store: RunStore): Promise<{ name: string; step: number }[]> {
  const out: { name: string; step: number }[] = [];
  for (const name of await store.list(CHECKPOINT_DIR)) {
    const step = stepOf(name);
    if (step === null) continue;
    if ((await store.readFile(`${CHECKPOINT_DIR}/${name}/manifest.json`)) === null) continue;
    out.push({ name, step });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** What the resumed run's settings require of a checkpoint's state. */
export interface ResumeExpectations {
  epochs: number;
  stepsPerEpoch: number;
  /** Names of the task's generators: each must have a saved state. */
  generators?: readonly string[];
}

/** A value for a message: JSON, at most 120 characters. */
const show = (v: unknown): string => {
  if (v === undefined) return 'missing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * Checks every field of a checkpoint's state.json (types, ranges, consistency with each other and
 * with `expect`) and returns it typed. `fail(field, value, expected)` throws.
 */
function checkState(
  v: unknown,
  hasBestFile: boolean,
  expect: ResumeExpectations | undefined,
  fail: (field: string, value: unknown, expected: string) => never,
): CheckpointState {
  if (!isObject(v)) return fail('(the whole file)', v, 'an object with the checkpoint state');
  if (v.format !== STATE_FORMAT) fail('format', v.format, String(STATE_FORMAT));
  if (!isObject(v.fingerprint)) fail('fingerprint', v.fingerprint, 'an object of settings');
  const count = (field: string, value: unknown, max?: number, what?: string): number => {
    if (!isCount(value) || (max !== undefined && value > max))
      fail(field, value, `an integer from 0${max === undefined ? '' : ` to ${max}`}${what ? ` (${what})` : ''}`);
    return value as number;
  };
  const step = count('step', v.step);
  const epochsDone = count('epochsDone', v.epochsDone, expect?.epochs, expect && `the run has ${expect.epochs} epochs`);
  if (expect) {
    const spe = expect.stepsPerEpoch;
    const last = epochsDone === expect.epochs;
    count('stepInEpoch', v.stepInEpoch, last ? 0 : spe - 1, `${spe} steps per epoch${last ? ', and all epochs are done' : ''}`);
    const want = epochsDone * spe + (v.stepInEpoch as number);
    if (step !== want)
      fail('step', step, `${want} (epochsDone ${epochsDone} × ${spe} steps per epoch + stepInEpoch ${show(v.stepInEpoch)})`);
  } else {
    count('stepInEpoch', v.stepInEpoch, step);
  }
  const generator = (field: string, g: unknown) => {
    if (!isObject(g) || !isCount(g.seed) || !isCount(g.offset))
      fail(field, g, '{ "seed": a non-negative integer, "offset": a non-negative integer }');
  };
  generator('epochStartRng', v.epochStartRng);
  if (!isObject(v.generators)) fail('generators', v.generators, 'an object of generator states by name');
  const generators = v.generators as Record<string, unknown>;
  for (const [k, g] of Object.entries(generators)) generator(`generators.${k}`, g);
  for (const k of expect?.generators ?? [])
    if (!(k in generators)) fail(`generators.${k}`, undefined, `the state of the task's generator "${k}"`);
  if (!isObject(v.optimizerSteps)) fail('optimizerSteps', v.optimizerSteps, 'an object of update counts by parameter');
  for (const [k, n] of Object.entries(v.optimizerSteps as Record<string, unknown>))
    count(`optimizerSteps.${k}`, n, step, 'at most the step count');
  const record = (field: string, r: unknown) => {
    if (!isObject(r)) return fail(field, r, 'a validation record { epoch, step, score, metrics }');
    count(`${field}.epoch`, r.epoch, epochsDone, 'at most epochsDone');
    count(`${field}.step`, r.step, step, 'at most step');
    // JSON writes a NaN score as null.
    if (typeof r.score !== 'number' && r.score !== null) fail(`${field}.score`, r.score, 'a number');
    if (!isObject(r.metrics)) fail(`${field}.metrics`, r.metrics, 'an object of metrics');
    return r;
  };
  if (!Array.isArray(v.validation)) fail('validation', v.validation, 'an array of validation records');
  const validation = v.validation as unknown[];
  validation.forEach((r, i) => {
    const rec = record(`validation[${i}]`, r);
    const prev = validation[i - 1] as { epoch: number } | undefined;
    if (prev && (rec.epoch as number) <= prev.epoch)
      fail(`validation[${i}].epoch`, rec.epoch, `more than ${prev.epoch} (the epoch before it)`);
  });
  if (v.best !== null) {
    const best = record('best', v.best);
    if (!validation.some((r) => isObject(r) && r.epoch === best.epoch && r.step === best.step))
      fail('best', best, 'one of the records in "validation"');
    if (!hasBestFile) fail('best', best, 'null, since manifest.json lists no best.safetensors');
  } else if (hasBestFile) fail('best', null, 'a validation record, since manifest.json lists best.safetensors');
  if (!Array.isArray(v.log)) fail('log', v.log, 'an array of log rows');
  for (const [i, row] of (v.log as unknown[]).entries()) {
    if (!isObject(row)) fail(`log[${i}]`, row, 'a log row { epoch, step, lr, loss, valScore, tokensPerSecond, elapsedSeconds }');
    const r = row as Record<string, unknown>;
    count(`log[${i}].epoch`, r.epoch, epochsDone + 1, 'at most the epoch in progress');
    count(`log[${i}].step`, r.step, step, 'at most step');
    for (const k of ['lr', 'elapsedSeconds'])
      if (typeof r[k] !== 'number' || !Number.isFinite(r[k])) fail(`log[${i}].${k}`, r[k], 'a finite number');
    // JSON writes a NaN loss as null.
    for (const k of ['loss', 'valScore', 'tokensPerSecond'])
      if (r[k] !== null && typeof r[k] !== 'number') fail(`log[${i}].${k}`, r[k], 'a number or null');
  }
  if (!isObject(v.counters)) fail('counters', v.counters, 'an object of running sums');
  const counters = v.counters as Record<string, unknown>;
  for (const k of [
    'epochLossSum',
    'epochSteps',
    'windowLossSum',
    'windowSteps',
    'windowTokens',
    'windowSeconds',
    'lastLr',
    'elapsedSeconds',
  ])
    if (typeof counters[k] !== 'number' || !Number.isFinite(counters[k])) fail(`counters.${k}`, counters[k], 'a finite number');
  // JSON wrote a NaN score as null; the run goes on with NaN, as it would have without the restart.
  for (const r of [...validation, v.best] as ({ score: number | null } | null)[]) if (r && r.score === null) r.score = Number.NaN;
  return v as unknown as CheckpointState;
}

/**
 * The index of the first NaN or infinite element of a float tensor (or a negative one, with
 * `nonNegative`), or -1. 16-bit dtypes are stored as bit patterns: all exponent bits set is NaN or
 * infinity.
 */
function firstNonFinite(h: HostTensor, nonNegative: boolean): number {
  const d = h.data;
  if (d instanceof Float32Array) {
    for (let i = 0; i < d.length; i++) {
      const x = d[i] as number;
      if (!Number.isFinite(x) || (nonNegative && x < 0)) return i;
    }
    return -1;
  }
  const mask = h.dtype === 'bfloat16' ? 0x7f80 : h.dtype === 'float16' ? 0x7c00 : 0;
  if (mask === 0 || !(d instanceof Uint16Array)) return -1;
  for (let i = 0; i < d.length; i++) {
    const bits = d[i] as number;
    if ((bits & mask) === mask || (nonNegative && bits & 0x8000 && bits & 0x7fff)) return i;
  }
  return -1;
}

/** The trained tensors as state.json's fingerprint lists them ("name dtype [2, 3]"), by name; calls `bad` on anything else. */
function trainedSpecs(list: unknown, bad: (value: unknown) => never): Map<string, { dtype: string; shape: number[] }> {
  const out = new Map<string, { dtype: string; shape: number[] }>();
  if (!Array.isArray(list) || list.length === 0) return bad(list);
  for (const entry of list) {
    const m = typeof entry === 'string' ? /^(.+) ([a-z0-9]+) \[([0-9, ]*)\]$/i.exec(entry) : null;
    const shape = m ? (m[3] === '' ? [] : m[3]!.split(', ').map(Number)) : [];
    if (!m || !shape.every(isCount) || out.has(m[1]!)) return bad(entry);
    out.set(m[1]!, { dtype: m[2]!, shape });
  }
  return out;
}

/**
 * Reads the newest complete checkpoint, or null when there is none. Every file named in its
 * manifest must be there with the SHA-256 recorded when it was written, and state.json must hold a
 * well-formed state (consistent with `expect` when given); anything else is a `CheckpointError`
 * naming the file, and what can still be done.
 */
export async function readLatestCheckpoint(
  store: RunStore,
  expect?: ResumeExpectations,
): Promise<(CheckpointParts & { path: string }) | null> {
  const all = await listCheckpoints(store);
  const last = all.at(-1);
  if (!last) return null;
  const path = `${CHECKPOINT_DIR}/${last.name}`;
  const older = all.at(-2);
  const advice = older
    ? `The older checkpoint ${store.name}/${CHECKPOINT_DIR}/${older.name} is still kept: move ${store.name}/${path} out of the run folder and resume again to continue from it, or start the run without resume into a new folder.`
    : 'No older checkpoint is kept (keepCheckpoints > 1 keeps more): start the run again without resume, into a new folder to keep this one for inspection.';
  const fail = (file: string, what: string): never => {
    throw new CheckpointError(`cannot resume from ${store.name}/${path}: ${file} ${what}. ${advice}`, `${store.name}/${path}/${file}`);
  };

  let manifest: unknown;
  try {
    manifest = await readJson<unknown>(store, `${path}/manifest.json`);
  } catch (error) {
    return fail('manifest.json', `is not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(manifest)) return fail('manifest.json', `is ${show(manifest)}, not an object`);
  if (manifest.format !== FORMAT) {
    throw new CheckpointError(
      `${store.name}/${path}/manifest.json: checkpoint format ${show(manifest.format)} is not ${FORMAT}: it was written by another version of @peft/trainer. Start the run again without resume, into a new folder.`,
      `${store.name}/${path}/manifest.json`,
    );
  }
  const files = manifest.files;
  const sums = manifest.sha256;
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string'))
    return fail('manifest.json', `has "files" ${show(files)}, not a list of file names`);
  for (const f of REQUIRED) if (!files.includes(f)) fail('manifest.json', `does not list ${f}`);
  for (const f of files as string[])
    if (!KNOWN.includes(f)) fail('manifest.json', `lists ${show(f)}, which is not a checkpoint file (${KNOWN.join(', ')})`);
  if (!isObject(sums)) return fail('manifest.json', `has "sha256" ${show(sums)}, not an object of checksums by file`);
  const bytes = new Map<string, Uint8Array>();
  for (const f of files as string[]) {
    const want = sums[f];
    if (typeof want !== 'string' || !/^[0-9a-f]{64}$/.test(want)) fail('manifest.json', `has no SHA-256 for ${f} (found ${show(want)})`);
    const data = await store.readFile(`${path}/${f}`);
    if (!data) return fail(f, 'is listed in manifest.json but missing');
    const got = await sha256(data);
    if (got !== want) fail(f, `is damaged: its SHA-256 is ${got}, but ${want} was recorded in manifest.json when it was written`);
    bytes.set(f, data);
  }
  const at = (f: string) => bytes.get(f) as Uint8Array;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(at('state.json')));
  } catch (error) {
    return fail('state.json', `is not valid JSON (${(error as Error).message})`);
  }
  const hasBest = files.includes('best.safetensors');
  const state = checkState(raw, hasBest, expect, (field, value, expected) =>
    fail('state.json', `field "${field}" is ${show(value)}; expected ${expected}`),
  );
  const tensors = async (f: string): Promise<HostState> => {
    try {
      return await hostStateFromBytes(at(f), `${store.name}/${path}/${f}`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return fail(f, `cannot be read as safetensors (${message.slice(0, 300)})`);
    }
  };
  // Every trained tensor with the dtype and shape the state says it was trained with (the resumed run
  // compares those with its own), and AdamW moments for each tensor that has updates.
  const specs = trainedSpecs(state.fingerprint.trainable, (value) =>
    fail('state.json', `field "fingerprint.trainable" is ${show(value)}; expected a list of "name dtype [shape]"`),
  );
  for (const k of Object.keys(state.optimizerSteps))
    if (!specs.has(k)) fail('state.json', `field "optimizerSteps.${k}" names a tensor that is not trained (not in fingerprint.trainable)`);
  const checkTensors = (f: string, host: HostState) => {
    for (const [name, spec] of specs) {
      const h = host.get(name);
      if (!h) fail(f, `has no tensor "${name}", which state.json's fingerprint.trainable lists as trained`);
      else if (h.dtype !== spec.dtype || h.shape.join() !== spec.shape.join())
        fail(
          f,
          `has "${name}" as ${h.dtype} [${h.shape.join(', ')}]; expected ${spec.dtype} [${spec.shape.join(', ')}] as state.json's fingerprint.trainable lists it`,
        );
      else checkFinite(f, name, h);
    }
  };
  // A run stops before it applies a non-finite update, so a checkpoint never holds NaN or infinity.
  const checkFinite = (f: string, name: string, h: HostTensor, nonNegative = false) => {
    const at = firstNonFinite(h, nonNegative);
    if (at >= 0)
      fail(
        f,
        `has ${nonNegative ? 'a negative, NaN or infinite' : 'a NaN or infinite'} value in "${name}" at element ${at}, which training never writes`,
      );
  };
  const trainable = await tensors('trainable.safetensors');
  checkTensors('trainable.safetensors', trainable);
  const moments = await tensors('optimizer.safetensors');
  for (const [name, spec] of specs) {
    if (state.optimizerSteps[name] === undefined) continue;
    const size = spec.shape.reduce((a, b) => a * b, 1);
    for (const key of [`${name}.exp_avg`, `${name}.exp_avg_sq`]) {
      const m = moments.get(key);
      if (m?.dtype === 'float32' && m.data.length === size) checkFinite('optimizer.safetensors', key, m, key.endsWith('_sq'));
      else
        fail(
          'optimizer.safetensors',
          `has ${m ? `"${key}" as ${m.dtype} [${m.shape.join(', ')}]` : `no "${key}"`}; expected ${size} float32 values (the AdamW moment of "${name}", whose shape state.json's fingerprint.trainable gives)`,
        );
    }
  }
  const best = hasBest ? await tensors('best.safetensors') : null;
  if (best) checkTensors('best.safetensors', best);
  return { path, state, trainable, moments, best };
}

/**
 * Removes all but the newest `keep` checkpoints, and leftovers of interrupted writes. A failure
 * (read-only, ...) is a `RunFolderError` that says the newest checkpoint is complete.
 */
export async function pruneCheckpoints(store: RunStore, keep: number): Promise<void> {
  try {
    for (const name of await store.list(CHECKPOINT_DIR)) if (name.startsWith('.tmp-')) await store.remove(`${CHECKPOINT_DIR}/${name}`);
    const all = await listCheckpoints(store);
    // Renamed out of the way first: a kill while its files are being removed leaves a temporary folder, never a
    // checkpoint with some of its files gone.
    for (const c of all.slice(0, Math.max(0, all.length - keep))) {
      const doomed = `${CHECKPOINT_DIR}/.tmp-${c.name}-${pid()}-${Math.random().toString(36).slice(2, 10)}`;
      await store.rename(`${CHECKPOINT_DIR}/${c.name}`, doomed);
      await store.remove(doomed);
    }
  } catch (error) {
    const code = errorCode(error);
    if (!code) throw error;
    const file = (error as { file?: unknown }).file;
    const at = typeof file === 'string' ? file : `${store.name}/${CHECKPOINT_DIR}`;
    throw new RunFolderError(
      `cannot remove old checkpoints in ${store.name}/${CHECKPOINT_DIR}: ${causeInWords(code)} (${code} at ${at}). ${await intactCheckpointNote(store, code)}`,
      at,
      code,
      { cause: error },
    );
  }
}
