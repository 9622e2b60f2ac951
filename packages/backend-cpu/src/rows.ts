/**
 * Row kernels: a kernel's work written as a self-contained function over a range of rows,
 * `fn(...args, r0, r1)`, that runs on the calling thread alone or split across the backend's
 * worker threads (parallel.ts `runRows`), with the same bits either way: each row is computed by
 * the same code from the same inputs, whatever range it falls in.
 *
 * A row kernel runs in the workers from its source text (`Function.prototype.toString`), so it
 * may use nothing but its arguments and the globals (Math, typed arrays): no imports, no module
 * constants, no helper functions outside its body. The tests run every row kernel through the
 * pool, where a free variable fails loudly.
 */
import type { CpuContext } from './buffer.js';
import { KernelPool, PARALLEL_MIN, type RowArg, type RowFn } from './parallel.js';

/** Tasks per thread a job is cut into, so that a thread slowed by another process still leaves work to take. */
const TASKS_PER_THREAD = 4;

/**
 * Runs `fn(...args, r0, r1)` over [0, rows): across the pool's threads when the backend has them,
 * the call has at least PARALLEL_MIN elements of work (`work`) and every array a task writes
 * (`outputs`: indices into `args`) and every large input lives in shared memory; else here, as
 * `fn(...args, 0, rows)`.
 */
export function forRows(ctx: CpuContext, fn: RowFn, rows: number, work: number, args: readonly RowArg[], outputs: readonly number[]): void {
  const pool = ctx.pool;
  if (pool !== null && rows > 1 && work >= PARALLEL_MIN && shareable(args, outputs)) {
    const per = Math.max(1, Math.ceil(rows / (pool.threads * TASKS_PER_THREAD)));
    pool.runRows(fn, rows, per, args);
    return;
  }
  fn(...args, 0, rows);
}

/** Largest typed array input copied to the workers (larger ones must be shared, or the call stays on this thread). */
const MAX_COPIED_INPUT = 64 * 1024;

function shareable(args: readonly RowArg[], outputs: readonly number[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === null || typeof a !== 'object') continue;
    if (KernelPool.shared(a)) continue;
    if (outputs.includes(i) || a.length > MAX_COPIED_INPUT) return false;
  }
  return true;
}
