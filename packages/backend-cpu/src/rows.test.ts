/**
 * Row kernels on worker threads (rows.ts, parallel.ts runRows): the same bits as one thread,
 * the workers really take tasks, a kernel that is not self-contained fails loudly with its name,
 * and calls whose outputs are not shared stay on the calling thread.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createCpuBackend } from './backend.js';
import type { CpuBuffer, CpuContext } from './buffer.js';
import { forRows } from './rows.js';

const two = createCpuBackend({ threads: 2 });
const one = createCpuBackend({ threads: 1 });
afterAll(() => {
  two.destroy();
  one.destroy();
});
const ctxOf = (be: typeof two): CpuContext => be as unknown as CpuContext;

/** y[r, j] = x[r, j] · scale + r (a row kernel: nothing from outside its arguments). */
function scaleRows(x: Float32Array, y: Float32Array, dim: number, scale: number, r0: number, r1: number): void {
  for (let r = r0; r < r1; r++) {
    for (let j = 0; j < dim; j++) y[r * dim + j] = Math.fround(x[r * dim + j]! * scale) + r;
  }
}

const OUTSIDE = 3;
/** Reads a module constant: not self-contained. */
function leaky(y: Float32Array, r0: number, r1: number): void {
  for (let r = r0; r < r1; r++) y[r] = OUTSIDE;
}

/**
 * Throws on the task that ends at `rows`, naming `tag`. The first task takes 100 ms, so that
 * the calling thread (which claims it) leaves the last one to a worker.
 */
function lastTaskThrows(y: Float32Array, rows: number, tag: string, r0: number, r1: number): void {
  const t0 = Date.now();
  while (r0 === 0 && Date.now() - t0 < 100) {}
  for (let r = r0; r < r1; r++) y[r] = r;
  if (r1 === rows) throw new Error(`broke at ${tag}`);
}

function run(be: typeof two, rows: number, dim: number): Float32Array {
  const x = be.alloc('float32', rows * dim) as CpuBuffer;
  const y = be.alloc('float32', rows * dim) as CpuBuffer;
  be.random(x, { distribution: 'normal', seed: 5, offset: 0, low: 0, high: 1 });
  forRows(ctxOf(be), scaleRows, rows, rows * dim, [x.data as Float32Array, y.data as Float32Array, dim, 0.75], [1]);
  const out = (y.data as Float32Array).slice();
  be.free(x);
  be.free(y);
  return out;
}

describe('row kernels', () => {
  it('split across threads give the same bits as one thread, and the workers take tasks', () => {
    const pool = ctxOf(two).pool!;
    const before = pool.workerTasks;
    for (const [rows, dim] of [
      [1000, 300],
      [97, 1031],
      [7, 20_000],
    ] as const) {
      expect(run(two, rows, dim)).toEqual(run(one, rows, dim));
    }
    expect(pool.workerTasks).toBeGreaterThan(before);
  });

  it('a kernel that reads a variable from outside its body fails with its name, and the pool keeps working', () => {
    const y = two.alloc('float32', 100_000) as CpuBuffer;
    expect(() => forRows(ctxOf(two), leaky, 100_000, 100_000, [y.data as Float32Array], [0])).toThrow(/leaky failed.*OUTSIDE/s);
    two.free(y);
    expect(run(two, 1000, 300)).toEqual(run(one, 1000, 300));
  });

  it("the error names each job's own failure, also one a worker hit", () => {
    const y = two.alloc('float32', 100_000) as CpuBuffer;
    for (let i = 0; i < 5; i++) {
      const tag = `job ${i}`;
      expect(() => forRows(ctxOf(two), lastTaskThrows, 100_000, 100_000, [y.data as Float32Array, 100_000, tag], [0])).toThrow(
        new RegExp(`lastTaskThrows failed: .*broke at ${tag}\\b`, 's'),
      );
    }
    two.free(y);
  });

  it('an output outside shared memory keeps the call on this thread', () => {
    const pool = ctxOf(two).pool!;
    const x = new Float32Array(200_000).fill(2);
    const y = new Float32Array(200_000);
    const before = pool.workerTasks;
    forRows(ctxOf(two), scaleRows, 1000, 200_000, [x, y, 200, 0.5], [1]);
    expect(pool.workerTasks).toBe(before);
    expect(y[199_999]).toBe(1 + 999);
  });
});
