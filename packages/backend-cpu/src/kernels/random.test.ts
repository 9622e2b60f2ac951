import { encode, philoxNormal, philoxUniform } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, download, upload } from '../test-helpers.js';

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
