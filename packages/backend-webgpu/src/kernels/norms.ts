/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim] with their backward passes: one
 * workgroup per row, sums as trees in workgroup memory (float32). The forward output uses the
 * saved float32 mean and rstd; weight and bias gradients (float32) are summed over rows by one
 * thread per column.
 */
import type { DeviceBuffer, NormParams } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import { type Ctx, WG } from './common.js';

function checkParams(kernel: string, p: NormParams): void {
  counts(kernel, { rows: p.rows, dim: p.dim });
  finite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
}

const wgSum = (t: number) => /* wgsl */ `var<workgroup> red: array<f32, ${t}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

/** y = (x − mean) · rstd · weight + bias, rstd = 1/√(var + eps). */
export function layerNorm(
  ctx: Ctx,
  out: DeviceBuffer,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  bias: DeviceBuffer | null,
  p: NormParams,
): void {
  const K = 'layerNorm';
  checkParams(K, p);
  const { rows, dim } = p;
  const o = arg(ctx.owner, K, 'out', out, rows * dim, 'float');
  const mb = arg(ctx.owner, K, 'mean', mean, rows, 'float32');
  const rb = arg(ctx.owner, K, 'rstd', rstd, rows, 'float32');
  const xb = arg(ctx.owner, K, 'x', x, rows * dim, 'float');
  const w = weight === null ? null : arg(ctx.owner, K, 'weight', weight, dim, 'float');
  const b = bias === null ? null : arg(ctx.owner, K, 'bias', bias, dim, 'float');
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
      ['eps', 'f32', p.eps],
    ],
    bindings: [
      { name: 'out', buf: o, access: 'write' },
      { name: 'mean', buf: mb, access: 'write' },
      { name: 'rstd', buf: rb, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
      { name: 'w', buf: w, access: 'read' },
      { name: 'b', buf: b, access: 'read' },
    ],
    code: `${wgSum(t)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.dim;
  var s = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) { s = s + ld_x(base + j); }
  let mu = wg_sum(s, lid) / f32(P.dim);
  var q = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) { let d = ld_x(base + j) - mu; q = q + d * d; }
  let rs = 1.0 / sqrt(wg_sum(q, lid) / f32(P.dim) + P.eps);
  if (lid == 0u) { st_mean(group, mu); st_rstd(group, rs); }
  for (var j = lid; j < P.dim; j = j + ${t}u) {
    var y = (ld_x(base + j) - mu) * rs;
    ${w ? 'y = y * ld_w(j);' : ''}
    ${b ? 'y = y + ld_b(j);' : ''}
    st_out(base + j, y);
  }
}`,
    workgroupSize: t,
    groups: rows,
  });
}

/** Σ over rows of dy·x̂ (and of dy): one thread per column. x̂ = (x − mean)·rstd, or x·rstd without mean. */
function paramGrads(
  ctx: Ctx,
  K: string,
  dWeight: DeviceBuffer | null,
  dBias: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  mean: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  if (dWeight === null && dBias === null) return;
  const { rows, dim } = p;
  const dw = dWeight === null ? null : arg(ctx.owner, K, 'dWeight', dWeight, dim, 'float32');
  const db = dBias === null ? null : arg(ctx.owner, K, 'dBias', dBias, dim, 'float32');
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
    ],
    bindings: [
      { name: 'dw', buf: dw, access: dw ? 'write' : 'read' },
      { name: 'db', buf: db, access: db ? 'write' : 'read' },
      { name: 'dy', buf: arg(ctx.owner, K, 'dy', dy, rows * dim, 'float'), access: 'read' },
      { name: 'x', buf: arg(ctx.owner, K, 'x', x, rows * dim, 'float'), access: 'read' },
      { name: 'mean', buf: mean === null ? null : arg(ctx.owner, K, 'mean', mean, rows, 'float32'), access: 'read' },
      { name: 'rstd', buf: arg(ctx.owner, K, 'rstd', rstd, rows, 'float32'), access: 'read' },
    ],
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let j = group * ${WG}u + lid;
  if (j >= P.dim) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < P.rows; r++) {
    let g = ld_dy(r * P.dim + j);
    let xh = (ld_x(r * P.dim + j)${mean ? ' - ld_mean(r)' : ''}) * ld_rstd(r);
    sw = sw + g * xh;
    sb = sb + g;
  }
  ${dw ? 'st_dw(j, sw);' : ''}
  ${db ? 'st_db(j, sb);' : ''}
}`,
    groups: Math.ceil(dim / WG),
  });
}

/** With x̂ = (x − mean)·rstd and g = dy·weight: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)), dWeight = Σ dy·x̂, dBias = Σ dy. */
export function layerNormBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dBias: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  normBackward(ctx, 'layerNormBackward', dx, dy, x, weight, mean, rstd, p);
  paramGrads(ctx, 'layerNormBackward', dWeight, dBias, dy, x, mean, rstd, p);
}

function normBackward(
  ctx: Ctx,
  K: string,
  dx: DeviceBuffer,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  mean: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  checkParams(K, p);
  const { rows, dim } = p;
  const o = arg(ctx.owner, K, 'dx', dx, rows * dim, 'float');
  const w = weight === null ? null : arg(ctx.owner, K, 'weight', weight, dim, 'float');
  const layer = mean !== null;
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
    ],
    bindings: [
      { name: 'dx', buf: o, access: 'write' },
      { name: 'dy', buf: arg(ctx.owner, K, 'dy', dy, rows * dim, 'float'), access: 'read' },
      { name: 'x', buf: arg(ctx.owner, K, 'x', x, rows * dim, 'float'), access: 'read' },
      { name: 'w', buf: w, access: 'read' },
      { name: 'mean', buf: mean === null ? null : arg(ctx.owner, K, 'mean', mean, rows, 'float32'), access: 'read' },
      { name: 'rstd', buf: arg(ctx.owner, K, 'rstd', rstd, rows, 'float32'), access: 'read' },
    ],
    code: `${wgSum(t)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.dim;
  let mu = ${layer ? 'ld_mean(group)' : '0.0'};
  let rs = ld_rstd(group);
  var sg = 0.0;
  var sgx = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) {
    let xh = (ld_x(base + j) - mu) * rs;
    let g = ld_dy(base + j)${w ? ' * ld_w(j)' : ''};
    sg = sg + g;
    sgx = sgx + g * xh;
  }
  let meanG = ${layer ? 'wg_sum(sg, lid) / f32(P.dim)' : '0.0'};
  let meanGX = wg_sum(sgx, lid) / f32(P.dim);
  for (var j = lid; j < P.dim; j = j + ${t}u) {
    let xh = (ld_x(base + j) - mu) * rs;
    let g = ld_dy(base + j)${w ? ' * ld_w(j)' : ''};
    st_dx(base + j, rs * (g - meanG - xh * meanGX));
  }
}`,
    workgroupSize: t,
    groups: rows,
  });
}

/** y = x · rstd · weight, rstd = 1/√(mean(x²) + eps). */
export function rmsNorm(
  ctx: Ctx,
  out: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  p: NormParams,
): void {
  const K = 'rmsNorm';
  checkParams(K, p);
  const { rows, dim } = p;
  const o = arg(ctx.owner, K, 'out', out, rows * dim, 'float');
  const rb = arg(ctx.owner, K, 'rstd', rstd, rows, 'float32');
  const xb = arg(ctx.owner, K, 'x', x, rows * dim, 'float');
  const w = weight === null ? null : arg(ctx.owner, K, 'weight', weight, dim, 'float');
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
      ['eps', 'f32', p.eps],
    ],
    bindings: [
      { name: 'out', buf: o, access: 'write' },
      { name: 'rstd', buf: rb, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
      { name: 'w', buf: w, access: 'read' },
    ],
    code: `${wgSum(t)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.dim;
  var q = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) { let v = ld_x(base + j); q = q + v * v; }
  let rs = 1.0 / sqrt(wg_sum(q, lid) / f32(P.dim) + P.eps);
  if (lid == 0u) { st_rstd(group, rs); }
  for (var j = lid; j < P.dim; j = j + ${t}u) { st_out(base + j, ld_x(base + j) * rs${w ? ' * ld_w(j)' : ''}); }
}`,
    workgroupSize: t,
    groups: rows,
  });
}

/** With x̂ = x·rstd and g = dy·weight: dx = rstd · (g − x̂ · mean(g·x̂)), dWeight = Σ_rows dy·x̂ (float32). */
export function rmsNormBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  normBackward(ctx, 'rmsNormBackward', dx, dy, x, weight, null, rstd, p);
  paramGrads(ctx, 'rmsNormBackward', dWeight, null, dy, x, null, rstd, p);
}
