import { decode, encode, philoxNormal, philoxUniform, type RawArray } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, download, upload } from '../test-helpers.js';
import { randomWasm } from './random.js';

describe('random', () => {
  it('uniform and normal are bit-identical to core Philox', async () => {
    const be = backend();
    const out = be.alloc('float32', 1001);
    const seed = 2 ** 40 + 12345;
    be.random(out, { seed, offset: 7, distribution: 'uniform', low: -2, high: 3 });
    expect(await be.read(out)).toEqual(philoxUniform(seed, 7, 1001, -2, 3));
    be.random(out, { seed, offset: 7, distribution: 'normal', low: 1, high: 0.5 });
    expect(await be.read(out)).toEqual(philoxNormal(seed, 7, 1001, 1, 0.5));
    const bf = be.alloc('bfloat16', 9);
    be.random(bf, { seed: 1, offset: 0, distribution: 'uniform', low: 0, high: 1 });
    expect(await be.read(bf)).toEqual(encode(philoxUniform(1, 0, 9), 'bfloat16'));
    expect(() => be.random(out, { seed: -1, offset: 0, distribution: 'uniform', low: 0, high: 1 })).toThrow(
      /seed must be a non-negative safe integer/,
    );
    be.destroy();
  });
});

describe('dropout', () => {
  it('keeps element i iff philoxUniform[i] ≥ p and scales by 1/(1 − p)', async () => {
    const be = backend();
    const n = 4000;
    const x = upload(
      be,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    const out = be.alloc('float32', n);
    const p = { p: 0.3, seed: 42, offset: 100 };
    be.dropout(out, x, p);
    const y = await download(be, out);
    const u = philoxUniform(42, 100, n);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const want = u[i] >= Math.fround(0.3) ? Math.fround((i + 1) / 0.7) : 0;
      if (Math.abs(y[i] - want) > 1e-6 * want) throw new Error(`element ${i}: ${y[i]} vs ${want}`);
      if (want !== 0) kept++;
    }
    expect(kept / n).toBeGreaterThan(0.67);
    expect(kept / n).toBeLessThan(0.73);
    // backward regenerates the same mask
    const dy = upload(be, new Array(n).fill(1));
    const dx = be.alloc('float32', n);
    be.dropoutBackward(dx, dy, p);
    const g = await download(be, dx);
    for (let i = 0; i < n; i++) expect(g[i] === 0).toBe(y[i] === 0);
    be.destroy();
  });

  it('p = 0 keeps everything, p = 1 gives zeros, p outside [0, 1] is an error', async () => {
    const be = backend();
    const x = upload(be, [1, -2, 3, 4, 5]);
    const out = be.alloc('float32', 5);
    be.dropout(out, x, { p: 0, seed: 1, offset: 0 });
    expect(await download(be, out)).toEqual([1, -2, 3, 4, 5]);
    be.dropout(out, x, { p: 1, seed: 1, offset: 0 });
    expect(await download(be, out)).toEqual([0, 0, 0, 0, 0]);
    expect(() => be.dropout(out, x, { p: 1.5, seed: 1, offset: 0 })).toThrow(/dropout: p must be in \[0, 1\], got 1.5/);
    be.destroy();
  });
});

describe('random in WebAssembly', () => {
  const bits = (a: RawArray) => (a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a);

  it('equals the reference bit for bit across chunks, counter carries, dtypes and (mean, std) ranges', async () => {
    const be = backend();
    const cases = [
      { n: 1, offset: 0, low: 0, high: 1 },
      { n: 7, offset: 3, low: 0.5, high: 2 },
      { n: 40_001, offset: 2 ** 32 - 3003, low: 0, high: 0.02 },
      { n: 16_385, offset: 11, low: -3, high: 1e-35 },
      { n: 1001, offset: 5, low: 0, high: 0 },
      { n: 1001, offset: 5, low: 1e30, high: 1e35 },
      { n: 1001, offset: 5, low: 0, high: 2 ** -99 },
    ];
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      for (const { n, offset, low, high } of cases) {
        const seed = 2 ** 40 + n;
        const out = be.alloc(dtype, n);
        for (const distribution of ['uniform', 'normal'] as const) {
          be.random(out, { seed, offset, distribution, low, high });
          const want = (distribution === 'uniform' ? philoxUniform : philoxNormal)(seed, offset, n, low, high);
          const got = bits(await be.read(out));
          const exp = bits(encode(want, dtype));
          for (let i = 0; i < n; i++) {
            if (got[i] !== exp[i]) throw new Error(`${distribution} ${dtype} n=${n} low=${low} high=${high}: element ${i} differs`);
          }
        }
        be.free(out);
      }
    }
    be.destroy();
  });

  it("normal's fast path stays within its error bounds for all 2²⁴ values of u1 and of the angle", (ctx) => {
    const w = randomWasm();
    if (w === null) ctx.skip();
    const { exports: e } = w!;
    // words, then r, cos, sin per pair in the chunk's result and failure areas
    const P = 4096;
    const words = new Uint32Array(e.memory.buffer, w!.words, 2 * P);
    const parts = new Float64Array(e.memory.buffer, w!.out, 3 * P);
    let rErr = 0;
    let csErr = 0;
    for (let base = 0; base < 2 ** 24; base += P) {
      for (let j = 0; j < P; j++) {
        words[2 * j] = (base + j) * 256;
        words[2 * j + 1] = (base + j) * 256;
      }
      e.normalParts(w!.words, w!.out, P);
      for (let j = 0; j < P; j++) {
        const x = (base + j) * 2 ** -24;
        const r = Math.sqrt(-2 * Math.log(x + 2 ** -24));
        const t = 2 * Math.PI * x;
        rErr = Math.max(rErr, r === 0 ? (parts[3 * j] === 0 ? 0 : 1) : Math.abs(parts[3 * j] - r) / r);
        csErr = Math.max(csErr, Math.abs(parts[3 * j + 1] - Math.cos(t)), Math.abs(parts[3 * j + 2] - Math.sin(t)));
      }
    }
    expect(rErr).toBeLessThan(2 ** -42);
    expect(csErr).toBeLessThan(2 ** -47);
  });

  it('dropout and dropoutBackward equal the mask formula bit for bit across chunks and dtypes', async () => {
    const be = backend();
    const n = 40_003;
    const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 3.3e38, -1e-40];
    const xs = Float32Array.from({ length: n }, (_, i) => (i < special.length ? special[i]! : Math.sin(i) * 3));
    const pairs = [
      ['float32', 'float32'],
      ['bfloat16', 'bfloat16'],
      ['float16', 'float16'],
      ['float32', 'bfloat16'],
      ['bfloat16', 'float32'],
    ] as const;
    for (const [xd, od] of pairs) {
      const x = upload(be, xs, xd);
      const xr = decode(encode(xs, xd), xd);
      const out = be.alloc(od, n);
      for (const prob of [0, 0.1, 0.5, 0.999, 1]) {
        const p = { p: prob, seed: 2 ** 35 + 1, offset: 2 ** 32 - 1005 };
        const u = philoxUniform(p.seed, p.offset, n);
        const scale = prob < 1 ? 1 / (1 - prob) : 0;
        const want = new Float32Array(n);
        for (let i = 0; i < n; i++) want[i] = u[i] >= Math.fround(prob) ? xr[i] * scale : 0;
        const exp = bits(encode(want, od));
        for (const backward of [false, true]) {
          if (backward) be.dropoutBackward(out, x, p);
          else be.dropout(out, x, p);
          const raw = await be.read(out);
          const got = bits(raw);
          for (let i = 0; i < n; i++) {
            if (got[i] !== exp[i] && !Number.isNaN(want[i])) {
              throw new Error(`${backward ? 'dropoutBackward' : 'dropout'} ${xd} → ${od} p=${prob}: element ${i} differs`);
            }
          }
          expect(Number.isNaN(decode(raw, od)[0]!)).toBe(Number.isNaN(want[0]!));
        }
      }
    }
    be.destroy();
  });
});
