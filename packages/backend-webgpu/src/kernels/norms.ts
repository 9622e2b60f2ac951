/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim] with their backward passes: one
 * workgroup per row, sums as trees in workgroup memory (float32). The forward output uses the
 * saved float32 mean and rstd; weight and bias gradients (float32) are summed over rows by one
 * thread per column.
 */
import type { KernelFamily, NormParams } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, WG, wgSum } from './common.js';

type Buf = WebGpuBuffer;
type OptBuf = WebGpuBuffer | null;

/** layerNorm, rmsNorm and their backward passes; their arguments are checked in core (kernelChecks). */
export const normKernels = {
  layerNorm(ctx, out, mean, rstd, x, weight, bias, p) {
    normForward(ctx, 'layerNorm', out as Buf, mean as Buf, rstd as Buf, x as Buf, weight as OptBuf, bias as OptBuf, p);
  },

  /** With x̂ = (x − mean)·rstd and g = dy·weight: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)), dWeight = Σ dy·x̂, dBias = Σ dy. */
  layerNormBackward(ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p) {
    const K = 'layerNormBackward';
    normBackward(ctx, K, dx as Buf, dy as Buf, x as Buf, weight as OptBuf, mean as Buf, rstd as Buf, p);
    paramGrads(ctx, K, dWeight as OptBuf, dBias as OptBuf, dy as Buf, x as Buf, mean as Buf, rstd as Buf, p);
  },

  rmsNorm(ctx, out, rstd, x, weight, p) {
    normForward(ctx, 'rmsNorm', out as Buf, null, rstd as Buf, x as Buf, weight as OptBuf, null, p);
  },

  /** With x̂ = x·rstd and g = dy·weight: dx = rstd · (g − x̂ · mean(g·x̂)), dWeight = Σ_rows dy·x̂ (float32). */
  rmsNormBackward(ctx, dx, dWeight, dy, x, weight, rstd, p) {
    const K = 'rmsNormBackward';
    normBackward(ctx, K, dx as Buf, dy as Buf, x as Buf, weight as OptBuf, null, rstd as Buf, p);
    paramGrads(ctx, K, dWeight as OptBuf, null, dy as Buf, x as Buf, null, rstd as Buf, p);
  },
} satisfies KernelFamily<Ctx>;

/**
 * The forward of either norm, one workgroup per row: LayerNorm y = (x − mean)·rstd·weight + bias,
 * rstd = 1/√(var + eps); without mean (RMSNorm) y = x·rstd·weight, rstd = 1/√(mean(x²) + eps).
 */
function normForward(ctx: Ctx, K: string, out: Buf, mean: OptBuf, rstd: Buf, x: Buf, w: OptBuf, b: OptBuf, p: NormParams): void {
  const { rows, dim } = p;
  const layer = mean !== null;
  const t = ctx.rowThreads;
  const mu = layer
    ? `var s = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) { s = s + ld_x(base + j); }
  let mu = wg_sum(s, lid) / f32(P.dim);`
    : 'let mu = 0.0;';
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
      ['eps', 'f32', p.eps],
    ],
    bindings: [
      { name: 'out', buf: out, access: 'write' },
      { name: 'mean', buf: mean, access: layer ? 'write' : 'read' },
      { name: 'rstd', buf: rstd, access: 'write' },
      { name: 'x', buf: x, access: 'read' },
      { name: 'w', buf: w, access: 'read' },
      { name: 'b', buf: b, access: 'read' },
    ],
    code: `${wgSum(t)}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  if (group >= P.rows) { return; }
  let base = group * P.dim;
  ${mu}
  var q = 0.0;
  for (var j = lid; j < P.dim; j = j + ${t}u) { let d = ld_x(base + j) - mu; q = q + d * d; }
  let rs = 1.0 / sqrt(wg_sum(q, lid) / f32(P.dim) + P.eps);
  if (lid == 0u) { ${layer ? 'st_mean(group, mu); ' : ''}st_rstd(group, rs); }
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
function paramGrads(ctx: Ctx, K: string, dw: OptBuf, db: OptBuf, dy: Buf, x: Buf, mean: OptBuf, rstd: Buf, p: NormParams): void {
  if (dw === null && db === null) return;
  const { rows, dim } = p;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
    ],
    bindings: [
      { name: 'dw', buf: dw, access: dw ? 'write' : 'read' },
      { name: 'db', buf: db, access: db ? 'write' : 'read' },
      { name: 'dy', buf: dy, access: 'read' },
      { name: 'x', buf: x, access: 'read' },
      { name: 'mean', buf: mean, access: 'read' },
      { name: 'rstd', buf: rstd, access: 'read' },
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

/** dx of either norm, one workgroup per row; without mean (RMSNorm) x̂ = x·rstd and mean(g) is not subtracted. */
function normBackward(ctx: Ctx, K: string, dx: Buf, dy: Buf, x: Buf, w: OptBuf, mean: OptBuf, rstd: Buf, p: NormParams): void {
  const { rows, dim } = p;
  const layer = mean !== null;
  const t = ctx.rowThreads;
  ctx.rt.launch({
    kernel: K,
    params: [
      ['rows', 'u32', rows],
      ['dim', 'u32', dim],
    ],
    bindings: [
      { name: 'dx', buf: dx, access: 'write' },
      { name: 'dy', buf: dy, access: 'read' },
      { name: 'x', buf: x, access: 'read' },
      { name: 'w', buf: w, access: 'read' },
      { name: 'mean', buf: mean, access: 'read' },
      { name: 'rstd', buf: rstd, access: 'read' },
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
