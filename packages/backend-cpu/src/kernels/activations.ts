/**
 * GELU (exact and tanh approximation) and SwiGLU's silu(gate)·up, with their backward passes.
 *
 * GELU and geluBackward of x in (−4, 4) come from tables of cubics in float32 arithmetic (math.ts:
 * `geluTables`, `geluTableValue`): a cell per 1/128 of a binade of |x|, c0 + u·(c1 + u·(c2 +
 * u·c3)) with u = x − xc exact, the cubic within 1e-8 of the function (built from its Taylor series
 * in double precision), so a result is within 1.5 float32 ulp of the exact value (geluBackward
 * within 2e-10 absolute around its zero at x ≈ −0.75). Elsewhere (|x| ≥ 4, NaN) they are computed
 * in double precision per element and rounded once to float32, with the fast functions of
 * ./math.ts: exact GELU, for |x| < 2.2·√2, Φ(x) = (1 + erf(x/√2))/2 with `erfPoly`; beyond, Φ(x) =
 * erfc(−x/√2)/2 or 1 − erfc(x/√2)/2 with erfc from `erfcScaled`·`fastExp` (relative error below
 * 1.7e-9, so x·Φ(x) keeps its relative accuracy far into the negative tail); the tanh form takes e^x
 * from `fastExp` (relative error below 2e-12); x is clamped to −64 (and to 64 for the backward
 * passes), where the results are their limits (−0, or dy·0 and dy), so that ±∞ give them too.
 * SiLU is computed the same way in double precision, within about 1e-8 (relative) of the exact
 * value, below half a float32 ulp (6e-8).
 *
 * Where the engine has WebAssembly SIMD the same arithmetic runs there (wasm/elementwise.as.ts:
 * GELU four float32 lanes at a time from the same tables, which the module builds itself; SiLU two
 * float64 lanes at a time; chunk by chunk in the module's memory), with the same float32 results
 * bit for bit; the loops below are its meaning and run without it.
 */
import type { DeviceBuffer, KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, chunkOf, flushF32, readF32, writeF32 } from '../storage.js';
import { elementwiseWasm, runChunks, runParallel } from './elementwise-wasm.js';
import { ERF_POLY_MAX, erfcScaled, erfPoly, fastExp, GELU_ROWS, GELU_X_MAX, GELU_X_MIN, geluTableAt, geluTables } from './math.js';

export { erf } from './math.js';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TANH_C = Math.sqrt(2 / Math.PI);
const TANH_A = 0.044715;
/** |x| below which GELU takes erf(x/√2) from `erfPoly`. */
const POLY_X = ERF_POLY_MAX * Math.SQRT2;

/** Runs `f` over elements [0, n) of one output and up to two inputs, chunk by chunk for 16-bit storage. */
function map(
  n: number,
  o: CpuBuffer,
  x: CpuBuffer,
  y: CpuBuffer | null,
  f: (len: number, out: Float32Array, oi: number, xs: Float32Array, xi: number, ys: Float32Array, yi: number) => void,
): void {
  const step = y === null ? chunkOf(n, o, x) : chunkOf(n, o, x, y);
  for (let s = 0; s < n; s += step) {
    const len = Math.min(step, n - s);
    const xs = readF32(x, s, len, 0);
    const ys = y === null ? xs : readF32(y, s, len, 1);
    const out = writeF32(o, len, 2);
    f(len, out, at(o, s), xs, at(x, s), ys, y === null ? 0 : at(y, s));
    flushF32(o, s, len, out);
  }
}

/** x·Φ(x) for |x| ≥ POLY_X (and NaN): through erfc(|x|/√2). */
function geluTail(v: number): number {
  const z = Math.abs(v) * SQRT1_2;
  const c = erfcScaled(z) * fastExp(-z * z);
  return v >= 0 ? v * (1 - 0.5 * c) : 0.5 * v * c;
}

/** x·Φ(x) in double precision (the module's geluExact2). */
function geluExactF64(v: number): number {
  return v > -POLY_X && v < POLY_X ? 0.5 * v * (1 + erfPoly(v * SQRT1_2)) : geluTail(v);
}

// tanh(u) = 2·sigmoid(2u) − 1, so 0.5·x·(1 + tanh(u)) = x / (1 + e^(−2u)) (the module's geluTanh2).
function geluTanhF64(v: number): number {
  return v / (1 + fastExp(-2 * TANH_C * (v + TANH_A * v * v * v)));
}

/** gelu of x outside the tables (the module's geluSlow): x ≤ −64 and −∞ as −64, whose gelu rounds to −0. */
function geluSlow(v: number, tanh: number): number {
  const w = Math.max(v, -64);
  return tanh ? geluTanhF64(w) : geluExactF64(w);
}

function geluLoop(tanh: number): (len: number, out: Float32Array, oi: number, xs: Float32Array, xi: number) => void {
  return (len, out, oi, xs, xi) => {
    const t = geluTables();
    const base = 4 * tanh * GELU_ROWS;
    const bits = new Uint32Array(xs.buffer, xs.byteOffset + 4 * xi, len);
    for (let i = 0; i < len; i++) {
      const v = xs[xi + i];
      out[oi + i] = v > GELU_X_MIN && v < GELU_X_MAX ? geluTableAt(t, base, true, bits[i], v) : geluSlow(v, tanh);
    }
  };
}

const geluExact = geluLoop(0);
const geluTanh = geluLoop(1);

/** exact: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)); approximate: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function gelu(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = out as CpuBuffer;
  const n = o.size;
  const xb = x as CpuBuffer;
  const w = elementwiseWasm();
  if (w !== null) {
    if (runParallel(ctx, n, [xb], [o], 'gelu', [{ out: 0 }, { in: 0 }, 'start', 'end', approximate])) return;
    const p = w.ptr;
    runChunks(w, n, [xb], [o], (s, e) => w.fns.gelu(p[1], p[0], s, e, approximate));
    return;
  }
  map(n, o, xb, null, approximate ? geluTanh : geluExact);
}

/** Φ(x) for |x| ≥ POLY_X (and NaN), given e = e^(−x²/2). */
function cdfTail(v: number, e: number): number {
  const c = erfcScaled(Math.abs(v) * SQRT1_2) * e;
  return v >= 0 ? 1 - 0.5 * c : 0.5 * c;
}

/** dy·(Φ(x) + x·φ(x)) in double precision (the module's geluExactBackward2). */
function geluExactBackwardF64(g: number, v: number): number {
  const e = fastExp(-0.5 * v * v); // √(2π)·φ(x)
  const cdf = v > -POLY_X && v < POLY_X ? 0.5 * (1 + erfPoly(v * SQRT1_2)) : cdfTail(v, e);
  return g * (cdf + v * INV_SQRT_2PI * e);
}

// With s = sigmoid(2u) = 1/(1 + e), e = e^(−2u): 0.5·(1 + t) = s and 1 − t² = 4·s·(e·s) (the module's geluTanhBackward2).
function geluTanhBackwardF64(g: number, v: number): number {
  const v2 = v * v;
  const e = fastExp(-2 * TANH_C * (v + TANH_A * v2 * v));
  const s = 1 / (1 + e);
  const es = e === Number.POSITIVE_INFINITY ? 1 : e * s; // 1 − s without cancellation
  return g * (s + 2 * v * s * es * TANH_C * (1 + 3 * TANH_A * v2));
}

/** dy·gelu'(x) for x outside the tables (the module's geluBackwardSlow): x clamped to [−64, 64], where gelu' is 0 or 1. */
function geluBackwardSlow(g: number, v: number, tanh: number): number {
  const w = Math.min(Math.max(v, -64), 64);
  return tanh ? geluTanhBackwardF64(g, w) : geluExactBackwardF64(g, w);
}

function geluBackwardLoop(
  tanh: number,
): (len: number, out: Float32Array, oi: number, g: Float32Array, gi: number, xs: Float32Array, xi: number) => void {
  return (len, out, oi, g, gi, xs, xi) => {
    const t = geluTables();
    const base = 4 * (2 + tanh) * GELU_ROWS;
    const bits = new Uint32Array(xs.buffer, xs.byteOffset + 4 * xi, len);
    for (let i = 0; i < len; i++) {
      const v = xs[xi + i];
      const dy = g[gi + i];
      out[oi + i] = v > GELU_X_MIN && v < GELU_X_MAX ? dy * geluTableAt(t, base, false, bits[i], v) : geluBackwardSlow(dy, v, tanh);
    }
  };
}

const geluExactBackward = geluBackwardLoop(0);
const geluTanhBackward = geluBackwardLoop(1);

/** exact: y' = Φ(x) + x·φ(x); approximate: y' = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). */
function geluBackward(ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = dx as CpuBuffer;
  const n = o.size;
  const g = dy as CpuBuffer;
  const xs = x as CpuBuffer;
  const w = elementwiseWasm();
  if (w !== null) {
    if (runParallel(ctx, n, [g, xs], [o], 'geluBackward', [{ out: 0 }, { in: 0 }, { in: 1 }, 'start', 'end', approximate])) return;
    const p = w.ptr;
    runChunks(w, n, [g, xs], [o], (s, e) => w.fns.geluBackward(p[2], p[0], p[1], s, e, approximate));
    return;
  }
  map(n, o, g, xs, approximate ? geluTanhBackward : geluExactBackward);
}

function siluMulLoop(len: number, out: Float32Array, oi: number, gs: Float32Array, gi: number, us: Float32Array, ui: number): void {
  for (let i = 0; i < len; i++) {
    const v = gs[gi + i];
    out[oi + i] = (v / (1 + fastExp(-v))) * us[ui + i];
  }
}

/** out = silu(gate) · up, silu(x) = x·sigmoid(x). */
function siluMul(ctx: CpuContext, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const o = out as CpuBuffer;
  const n = o.size;
  const gs = gate as CpuBuffer;
  const us = up as CpuBuffer;
  const w = elementwiseWasm();
  if (w !== null) {
    if (runParallel(ctx, n, [gs, us], [o], 'siluMul', [{ out: 0 }, { in: 0 }, { in: 1 }, 'start', 'end'])) return;
    const p = w.ptr;
    runChunks(w, n, [gs, us], [o], (s, e) => w.fns.siluMul(p[2], p[0], p[1], s, e));
    return;
  }
  map(n, o, gs, us, siluMulLoop);
}

/** dUp = dy · silu(gate); dGate = dy · up · s·(1 + gate·(1 − s)) with s = sigmoid(gate). */
const siluMulBackward: KernelImpl<CpuContext, 'siluMulBackward'> = (ctx, dGate, dUp, dy, gate, up) => {
  const dgb = dGate as CpuBuffer;
  const n = dgb.size;
  const dub = dUp as CpuBuffer;
  const gb = dy as CpuBuffer;
  const gateb = gate as CpuBuffer;
  const upb = up as CpuBuffer;
  const w = elementwiseWasm();
  if (w !== null) {
    const args = [{ out: 0 }, { out: 1 }, { in: 0 }, { in: 1 }, { in: 2 }, 'start', 'end'] as const;
    if (runParallel(ctx, n, [gb, gateb, upb], [dgb, dub], 'siluMulBackward', args)) return;
    const p = w.ptr;
    runChunks(w, n, [gb, gateb, upb], [dgb, dub], (s, e) => w.fns.siluMulBackward(p[3], p[4], p[0], p[1], p[2], s, e));
    return;
  }
  // Outputs may alias inputs (e.g. dGate = gate): each element reads all its inputs before writing.
  const step = chunkOf(n, dgb, dub, gb, gateb, upb);
  for (let s = 0; s < n; s += step) {
    const len = Math.min(step, n - s);
    const g = readF32(gb, s, len, 0);
    const gs = readF32(gateb, s, len, 1);
    const us = readF32(upb, s, len, 2);
    const dG = writeF32(dgb, len, 3);
    const dU = writeF32(dub, len, 4);
    const gi = at(gb, s);
    const gsi = at(gateb, s);
    const ui = at(upb, s);
    const dgi = at(dgb, s);
    const dui = at(dub, s);
    for (let i = 0; i < len; i++) {
      const dyi = g[gi + i];
      const v = gs[gsi + i];
      const u = us[ui + i];
      const sg = 1 / (1 + fastExp(-v));
      dU[dui + i] = dyi * v * sg;
      dG[dgi + i] = dyi * u * sg * (1 + v * (1 - sg));
    }
    flushF32(dgb, s, len, dG);
    flushF32(dub, s, len, dU);
  }
};

/** The activation kernels; their arguments are checked in core (kernelChecks). */
export const activationKernels = { gelu, geluBackward, siluMul, siluMulBackward } satisfies KernelFamily<CpuContext>;
