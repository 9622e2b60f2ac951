/**
 * What a data-parallel trainer needs from its peers, whatever carries it: the `Communicator`
 * interface, its single-process form (`LocalCommunicator`: every collective is the identity), the
 * errors and the option checks both forms share. The MPI form is mpi-communicator.ts.
 */

/** How all-reduce combines the ranks' buffers. */
export type ReduceOp = 'sum' | 'mean';

export interface Communicator {
  /** This process's rank, 0..size-1. */
  readonly rank: number;
  /** Processes in the job. */
  readonly size: number;
  /** This process's rank among those on its machine: the GPU index to pick. */
  readonly localRank: number;
  /** rank === 0: the rank that writes checkpoints, logs and results. */
  readonly isRoot: boolean;
  /** Seconds a collective waits for the other ranks before it rejects with MpiTimeoutError. */
  readonly timeoutSeconds: number;
  /** "Open MPI v4.1.4 (libmpi.so.40), rank 0 of 2, local rank 0": for logs. */
  readonly description: string;
  /** Combines `data` of every rank elementwise, in place; every rank gets the result. Same length on every rank. */
  allReduce(data: Float32Array, op?: ReduceOp): Promise<Float32Array>;
  /** Copies root's `data` into every other rank's `data` (same length on every rank). */
  broadcast<T extends Uint8Array | Float32Array>(data: T, root?: number): Promise<T>;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
  /** Every rank's bytes (any length each), in rank order, on every rank. */
  allGatherBytes(data: Uint8Array): Promise<Uint8Array[]>;
  /** Every rank's JSON value, in rank order, on every rank: per-rank evaluation metrics, counts. */
  allGatherObjects<T>(value: T): Promise<T[]>;
  /** Waits for the other ranks, then shuts MPI down. Call once, at the end, on every rank. */
  finalize(): Promise<void>;
  /** Ends the whole job now with `code` (MPI_Abort): every rank exits. */
  abort(code?: number): Promise<never>;
}

/** An MPI call returned an error code (a peer's connection broke, a bad argument). */
export class MpiError extends Error {
  constructor(
    message: string,
    readonly call: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'MpiError';
  }
}

/** A collective got no answer from the other ranks in `timeoutSeconds`. */
export class MpiTimeoutError extends Error {
  constructor(
    message: string,
    readonly operation: string,
    readonly seconds: number,
  ) {
    super(message);
    this.name = 'MpiTimeoutError';
  }
}

/** 120 s: long enough for a rank that evaluates or saves alone, short enough to end a dead job. */
export const DEFAULT_TIMEOUT_SECONDS = 120;

/** The timeout in force: the option, else PEFT_MPI_TIMEOUT, else 120 s. */
export function resolveTimeout(option: number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  if (option !== undefined) {
    if (typeof option !== 'number' || !Number.isFinite(option) || option <= 0)
      throw new Error(`communicator option timeoutSeconds is ${String(option)}: expected a number of seconds > 0`);
    return option;
  }
  const text = env.PEFT_MPI_TIMEOUT;
  if (text === undefined || text.trim() === '') return DEFAULT_TIMEOUT_SECONDS;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`PEFT_MPI_TIMEOUT is "${text}": expected a number of seconds > 0`);
  return value;
}

/** 1234 → "1,234". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function checkFloats(what: string, data: unknown): asserts data is Float32Array {
  if (!(data instanceof Float32Array))
    throw new Error(`${what}: expected a Float32Array, got ${describeValue(data)} (stage other dtypes through a Float32Array)`);
}

export function checkOp(what: string, op: unknown): asserts op is ReduceOp {
  if (op !== 'sum' && op !== 'mean') throw new Error(`${what}: op is ${JSON.stringify(op)}: expected "sum" or "mean"`);
}

export function checkBytesOrFloats(what: string, data: unknown): asserts data is Uint8Array | Float32Array {
  if (!(data instanceof Uint8Array) && !(data instanceof Float32Array))
    throw new Error(`${what}: expected a Uint8Array or a Float32Array, got ${describeValue(data)}`);
}

export function checkRoot(what: string, root: unknown, size: number): asserts root is number {
  if (typeof root !== 'number' || !Number.isInteger(root) || root < 0 || root >= size)
    throw new Error(`${what}: root is ${String(root)}: expected a rank 0..${size - 1}`);
}

/** JSON text of `value`, or an error naming what cannot be sent. */
export function toJson(what: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new Error(`${what}: the value cannot be written as JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new Error(`${what}: the value (${describeValue(value)}) cannot be written as JSON`);
  return text;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value;
}

/** One process, no MPI: the collectives return their input; rank 0 of 1. */
export class LocalCommunicator implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly isRoot = true;
  readonly description = 'single process (no MPI), rank 0 of 1';
  readonly timeoutSeconds: number;

  constructor(options: { timeoutSeconds?: number } = {}) {
    this.timeoutSeconds = resolveTimeout(options.timeoutSeconds);
  }

  async allReduce(data: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    checkFloats('allReduce', data);
    checkOp('allReduce', op);
    return data;
  }

  async broadcast<T extends Uint8Array | Float32Array>(data: T, root = 0): Promise<T> {
    checkBytesOrFloats('broadcast', data);
    checkRoot('broadcast', root, 1);
    return data;
  }

  async barrier(): Promise<void> {}

  async allGatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    if (!(data instanceof Uint8Array)) throw new Error(`allGatherBytes: expected a Uint8Array, got ${describeValue(data)}`);
    return [data.slice()];
  }

  async allGatherObjects<T>(value: T): Promise<T[]> {
    return [JSON.parse(toJson('allGatherObjects', value)) as T];
  }

  async finalize(): Promise<void> {}

  async abort(code = 1): Promise<never> {
    process.exit(code);
  }
}
