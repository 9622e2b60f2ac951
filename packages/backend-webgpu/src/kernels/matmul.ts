/**
 * Batched GEMM, tiled in workgroup memory: a 64×64 output tile per workgroup of 256 threads, each
 * thread 4×4 outputs, k in steps of 16. Operands of any float dtype are unpacked to float32 as
 * they are loaded into the tiles; the float32 sum is rounded once into `out`.
 *
 * strideOut = 0 with batch > 1 sums the batch's products into one matrix (the backward of a
 * broadcast operand): one workgroup then loops over the batch.
 */
import type { DeviceBuffer, MatmulParams } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import type { Ctx } from './common.js';

const TM = 64;
const TK = 16;

export function matmul(ctx: Ctx, out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
  const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
  counts('matmul', { batch, m, n, k, strideA, strideB, strideOut });
  finite('matmul', 'alpha', alpha);
  const span = (stride: number, size: number) => (batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size);
  const ab = arg(ctx.owner, 'matmul', 'a', a, span(strideA, m * k), 'float');
  const bb = arg(ctx.owner, 'matmul', 'b', b, span(strideB, k * n), 'float');
  const ob = arg(ctx.owner, 'matmul', 'out', out, span(strideOut, m * n), 'float');
  if (ob === ab || ob === bb) throw new Error('matmul: out must not be the same buffer as a or b');
  if (batch === 0 || m === 0 || n === 0) return;
  const sum = strideOut === 0 && batch > 1;
  // Tile loads: each of the 256 threads loads 4 elements of A (64×16) and of B (16×64), walking
  // the stored matrix along its contiguous dimension.
  const loadA = transA
    ? 'let kk = e / 64u; let r = e % 64u; let gr = m0 + r; let gk = k0 + kk; var v = 0.0; if (gr < P.m && gk < P.k) { v = ld_a(oa + gk * P.m + gr); } As[kk * 64u + r] = v;'
    : 'let r = e / 16u; let kk = e % 16u; let gr = m0 + r; let gk = k0 + kk; var v = 0.0; if (gr < P.m && gk < P.k) { v = ld_a(oa + gr * P.k + gk); } As[kk * 64u + r] = v;';
  const loadB = transB
    ? 'let c = e / 16u; let kk = e % 16u; let gc = n0 + c; let gk = k0 + kk; var v = 0.0; if (gc < P.n && gk < P.k) { v = ld_b(ob + gc * P.k + gk); } Bs[kk * 64u + c] = v;'
    : 'let kk = e / 64u; let c = e % 64u; let gc = n0 + c; let gk = k0 + kk; var v = 0.0; if (gc < P.n && gk < P.k) { v = ld_b(ob + gk * P.n + gc); } Bs[kk * 64u + c] = v;';
  ctx.rt.launch({
    kernel: 'matmul',
    params: [
      ['batch', 'u32', batch],
      ['m', 'u32', m],
      ['n', 'u32', n],
      ['k', 'u32', k],
      ['strideA', 'u32', strideA],
      ['strideB', 'u32', strideB],
      ['strideOut', 'u32', strideOut],
      ['alpha', 'f32', alpha],
    ],
    bindings: [
      { name: 'out', buf: ob, access: accumulate ? 'readwrite' : 'write' },
      { name: 'a', buf: ab, access: 'read' },
      { name: 'b', buf: bb, access: 'read' },
    ],
    code: `var<workgroup> As: array<f32, ${TM * TK}>;
var<workgroup> Bs: array<f32, ${TM * TK}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let n0 = wid.x * 64u;
  let m0 = wid.y * 64u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var ii = 0u; ii < 4u; ii++) { for (var jj = 0u; jj < 4u; jj++) { acc[ii][jj] = 0.0; } }
  ${sum ? 'let b0 = 0u; let b1 = P.batch;' : 'let b0 = wid.z; let b1 = wid.z + 1u;'}
  for (var bt = b0; bt < b1; bt++) {
    let oa = bt * P.strideA;
    let ob = bt * P.strideB;
    for (var k0 = 0u; k0 < P.k; k0 = k0 + ${TK}u) {
      for (var l = 0u; l < 4u; l++) {
        let e = lid + l * 256u;
        { ${loadA} }
        { ${loadB} }
      }
      workgroupBarrier();
      for (var kk = 0u; kk < ${TK}u; kk++) {
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var q = 0u; q < 4u; q++) { av[q] = As[kk * 64u + ty + 16u * q]; bv[q] = Bs[kk * 64u + tx + 16u * q]; }
        for (var ii = 0u; ii < 4u; ii++) { for (var jj = 0u; jj < 4u; jj++) { acc[ii][jj] = fma(av[ii], bv[jj], acc[ii][jj]); } }
      }
      workgroupBarrier();
    }
  }
  let oo = ${sum ? '0u' : 'wid.z * P.strideOut'};
  for (var ii = 0u; ii < 4u; ii++) {
    let r = m0 + ty + 16u * ii;
    if (r >= P.m) { continue; }
    for (var jj = 0u; jj < 4u; jj++) {
      let c = n0 + tx + 16u * jj;
      if (c >= P.n) { continue; }
      let idx = oo + r * P.n + c;
      ${accumulate ? 'st_out(idx, P.alpha * acc[ii][jj] + ld_out(idx));' : 'st_out(idx, P.alpha * acc[ii][jj]);'}
    }
  }
}`,
    groups: [Math.ceil(n / TM), Math.ceil(m / TM), sum ? 1 : batch],
  });
}
