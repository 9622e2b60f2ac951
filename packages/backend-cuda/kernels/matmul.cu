// The GEMM that does not need cuBLAS: out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b]), float32
// accumulation, any storage dtype per operand. Used when cuBLASLt is not found, or cannot take a
// call (mixed operand dtypes, unaligned strides). 64×64 output tiles, k in steps of 16 through
// shared memory, 256 threads with 4×4 outputs each.
//
// sumBatch: out = alpha · Σ_b op(a[b]) · op(b[b]) (+ out) — the backward of a broadcast operand
// (strideOut = 0 in MatmulParams); the batch loop then runs inside the block (grid.z = 1).
#include "common.cuh"

#define TM 64
#define TN 64
#define TK 16

extern "C" __global__ void __launch_bounds__(256) gemm_tiled(void* out, int dtOut, const void* a, int dtA, const void* b, int dtB, int m, int n, int k,
                                                              int transA, int transB, i64 strideA, i64 strideB, i64 strideOut, int batch,
                                                              int sumBatch, float alpha, int accumulate) {
  __shared__ float sa[TK][TM + 4];
  __shared__ float sb[TK][TN + 4];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  float acc[4][4] = {};
  const int b0 = sumBatch ? 0 : blockIdx.z, b1 = sumBatch ? batch : blockIdx.z + 1;
  for (int bi = b0; bi < b1; bi++) {
    const i64 ao = (i64)bi * strideA, bo = (i64)bi * strideB;
    for (int k0 = 0; k0 < k; k0 += TK) {
      // 64×16 elements of op(a) and 16×64 of op(b): 4 each per thread.
      for (int e = threadIdx.x; e < TM * TK; e += 256) {
        int mm, kk;
        if (transA) { mm = e % TM; kk = e / TM; }  // a stored [k, m]: consecutive threads walk m
        else { kk = e % TK; mm = e / TK; }          // a stored [m, k]: consecutive threads walk k
        const int gm = m0 + mm, gk = k0 + kk;
        float v = 0.0f;
        if (gm < m && gk < k) v = ld(a, dtA, ao + (transA ? (i64)gk * m + gm : (i64)gm * k + gk));
        sa[kk][mm] = v;
      }
      for (int e = threadIdx.x; e < TN * TK; e += 256) {
        int nn, kk;
        if (transB) { kk = e % TK; nn = e / TK; }  // b stored [n, k]
        else { nn = e % TN; kk = e / TN; }          // b stored [k, n]
        const int gn = n0 + nn, gk = k0 + kk;
        float v = 0.0f;
        if (gn < n && gk < k) v = ld(b, dtB, bo + (transB ? (i64)gn * k + gk : (i64)gk * n + gn));
        sb[kk][nn] = v;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < TK; kk++) {
        float ra[4], rb[4];
#pragma unroll
        for (int i = 0; i < 4; i++) ra[i] = sa[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) rb[j] = sb[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
      }
      __syncthreads();
    }
  }
  const i64 oo = sumBatch ? 0 : (i64)blockIdx.z * strideOut;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int gm = m0 + ty + 16 * i;
    if (gm >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int gn = n0 + tx + 16 * j;
      if (gn >= n) continue;
      const i64 at = oo + (i64)gm * n + gn;
      float v = alpha * acc[i][j];
      if (accumulate) v += ld(out, dtOut, at);
      st(out, dtOut, at, v);
    }
  }
}
