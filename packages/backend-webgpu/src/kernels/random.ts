/**
 * Philox4x32-10 random numbers and dropout, bit for bit core's `philoxUniform` (the uniform draw
 * u = (word >>> 8)·2⁻²⁴ is exact in float32, so dropout masks match every other backend); normal
 * numbers are Box–Muller on lane pairs in float32.
 */
import type { DropoutParams, KernelFamily, RowDropoutParams } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map } from './common.js';
import { SINCOS } from './math.js';

const PHILOX = /* wgsl */ `
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let aL = a & 0xffffu; let aH = a >> 16u; let bL = b & 0xffffu; let bH = b >> 16u;
  let lolo = aL * bL; let lohi = aL * bH; let hilo = aH * bL; let hihi = aH * bH;
  let cross = (lolo >> 16u) + (lohi & 0xffffu) + (hilo & 0xffffu);
  return vec2<u32>(hihi + (lohi >> 16u) + (hilo >> 16u) + (cross >> 16u), a * b);
}
// The 4 words of the 64-bit counter (c0, c1) under the key (key0, key1).
fn philox_at(c0: u32, c1: u32, key0: u32, key1: u32) -> vec4<u32> {
  var x = vec4<u32>(c0, c1, 0u, 0u);
  var k0 = key0;
  var k1 = key1;
  for (var r = 0u; r < 10u; r++) {
    let p0 = mulhilo(0xd2511f53u, x.x);
    let p1 = mulhilo(0xcd9e8d57u, x.z);
    x = vec4<u32>(p1.x ^ x.y ^ k0, p1.y, p0.x ^ x.w ^ k1, p0.y);
    k0 = k0 + 0x9e3779b9u;
    k1 = k1 + 0xbb67ae85u;
  }
  return x;
}
fn uniform01(w: u32) -> f32 { return f32(w >> 8u) * 5.9604644775390625e-8; }
`;

/** The block (offset + blk) of the stream with the launch's key (P.k0, P.k1) and offset (P.off0, P.off1). */
const PHILOX_STREAM = /* wgsl */ `
fn philox_block(blk: u32) -> vec4<u32> {
  let c0 = P.off0 + blk;
  let c1 = P.off1 + select(0u, 1u, c0 < P.off0);
  return philox_at(c0, c1, P.k0, P.k1);
}
`;

/** The key (seed) and the block counter (offset) as pairs of 32-bit words. */
function streamParams(seed: number, offset: number): [string, 'u32', number][] {
  const k0 = seed % 2 ** 32;
  const k1 = Math.floor(seed / 2 ** 32);
  return [
    ['k0', 'u32', k0],
    ['k1', 'u32', k1],
    ['off0', 'u32', offset % 2 ** 32],
    ['off1', 'u32', Math.floor(offset / 2 ** 32)],
  ];
}

/** random, dropout, rowDropout and their backward kernels; their arguments are checked in core (kernelChecks). */
export const randomKernels = {
  random(ctx, out, p) {
    const body =
      p.distribution === 'uniform'
        ? 'let w = philox_block(i / 4u)[i % 4u]; st_out(i, P.low + P.scale * uniform01(w));'
        : `let words = philox_block(i / 4u);
  let lane = i % 4u;
  let pair = lane & 2u;
  let w1 = words[pair];
  let w2 = words[pair + 1u];
  // u1 = 1 − e ∈ (0, 1]; log(1 − e) by its series when e is small (log loses digits near 1).
  let e = f32(0xffffffu - (w1 >> 8u)) * 5.9604644775390625e-8;
  var lg = log(1.0 - e);
  if (e < 0.01) { lg = -e * (1.0 + e * (0.5 + e * (0.3333333333 + e * 0.25))); }
  let rad = sqrt(-2.0 * lg);
  // 2π·u2 shifted to [−π, π): cos and sin change sign.
  let sc = sincos(6.283185307179586 * (uniform01(w2) - 0.5));
  let z = select(-rad * sc.y, -rad * sc.x, (lane & 1u) == 1u);
  st_out(i, P.low + P.scale * z);`;
    map(
      ctx,
      'random',
      out.size,
      [{ name: 'out', buf: out as WebGpuBuffer, access: 'write' }],
      body,
      [...streamParams(p.seed, p.offset), ['low', 'f32', p.low], ['scale', 'f32', p.distribution === 'uniform' ? p.high - p.low : p.high]],
      PHILOX + PHILOX_STREAM + SINCOS,
    );
  },

  /** out = x · mask / (1 − p), mask[i] = uniform(seed, offset)[i] ≥ p (p compared in float32). */
  dropout(ctx, out, x, p) {
    applyMask(ctx, 'dropout', out as WebGpuBuffer, x as WebGpuBuffer, p);
  },

  /** dx = dy · mask / (1 − p), the mask regenerated from (seed, offset). */
  dropoutBackward(ctx, dx, dy, p) {
    applyMask(ctx, 'dropoutBackward', dx as WebGpuBuffer, dy as WebGpuBuffer, p);
  },

  /** Per-example dropout keyed by device data (see `Backend.rowDropout`). */
  rowDropout(ctx, out, x, streamKeys, rowKeys, p) {
    applyRowMask(ctx, 'rowDropout', out as WebGpuBuffer, x as WebGpuBuffer, streamKeys as WebGpuBuffer, rowKeys as WebGpuBuffer, p);
  },

  /** dx = dy · mask / (1 − p), rowDropout's mask regenerated from the same keys. */
  rowDropoutBackward(ctx, dx, dy, streamKeys, rowKeys, p) {
    applyRowMask(ctx, 'rowDropoutBackward', dx as WebGpuBuffer, dy as WebGpuBuffer, streamKeys as WebGpuBuffer, rowKeys as WebGpuBuffer, p);
  },
} satisfies KernelFamily<Ctx>;

function applyMask(ctx: Ctx, K: string, out: WebGpuBuffer, x: WebGpuBuffer, p: DropoutParams): void {
  const bindings = [
    { name: 'out', buf: out, access: 'write' },
    { name: 'x', buf: x, access: 'read' },
  ] as const;
  map(
    ctx,
    K,
    out.size,
    bindings,
    'let u = uniform01(philox_block(i / 4u)[i % 4u]); st_out(i, select(0.0, ld_x(i) * P.scale, u >= P.p));',
    [...streamParams(p.seed, p.offset), ['p', 'f32', p.p], ['scale', 'f32', p.p < 1 ? 1 / (1 - p.p) : 0]],
    PHILOX + PHILOX_STREAM,
  );
}

/**
 * rowDropout(±Backward): element i is feature j of row r = ⌊i/F⌋; the key is the pair `stream` of
 * sk, the counter rk[2r] · 2²⁶ + rk[2r+1] · ⌈F/4⌉ + ⌊j/4⌋ in 64 bits (u32 pairs, key and position
 * read as uint32, wrapping past 2⁶⁴). Only rk[2r], rk[2r+1] and sk's pair are read, so any key
 * values draw some mask without reading out of bounds.
 */
function applyRowMask(
  ctx: Ctx,
  K: string,
  out: WebGpuBuffer,
  x: WebGpuBuffer,
  sk: WebGpuBuffer,
  rk: WebGpuBuffer,
  p: RowDropoutParams,
): void {
  const bindings = [
    { name: 'out', buf: out, access: 'write' },
    { name: 'x', buf: x, access: 'read' },
    { name: 'sk', buf: sk, access: 'read' },
    { name: 'rk', buf: rk, access: 'read' },
  ] as const;
  map(
    ctx,
    K,
    out.size,
    bindings,
    `let r = i / P.f;
  let j = i - r * P.f;
  let key = bitcast<u32>(ld_rk(2u * r));
  let pos = bitcast<u32>(ld_rk(2u * r + 1u));
  let pb = mulhilo(pos, P.blocks);
  let lo1 = (key << 26u) + pb.y;
  let hi1 = (key >> 6u) + pb.x + select(0u, 1u, lo1 < pb.y);
  let lo = lo1 + j / 4u;
  let hi = hi1 + select(0u, 1u, lo < lo1);
  let words = philox_at(lo, hi, bitcast<u32>(ld_sk(2u * P.stream)), bitcast<u32>(ld_sk(2u * P.stream + 1u)));
  st_out(i, select(0.0, ld_x(i) * P.scale, uniform01(words[j % 4u]) >= P.p));`,
    [
      ['f', 'u32', p.features],
      ['blocks', 'u32', Math.ceil(p.features / 4)],
      ['stream', 'u32', p.stream],
      ['p', 'f32', p.p],
      ['scale', 'f32', p.p < 1 ? 1 / (1 - p.p) : 0],
    ],
    PHILOX,
  );
}
