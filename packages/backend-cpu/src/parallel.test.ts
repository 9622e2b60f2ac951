/**
 * The elementwise kernels on worker threads: the same bits as one thread for every kernel the
 * pool runs, over sizes that cross task and chunk boundaries, broadcasts and in-place calls; the
 * workers really take tasks; shared memory only where a pool runs; failures surface.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DeviceBuffer, View } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type CpuBackend, createCpuBackend } from './backend.js';
import { PARALLEL_MIN, SHARED_MIN_BYTES } from './parallel.js';

const one = createCpuBackend({ threads: 1 });
const two = createCpuBackend({ threads: 2 });
afterAll(() => {
  one.destroy();
  two.destroy();
});

/** Past three tasks of 32 Ki elements and not a multiple of the chunk or of 4. */
const N = 3 * 32 * 1024 + 4099;

function filled(be: CpuBackend, n: number, seed: number, std = 2): DeviceBuffer {
  const b = be.alloc('float32', n);
  be.random(b, { distribution: 'normal', seed, offset: 0, low: 0, high: std });
  return b;
}

const flat = (shape: number[]): View => ({ offset: 0, shape, strides: shape.length === 2 ? [shape[1]!, 1] : [1] });

type Case = [name: string, run: (be: CpuBackend) => DeviceBuffer];

const rows = 97;
const cols = Math.ceil(N / rows);
const CASES: Case[] = [
  ['gelu exact', (be) => out1(be, (o, x) => be.gelu(o, x, false))],
  ['gelu tanh', (be) => out1(be, (o, x) => be.gelu(o, x, true))],
  ['geluBackward', (be) => out2(be, (o, g, x) => be.geluBackward(o, g, x, false))],
  ['siluMul', (be) => out2(be, (o, g, u) => be.siluMul(o, g, u))],
  ['affine', (be) => out1(be, (o, x) => be.affine(o, x, -0.75, 3))],
  ['add, contiguous', (be) => out2(be, (o, a, b) => be.binary('add', o, a, flat([N]), b, flat([N])))],
  ['div, in place on a', (be) => out2(be, (_o, a, b) => be.binary('div', a, a, flat([N]), b, flat([N])), true)],
  [
    'mul, a bias row broadcast over rows',
    (be) => {
      const a = filled(be, rows * cols, 1);
      const bias = filled(be, cols, 2);
      const o = be.alloc('float32', rows * cols);
      be.binary('mul', o, a, flat([rows, cols]), bias, { offset: 0, shape: [rows, cols], strides: [0, 1] });
      be.free(a);
      be.free(bias);
      return o;
    },
  ],
  [
    'max with a scalar, in place',
    (be) => {
      const a = filled(be, N, 3);
      const s = filled(be, 4, 4);
      be.binary('max', a, a, flat([N]), s, { offset: 2, shape: [N], strides: [0] });
      be.free(s);
      return a;
    },
  ],
];

function out1(be: CpuBackend, f: (o: DeviceBuffer, x: DeviceBuffer) => void): DeviceBuffer {
  const x = filled(be, N, 11);
  const o = be.alloc('float32', N);
  f(o, x);
  be.free(x);
  return o;
}

function out2(be: CpuBackend, f: (o: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer) => void, inPlace = false): DeviceBuffer {
  const a = filled(be, N, 12);
  const b = filled(be, N, 13, 1);
  const o = inPlace ? a : be.alloc('float32', N);
  f(o, a, b);
  be.free(b);
  if (!inPlace) be.free(a);
  return o;
}

describe('elementwise kernels on worker threads', () => {
  it('runs on 2 threads with shared memory for large buffers only', () => {
    expect(one.pool).toBeNull();
    expect(two.pool?.threads).toBe(2);
    const big = two.alloc('float32', SHARED_MIN_BYTES / 4) as unknown as { data: Float32Array };
    const small = two.alloc('float32', SHARED_MIN_BYTES / 4 - 1) as unknown as { data: Float32Array };
    const single = one.alloc('float32', SHARED_MIN_BYTES / 4) as unknown as { data: Float32Array };
    expect(big.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(small.data.buffer).toBeInstanceOf(ArrayBuffer);
    expect(single.data.buffer).toBeInstanceOf(ArrayBuffer);
    for (const b of [big, small]) two.free(b as unknown as DeviceBuffer);
    one.free(single as unknown as DeviceBuffer);
    expect(N).toBeGreaterThan(PARALLEL_MIN);
  });

  for (const [name, run] of CASES) {
    it(`${name}: the same bits as one thread`, async () => {
      const want = one.read(run(one));
      const before = two.pool!.workerTasks;
      // The worker starts in the background: repeat until it has taken part (a few calls at most).
      let got = await two.read(run(two));
      for (let i = 0; i < 200 && two.pool!.workerTasks === before; i++) got = await two.read(run(two));
      expect(two.pool!.workerTasks).toBeGreaterThan(before);
      const a = new Uint32Array((await want).buffer);
      const b = new Uint32Array(got.buffer);
      expect(b.length).toBe(a.length);
      let diff = -1;
      for (let i = 0; i < a.length && diff < 0; i++) if (a[i] !== b[i]) diff = i;
      expect(diff, `first differing element ${diff}`).toBe(-1);
    });
  }

  it('names the kernel when a task fails, and keeps working after', () => {
    const be = createCpuBackend({ threads: 2 });
    const x = filled(be, N, 5);
    const data = (x as unknown as { data: Float32Array }).data;
    expect(() =>
      be.pool!.run({
        fn: 'noSuchKernel',
        n: N,
        rowLen: 0,
        inputs: [{ data, x0: 0, mode: 'flat' }],
        outputs: [data],
        args: ['start', 'end'],
      }),
    ).toThrow(/parallel kernels: noSuchKernel failed: TypeError/);
    const o = be.alloc('float32', N);
    be.gelu(o, x, false);
    be.destroy();
    expect(() => be.pool!.run({ fn: 'gelu', n: N, rowLen: 0, inputs: [], outputs: [], args: [] })).toThrow('the pool was destroyed');
  });

  it('a pool the caller never destroys does not keep the process alive', () => {
    const child = fileURLToPath(new URL('./exit.child.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--conditions=@peft/source', '--import', 'tsx', child], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout).toContain('ran');
    expect(r.signal, 'the child was killed at the time-out: something kept it alive').toBeNull();
    expect(r.status).toBe(0);
  });
});
