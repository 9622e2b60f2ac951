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
import type { AttentionParams, DeviceBuffer } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import type { Ctx } from './common.js';

export type AttentionKind = 'tiled' | 'rows';
type AttnCtx = Ctx & { readonly attentionKind: AttentionKind };

const T = 64;
const DMAX = 256;
const PER = DMAX / T;

function checkParams(K: string, p: AttentionParams): void {
  counts(K, { batch: p.batch, seqQ: p.seqQ, seqK: p.seqK, heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim });
  finite(K, 'scale', p.scale);
  if (p.kvHeads === 0 ? p.heads !== 0 : p.heads % p.kvHeads !== 0)
    throw new Error(`${K}: heads ${p.heads} must be a multiple of kvHeads ${p.kvHeads}`);
  if (p.headDim > DMAX) throw new Error(`${K}: headDim ${p.headDim} is more than the ${DMAX} this backend's attention kernels support`);
}

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

export function attention(
  ctx: AttnCtx,
  out: DeviceBuffer,
  lse: DeviceBuffer,
  q: DeviceBuffer,
  k: DeviceBuffer,
  v: DeviceBuffer,
  mask: DeviceBuffer | null,
  p: AttentionParams,
): void {
  const K = 'attention';
  checkParams(K, p);
  const nq = p.batch * p.seqQ * p.heads * p.headDim;
  const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
  const o = arg(ctx.owner, K, 'out', out, nq, 'float');
  const qb = arg(ctx.owner, K, 'q', q, nq, 'float');
  const kb = arg(ctx.owner, K, 'k', k, nk, 'float');
  const vb = arg(ctx.owner, K, 'v', v, nk, 'float');
  if (o === qb || o === kb || o === vb) throw new Error('attention: out must not be the same buffer as q, k or v');
  const mb = mask === null ? null : arg(ctx.owner, K, 'mask', mask, p.batch * p.seqK, 'int32');
  const rows = ctx.attentionKind === 'rows';
  ctx.rt.launch({
    kernel: K,
    params: params(p),
    bindings: [
      { name: 'out', buf: o, access: 'write' },
      { name: 'lse', buf: arg(ctx.owner, K, 'lse', lse, p.batch * p.heads * p.seqQ, 'float32'), access: 'write' },
      { name: 'q', buf: qb, access: 'read' },
      { name: 'k', buf: kb, access: 'read' },
      { name: 'v', buf: vb, access: 'read' },
      { name: 'mask', buf: mb, access: 'read' },
    ],
    workgroupSize: T,
    code: rows
      ? forwardRows(p.headDim, mb !== null)
      : `const HAS_MASK = ${mb ? 1 : 0}u;
${VISIBILITY}
var<workgroup> qs: array<f32, ${DMAX}>;
var<workgroup> ps: array<f32, ${T}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.batch * P.heads * P.seqQ) { return; }
  let i = group % P.seqQ;
  let h = (group / P.seqQ) % P.heads;
  let b = group / (P.seqQ * P.heads);
  let kh = h / P.group;
  let qo = ((b * P.seqQ + i) * P.heads + h) * P.D;
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
}`,
    groups: rows ? Math.ceil((p.batch * p.heads * p.seqQ) / T) : p.batch * p.heads * p.seqQ,
  });
}

export function attentionBackward(
  ctx: AttnCtx,
  dq: DeviceBuffer,
  dk: DeviceBuffer,
  dv: DeviceBuffer,
  dOut: DeviceBuffer,
  q: DeviceBuffer,
  k: DeviceBuffer,
  v: DeviceBuffer,
  out: DeviceBuffer,
  lse: DeviceBuffer,
  mask: DeviceBuffer | null,
  p: AttentionParams,
): void {
  const K = 'attentionBackward';
  checkParams(K, p);
  const nq = p.batch * p.seqQ * p.heads * p.headDim;
  const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
  const rows = p.batch * p.heads * p.seqQ;
  const dqb = arg(ctx.owner, K, 'dq', dq, nq, 'float');
  const dkb = arg(ctx.owner, K, 'dk', dk, nk, 'float');
  const dvb = arg(ctx.owner, K, 'dv', dv, nk, 'float');
  const g = arg(ctx.owner, K, 'dOut', dOut, nq, 'float');
  const qb = arg(ctx.owner, K, 'q', q, nq, 'float');
  const kb = arg(ctx.owner, K, 'k', k, nk, 'float');
  const vb = arg(ctx.owner, K, 'v', v, nk, 'float');
  const ob = arg(ctx.owner, K, 'out', out, nq, 'float'); // validated only: D_i comes from P and dP
  const lb = arg(ctx.owner, K, 'lse', lse, rows, 'float32');
  const mb = mask === null ? null : arg(ctx.owner, K, 'mask', mask, p.batch * p.seqK, 'int32');
  for (const [name, buf] of [
    ['dq', dqb],
    ['dk', dkb],
    ['dv', dvb],
  ] as const) {
    if (buf === g || buf === qb || buf === kb || buf === vb || buf === ob)
      throw new Error(`attentionBackward: ${name} must not be the same buffer as an input`);
  }
  // stats[2·row] = lse, stats[2·row + 1] = D_i, for pass B.
  const stats = ctx.rt.temp(ctx.owner, 'float32', Math.max(1, 2 * rows), K);
  const byRows = ctx.attentionKind === 'rows';
  const head = `const HAS_MASK = ${mb ? 1 : 0}u;
${VISIBILITY}
var<workgroup> red: array<f32, ${T}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
  ctx.rt.launch({
    kernel: `${K} (dq)`,
    params: params(p),
    bindings: [
      { name: 'dq', buf: dqb, access: 'write' },
      { name: 'stats', buf: stats, access: 'write' },
      { name: 'g', buf: g, access: 'read' },
      { name: 'q', buf: qb, access: 'read' },
      { name: 'k', buf: kb, access: 'read' },
      { name: 'v', buf: vb, access: 'read' },
      { name: 'lse', buf: lb, access: 'read' },
      { name: 'mask', buf: mb, access: 'read' },
    ],
    workgroupSize: T,
    code: byRows
      ? dqRows(p.headDim, mb !== null)
      : `${head}
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
  let i = group % P.seqQ;
  let h = (group / P.seqQ) % P.heads;
  let b = group / (P.seqQ * P.heads);
  let kh = h / P.group;
  let qo = ((b * P.seqQ + i) * P.heads + h) * P.D;
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
}`,
    groups: byRows ? Math.ceil(rows / T) : rows,
  });
  ctx.rt.launch({
    kernel: `${K} (dk, dv)`,
    params: params(p),
    bindings: [
      { name: 'dk', buf: dkb, access: 'write' },
      { name: 'dv', buf: dvb, access: 'write' },
      { name: 'g', buf: g, access: 'read' },
      { name: 'q', buf: qb, access: 'read' },
      { name: 'k', buf: kb, access: 'read' },
      { name: 'v', buf: vb, access: 'read' },
      { name: 'stats', buf: stats, access: 'read' },
      { name: 'mask', buf: mb, access: 'read' },
    ],
    workgroupSize: T,
    code: byRows
      ? dkvRows(p.headDim, mb !== null)
      : `${head}
var<workgroup> ks: array<f32, ${DMAX}>;
var<workgroup> vs: array<f32, ${DMAX}>;
var<workgroup> pw: array<f32, ${T}>;
var<workgroup> dw: array<f32, ${T}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.batch * P.kvHeads * P.seqK) { return; }
  let j = group % P.seqK;
  let kh = (group / P.seqK) % P.kvHeads;
  let b = group / (P.seqK * P.kvHeads);
  let ko = ((b * P.seqK + j) * P.kvHeads + kh) * P.D;
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
}`,
    groups: byRows ? Math.ceil((p.batch * p.kvHeads * p.seqK) / T) : p.batch * p.kvHeads * p.seqK,
  });
  ctx.rt.done(stats);
}

// --- the `rows` form ------------------------------------------------------------------------

/** WGSL shared by the `rows` kernels: headDim as a constant, the visibility helpers and a row loader. */
function rowsHead(headDim: number, hasMask: boolean): string {
  return `const HAS_MASK = ${hasMask ? 1 : 0}u;
const D = ${headDim}u;
${VISIBILITY}`;
}

/** A register array of headDim floats (length at least 1: WGSL has no empty arrays). */
const vec = (headDim: number) => `array<f32, ${Math.max(1, headDim)}>`;

function forwardRows(headDim: number, hasMask: boolean): string {
  const V = vec(headDim);
  return `${rowsHead(headDim, hasMask)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let r = group * ${T}u + lid;
  if (r >= P.batch * P.heads * P.seqQ) { return; }
  let i = r % P.seqQ;
  let h = (r / P.seqQ) % P.heads;
  let b = r / (P.seqQ * P.heads);
  let kh = h / P.group;
  let qo = ((b * P.seqQ + i) * P.heads + h) * D;
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
  let i = r % P.seqQ;
  let h = (r / P.seqQ) % P.heads;
  let b = r / (P.seqQ * P.heads);
  let kh = h / P.group;
  let qo = ((b * P.seqQ + i) * P.heads + h) * D;
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
  let j = r % P.seqK;
  let kh = (r / P.seqK) % P.kvHeads;
  let b = r / (P.seqK * P.kvHeads);
  let ko = ((b * P.seqK + j) * P.kvHeads + kh) * D;
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
