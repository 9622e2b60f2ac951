/** Reductions over the middle axis of [outer, reduce, inner] and row argmax: one workgroup per output, a tree in workgroup memory. */
import type { KernelFamily, ReduceOp } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import type { Ctx } from './common.js';

/** reduce and argmax; their arguments are checked in core (kernelChecks). */
export const reduceKernels = {
  reduce(ctx, op, out, x, outer, len, inner) {
    reduceMiddle(ctx, op, out as WebGpuBuffer, x as WebGpuBuffer, outer, len, inner);
  },
  argmax(ctx, out, x, rows, cols) {
    argmaxRows(ctx, out as WebGpuBuffer, x as WebGpuBuffer, rows, cols);
  },
} satisfies KernelFamily<Ctx>;

/** out[o, i] = sum or max over r of x[o, r, i], in float32; max propagates NaN; an empty reduction gives 0 or −Infinity. */
function reduceMiddle(ctx: Ctx, op: ReduceOp, out: WebGpuBuffer, x: WebGpuBuffer, outer: number, len: number, inner: number): void {
  const K = `reduce(${op})`;
  const combine = op === 'sum' ? 'a + b' : 'select(max(a, b), a + b, is_nan(a) || is_nan(b))';
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['outputs', 'u32', outer * inner],
      ['len', 'u32', len],
      ['inner', 'u32', inner],
    ],
    bindings: [
      { name: 'out', buf: out, access: 'write' },
      { name: 'x', buf: x, access: 'read' },
    ],
    code: `var<workgroup> sh: array<f32, ${t}>;
fn combine(a: f32, b: f32) -> f32 { return ${combine}; }
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.outputs) { return; }
  let base = (group / P.inner) * P.len * P.inner + group % P.inner;
  var acc = ${op === 'sum' ? '0.0' : 'neg_inf()'};
  for (var r = lid; r < P.len; r = r + ${t}u) { acc = combine(acc, ld_x(base + r * P.inner)); }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { sh[lid] = combine(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { st_out(group, sh[0]); }
}`,
    workgroupSize: t,
    groups: outer * inner,
  });
}

/** out int32 [rows] = index of the largest value of each row; the first one on ties; a NaN counts as the largest (first NaN wins). */
function argmaxRows(ctx: Ctx, out: WebGpuBuffer, x: WebGpuBuffer, rows: number, cols: number): void {
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: 'argmax',
    params: [
      ['rows', 'u32', rows],
      ['cols', 'u32', cols],
    ],
    bindings: [
      { name: 'out', buf: out, access: 'write' },
      { name: 'x', buf: x, access: 'read' },
    ],
    code: `var<workgroup> sv: array<f32, ${t}>;
var<workgroup> si: array<u32, ${t}>;
// Whether (a, ia) beats (b, ib): NaN first, then the larger value, then the smaller index.
fn beats(a: f32, ia: u32, b: f32, ib: u32) -> bool {
  let an = is_nan(a);
  let bn = is_nan(b);
  if (an || bn) { return an && (!bn || ia < ib); }
  return a > b || (a == b && ia < ib);
}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.cols;
  var bv = neg_inf();
  var bi = 0xffffffffu;
  for (var c = lid; c < P.cols; c = c + ${t}u) {
    let v = ld_x(base + c);
    if (bi == 0xffffffffu || beats(v, c, bv, bi)) { bv = v; bi = c; }
  }
  sv[lid] = bv;
  si[lid] = bi;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s && si[lid + s] != 0xffffffffu && (si[lid] == 0xffffffffu || beats(sv[lid + s], si[lid + s], sv[lid], si[lid]))) {
      sv[lid] = sv[lid + s];
      si[lid] = si[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) { st_out(group, i32(si[0])); }
}`,
    workgroupSize: t,
    groups: rows,
  });
}
