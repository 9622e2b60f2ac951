// Flash-style scaled dot-product attention, forward and backward, float32 math on any storage
// dtype. q is [batch, seqQ, heads, D]; k and v are [batch, seqK, kvHeads, D]; head h reads kv head
// h / (heads / kvHeads). Query i sees key j when mask[b, j] ≠ 0 (mask may be null) and, if causal,
// j ≤ i + (seqK − seqQ). A row that sees no key gets out = 0, lse = −Infinity and no gradient.
//
// Layout of the work: a block of 4 warps owns 16 rows (queries in the forward pass and for dq,
// keys for dk/dv), 4 per warp; the other side streams through shared memory in tiles of 32, lane
// l of a warp taking element l of the tile for the scores (online softmax across the warp with
// shuffles), then each lane accumulating NV = D/32 (rounded up) output features. D ≤ 32·NV; the
// host picks NV ∈ {2, 4, 8} (D ≤ 256). Shared memory is dynamic: (16·D + 32·(D+1) + 32·D)·4 bytes
// forward, more in backward (the host raises the per-kernel limit when it passes 48 KiB).
#include "attention.cuh"

#define ROWS 16      // rows per block
#define RPW 4        // rows per warp
#define TILE 32      // streamed elements per tile (one per lane)

// Loads `count` rows of a [batch, seq, nh, D] tensor (rows seq0.., head h) into dst[r * pitch + d], zeros past seq.
__device__ __forceinline__ void load_rows(float* dst, int pitch, const void* src, int dt, int b, int seq, int nh, int h, int D, int seq0,
                                          int count) {
  for (int e = threadIdx.x; e < count * D; e += blockDim.x) {
    const int r = e / D, d = e - r * D, row = seq0 + r;
    dst[r * pitch + d] = row < seq ? ld(src, dt, (((i64)b * seq + row) * nh + h) * D + d) : 0.0f;
  }
}

template <int NV>
__device__ void attention_fwd(void* out, int dtO, float* lse, const void* q, int dtQ, const void* k, int dtK, const void* v, int dtV,
                              const int* mask, AttnShape s) {
  extern __shared__ float smem[];
  const int D = s.D, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ROWS;
  const int kh = h / (s.heads / s.kvHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* sQ = smem;                  // [ROWS][D]
  float* sK = sQ + ROWS * D;         // [TILE][D + 1]
  float* sV = sK + TILE * (D + 1);   // [TILE][D]
  load_rows(sQ, D, q, dtQ, b, s.seqQ, s.heads, h, D, q0, ROWS);

  float m[RPW], l[RPW], acc[RPW][NV];
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NV; c++) acc[r][c] = 0.0f;
  }
  const int lastQ = min(s.seqQ - 1, q0 + ROWS - 1);
  const int lastK = s.causal ? min(s.seqK - 1, lastQ + s.seqK - s.seqQ) : s.seqK - 1;
  for (int k0 = 0; k0 <= lastK; k0 += TILE) {
    __syncthreads();
    load_rows(sK, D + 1, k, dtK, b, s.seqK, s.kvHeads, kh, D, k0, TILE);
    load_rows(sV, D, v, dtV, b, s.seqK, s.kvHeads, kh, D, k0, TILE);
    __syncthreads();
    const int j = k0 + lane;
#pragma unroll
    for (int r = 0; r < RPW; r++) {
      const int row = warp * RPW + r, i = q0 + row;
      float sc = -INFINITY;
      if (sees(s, mask, b, i, j)) {
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot = fmaf(sQ[row * D + d], sK[lane * (D + 1) + d], dot);
        sc = s.scale * dot;
      }
      const float mn = fmaxf(m[r], warp_max(sc));
      if (mn == -INFINITY) continue;  // no key seen yet (uniform across the warp)
      const float p = expf(sc - mn), corr = expf(m[r] - mn);
      l[r] = l[r] * corr + warp_sum(p);
      m[r] = mn;
#pragma unroll
      for (int c = 0; c < NV; c++) acc[r][c] *= corr;
#pragma unroll 4
      for (int t = 0; t < TILE; t++) {
        const float pt = __shfl_sync(0xffffffffu, p, t);
        if (pt == 0.0f) continue;
#pragma unroll
        for (int c = 0; c < NV; c++) {
          const int d = lane + 32 * c;
          if (d < D) acc[r][c] = fmaf(pt, sV[t * D + d], acc[r][c]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int i = q0 + warp * RPW + r;
    if (i >= s.seqQ) continue;
    const i64 o = (((i64)b * s.seqQ + i) * s.heads + h) * D;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int c = 0; c < NV; c++) {
      const int d = lane + 32 * c;
      if (d < D) st(out, dtO, o + d, acc[r][c] * inv);
    }
    if (lane == 0) lse[((i64)b * s.heads + h) * s.seqQ + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// dq, and delta[i] = Σ_j P_ij·dP_ij (saved for the dk/dv kernel): two passes over the keys.
template <int NV>
__device__ void attention_bwd_dq(void* dq, int dtDq, float* delta, const void* dO, int dtDo, const void* q, int dtQ, const void* k, int dtK,
                                 const void* v, int dtV, const float* lse, const int* mask, AttnShape s) {
  extern __shared__ float smem[];
  const int D = s.D, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ROWS;
  const int kh = h / (s.heads / s.kvHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* sQ = smem;                  // [ROWS][D]
  float* sG = sQ + ROWS * D;         // dO rows [ROWS][D]
  float* sK = sG + ROWS * D;         // [TILE][D + 1]
  float* sV = sK + TILE * (D + 1);    // [TILE][D + 1]
  load_rows(sQ, D, q, dtQ, b, s.seqQ, s.heads, h, D, q0, ROWS);
  load_rows(sG, D, dO, dtDo, b, s.seqQ, s.heads, h, D, q0, ROWS);
  float L[RPW], Dl[RPW], acc[RPW][NV];
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int i = q0 + warp * RPW + r;
    L[r] = i < s.seqQ ? lse[((i64)b * s.heads + h) * s.seqQ + i] : -INFINITY;
    Dl[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NV; c++) acc[r][c] = 0.0f;
  }
  const int lastQ = min(s.seqQ - 1, q0 + ROWS - 1);
  const int lastK = s.causal ? min(s.seqK - 1, lastQ + s.seqK - s.seqQ) : s.seqK - 1;
  for (int pass = 0; pass < 2; pass++) {
    for (int k0 = 0; k0 <= lastK; k0 += TILE) {
      __syncthreads();
      load_rows(sK, D + 1, k, dtK, b, s.seqK, s.kvHeads, kh, D, k0, TILE);
      load_rows(sV, D + 1, v, dtV, b, s.seqK, s.kvHeads, kh, D, k0, TILE);
      __syncthreads();
      const int j = k0 + lane;
#pragma unroll
      for (int r = 0; r < RPW; r++) {
        const int row = warp * RPW + r, i = q0 + row;
        if (L[r] == -INFINITY) continue;  // uniform across the warp
        float p = 0.0f, dp = 0.0f;
        if (sees(s, mask, b, i, j)) {
          float dot = 0.0f;
          for (int d = 0; d < D; d++) {
            dot = fmaf(sQ[row * D + d], sK[lane * (D + 1) + d], dot);
            dp = fmaf(sG[row * D + d], sV[lane * (D + 1) + d], dp);
          }
          p = expf(s.scale * dot - L[r]);
        }
        if (pass == 0) {
          Dl[r] += warp_sum(p * dp);
          continue;
        }
        const float dS = s.scale * p * (dp - Dl[r]);
#pragma unroll 4
        for (int t = 0; t < TILE; t++) {
          const float g = __shfl_sync(0xffffffffu, dS, t);
          if (g == 0.0f) continue;
#pragma unroll
          for (int c = 0; c < NV; c++) {
            const int d = lane + 32 * c;
            if (d < D) acc[r][c] = fmaf(g, sK[t * (D + 1) + d], acc[r][c]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int i = q0 + warp * RPW + r;
    if (i >= s.seqQ) continue;
    const i64 o = (((i64)b * s.seqQ + i) * s.heads + h) * D;
#pragma unroll
    for (int c = 0; c < NV; c++) {
      const int d = lane + 32 * c;
      if (d < D) st(dq, dtDq, o + d, acc[r][c]);
    }
    if (lane == 0) delta[((i64)b * s.heads + h) * s.seqQ + i] = Dl[r];
  }
}

// dk and dv per key row, summed over the query heads of its kv head: dv_j = Σ_i P_ij·dO_i,
// dk_j = Σ_i dS_ij·q_i with dS = scale·P·(dP − delta). Grid (ceil(seqK / 16), kvHeads, batch).
template <int NV>
__device__ void attention_bwd_dkdv(void* dk, int dtDk, void* dv, int dtDv, const void* dO, int dtDo, const void* q, int dtQ, const void* k,
                                   int dtK, const void* v, int dtV, const float* lse, const float* delta, const int* mask, AttnShape s) {
  extern __shared__ float smem[];
  const int D = s.D, b = blockIdx.z, kh = blockIdx.y, k0 = blockIdx.x * ROWS;
  const int group = s.heads / s.kvHeads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* sK = smem;                  // this block's keys [ROWS][D]
  float* sV = sK + ROWS * D;         // [ROWS][D]
  float* sQ = sV + ROWS * D;         // query tile [TILE][D + 1]
  float* sG = sQ + TILE * (D + 1);   // dO tile [TILE][D + 1]
  float* sL = sG + TILE * (D + 1);   // lse of the tile [TILE]
  float* sD = sL + TILE;             // delta of the tile [TILE]
  load_rows(sK, D, k, dtK, b, s.seqK, s.kvHeads, kh, D, k0, ROWS);
  load_rows(sV, D, v, dtV, b, s.seqK, s.kvHeads, kh, D, k0, ROWS);
  float ak[RPW][NV], av[RPW][NV];
#pragma unroll
  for (int r = 0; r < RPW; r++)
#pragma unroll
    for (int c = 0; c < NV; c++) ak[r][c] = av[r][c] = 0.0f;
  // The first query that can see key k0 under the causal rule.
  const int firstQ = s.causal ? max(0, k0 - (s.seqK - s.seqQ)) : 0;
  for (int g = 0; g < group; g++) {
    const int h = kh * group + g;
    for (int i0 = (firstQ / TILE) * TILE; i0 < s.seqQ; i0 += TILE) {
      __syncthreads();
      load_rows(sQ, D + 1, q, dtQ, b, s.seqQ, s.heads, h, D, i0, TILE);
      load_rows(sG, D + 1, dO, dtDo, b, s.seqQ, s.heads, h, D, i0, TILE);
      if (threadIdx.x < TILE) {
        const int i = i0 + threadIdx.x;
        const i64 at = ((i64)b * s.heads + h) * s.seqQ + i;
        sL[threadIdx.x] = i < s.seqQ ? lse[at] : -INFINITY;
        sD[threadIdx.x] = i < s.seqQ ? delta[at] : 0.0f;
      }
      __syncthreads();
      const int i = i0 + lane;
#pragma unroll
      for (int r = 0; r < RPW; r++) {
        const int row = warp * RPW + r, j = k0 + row;
        float p = 0.0f, dS = 0.0f;
        if (sL[lane] != -INFINITY && sees(s, mask, b, i, j)) {
          float dot = 0.0f, dp = 0.0f;
          for (int d = 0; d < D; d++) {
            dot = fmaf(sQ[lane * (D + 1) + d], sK[row * D + d], dot);
            dp = fmaf(sG[lane * (D + 1) + d], sV[row * D + d], dp);
          }
          p = expf(s.scale * dot - sL[lane]);
          dS = s.scale * p * (dp - sD[lane]);
        }
#pragma unroll 4
        for (int t = 0; t < TILE; t++) {
          const float pt = __shfl_sync(0xffffffffu, p, t), gt = __shfl_sync(0xffffffffu, dS, t);
          if (pt == 0.0f && gt == 0.0f) continue;
#pragma unroll
          for (int c = 0; c < NV; c++) {
            const int d = lane + 32 * c;
            if (d < D) {
              av[r][c] = fmaf(pt, sG[t * (D + 1) + d], av[r][c]);
              ak[r][c] = fmaf(gt, sQ[t * (D + 1) + d], ak[r][c]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int j = k0 + warp * RPW + r;
    if (j >= s.seqK) continue;
    const i64 o = (((i64)b * s.seqK + j) * s.kvHeads + kh) * D;
#pragma unroll
    for (int c = 0; c < NV; c++) {
      const int d = lane + 32 * c;
      if (d < D) {
        st(dk, dtDk, o + d, ak[r][c]);
        st(dv, dtDv, o + d, av[r][c]);
      }
    }
  }
}

#define ATTENTION_KERNELS(NV)                                                                                                              \
  extern "C" __global__ void __launch_bounds__(128) attention_fwd_##NV(void* out, int dtO, float* lse, const void* q, int dtQ,             \
                                                                        const void* k, int dtK, const void* v, int dtV, const int* mask, \
                                                                        AttnShape s) {                                                   \
    attention_fwd<NV>(out, dtO, lse, q, dtQ, k, dtK, v, dtV, mask, s);                                                                   \
  }                                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(128)                                                                                      \
      attention_bwd_dq_##NV(void* dq, int dtDq, float* delta, const void* dO, int dtDo, const void* q, int dtQ, const void* k, int dtK,  \
                            const void* v, int dtV, const float* lse, const int* mask, AttnShape s) {                                    \
    attention_bwd_dq<NV>(dq, dtDq, delta, dO, dtDo, q, dtQ, k, dtK, v, dtV, lse, mask, s);                                               \
  }                                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(128)                                                                                      \
      attention_bwd_dkdv_##NV(void* dk, int dtDk, void* dv, int dtDv, const void* dO, int dtDo, const void* q, int dtQ, const void* k,   \
                              int dtK, const void* v, int dtV, const float* lse, const float* delta, const int* mask, AttnShape s) {     \
    attention_bwd_dkdv<NV>(dk, dtDk, dv, dtDv, dO, dtDo, q, dtQ, k, dtK, v, dtV, lse, delta, mask, s);                                   \
  }

ATTENTION_KERNELS(2)
ATTENTION_KERNELS(4)
ATTENTION_KERNELS(8)
