/**
 * Scaled dot-product attention, flash style: nothing of size seqQ × seqK is ever stored.
 * q is [batch, seqQ, heads, headDim]; k and v are [batch, seqK, kvHeads, headDim]; head h reads kv
 * head ⌊h / (heads / kvHeads)⌋. Query i sees key j when the mask (int32 [batch, seqK], 0 =
 * padding) marks j real and, if causal, j ≤ i + (seqK − seqQ). A row that sees no key gets out = 0
 * and lse = −Infinity, and passes no gradient.
 *
 * Forward: one workgroup of 64 threads per query row walks the keys in tiles of 64 (a thread
 * scores one key of the tile), keeping the running max, sum and output (online softmax); it saves
 * lse. Backward, from lse: pass A (one workgroup per query row) recomputes P and dP = dO·Vᵀ,
 * takes D_i = Σ_j P_ij·dP_ij and writes dq = scale·Σ_j P_ij·(dP_ij − D_i)·k_j; pass B (one
 * workgroup per key row and kv head) sums dk and dv over the queries and the query heads that
 * share the kv head, so no float atomics are needed. headDim ≤ 256.
 *
 * `rows` form (CPU-backed adapters such as SwiftShader): the same three passes with one thread per
 * query row (forward, dq) or per key row (dk, dv), headDim compiled in, q/k/v rows and the
 * accumulators in registers, no workgroup memory and no barriers. A CPU implementation runs the
 * 64 threads of a `tiled` workgroup one after another at every barrier, and with headDim 16 three
 * quarters of them idle through the value loops; there this form is an order of magnitude faster.
 */
import type { AttentionParams, KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import type { LaunchBinding } from '../runtime.js';
import { type Ctx, wgSum } from './common.js';

export type AttentionKind = 'tiled' | 'rows';

const T = 64;
const DMAX = 256;
const PER = DMAX / T;

const params = (p: AttentionParams) =>
  [
    ['batch', 'u32', p.batch],
    ['seqQ', 'u32', p.seqQ],
    ['seqK', 'u32', p.seqK],
    ['heads', 'u32', p.heads],
    ['kvHeads', 'u32', p.kvHeads],
    ['D', 'u32', p.headDim],
    ['group', 'u32', p.kvHeads === 0 ? 1 : p.heads / p.kvHeads],
    ['scale', 'f32', p.scale],
    ['causal', 'u32', p.causal ? 1 : 0],
  ] as [string, 'u32' | 'f32', number][];

/** WGSL: the end (exclusive) of the keys query i may see, and whether key j of batch b is real. */
const VISIBILITY = /* wgsl */ `
fn key_end(i: u32) -> u32 {
  if (P.causal == 0u) { return P.seqK; }
  let e = i32(i) + i32(P.seqK) - i32(P.seqQ) + 1;
  return u32(clamp(e, 0, i32(P.seqK)));
}
fn key_real(b: u32, j: u32) -> bool { return HAS_MASK == 0u || ld_mask(b * P.seqK + j) != 0; }
`;

/** WGSL: query row `r` (an index over [batch, heads, seqQ]) as query i, head h, batch b, kv head kh and q's offset qo; `dim` is headDim. */
const queryRow = (r: string, dim: string): string => `let i = ${r} % P.seqQ;
  let h = (${r} / P.seqQ) % P.heads;
  let b = ${r} / (P.seqQ * P.heads);
  let kh = h / P.group;
  let qo = ((b * P.seqQ + i) * P.heads + h) * ${dim};`;

/** WGSL: key row `r` (an index over [batch, kvHeads, seqK]) as key j, kv head kh, batch b and k's offset ko; `dim` is headDim. */
const keyRow = (r: string, dim: string): string => `let j = ${r} % P.seqK;
  let kh = (${r} / P.seqK) % P.kvHeads;
  let b = ${r} / (P.seqK * P.kvHeads);
  let ko = ((b * P.seqK + j) * P.kvHeads + kh) * ${dim};`;

/** attention and attentionBackward in the form `ctx.attentionKind` names; core checks their arguments, this file only its headDim limit. */
export const attentionKernels = {
  attention(ctx, out, lse, q, k, v, mask, p) {
    checkHeadDim('attention', p);
    const hasMask = mask !== null;
    ctx.rt.launch({
      kernel: 'attention',
      params: params(p),
      bindings: [
        { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
        { name: 'lse', buf: lse as WebGpuBuffer, access: 'write' },
        { name: 'q', buf: q as WebGpuBuffer, access: 'read' },
        { name: 'k', buf: k as WebGpuBuffer, access: 'read' },
        { name: 'v', buf: v as WebGpuBuffer, access: 'read' },
        { name: 'mask', buf: mask as WebGpuBuffer | null, access: 'read' },
      ],
      workgroupSize: T,
      code: ctx.attentionKind === 'rows' ? forwardRows(p.headDim, hasMask) : forwardTiled(hasMask),
      groups: groupsFor(ctx, p.batch * p.heads * p.seqQ),
    });
  },

  /** Pass A writes dq and each row's (lse, D_i); pass B reads them back for dk and dv. `out` is not read: D_i comes from P and dP. */
  attentionBackward(ctx, dq, dk, dv, dOut, q, k, v, _out, lse, mask, p) {
    const K = 'attentionBackward';
    checkHeadDim(K, p);
    const inputs = { g: dOut, q, k, v, mask } as BackwardInputs;
    // stats[2·row] = lse, stats[2·row + 1] = D_i, for pass B.
    const stats = ctx.rt.temp(ctx, 'float32', Math.max(1, 2 * p.batch * p.heads * p.seqQ), K);
    dqPass(ctx, p, inputs, dq as WebGpuBuffer, lse as WebGpuBuffer, stats);
    dkvPass(ctx, p, inputs, dk as WebGpuBuffer, dv as WebGpuBuffer, stats);
    ctx.rt.done(stats);
  },
} satisfies KernelFamily<Ctx>;

/** The one limit of this backend's attention kernels: a head of at most DMAX features (core checks the rest). */
function checkHeadDim(K: string, p: AttentionParams): void {
  if (p.headDim > DMAX) throw new Error(`${K}: headDim ${p.headDim} is more than the ${DMAX} this backend's attention kernels support`);
}

/** Workgroups for `rows` rows: one per row in the `tiled` form, one per T rows in the `rows` form. */
function groupsFor(ctx: Ctx, rows: number): number {
  return ctx.attentionKind === 'rows' ? Math.ceil(rows / T) : rows;
}

/** What both backward passes read: dOut (bound as g), q, k, v and the optional mask. */
interface BackwardInputs {
  readonly g: WebGpuBuffer;
  readonly q: WebGpuBuffer;
  readonly k: WebGpuBuffer;
  readonly v: WebGpuBuffer;
  readonly mask: WebGpuBuffer | null;
}

/** A backward pass: its outputs, the shared inputs, then `extra` (the row statistics it reads) and the mask. */
function backwardLaunch(
  ctx: Ctx,
  kernel: string,
  p: AttentionParams,
  outputs: readonly LaunchBinding[],
  a: BackwardInputs,
  extra: LaunchBinding,
  code: string,
  rows: number,
): void {
  ctx.rt.launch({
    kernel,
    params: params(p),
    bindings: [
      ...outputs,
      { name: 'g', buf: a.g, access: 'read' },
      { name: 'q', buf: a.q, access: 'read' },
      { name: 'k', buf: a.k, access: 'read' },
      { name: 'v', buf: a.v, access: 'read' },
      extra,
      { name: 'mask', buf: a.mask, access: 'read' },
    ],
    workgroupSize: T,
    code,
    groups: groupsFor(ctx, rows),
  });
}

/** Pass A, one query row at a time: D_i = Σ_j P_ij·dP_ij, dq, and (lse, D_i) into `stats`. */
function dqPass(ctx: Ctx, p: AttentionParams, a: BackwardInputs, dq: WebGpuBuffer, lse: WebGpuBuffer, stats: WebGpuBuffer): void {
  const hasMask = a.mask !== null;
  const outputs = [
    { name: 'dq', buf: dq, access: 'write' },
    { name: 'stats', buf: stats, access: 'write' },
  ] as const;
  const code = ctx.attentionKind === 'rows' ? dqRows(p.headDim, hasMask) : dqTiled(hasMask);
  backwardLaunch(ctx, 'attentionBackward (dq)', p, outputs, a, { name: 'lse', buf: lse, access: 'read' }, code, p.batch * p.heads * p.seqQ);
}

/** Pass B, one key row and kv head at a time: dk and dv summed over the queries and query heads that see it. */
function dkvPass(ctx: Ctx, p: AttentionParams, a: BackwardInputs, dk: WebGpuBuffer, dv: WebGpuBuffer, stats: WebGpuBuffer): void {
  const hasMask = a.mask !== null;
  const outputs = [
    { name: 'dk', buf: dk, access: 'write' },
    { name: 'dv', buf: dv, access: 'write' },
  ] as const;
  const code = ctx.attentionKind === 'rows' ? dkvRows(p.headDim, hasMask) : dkvTiled(hasMask);
  const statsIn = { name: 'stats', buf: stats, access: 'read' } as const;
  backwardLaunch(ctx, 'attentionBackward (dk, dv)', p, outputs, a, statsIn, code, p.batch * p.kvHeads * p.seqK);
}

// --- the `tiled` form -----------------------------------------------------------------------

/** WGSL that every attention kernel starts with: whether there is a mask, and the visibility helpers. */
function maskHead(hasMask: boolean): string {
  return `const HAS_MASK = ${hasMask ? 1 : 0}u;
${VISIBILITY}`;
}

function forwardTiled(hasMask: boolean): string {
  return `${maskHead(hasMask)}
var<workgroup> qs: array<f32, ${DMAX}>;
var<workgroup> ps: array<f32, ${T}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.batch * P.heads * P.seqQ) { return; }
  ${queryRow('group', 'P.D')}
  for (var d = lid; d < P.D; d = d + ${T}u) { qs[d] = ld_q(qo + d); }
  workgroupBarrier();
  let last = key_end(i);
  var m = neg_inf();
  var l = 0.0;
  var acc: array<f32, ${PER}>;
  for (var u = 0u; u < ${PER}u; u++) { acc[u] = 0.0; }
  for (var j0 = 0u; j0 < last; j0 = j0 + ${T}u) {
    let j = j0 + lid;
    var s = neg_inf();
    if (j < last && key_real(b, j)) {
      let ko = ((b * P.seqK + j) * P.kvHeads + kh) * P.D;
      var dot = 0.0;
      for (var d = 0u; d < P.D; d++) { dot = fma(qs[d], ld_k(ko + d), dot); }
      s = P.scale * dot;
    }
    ps[lid] = s;
    workgroupBarrier();
    let cnt = min(${T}u, last - j0);
    var tmax = neg_inf();
    for (var t = 0u; t < cnt; t++) { tmax = max(tmax, ps[t]); }
    let nm = max(m, tmax);
    if (nm > neg_inf()) {
      let corr = select(exp(m - nm), 0.0, m == neg_inf());
      l = l * corr;
      for (var u = 0u; u < ${PER}u; u++) { acc[u] = acc[u] * corr; }
      for (var t = 0u; t < cnt; t++) {
        let st = ps[t];
        if (st == neg_inf()) { continue; }
        let pt = exp(st - nm);
        l = l + pt;
        let vo = ((b * P.seqK + j0 + t) * P.kvHeads + kh) * P.D;
        for (var u = 0u; u < ${PER}u; u++) {
          let d = lid + u * ${T}u;
          if (d < P.D) { acc[u] = fma(pt, ld_v(vo + d), acc[u]); }
        }
      }
      m = nm;
    }
    workgroupBarrier();
  }
  let seen = l > 0.0;
  for (var u = 0u; u < ${PER}u; u++) {
    let d = lid + u * ${T}u;
    if (d < P.D) { st_out(qo + d, select(0.0, acc[u] / l, seen)); }
  }
  if (lid == 0u) { st_lse((b * P.heads + h) * P.seqQ + i, select(neg_inf(), m + log(l), seen)); }
}`;
}

function dqTiled(hasMask: boolean): string {
  return `${maskHead(hasMask)}
${wgSum(T)}
var<workgroup> qs: array<f32, ${DMAX}>;
var<workgroup> gs: array<f32, ${DMAX}>;
var<workgroup> ds: array<f32, ${T}>;
// P_ij and dP_ij for key j (0 and 0 for a key the row does not see).
fn p_dp(b: u32, kh: u32, j: u32, last: u32, l: f32) -> vec2<f32> {
  if (j >= last || !key_real(b, j)) { return vec2<f32>(0.0, 0.0); }
  let ko = ((b * P.seqK + j) * P.kvHeads + kh) * P.D;
  var dot = 0.0;
  var dp = 0.0;
  for (var d = 0u; d < P.D; d++) {
    dot = fma(qs[d], ld_k(ko + d), dot);
    dp = fma(gs[d], ld_v(ko + d), dp);
  }
  return vec2<f32>(exp(P.scale * dot - l), dp);
}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.batch * P.heads * P.seqQ) { return; }
  ${queryRow('group', 'P.D')}
  let row = (b * P.heads + h) * P.seqQ + i;
  for (var d = lid; d < P.D; d = d + ${T}u) { qs[d] = ld_q(qo + d); gs[d] = ld_g(qo + d); }
  workgroupBarrier();
  let l = ld_lse(row);
  let live = l > neg_inf();
  var last = key_end(i);
  var di = 0.0;
  for (var j0 = 0u; j0 < last; j0 = j0 + ${T}u) {
    if (live) { let pd = p_dp(b, kh, j0 + lid, last, l); di = di + pd.x * pd.y; }
  }
  di = wg_sum(di, lid);
  var acc: array<f32, ${PER}>;
  for (var u = 0u; u < ${PER}u; u++) { acc[u] = 0.0; }
  for (var j0 = 0u; j0 < last; j0 = j0 + ${T}u) {
    var dsj = 0.0;
    if (live) { let pd = p_dp(b, kh, j0 + lid, last, l); dsj = P.scale * pd.x * (pd.y - di); }
    ds[lid] = dsj;
    workgroupBarrier();
    let cnt = min(${T}u, last - j0);
    for (var t = 0u; t < cnt; t++) {
      let w = ds[t];
      if (w == 0.0) { continue; }
      let ko = ((b * P.seqK + j0 + t) * P.kvHeads + kh) * P.D;
      for (var u = 0u; u < ${PER}u; u++) {
        let d = lid + u * ${T}u;
        if (d < P.D) { acc[u] = fma(w, ld_k(ko + d), acc[u]); }
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < ${PER}u; u++) {
    let d = lid + u * ${T}u;
    if (d < P.D) { st_dq(qo + d, acc[u]); }
  }
  if (lid == 0u) { st_stats(2u * row, l); st_stats(2u * row + 1u, di); }
}`;
}

function dkvTiled(hasMask: boolean): string {
  return `${maskHead(hasMask)}
var<workgroup> ks: array<f32, ${DMAX}>;
var<workgroup> vs: array<f32, ${DMAX}>;
var<workgroup> pw: array<f32, ${T}>;
var<workgroup> dw: array<f32, ${T}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.batch * P.kvHeads * P.seqK) { return; }
  ${keyRow('group', 'P.D')}
  for (var d = lid; d < P.D; d = d + ${T}u) { ks[d] = ld_k(ko + d); vs[d] = ld_v(ko + d); }
  workgroupBarrier();
  // Queries that see key j: i ≥ j − (seqK − seqQ) when causal.
  var i0 = 0u;
  if (P.causal == 1u) { i0 = u32(max(0, i32(j) + i32(P.seqQ) - i32(P.seqK))); }
  let cntI = P.seqQ - min(i0, P.seqQ);
  let total = P.group * cntI;
  let real = key_real(b, j);
  var accK: array<f32, ${PER}>;
  var accV: array<f32, ${PER}>;
  for (var u = 0u; u < ${PER}u; u++) { accK[u] = 0.0; accV[u] = 0.0; }
  for (var e0 = 0u; e0 < total; e0 = e0 + ${T}u) {
    let e = e0 + lid;
    var pe = 0.0;
    var dse = 0.0;
    if (e < total && real) {
      let h = kh * P.group + e / cntI;
      let i = i0 + e % cntI;
      let row = (b * P.heads + h) * P.seqQ + i;
      let l = ld_stats(2u * row);
      if (l > neg_inf()) {
        let qo = ((b * P.seqQ + i) * P.heads + h) * P.D;
        var dot = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < P.D; d++) {
          dot = fma(ld_q(qo + d), ks[d], dot);
          dp = fma(ld_g(qo + d), vs[d], dp);
        }
        pe = exp(P.scale * dot - l);
        dse = P.scale * pe * (dp - ld_stats(2u * row + 1u));
      }
    }
    pw[lid] = pe;
    dw[lid] = dse;
    workgroupBarrier();
    let cnt = min(${T}u, total - e0);
    for (var t = 0u; t < cnt; t++) {
      let pt = pw[t];
      let dt = dw[t];
      if (pt == 0.0 && dt == 0.0) { continue; }
      let et = e0 + t;
      let h = kh * P.group + et / cntI;
      let i = i0 + et % cntI;
      let qo = ((b * P.seqQ + i) * P.heads + h) * P.D;
      for (var u = 0u; u < ${PER}u; u++) {
        let d = lid + u * ${T}u;
        if (d < P.D) {
          accV[u] = fma(pt, ld_g(qo + d), accV[u]);
          accK[u] = fma(dt, ld_q(qo + d), accK[u]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < ${PER}u; u++) {
    let d = lid + u * ${T}u;
    if (d < P.D) { st_dk(ko + d, accK[u]); st_dv(ko + d, accV[u]); }
  }
}`;
}

// --- the `rows` form ------------------------------------------------------------------------

/** WGSL shared by the `rows` kernels: the mask and visibility helpers, and headDim as a constant. */
function rowsHead(headDim: number, hasMask: boolean): string {
  return `${maskHead(hasMask)}
const D = ${headDim}u;`;
}

/** A register array of headDim floats (length at least 1: WGSL has no empty arrays). */
const vec = (headDim: number) => `array<f32, ${Math.max(1, headDim)}>`;

function forwardRows(headDim: number, hasMask: boolean): string {
  const V = vec(headDim);
  return `${rowsHead(headDim, hasMask)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let r = group * ${T}u + lid;
  if (r >= P.batch * P.heads * P.seqQ) { return; }
  ${queryRow('r', 'D')}
  var qv: ${V};
  var acc: ${V};
  for (var d = 0u; d < D; d++) { qv[d] = ld_q(qo + d); acc[d] = 0.0; }
  let last = key_end(i);
  var m = neg_inf();
  var l = 0.0;
  for (var j = 0u; j < last; j++) {
    if (!key_real(b, j)) { continue; }
    let ko = ((b * P.seqK + j) * P.kvHeads + kh) * D;
    var dot = 0.0;
    for (var d = 0u; d < D; d++) { dot = fma(qv[d], ld_k(ko + d), dot); }
    let s = P.scale * dot;
    if (s == neg_inf()) { continue; }
    var pt = 1.0;
    if (s > m) {
      let corr = select(exp(m - s), 0.0, m == neg_inf());
      l = l * corr;
      for (var d = 0u; d < D; d++) { acc[d] = acc[d] * corr; }
      m = s;
    } else {
      pt = exp(s - m);
    }
    l = l + pt;
    for (var d = 0u; d < D; d++) { acc[d] = fma(pt, ld_v(ko + d), acc[d]); }
  }
  let seen = l > 0.0;
  for (var d = 0u; d < D; d++) { st_out(qo + d, select(0.0, acc[d] / l, seen)); }
  st_lse((b * P.heads + h) * P.seqQ + i, select(neg_inf(), m + log(l), seen));
}`;
}

function dqRows(headDim: number, hasMask: boolean): string {
  const V = vec(headDim);
  return `${rowsHead(headDim, hasMask)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let r = group * ${T}u + lid;
  if (r >= P.batch * P.heads * P.seqQ) { return; }
  ${queryRow('r', 'D')}
  let row = (b * P.heads + h) * P.seqQ + i;
  var qv: ${V};
  var gv: ${V};
  var kr: ${V};
  var acc: ${V};
  for (var d = 0u; d < D; d++) { qv[d] = ld_q(qo + d); gv[d] = ld_g(qo + d); acc[d] = 0.0; }
  let l = ld_lse(row);
  let last = select(0u, key_end(i), l > neg_inf());
  // D_i = Σ_j P_ij·dP_ij, then dq = scale·Σ_j P_ij·(dP_ij − D_i)·k_j.
  var di = 0.0;
  for (var sweep = 0u; sweep < 2u; sweep++) {
    for (var j = 0u; j < last; j++) {
      if (!key_real(b, j)) { continue; }
      let ko = ((b * P.seqK + j) * P.kvHeads + kh) * D;
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        kr[d] = ld_k(ko + d);
        dot = fma(qv[d], kr[d], dot);
        dp = fma(gv[d], ld_v(ko + d), dp);
      }
      let pj = exp(P.scale * dot - l);
      if (sweep == 0u) {
        di = di + pj * dp;
      } else {
        let w = P.scale * pj * (dp - di);
        if (w == 0.0) { continue; }
        for (var d = 0u; d < D; d++) { acc[d] = fma(w, kr[d], acc[d]); }
      }
    }
  }
  for (var d = 0u; d < D; d++) { st_dq(qo + d, acc[d]); }
  st_stats(2u * row, l);
  st_stats(2u * row + 1u, di);
}`;
}

function dkvRows(headDim: number, hasMask: boolean): string {
  const V = vec(headDim);
  return `${rowsHead(headDim, hasMask)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let r = group * ${T}u + lid;
  if (r >= P.batch * P.kvHeads * P.seqK) { return; }
  ${keyRow('r', 'D')}
  var kv: ${V};
  var vv: ${V};
  var accK: ${V};
  var accV: ${V};
  var qr: ${V};
  var gr: ${V};
  for (var d = 0u; d < D; d++) { kv[d] = ld_k(ko + d); vv[d] = ld_v(ko + d); accK[d] = 0.0; accV[d] = 0.0; }
  // Queries that see key j: i ≥ j − (seqK − seqQ) when causal.
  var i0 = 0u;
  if (P.causal == 1u) { i0 = min(u32(max(0, i32(j) + i32(P.seqQ) - i32(P.seqK))), P.seqQ); }
  let hEnd = select(0u, (kh + 1u) * P.group, key_real(b, j));
  for (var h = kh * P.group; h < hEnd; h++) {
    for (var i = i0; i < P.seqQ; i++) {
      let row = (b * P.heads + h) * P.seqQ + i;
      let l = ld_stats(2u * row);
      if (!(l > neg_inf())) { continue; }
      let qo = ((b * P.seqQ + i) * P.heads + h) * D;
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        qr[d] = ld_q(qo + d);
        gr[d] = ld_g(qo + d);
        dot = fma(qr[d], kv[d], dot);
        dp = fma(gr[d], vv[d], dp);
      }
      let pe = exp(P.scale * dot - l);
      let dse = P.scale * pe * (dp - ld_stats(2u * row + 1u));
      if (pe == 0.0 && dse == 0.0) { continue; }
      for (var d = 0u; d < D; d++) {
        accV[d] = fma(pe, gr[d], accV[d]);
        accK[d] = fma(dse, qr[d], accK[d]);
      }
    }
  }
  for (var d = 0u; d < D; d++) { st_dk(ko + d, accK[d]); st_dv(ko + d, accV[d]); }
}`;
}
