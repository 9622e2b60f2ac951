/**
 * Conformance cases of rowDropout and rowDropoutBackward (per-example dropout keyed by device
 * data): rows whose length is and is not a multiple of 4, p = 0, several streams, example keys
 * near 2²⁷ and counters above 2³² (key ≥ 64), positions up to the end of an example's counters.
 */
import type { RowDropoutParams } from '../backend.js';
import type { DType } from '../dtype.js';
import type { Add } from './conformance.js';
import { hostTensor as t } from './harness.js';
import * as ref from './reference.js';

interface RowCase {
  rows: number;
  features: number;
  p: number;
  streams: number;
  stream: number;
  /** Row r's (example key, position). */
  keys: (r: number) => [number, number];
}

const KEY_TOP = 2 ** 27 - 1;

const CASES: RowCase[] = [
  { rows: 1, features: 1, p: 0.5, streams: 1, stream: 0, keys: () => [0, 0] },
  { rows: 6, features: 6, p: 0.25, streams: 1, stream: 0, keys: (r) => [[5, 0, 11][r >> 1]!, r & 1] },
  { rows: 5, features: 8, p: 0.1, streams: 3, stream: 2, keys: (r) => [r * 977 + 3, 7 * r] },
  { rows: 4, features: 7, p: 0, streams: 2, stream: 1, keys: (r) => [r, r] },
  { rows: 3, features: 1031, p: 0.5, streams: 1, stream: 0, keys: (r) => [64 + r, r] },
  // Keys next to 2²⁷ and the last positions an example holds: counters near 2⁵³.
  { rows: 4, features: 5, p: 0.3, streams: 2, stream: 0, keys: (r) => [KEY_TOP - (r & 1), 2 ** 25 - 1 - r] },
  { rows: 3, features: 1031, p: 0.2, streams: 1, stream: 0, keys: (r) => [KEY_TOP - r, Math.floor(2 ** 26 / 258) - 1 - r] },
];

export function rowDropoutCases(add: Add, D: DType): void {
  for (const backward of [false, true]) {
    const K = backward ? 'rowDropoutBackward' : 'rowDropout';
    add(`${K} ${D}`, [D], async ({ check, rng }) => {
      for (const c of CASES) {
        const n = c.rows * c.features;
        const p: RowDropoutParams = { p: c.p, rows: c.rows, features: c.features, stream: c.stream };
        const x = t(D, rng.normal(n));
        // Stream keys with the high bit set in some words (negative as int32).
        const streamKeys = t('int32', Array.from(rng.int(2 * c.streams, -(2 ** 31), 2 ** 31)));
        const rowKeys = t('int32', Array.from({ length: c.rows }, (_, r) => c.keys(r)).flat());
        const expected = backward
          ? ref.rowDropoutBackward(x.values, streamKeys.values, rowKeys.values, p)
          : ref.rowDropout(x.values, streamKeys.values, rowKeys.values, p);
        await check({
          sub: `rows=${c.rows} features=${c.features} p=${c.p} stream=${c.stream}/${c.streams} key0=${c.keys(0)[0]}`,
          inputs: { x, streamKeys, rowKeys },
          outputs: { out: { dtype: D, size: n, expected, scale: 2, shape: [c.rows, c.features] } },
          call: (b, o) =>
            backward ? b.rowDropoutBackward(o.out, o.x, o.streamKeys, o.rowKeys, p) : b.rowDropout(o.out, o.x, o.streamKeys, o.rowKeys, p),
        });
      }
    });
  }
}
