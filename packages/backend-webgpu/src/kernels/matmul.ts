/**
 * Batched GEMM in two forms; both unpack operands of any float dtype to float32 as they load them
 * and round the float32 sum once into `out`.
 *
 * - `tiled` (GPUs): a 64×64 output tile per workgroup of 256 threads, A and B staged through
 *   workgroup memory 16 k at a time, each thread 4×4 outputs kept in four vec4 accumulators.
 * - `registers` (CPU-backed adapters such as SwiftShader): no workgroup memory and no barriers;
 *   each of 64 threads reads its 8 rows of A and 8 columns of B straight from storage and keeps
 *   an 8×8 block in registers (fully unrolled; a plain multiply-add, which ran faster than fma()
 *   there). 8×8 rather than 4×4 halves the loads per multiply-add; together 20–30% faster on
 *   the tiny model's shapes. A CPU implementation emulates barriers by switching between the threads
 *   of a workgroup and has caches where a GPU has shared memory, so staging costs there and
 *   buys nothing; on SwiftShader this form is 2–5× faster than `tiled`.
 *
 * strideOut = 0 with batch > 1 sums the batch's products into one matrix (the backward of a
 * broadcast operand): one workgroup then loops over the batch.
 */
import type { KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import type { Ctx } from './common.js';

export type GemmKind = 'tiled' | 'registers';

const TM = 64;
const TK = 16;
/** `registers`: RB × RB outputs per thread, RT × RT threads per workgroup (a TM × TM tile). */
const RB = 8;
const RT = TM / RB;

/** matmul in the form `ctx.gemm` names; its arguments are checked in core (kernelChecks). */
export const matmulKernels = {
  matmul(ctx, out, a, b, p) {
    const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
    if (batch === 0 || m === 0 || n === 0) return;
    const sum = strideOut === 0 && batch > 1;
    const code = ctx.gemm === 'registers' ? registersCode(transA, transB, sum, accumulate) : tiledCode(transA, transB, sum, accumulate);
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
        { name: 'out', buf: out as WebGpuBuffer, access: accumulate ? 'readwrite' : 'write' },
        { name: 'a', buf: a as WebGpuBuffer, access: 'read' },
        { name: 'b', buf: b as WebGpuBuffer, access: 'read' },
      ],
      code,
      workgroupSize: ctx.gemm === 'registers' ? RT * RT : 256,
      groups: [Math.ceil(n / TM), Math.ceil(m / TM), sum ? 1 : batch],
    });
  },
} satisfies KernelFamily<Ctx>;

/** Stores the 4×4 block acc0…acc3 (rows r0…r0+3, columns c0…c0+3), skipping what lies outside m × n. */
function storeBlock(sum: boolean, accumulate: boolean): string {
  const put = (i: number) => `if (r0 + ${i}u < P.m) {
    let row = oo + (r0 + ${i}u) * P.n;
    for (var j = 0u; j < 4u; j++) {
      if (c0 + j < P.n) { ${accumulate ? `st_out(row + c0 + j, P.alpha * acc${i}[j] + ld_out(row + c0 + j));` : `st_out(row + c0 + j, P.alpha * acc${i}[j]);`} }
    }
  }`;
  return `let oo = ${sum ? '0u' : 'wid.z * P.strideOut'};
  ${[0, 1, 2, 3].map(put).join('\n  ')}`;
}

const batchRange = (sum: boolean) => (sum ? 'let b0 = 0u; let b1 = P.batch;' : 'let b0 = wid.z; let b1 = wid.z + 1u;');

function tiledCode(transA: boolean, transB: boolean, sum: boolean, accumulate: boolean): string {
  // Tile loads: each of the 256 threads loads 4 elements of A (64×16) and of B (16×64), walking
  // the stored matrix along its contiguous dimension. Tiles hold vec4s of 4 rows (A) or 4 columns (B).
  const loadA = transA
    ? 'let kk = e / 64u; let r = e % 64u; let gr = m0 + r; let gk = k0 + kk; var v = 0.0; if (gr < P.m && gk < P.k) { v = ld_a(oa + gk * P.m + gr); } As[kk * 16u + r / 4u][r % 4u] = v;'
    : 'let r = e / 16u; let kk = e % 16u; let gr = m0 + r; let gk = k0 + kk; var v = 0.0; if (gr < P.m && gk < P.k) { v = ld_a(oa + gr * P.k + gk); } As[kk * 16u + r / 4u][r % 4u] = v;';
  const loadB = transB
    ? 'let c = e / 16u; let kk = e % 16u; let gc = n0 + c; let gk = k0 + kk; var v = 0.0; if (gc < P.n && gk < P.k) { v = ld_b(ob + gc * P.k + gk); } Bs[kk * 16u + c / 4u][c % 4u] = v;'
    : 'let kk = e / 64u; let c = e % 64u; let gc = n0 + c; let gk = k0 + kk; var v = 0.0; if (gc < P.n && gk < P.k) { v = ld_b(ob + gk * P.n + gc); } Bs[kk * 16u + c / 4u][c % 4u] = v;';
  return `var<workgroup> As: array<vec4<f32>, ${(TM / 4) * TK}>;
var<workgroup> Bs: array<vec4<f32>, ${(TM / 4) * TK}>;
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let n0 = wid.x * 64u;
  let m0 = wid.y * 64u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  ${batchRange(sum)}
  for (var bt = b0; bt < b1; bt++) {
    let oa = bt * P.strideA;
    let ob = bt * P.strideB;
    for (var k0 = 0u; k0 < P.k; k0 = k0 + ${TK}u) {
      for (var l = 0u; l < ${(TM * TK) / 256}u; l++) {
        let e = lid + l * 256u;
        { ${loadA} }
        { ${loadB} }
      }
      workgroupBarrier();
      for (var kk = 0u; kk < ${TK}u; kk++) {
        let a = As[kk * 16u + ty];
        let b = Bs[kk * 16u + tx];
        acc0 = fma(vec4<f32>(a.x), b, acc0);
        acc1 = fma(vec4<f32>(a.y), b, acc1);
        acc2 = fma(vec4<f32>(a.z), b, acc2);
        acc3 = fma(vec4<f32>(a.w), b, acc3);
      }
      workgroupBarrier();
    }
  }
  let r0 = m0 + ty * 4u;
  let c0 = n0 + tx * 4u;
  ${storeBlock(sum, accumulate)}
}`;
}

function registersCode(transA: boolean, transB: boolean, sum: boolean, accumulate: boolean): string {
  // Element (r, k) of A is at oa + r·rowA + k·stepA; element (k, c) of B at ob + c·colB + k·stepB.
  const [rowA, stepA] = transA ? ['1u', 'P.m'] : ['P.k', '1u'];
  const [colB, stepB] = transB ? ['P.k', '1u'] : ['1u', 'P.n'];
  const H = RB / 4;
  const R = [...Array(RB).keys()];
  const HH = [...Array(H).keys()];
  const body: string[] = [];
  for (const h of HH) {
    body.push(`let b${h} = vec4<f32>(${[0, 1, 2, 3].map((j) => `ld_b(ib${4 * h + j})`).join(', ')});`);
  }
  for (const r of R)
    body.push(`{ let a = vec4<f32>(ld_a(ia${r})); ${HH.map((h) => `acc${r}_${h} = a * b${h} + acc${r}_${h};`).join(' ')} }`);
  for (const i of R) body.push(`ia${i} = ia${i} + ${stepA}; ib${i} = ib${i} + ${stepB};`);
  const put = (r: number) => `if (r0 + ${r}u < P.m) {
    let row = oo + (r0 + ${r}u) * P.n;
    ${HH.map(
      (h) => `for (var j = 0u; j < 4u; j++) {
      let c = c0 + ${4 * h}u + j;
      if (c < P.n) { ${accumulate ? `st_out(row + c, P.alpha * acc${r}_${h}[j] + ld_out(row + c));` : `st_out(row + c, P.alpha * acc${r}_${h}[j]);`} }
    }`,
    ).join('\n    ')}
  }`;
  return `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let r0 = wid.y * ${TM}u + (lid / ${RT}u) * ${RB}u;
  let c0 = wid.x * ${TM}u + (lid % ${RT}u) * ${RB}u;
  if (r0 >= P.m || c0 >= P.n) { return; }
  ${R.flatMap((r) => HH.map((h) => `var acc${r}_${h} = vec4<f32>(0.0);`)).join(' ')}
  ${batchRange(sum)}
  for (var bt = b0; bt < b1; bt++) {
    // Rows and columns past the edge read the last one (a valid address); their sums are never stored.
    ${R.map((i) => `var ia${i} = bt * P.strideA + min(r0 + ${i}u, P.m - 1u) * ${rowA};`).join(' ')}
    ${R.map((i) => `var ib${i} = bt * P.strideB + min(c0 + ${i}u, P.n - 1u) * ${colB};`).join(' ')}
    for (var kk = 0u; kk < P.k; kk++) {
      ${body.join('\n      ')}
    }
  }
  let oo = ${sum ? '0u' : 'wid.z * P.strideOut'};
  ${R.map(put).join('\n  ')}
}`;
}
