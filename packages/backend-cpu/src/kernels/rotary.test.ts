import type { RotaryParams } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../backend.js';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

describe('rotary', () => {
  it('rotates pairs (i, i + half) by position · base^(−2i/rotaryDim) and passes the tail through', async () => {
    const be = backend();
    // one token, two heads, headDim 6, rotaryDim 4 (half = 2), position 3, scale 2 → t = 1.5
    const p: RotaryParams = { batch: 1, seq: 1, heads: 2, headDim: 6, rotaryDim: 4, base: 100, positionScale: 2 };
    const x = [1, 2, 3, 4, 5, 6, -1, 0.5, 2, -3, 7, 8];
    const out = be.alloc('float32', 12);
    be.rotary(out, upload(be, x), upload(be, [3], 'int32'), p);
    const t = 1.5;
    const theta = [t, t / 10]; // inv_freq = [1, 100^(-1/2)]
    const expected: number[] = [];
    for (let h = 0; h < 2; h++) {
      const v = x.slice(h * 6, h * 6 + 6);
      expected.push(
        v[0] * Math.cos(theta[0]) - v[2] * Math.sin(theta[0]),
        v[1] * Math.cos(theta[1]) - v[3] * Math.sin(theta[1]),
        v[2] * Math.cos(theta[0]) + v[0] * Math.sin(theta[0]),
        v[3] * Math.cos(theta[1]) + v[1] * Math.sin(theta[1]),
        v[4],
        v[5],
      );
    }
    expectClose(await download(be, out), expected, 1e-6);
    be.destroy();
  });

  it('uses each (batch, seq) position; position 0 is the identity; backward inverts the rotation', async () => {
    const be = backend();
    const p: RotaryParams = { batch: 2, seq: 2, heads: 1, headDim: 4, rotaryDim: 4, base: 10000, positionScale: 1 };
    const x = randomValues(16, 31);
    const pos = upload(be, [0, 5, 17, 1000], 'int32');
    const out = be.alloc('float32', 16);
    be.rotary(out, upload(be, x), pos, p);
    const y = await download(be, out);
    expectClose(y.slice(0, 4), x.slice(0, 4), 1e-7);
    // rotation preserves the norm of each (i, i+half) pair
    for (let t = 1; t < 4; t++) {
      for (const i of [0, 1]) {
        const a = Math.hypot(x[t * 4 + i], x[t * 4 + i + 2]);
        const b = Math.hypot(y[t * 4 + i], y[t * 4 + i + 2]);
        expect(Math.abs(a - b)).toBeLessThan(1e-6);
      }
    }
    const back = be.alloc('float32', 16);
    be.rotaryBackward(back, out, pos, p);
    expectClose(await download(be, back), x, 1e-6);
    // backward is the transpose of the forward: matches finite differences of Σ g·rotary(x)
    const g = randomValues(16, 32);
    const forward = async (v: number[]) => {
      be.rotary(out, upload(be, v), pos, p);
      return dot(g, await download(be, out));
    };
    be.rotaryBackward(back, upload(be, g), pos, p);
    expectGradClose(await download(be, back), await numericGrad(x, 1e-2, forward));
    be.destroy();
  });

  it('rejects an odd rotaryDim and positions of the wrong dtype', () => {
    const be = backend();
    const x = be.alloc('float32', 4);
    const p: RotaryParams = { batch: 1, seq: 1, heads: 1, headDim: 4, rotaryDim: 3, base: 10000, positionScale: 1 };
    expect(() => be.rotary(x, x, upload(be, [0], 'int32'), p)).toThrow(/rotary: rotaryDim 3 must be even and at most headDim 4/);
    expect(() => be.rotary(x, x, upload(be, [0]), { ...p, rotaryDim: 4 })).toThrow(/positions has dtype float32 but must be int32/);
    be.destroy();
  });
});

describe('rotary on worker threads', () => {
  const one = createCpuBackend({ threads: 1 });
  const two = createCpuBackend({ threads: 2 });
  afterAll(() => {
    one.destroy();
    two.destroy();
  });
  const workerTasks = (): number => (two as unknown as CpuContext).pool!.workerTasks;

  /** rotary (or its backward) of pseudo-random x on `be`, into a fresh buffer or in place; the output's bits. */
  function rotateOn(be: typeof one, p: RotaryParams, positions: number[], backward: boolean, inPlace: boolean): Float32Array {
    const n = p.batch * p.seq * p.heads * p.headDim;
    const x = be.alloc('float32', n) as CpuBuffer;
    const xs = x.data as Float32Array;
    for (let i = 0; i < n; i++) xs[i] = Math.sin(i * 0.613) * 2;
    const out = inPlace ? x : (be.alloc('float32', n) as CpuBuffer);
    const pos = upload(be, positions, 'int32');
    (backward ? be.rotaryBackward : be.rotary).call(be, out, x, pos, p);
    const y = (out.data as Float32Array).slice();
    be.free(x);
    if (!inPlace) be.free(out);
    be.free(pos);
    return y;
  }

  /** The formula of rotary.ts in double, rounded once to float32: what every thread count must give. */
  function reference(p: RotaryParams, positions: number[], sign: number): Float32Array {
    const { heads, headDim, rotaryDim, base, positionScale } = p;
    const half = rotaryDim / 2;
    const x = Float32Array.from({ length: p.batch * p.seq * heads * headDim }, (_, i) => Math.sin(i * 0.613) * 2);
    const y = x.slice();
    positions.forEach((q, t) => {
      for (let h = 0; h < heads; h++) {
        const a = (t * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const angle = (q / positionScale) * (1 / base ** ((2 * i) / rotaryDim));
          const c = Math.cos(angle);
          const s = sign * Math.sin(angle);
          y[a + i] = x[a + i] * c - x[a + i + half] * s;
          y[a + i + half] = x[a + i + half] * c + x[a + i] * s;
        }
      }
    });
    return y;
  }

  /** The first index where the float32 bits differ, or -1 (vitest's deep equality is slow on 10⁵ elements). */
  function firstDifference(a: Float32Array, b: Float32Array): number {
    const [p, q] = [new Int32Array(a.buffer, a.byteOffset, a.length), new Int32Array(b.buffer, b.byteOffset, b.length)];
    if (p.length !== q.length) return 0;
    for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return i;
    return -1;
  }

  const cases: [string, RotaryParams, number[]][] = [
    // GPT-NeoX-like: a quarter of each head rotates, positions 0..seq-1 per sequence (cos/sin per position)
    ['partial rotary, even headDim', { batch: 4, seq: 33, heads: 12, headDim: 64, rotaryDim: 16, base: 10000, positionScale: 1 }, []],
    // odd headDim (the pass-through moves element by element), far-apart positions (cos/sin per token)
    ['odd headDim, scattered positions', { batch: 3, seq: 41, heads: 9, headDim: 63, rotaryDim: 20, base: 500, positionScale: 2 }, []],
    // more than 64 Ki table entries: the tables go to shared memory
    ['large per-token tables', { batch: 1, seq: 20_000, heads: 2, headDim: 8, rotaryDim: 8, base: 10000, positionScale: 1 }, []],
  ];
  cases[0][2] = Array.from({ length: 4 * 33 }, (_, t) => t % 33);
  cases[1][2] = Array.from({ length: 3 * 41 }, (_, t) => (t * 7919) % 100_003);
  cases[2][2] = Array.from({ length: 20_000 }, (_, t) => t * 3 + (t % 2));

  for (const backward of [false, true]) {
    it(`${backward ? 'rotaryBackward' : 'rotary'}: the formula's bits on one and two threads, in place or not`, () => {
      const before = workerTasks();
      for (const [name, p, positions] of cases) {
        const expected = reference(p, positions, backward ? -1 : 1);
        for (const inPlace of [false, true]) {
          for (const be of [one, two]) {
            expect(firstDifference(rotateOn(be, p, positions, backward, inPlace), expected), `${name}, in place: ${inPlace}`).toBe(-1);
          }
        }
      }
      expect(workerTasks()).toBeGreaterThan(before);
    });
  }

  it('tables of more than 64 Ki entries go to shared memory, so the call still splits across threads', () => {
    const [, p, positions] = cases[2];
    // A busy machine may leave every task to the calling thread once; three tries.
    const before = workerTasks();
    for (let i = 0; i < 3 && workerTasks() === before; i++) rotateOn(two, p, positions, false, false);
    expect(workerTasks()).toBeGreaterThan(before);
  });

  it('16-bit storage still rotates through float32 (bfloat16 in, float32 out)', async () => {
    const p: RotaryParams = { batch: 1, seq: 2, heads: 1, headDim: 6, rotaryDim: 4, base: 10000, positionScale: 1 };
    const x = [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6];
    const pos = [0, 1];
    const be = backend();
    const out = be.alloc('float32', 12);
    be.rotary(out, upload(be, x, 'bfloat16'), upload(be, pos, 'int32'), p);
    const y = await download(be, out);
    expectClose(y.slice(0, 6), x.slice(0, 6), 1e-7); // position 0: the identity
    expectClose([y[10], y[11]], [-5, -6], 0); // the pass-through features
    be.destroy();
  });
});
