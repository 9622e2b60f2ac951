// Data-parallel training over a communicator (`TrainOptions.communicator` with size > 1): which
// examples of a step this rank takes, the step's totals over every rank, the gradients all-reduced
// at the seam between "gradients accumulated" and "norm, clip, update", agreeing to stop, and the
// newest checkpoint sent from rank 0 to the others on resume. A single process calls none of it.
import { cast, encode, noGrad, type Tensor } from '@peft/core';
import { CHECKPOINT_DIR, listCheckpoints } from './checkpoint.js';
import { CheckpointError } from './errors.js';
import type { Run } from './run.js';
import { memoryRunStore, type RunStore } from './store.js';
import type { TrainCommunicator } from './types.js';

/** The run's communicator when it spans several processes; null for one process. */
export function peers(run: Run<unknown>): TrainCommunicator | null {
  const c = run.options.communicator;
  return c && c.size > 1 ? c : null;
}

/** Checks a communicator's rank and size; errors name the value. */
export function checkCommunicator(c: TrainCommunicator | undefined): void {
  if (c === undefined) return;
  if (!Number.isSafeInteger(c.size) || c.size < 1)
    throw new Error(`train: communicator.size must be a positive integer, got ${String(c.size)}`);
  if (!Number.isSafeInteger(c.rank) || c.rank < 0 || c.rank >= c.size)
    throw new Error(`train: communicator.rank must be an integer in 0..${c.size - 1}, got ${String(c.rank)}`);
}

/**
 * Rank `rank`'s contiguous share of a step's global batch of `indices`: the batch cut into `size`
 * parts as even as can be, in order (a full batch of size × B gives each rank B). Every example
 * is in exactly one share; a rank gets none when the batch has fewer examples than ranks.
 */
export function rankShare(indices: readonly number[], size: number, rank: number): number[] {
  const n = indices.length;
  return indices.slice(Math.floor((rank * n) / size), Math.floor(((rank + 1) * n) / size));
}

/** A step's totals over every rank: the weight its losses are divided by, examples and tokens. */
export interface StepTotals {
  weight: number;
  examples: number;
  tokens: number;
}

/** Sums each rank's weight, examples and tokens of the step (before any backward pass). */
export async function stepTotals(c: TrainCommunicator, local: StepTotals): Promise<StepTotals> {
  const v = await c.allReduce(Float32Array.of(local.weight, local.examples, local.tokens), 'sum');
  return { weight: v[0]!, examples: v[1]!, tokens: v[2]! };
}

/**
 * True on every rank when any rank was asked to stop (Ctrl-C, SIGTERM): all of them stop at the
 * same step boundary, so none waits in a collective the others never reach.
 */
export async function anyStops(c: TrainCommunicator, stop: boolean): Promise<boolean> {
  const v = await c.allReduce(Float32Array.of(stop ? 1 : 0), 'sum');
  return v[0]! > 0;
}

/** A tensor's values as float32 on the host. */
async function hostFloats(t: Tensor): Promise<Float32Array> {
  if (t.dtype === 'float32') return Float32Array.from(await t.data());
  const f = noGrad(() => cast(t, 'float32'));
  try {
    return Float32Array.from(await f.data());
  } finally {
    f.dispose();
  }
}

/**
 * Sums the accumulated gradients (one tensor per trainable) and the step's loss over the ranks,
 * staged through one host buffer: [each gradient…, loss, one "has a gradient" count per tensor].
 * Each rank's gradients and loss are already divided by the global weight, so the sum is the mean
 * over the global batch. The sums are written back into the same tensors (their buffers stay put,
 * so a captured graph keeps reading them). A tensor counts as having a gradient when any rank had
 * one for it (a rank without examples, or a tensor its examples did not reach, adds zeros); one no
 * rank had stays without, as in a single process. Returns the global loss and which tensors have one.
 */
export async function allReduceGradients(
  c: TrainCommunicator,
  grads: readonly Tensor[],
  had: readonly boolean[],
  loss: number,
): Promise<{ loss: number; touched: boolean[] }> {
  const total = grads.reduce((n, t) => n + t.size, 0);
  const flat = new Float32Array(total + 1 + grads.length);
  let at = 0;
  for (const [k, g] of grads.entries()) {
    if (had[k]) {
      flat.set(await hostFloats(g), at);
      flat[total + 1 + k] = 1;
    }
    at += g.size;
  }
  flat[total] = loss;
  await c.allReduce(flat, 'sum');
  at = 0;
  const touched = grads.map((g, k) => {
    const has = flat[total + 1 + k]! > 0;
    if (has) g.backend.write(g.buffer('allReduceGradients'), encode(flat.subarray(at, at + g.size), g.dtype));
    at += g.size;
    return has;
  });
  return { loss: flat[total]!, touched };
}

/** What rank 0 sends on resume: its run folder's name and the newest checkpoint's files, or why it could not read them. */
interface Shipment {
  name: string;
  files: [path: string, bytes: number][];
  error?: string;
}

async function broadcastBytes(c: TrainCommunicator, bytes: Uint8Array | null): Promise<Uint8Array> {
  const length = new Float32Array(2);
  if (bytes) {
    // Two floats carry a length below 2^48 exactly: high and low 24 bits.
    length[0] = Math.floor(bytes.length / 2 ** 24);
    length[1] = bytes.length % 2 ** 24;
  }
  await c.broadcast(length, 0);
  const n = length[0]! * 2 ** 24 + length[1]!;
  const data = bytes ?? new Uint8Array(n);
  if (n > 0) await c.broadcast(data, 0);
  return data;
}

/** Rank 0's newest checkpoint folder's files (none when there is no checkpoint). */
async function newestCheckpointFiles(out: RunStore): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const last = (await listCheckpoints(out)).at(-1);
  if (!last) return files;
  const dir = `${CHECKPOINT_DIR}/${last.name}`;
  for (const f of await out.list(dir)) {
    const bytes = await out.readFile(`${dir}/${f}`);
    if (bytes) files.set(`${dir}/${f}`, bytes);
  }
  return files;
}

/**
 * The store a resume reads its checkpoint from: on rank 0 the run folder; on the other ranks a
 * memory store holding the files of rank 0's newest checkpoint, sent over the communicator (so
 * that ranks on other machines need no shared disk). Every rank then reads and checks the same
 * checkpoint. When rank 0 cannot list or read it, every rank fails with rank 0's reason.
 */
export async function checkpointSource(c: TrainCommunicator, out: RunStore | undefined): Promise<RunStore | undefined> {
  if (c.rank === 0) {
    let files = new Map<string, Uint8Array>();
    let error: string | undefined;
    try {
      if (out) files = await newestCheckpointFiles(out);
    } catch (e) {
      error = (e as Error).message;
    }
    const head: Shipment = { name: out?.name ?? '', files: [...files].map(([p, b]) => [p, b.length]), error };
    await broadcastBytes(c, new TextEncoder().encode(JSON.stringify(head)));
    const blob = new Uint8Array([...files.values()].reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of files.values()) {
      blob.set(b, at);
      at += b.length;
    }
    await broadcastBytes(c, blob);
    if (error !== undefined)
      throw new CheckpointError(`train: rank 0 cannot read its checkpoints to resume from: ${error}`, out?.name ?? '');
    return out;
  }
  const head = JSON.parse(new TextDecoder().decode(await broadcastBytes(c, null))) as Shipment;
  const blob = await broadcastBytes(c, null);
  if (head.error !== undefined)
    throw new CheckpointError(`train: rank 0 cannot read its checkpoints to resume from: ${head.error}`, head.name);
  if (!head.name) return undefined;
  const store = memoryRunStore(head.name);
  let at = 0;
  for (const [path, n] of head.files) {
    store.files.set(path, blob.subarray(at, at + n));
    at += n;
  }
  return store;
}
