import { decode, encode, philoxUniform } from '@peft/core';
import { reference } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { backend, upload } from '../test-helpers.js';

const bits = (raw: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; length: number }) =>
  raw instanceof Float32Array ? new Uint32Array(raw.buffer, raw.byteOffset, raw.length) : Uint16Array.from(raw);

/** Row r of rows × features keeps element j iff philoxUniform(k0 + k1·2³², key·2²⁶ + pos·⌈F/4⌉)[j] ≥ p. */
function expected(xs: Float32Array, rows: number, features: number, seed: number, rowKeys: Int32Array, p: number): Float32Array {
  const out = new Float32Array(rows * features);
  const scale = p < 1 ? 1 / (1 - p) : 0;
  for (let r = 0; r < rows; r++) {
    const u = philoxUniform(seed, rowKeys[2 * r]! * 2 ** 26 + rowKeys[2 * r + 1]! * Math.ceil(features / 4), features);
    for (let j = 0; j < features; j++) out[r * features + j] = u[j]! >= Math.fround(p) ? xs[r * features + j]! * scale : 0;
  }
  return out;
}

describe('rowDropout on the CPU', () => {
  it('equals the per-row Philox formula bit for bit: rows across chunks, a row longer than a chunk, every dtype pair', async () => {
    const be = backend();
    // seed = k0 + k1·2³² with k1 < 2²¹, so that philoxUniform takes it as a seed.
    const k0 = 0x9abcdef1;
    const k1 = 0x12345;
    const streamKeys = upload(be, [7, 8, k0 | 0, k1], 'int32');
    for (const [rows, features] of [
      [5000, 7],
      [3, 5],
      [2, 20_001],
      [4099, 4],
      [1, 1],
    ] as const) {
      const n = rows * features;
      // Scattered keys and positions (a row per philox call), then examples of consecutive
      // positions (rows sharing a call: runs longer than a chunk's scratch for 5000 × 7).
      const scattered = Int32Array.from({ length: 2 * rows }, (_, i) =>
        i % 2 === 0 ? (i * 7919) % 2 ** 27 : Math.floor(2 ** 26 / Math.ceil(features / 4)) - 1 - ((i >> 1) % 5),
      );
      const runs = Int32Array.from({ length: 2 * rows }, (_, i) => (i % 2 === 0 ? 64 + Math.floor(i / 2 / 3000) : 5 + ((i >> 1) % 3000)));
      for (const rowKeys of [scattered, runs]) {
        const rk = upload(be, rowKeys, 'int32');
        const xs = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
        for (const [xd, od] of [
          ['float32', 'float32'],
          ['bfloat16', 'bfloat16'],
          ['float16', 'float16'],
          ['float32', 'bfloat16'],
        ] as const) {
          const x = upload(be, xs, xd);
          const xr = decode(encode(xs, xd), xd) as Float32Array;
          const out = be.alloc(od, n);
          for (const p of [0, 0.1, 0.5]) {
            const want = bits(encode(expected(xr, rows, features, k0 + k1 * 2 ** 32, rowKeys, p), od));
            for (const backward of [false, true]) {
              const params = { p, rows, features, stream: 1 };
              if (backward) be.rowDropoutBackward(out, x, streamKeys, rk, params);
              else be.rowDropout(out, x, streamKeys, rk, params);
              const got = bits(await be.read(out));
              for (let i = 0; i < n; i++)
                if (got[i] !== want[i])
                  throw new Error(`${rows}×${features} ${xd} → ${od} p=${p} backward=${backward}: element ${i} differs`);
            }
          }
          be.free(x);
          be.free(out);
        }
        be.free(rk);
      }
    }
    be.destroy();
  });

  it('matches the oracle with stream keys whose high bits are set', async () => {
    const be = backend();
    const sk = [-5, -1_000_000_000];
    const rk = [3, 0, 2 ** 27 - 1, 12, 64, 1];
    const x = Array.from({ length: 3 * 9 }, (_, i) => i + 1);
    const p = { p: 0.4, rows: 3, features: 9, stream: 0 };
    const out = be.alloc('float32', x.length);
    be.rowDropout(out, upload(be, x), upload(be, sk, 'int32'), upload(be, rk, 'int32'), p);
    expect(Array.from(await be.read(out))).toEqual(Array.from(Float32Array.from(reference.rowDropout(x, sk, rk, p))));
    be.destroy();
  });

  it('refuses keys outside [0, 2^27) and positions past the example, naming the row', () => {
    const be = backend();
    const x = upload(be, new Array(8).fill(1));
    const out = be.alloc('float32', 8);
    const sk = upload(be, [1, 2], 'int32');
    const p = { p: 0.5, rows: 2, features: 4, stream: 0 };
    expect(() => be.rowDropout(out, x, sk, upload(be, [0, 0, 2 ** 27, 0], 'int32'), p)).toThrow(
      'rowDropout: row 1 has example key 134217728 (rowKeys[2]), outside [0, 2^27)',
    );
    expect(() => be.rowDropoutBackward(out, x, sk, upload(be, [0, -1, 0, 0], 'int32'), p)).toThrow(
      'rowDropoutBackward: row 0 has position -1 (rowKeys[1]), outside the 2^26 counters of one example for rows of 4 features',
    );
    expect(() => be.rowDropout(out, x, sk, upload(be, [0, 2 ** 26, 0, 0], 'int32'), p)).toThrow('row 0 has position 67108864');
    expect(() => be.rowDropout(out, x, sk, upload(be, [0, 0], 'int32'), p)).toThrow(
      'rowDropout: rowKeys has 2 elements but the parameters need at least 4',
    );
    expect(() => be.rowDropout(out, x, sk, upload(be, [0, 0, 0, 0], 'int32'), { ...p, stream: 1 })).toThrow(
      'rowDropout: stream 1 needs streamKeys[2..3], but streamKeys holds 1 key pairs (2 elements)',
    );
    expect(() => be.rowDropout(out, x, sk, upload(be, [0, 0, 0, 0], 'int32'), { ...p, rows: 3 })).toThrow(
      'rowDropout: out has 8 elements but rows · features is 3 · 4 = 12',
    );
    expect(() => be.rowDropout(out, x, upload(be, [1, 2]), upload(be, [0, 0, 0, 0], 'int32'), p)).toThrow(
      'rowDropout: streamKeys has dtype float32 but must be int32',
    );
    be.destroy();
  });
});
