/**
 * Softmax cross-entropy over rows of logits [rows, classes] with int32 targets [rows]: one
 * workgroup per row (max, then Σ exp, as trees). A target that is neither ignoreIndex nor a class
 * gives a NaN loss and NaN gradients (a GPU kernel cannot throw).
 */
import type { CrossEntropyParams, KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map } from './common.js';

/** crossEntropy and crossEntropyBackward; their arguments are checked in core (kernelChecks). */
export const lossKernels = {
  crossEntropy(ctx, loss, lse, logits, targets, p) {
    crossEntropyForward(ctx, loss as WebGpuBuffer, lse as WebGpuBuffer, logits as WebGpuBuffer, targets as WebGpuBuffer, p);
  },

  /** dLogits[r] = (softmax(logits[r]) − onehot(target[r])) · dLoss[r], softmax = exp(logits − lse); 0 for ignored rows. */
  crossEntropyBackward(ctx, dLogits, dLoss, logits, targets, lse, p) {
    const bindings = [
      { name: 'd', buf: dLogits as WebGpuBuffer, access: 'write' },
      { name: 'g', buf: dLoss as WebGpuBuffer, access: 'read' },
      { name: 'x', buf: logits as WebGpuBuffer, access: 'read' },
      { name: 't', buf: targets as WebGpuBuffer, access: 'read' },
      { name: 'lse', buf: lse as WebGpuBuffer, access: 'read' },
    ] as const;
    map(
      ctx,
      'crossEntropyBackward',
      p.rows * p.classes,
      bindings,
      `let r = i / P.classes;
  let c = i % P.classes;
  let t = ld_t(r);
  if (t == P.ignore) { st_d(i, 0.0); return; }
  if (t < 0 || u32(t) >= P.classes) { st_d(i, nan_f()); return; }
  let g = ld_g(r);
  var v = exp(ld_x(i) - ld_lse(r)) * g;
  if (u32(t) == c) { v = v - g; }
  st_d(i, v);`,
      [
        ['classes', 'u32', p.classes],
        ['ignore', 'i32', p.ignoreIndex | 0],
      ],
    );
  },
} satisfies KernelFamily<Ctx>;

/** One workgroup per row: the row's max and Σ exp as trees, then lse and the loss of its target. */
function crossEntropyForward(
  ctx: Ctx,
  loss: WebGpuBuffer,
  lse: WebGpuBuffer,
  logits: WebGpuBuffer,
  targets: WebGpuBuffer,
  p: CrossEntropyParams,
): void {
  const { rows, classes } = p;
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: 'crossEntropy',
    params: [
      ['rows', 'u32', rows],
      ['classes', 'u32', classes],
      ['ignore', 'i32', p.ignoreIndex | 0],
    ],
    bindings: [
      { name: 'loss', buf: loss, access: 'write' },
      { name: 'lse', buf: lse, access: 'write' },
      { name: 'x', buf: logits, access: 'read' },
      { name: 't', buf: targets, access: 'read' },
    ],
    code: `var<workgroup> red: array<f32, ${t}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.classes;
  var m = neg_inf();
  for (var c = lid; c < P.classes; c = c + ${t}u) {
    let v = ld_x(base + c);
    m = select(max(m, v), v + m, is_nan(v) || is_nan(m));
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { let a = red[lid]; let b = red[lid + s]; red[lid] = select(max(a, b), a + b, is_nan(a) || is_nan(b)); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var sum = 0.0;
  if (mx > neg_inf()) {
    for (var c = lid; c < P.classes; c = c + ${t}u) { sum = sum + exp(ld_x(base + c) - mx); }
  }
  red[lid] = sum;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let l = select(mx, mx + log(red[0]), mx > neg_inf());
    st_lse(group, l);
    let t = ld_t(group);
    if (t == P.ignore) {
      st_loss(group, 0.0);
    } else if (t < 0 || u32(t) >= P.classes) {
      st_loss(group, nan_f());
    } else {
      st_loss(group, l - ld_x(base + u32(t)));
    }
  }
}`,
    workgroupSize: t,
    groups: rows,
  });
}
