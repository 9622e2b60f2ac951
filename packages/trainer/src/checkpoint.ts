import type { GeneratorState } from '@peft/core';
import type { LogRow } from './log.js';
import type { HostState } from './state.js';
import { readHostState, writeHostState } from './state.js';
import { jsonText, type RunStore, readJson } from './store.js';
import type { ValidationRecord } from './types.js';

export const CHECKPOINT_DIR = 'checkpoints';
const FORMAT = 1;

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

/**
 * Writes a checkpoint so that it appears whole or not at all: every file goes into a temporary
 * folder, the manifest last, and the folder is then renamed to `checkpoints/step-NNNNNNNN`.
 * Returns the checkpoint's path in the store.
 */
export async function writeCheckpoint(store: RunStore, parts: CheckpointParts): Promise<string> {
  const name = checkpointName(parts.state.step);
  const tmp = `${CHECKPOINT_DIR}/.tmp-${name}-${Math.random().toString(36).slice(2, 10)}`;
  const files = ['trainable.safetensors', 'optimizer.safetensors', 'state.json'];
  try {
    await writeHostState(store, `${tmp}/trainable.safetensors`, parts.trainable);
    await writeHostState(store, `${tmp}/optimizer.safetensors`, parts.moments);
    if (parts.best) {
      await writeHostState(store, `${tmp}/best.safetensors`, parts.best);
      files.push('best.safetensors');
    }
    await store.writeFile(`${tmp}/state.json`, jsonText(parts.state));
    await store.writeFile(`${tmp}/manifest.json`, jsonText({ format: FORMAT, step: parts.state.step, files }));
    const final = `${CHECKPOINT_DIR}/${name}`;
    await store.remove(final);
    await store.rename(tmp, final);
    return final;
  } catch (error) {
    await store.remove(tmp).catch(() => {});
    throw error;
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

/** Reads the newest complete checkpoint, or null when there is none. */
export async function readLatestCheckpoint(store: RunStore): Promise<(CheckpointParts & { path: string }) | null> {
  const all = await listCheckpoints(store);
  const last = all.at(-1);
  if (!last) return null;
  const path = `${CHECKPOINT_DIR}/${last.name}`;
  const manifest = await readJson<{ format: number; files: string[] }>(store, `${path}/manifest.json`);
  if (manifest?.format !== FORMAT) {
    throw new Error(
      `${store.name}/${path}: checkpoint format ${manifest?.format} is not ${FORMAT}: it was written by another version of @peft/trainer`,
    );
  }
  const state = await readJson<CheckpointState>(store, `${path}/state.json`);
  const trainable = await readHostState(store, `${path}/trainable.safetensors`);
  const moments = await readHostState(store, `${path}/optimizer.safetensors`);
  if (!state || !trainable || !moments)
    throw new Error(`${store.name}/${path}: checkpoint is incomplete (a file named in its manifest is missing)`);
  const best = manifest.files.includes('best.safetensors') ? await readHostState(store, `${path}/best.safetensors`) : null;
  return { path, state, trainable, moments, best };
}

/** Removes all but the newest `keep` checkpoints, and leftovers of interrupted writes. */
export async function pruneCheckpoints(store: RunStore, keep: number): Promise<void> {
  for (const name of await store.list(CHECKPOINT_DIR)) if (name.startsWith('.tmp-')) await store.remove(`${CHECKPOINT_DIR}/${name}`);
  const all = await listCheckpoints(store);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) await store.remove(`${CHECKPOINT_DIR}/${c.name}`);
}
