// GEMMs with one small side, where a 16-bit operand meets a float32 one: LoRA's products with its
// rank-r adapter (bfloat16 activations, float32 A and B). cuBLASLt takes one dtype for both
// operands, so that path first widens the activations into a float32 copy (read 2 bytes, write 4,
// then the GEMM reads 4 again); these kernels read the 16-bit operand once, where it lies.
// float32 accumulation, float32 output; deterministic (no atomics).
//
// gemm_skinny_n_NT: out[m×n] = alpha · a[m×k] · op(b)[k×n] (+ out), n ≤ NT (16, 32, 64), a 16-bit
//   row-major (x · Aᵀ: x [tokens × in], A [r × in] with transB). A warp owns ROWS rows; its
//   lanes walk k (coalesced), b's k-tile sits in shared memory, and each lane's partial sums are
//   added across the warp at the end.
// gemm_skinny_m_MT: out[m×n] = alpha · op(a)[m×k] · b[k×n] (+ out), m ≤ MT, b 16-bit row-major
//   (dA = dhᵀ · x: dh [tokens × r] with transA, x [tokens × in]). A thread owns a column; k is
//   split over grid.y chunks whose partial sums go to `part` and are added in order by
//   skinny_sum (or written directly with one chunk).
#include "common.cuh"

#define KT_N 128  // k per shared tile, gemm_skinny_n
#define KT_M 32   // k per shared tile, gemm_skinny_m

// dst[kk·LD + c] = the small float32 operand at (k0 + kk, c) for kk < KT, c < W, 0 past kEnd or
// width. It is stored [k, width] (kRows) or [width, kLen]; consecutive threads walk the
// contiguous dimension.
template <int KT, int W, int LD>
__device__ __forceinline__ void stage_k_tile(float* dst, const float* src, bool kRows, int k0, int kEnd, int kLen, int width) {
  for (int e = threadIdx.x; e < KT * W; e += blockDim.x) {
    int kk, c;
    if (kRows) { c = e % W; kk = e / W; }
    else { kk = e % KT; c = e / KT; }
    const int kg = k0 + kk;
    dst[kk * LD + c] = (kg < kEnd && c < width) ? (kRows ? src[(i64)kg * width + c] : src[(i64)c * kLen + kg]) : 0.0f;
  }
}

template <int NT>
__device__ __forceinline__ void skinny_n(float* out, const void* a, int dtA, const float* b, int transB, int m, int n, int k, float alpha,
                                         int accumulate) {
  constexpr int ROWS = NT == 16 ? 2 : 1;  // rows per warp: 32 or 64 accumulators per lane
  constexpr int LD = NT + 4;              // row stride: float4 reads of 8 lanes hit 8 distinct bank groups
  __shared__ __align__(16) float ws[KT_N * LD];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 row0 = ((i64)blockIdx.x * 8 + warp) * ROWS;
  float acc[ROWS][NT];
#pragma unroll
  for (int r = 0; r < ROWS; r++)
#pragma unroll
    for (int j = 0; j < NT; j++) acc[r][j] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += KT_N) {
    stage_k_tile<KT_N, NT, LD>(ws, b, !transB, k0, k, k, n);  // b stored [n, k] with transB
    __syncthreads();
#pragma unroll
    for (int q = 0; q < KT_N / 32; q++) {
      const int kk = lane + 32 * q, kg = k0 + kk;
      float av[ROWS];
#pragma unroll
      for (int r = 0; r < ROWS; r++) {
        const i64 row = row0 + r;
        av[r] = (row < m && kg < k) ? ld(a, dtA, row * k + kg) : 0.0f;
      }
      const float4* w4 = reinterpret_cast<const float4*>(ws + kk * LD);
#pragma unroll
      for (int j4 = 0; j4 < NT / 4; j4++) {
        const float4 w = w4[j4];
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
          acc[r][4 * j4] = fmaf(av[r], w.x, acc[r][4 * j4]);
          acc[r][4 * j4 + 1] = fmaf(av[r], w.y, acc[r][4 * j4 + 1]);
          acc[r][4 * j4 + 2] = fmaf(av[r], w.z, acc[r][4 * j4 + 2]);
          acc[r][4 * j4 + 3] = fmaf(av[r], w.w, acc[r][4 * j4 + 3]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < ROWS; r++) {
    const i64 row = row0 + r;
#pragma unroll
    for (int j = 0; j < NT; j++) {
      const float s = warp_sum(acc[r][j]);
      if (row < m && j < n && lane == (j & 31)) {
        const i64 o = row * n + j;
        out[o] = accumulate ? alpha * s + out[o] : alpha * s;
      }
    }
  }
}

template <int MT>
__device__ __forceinline__ void skinny_m(float* out, float* part, const float* a, int transA, const void* b, int dtB, int m, int n, int k,
                                         int kChunk, float alpha, int accumulate) {
  __shared__ __align__(16) float as[KT_M * MT];
  const i64 col = (i64)blockIdx.x * 256 + threadIdx.x;
  const int kBegin = blockIdx.y * kChunk;
  const int kEnd = min(k, kBegin + kChunk);
  float acc[MT];
#pragma unroll
  for (int i = 0; i < MT; i++) acc[i] = 0.0f;
  for (int k0 = kBegin; k0 < kEnd; k0 += KT_M) {
    stage_k_tile<KT_M, MT, MT>(as, a, transA, k0, kEnd, k, m);  // a stored [k, m] with transA
    __syncthreads();
    const int kn = min(KT_M, kEnd - k0);
    for (int kk = 0; kk < kn; kk++) {
      const float bv = col < n ? ld(b, dtB, (i64)(k0 + kk) * n + col) : 0.0f;
      const float4* a4 = reinterpret_cast<const float4*>(as + kk * MT);  // the same address in every lane: a broadcast
#pragma unroll
      for (int i4 = 0; i4 < MT / 4; i4++) {
        const float4 v = a4[i4];
        acc[4 * i4] = fmaf(v.x, bv, acc[4 * i4]);
        acc[4 * i4 + 1] = fmaf(v.y, bv, acc[4 * i4 + 1]);
        acc[4 * i4 + 2] = fmaf(v.z, bv, acc[4 * i4 + 2]);
        acc[4 * i4 + 3] = fmaf(v.w, bv, acc[4 * i4 + 3]);
      }
    }
    __syncthreads();
  }
  if (col >= n) return;
  const i64 count = (i64)m * n;
#pragma unroll
  for (int i = 0; i < MT; i++) {
    if (i >= m) break;
    const i64 o = (i64)i * n + col;
    if (part) part[blockIdx.y * count + o] = acc[i];
    else out[o] = accumulate ? alpha * acc[i] + out[o] : alpha * acc[i];
  }
}

#define SKINNY_N(NT)                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(256)                                                                                    \
      gemm_skinny_n_##NT(float* out, const void* a, int dtA, const float* b, int transB, int m, int n, int k, float alpha, int accumulate) { \
    skinny_n<NT>(out, a, dtA, b, transB, m, n, k, alpha, accumulate);                                                                  \
  }
#define SKINNY_M(MT, MINB)                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(256, MINB) gemm_skinny_m_##MT(float* out, float* part, const float* a, int transA, const void* b, \
                                                                        int dtB, int m, int n, int k, int kChunk, float alpha,         \
                                                                        int accumulate) {                                             \
    skinny_m<MT>(out, part, a, transA, b, dtB, m, n, k, kChunk, alpha, accumulate);                                                   \
  }

SKINNY_N(16)
SKINNY_N(32)
SKINNY_N(64)
// MINB: blocks per SM the registers must allow; 64 accumulators need the room of one.
SKINNY_M(16, 3)
SKINNY_M(32, 2)
SKINNY_M(64, 1)

// out[e] = alpha · Σ_s part[s·count + e] (+ out[e]), the chunks added in order.
extern "C" __global__ void skinny_sum(float* out, const float* part, int splits, i64 count, float alpha, int accumulate) {
  GRID_STRIDE(e, count) {
    float s = 0.0f;
    for (int c = 0; c < splits; c++) s += part[c * count + e];
    out[e] = accumulate ? alpha * s + out[e] : alpha * s;
  }
}
