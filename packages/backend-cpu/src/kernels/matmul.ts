/**
 * Batched GEMM on the sgemm engine. out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b]) with matrix b
 * of each operand at `b · stride` (stride 0 reuses one matrix for the whole batch).
 *
 * strideOut = 0 with batch > 1 sums the batch into one matrix: out = alpha · Σ_b op(a[b]) · op(b[b])
 * (+ out when accumulate), which is the backward of a broadcast operand.
 */
import type { DeviceBuffer, MatmulParams } from '@peft/core';
import { arg, type CpuBuffer, type CpuContext, counts, finite } from '../buffer.js';
import { loadF32, storeF32 } from '../storage.js';

export function matmul(ctx: CpuContext, out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
  const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
  counts('matmul', { batch, m, n, k, strideA, strideB, strideOut });
  finite('matmul', 'alpha', alpha);
  const span = (stride: number, size: number) => (batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size);
  const ab = arg(ctx, 'matmul', 'a', a, span(strideA, m * k), 'float');
  const bb = arg(ctx, 'matmul', 'b', b, span(strideB, k * n), 'float');
  const ob = arg(ctx, 'matmul', 'out', out, span(strideOut, m * n), 'float');
  if (ob === ab || ob === bb) throw new Error('matmul: out must not be the same buffer as a or b');
  if (batch === 0 || m === 0 || n === 0) return;

  const outLen = span(strideOut, m * n);
  const c = ob.dtype === 'float32' ? (ob.data as Float32Array) : accumulate ? loadF32(ob, 0, outLen) : new Float32Array(outLen);
  if (k === 0) {
    if (!accumulate) for (let i = 0; i < batch; i++) c.fill(0, i * strideOut, i * strideOut + m * n);
  } else {
    const av = floatData(ab, span(strideA, m * k));
    const bv = floatData(bb, span(strideB, k * n));
    for (let i = 0; i < batch; i++) {
      ctx.sgemm.sgemm({
        m,
        n,
        k,
        a: av,
        aOffset: i * strideA,
        transA,
        b: bv,
        bOffset: i * strideB,
        transB,
        c,
        cOffset: i * strideOut,
        alpha,
        accumulate: accumulate || (strideOut === 0 && i > 0),
      });
    }
  }
  if (ob.dtype !== 'float32') storeF32(ob, c);
}

/** The buffer's float32 array, or its first `n` elements decoded from 16-bit storage. */
function floatData(buf: CpuBuffer, n: number): Float32Array {
  return buf.dtype === 'float32' ? (buf.data as Float32Array) : loadF32(buf, 0, n);
}
