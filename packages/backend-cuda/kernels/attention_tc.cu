// Attention on tensor cores (mma.sync.m16n8k16, sm_80+) for q, k, v of one 16-bit dtype with
// headDim 64 or 128: FlashAttention-2's forward and a two-kernel backward. Shape and masking rules
// are attention.cu's (attention.cuh); the host picks these kernels (CudaBackend.tcDtype).
#include "attention.cuh"

// --- Tensor-core forward: q, k, v of one 16-bit dtype, D = 64 or 128 --------------------------------
// FlashAttention-2's forward on mma.sync.m16n8k16 (bf16 or f16 in, float32 accumulate): a block
// of 4 warps owns 64 query rows, 16 per warp, kept as A fragments in registers; key and value
// tiles of 64 rows stream through shared memory. S = Q·Kᵀ lands in C fragments (a thread holds
// 2 rows × 16 columns of the warp's 16 × 64 scores), the online softmax runs on them (row max and
// sum across the 4 threads of a quad), and P, rounded to the input dtype, is re-used in registers
// as the A operand of P·V. Exponentials are base 2 on log2(e)-scaled scores. Fully masked rows get
// out = 0 and lse = −Infinity, as in the float32 kernel above.
#define TC_ROWS 64
#define TC_KEYS 64
#define TC_PAD 8  // 16-bit elements after each shared-memory row (bank spread; rows stay 16-byte aligned)

template <bool BF>
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, const uint32_t* b) {
#ifdef PEFT_CUDA_EMULATION
  emu::mma_m16n8k16(d, a, b, BF);
#else
  if (BF)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Two floats as a register of two 16-bit values, lo in the low half.
template <bool BF>
__device__ __forceinline__ uint32_t pack16(float lo, float hi) {
  const uint32_t a = BF ? __bfloat16_as_ushort(__float2bfloat16_rn(lo)) : __half_as_ushort(__float2half_rn(lo));
  const uint32_t b = BF ? __bfloat16_as_ushort(__float2bfloat16_rn(hi)) : __half_as_ushort(__float2half_rn(hi));
  return a | b << 16;
}

// Fragment loads from row-major 16-bit tiles (pitch in elements; rows 4-byte aligned). t = lane % 4, g = lane / 4.
// A fragment of the 16×16 block at (row0, col0) of M.
__device__ __forceinline__ void frag_a(uint32_t* a, const uint16_t* M, int pitch, int row0, int col0) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
  for (int r = 0; r < 4; r++)
    a[r] = *reinterpret_cast<const uint32_t*>(M + (row0 + g + 8 * (r & 1)) * pitch + col0 + 2 * t + 8 * (r >> 1));
}
// B fragment (16 k × 8 n) with B[k][n] = M[n0 + n][k0 + k]: k pairs are adjacent in M (Kᵀ from K, say).
__device__ __forceinline__ void frag_b_nk(uint32_t* b, const uint16_t* M, int pitch, int n0, int k0) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
  const uint16_t* p = M + (n0 + g) * pitch + k0 + 2 * t;
  b[0] = *reinterpret_cast<const uint32_t*>(p);
  b[1] = *reinterpret_cast<const uint32_t*>(p + 8);
}
// B fragment with B[k][n] = M[k0 + k][n0 + n]: k pairs are in adjacent rows of M (V in P·V, say).
__device__ __forceinline__ void frag_b_kn(uint32_t* b, const uint16_t* M, int pitch, int k0, int n0) {
  const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
  const uint16_t* p = M + (k0 + 2 * t) * pitch + n0 + g;
  b[0] = (uint32_t)p[0] | (uint32_t)p[pitch] << 16;
  b[1] = (uint32_t)p[8 * pitch] | (uint32_t)p[9 * pitch] << 16;
}
// Two C fragments (16 × 8 each, columns 0–7 and 8–15) as one A fragment (16 × 16), rounded to 16 bits.
template <bool BF>
__device__ __forceinline__ void c_to_a(uint32_t* a, const float* c0, const float* c1) {
  a[0] = pack16<BF>(c0[0], c0[1]);
  a[1] = pack16<BF>(c0[2], c0[3]);
  a[2] = pack16<BF>(c1[0], c1[1]);
  a[3] = pack16<BF>(c1[2], c1[3]);
}

// The same, split in two: hi = x rounded to 16 bits, lo = the rest rounded to 16 bits, so that
// hi·B + lo·B carries about twice the 16-bit mantissa. For dS, whose terms cancel in dq and dk
// (Σ_j dS_ij = 0): rounded once, a row of large scores loses dq to tens of percent in bfloat16.
template <bool BF>
__device__ __forceinline__ float round16(float x) {
  return BF ? __bfloat162float(__float2bfloat16_rn(x)) : __half2float(__float2half_rn(x));
}
template <bool BF>
__device__ __forceinline__ void c_to_a_split(uint32_t* hi, uint32_t* lo, const float* c0, const float* c1) {
  float h0[4], h1[4], l0[4], l1[4];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    h0[e] = round16<BF>(c0[e]);
    h1[e] = round16<BF>(c1[e]);
    l0[e] = c0[e] - h0[e];
    l1[e] = c1[e] - h1[e];
  }
  c_to_a<BF>(hi, h0, h1);
  c_to_a<BF>(lo, l0, l1);
}

// `rows` rows from seq0 of head h of a [batch, seq, nh, D] 16-bit tensor into dst[r * (D + TC_PAD)], zeros past seq.
template <int D>
__device__ __forceinline__ void tc_load_rows(uint16_t* dst, const uint16_t* src, int b, int seq, int nh, int h, int seq0, int rows) {
  constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
  for (int e = threadIdx.x; e < rows * CHUNKS; e += blockDim.x) {
    const int r = e / CHUNKS, c = e - r * CHUNKS, row = seq0 + r;
    uint4 v = {0u, 0u, 0u, 0u};
    if (row < seq) v = *reinterpret_cast<const uint4*>(src + (((i64)b * seq + row) * nh + h) * D + c * 8);
    *reinterpret_cast<uint4*>(dst + r * (D + TC_PAD) + c * 8) = v;
  }
}

// Rows seq0 … seq0 + TC_KEYS − 1 of head h of a [batch, seq, nh, D] 16-bit tensor into dst[r][D + TC_PAD], zeros past seq.
template <int D>
__device__ __forceinline__ void tc_load_tile(uint16_t (*dst)[D + TC_PAD], const uint16_t* src, int b, int seq, int nh, int h, int seq0) {
  constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
  for (int e = threadIdx.x; e < TC_KEYS * CHUNKS; e += blockDim.x) {
    const int r = e / CHUNKS, c = e - r * CHUNKS, row = seq0 + r;
    uint4 v = {0u, 0u, 0u, 0u};
    if (row < seq) v = *reinterpret_cast<const uint4*>(src + (((i64)b * seq + row) * nh + h) * D + c * 8);
    *reinterpret_cast<uint4*>(&dst[r][c * 8]) = v;
  }
}

template <int D, bool BF>
__device__ void attention_fwd_tc(void* out, int dtO, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v, const int* mask,
                                 AttnShape s) {
  __shared__ __align__(16) uint16_t sK[TC_KEYS][D + TC_PAD];
  __shared__ __align__(16) uint16_t sV[TC_KEYS][D + TC_PAD];
  const int b = blockIdx.z, h = blockIdx.y, kh = h / (s.heads / s.kvHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int rowLo = blockIdx.x * TC_ROWS + warp * 16 + g, rowHi = rowLo + 8;
  const float scale2 = s.scale * 1.4426950408889634f;  // log2(e)

  // This thread's part of the warp's 16 query rows, as A fragments for each 16-wide slice of D.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int row = (r & 1) ? rowHi : rowLo, col = kk * 16 + 2 * t + 8 * (r >> 1);
      qf[kk][r] = row < s.seqQ ? *reinterpret_cast<const uint32_t*>(q + (((i64)b * s.seqQ + row) * s.heads + h) * D + col) : 0u;
    }
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  const int lastQ = min(s.seqQ - 1, (int)blockIdx.x * TC_ROWS + TC_ROWS - 1);
  const int lastK = s.causal ? min(s.seqK - 1, lastQ + s.seqK - s.seqQ) : s.seqK - 1;
  for (int k0 = 0; k0 <= lastK; k0 += TC_KEYS) {
    __syncthreads();
    tc_load_tile<D>(sK, k, b, s.seqK, s.kvHeads, kh, k0);
    tc_load_tile<D>(sV, v, b, s.seqK, s.kvHeads, kh, k0);
    __syncthreads();

    // S = Q·Kᵀ for this warp's 16 rows × 64 keys: 8 C fragments of 8 keys.
    float sc[TC_KEYS / 8][4];
#pragma unroll
    for (int n = 0; n < TC_KEYS / 8; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
      for (int n = 0; n < TC_KEYS / 8; n++) {
        const uint16_t* kr = &sK[n * 8 + g][kk * 16 + 2 * t];
        const uint32_t bf[2] = {*reinterpret_cast<const uint32_t*>(kr), *reinterpret_cast<const uint32_t*>(kr + 8)};
        mma16816<BF>(sc[n], qf[kk], bf);
      }
    }
    // Mask and scale; the row maxima over the quad.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < TC_KEYS / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int j = k0 + n * 8 + 2 * t + (e & 1);
        const float x = sees(s, mask, b, (e & 2) ? rowHi : rowLo, j) ? sc[n][e] * scale2 : -INFINITY;
        sc[n][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mn = fmaxf(m[r], mx[r]);
      base[r] = mn == -INFINITY ? 0.0f : mn;  // no key seen yet: every p below is 0
      const float corr = exp2f(m[r] - base[r]);
      m[r] = mn;
      l[r] *= corr;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        acc[n][2 * r] *= corr;
        acc[n][2 * r + 1] *= corr;
      }
    }
#pragma unroll
    for (int n = 0; n < TC_KEYS / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = exp2f(sc[n][e] - base[e >> 1]);
        sc[n][e] = p;
        l[e >> 1] += p;  // this thread's share; summed over the quad at the end
      }
    }
    // O += P·V: two C fragments of P (16 keys) are one A fragment.
#pragma unroll
    for (int kc = 0; kc < TC_KEYS / 16; kc++) {
      const uint32_t pa[4] = {pack16<BF>(sc[2 * kc][0], sc[2 * kc][1]), pack16<BF>(sc[2 * kc][2], sc[2 * kc][3]),
                              pack16<BF>(sc[2 * kc + 1][0], sc[2 * kc + 1][1]), pack16<BF>(sc[2 * kc + 1][2], sc[2 * kc + 1][3])};
      const int key = kc * 16 + 2 * t;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        const int d = n * 8 + g;
        const uint32_t vb[2] = {(uint32_t)sV[key][d] | (uint32_t)sV[key + 1][d] << 16, (uint32_t)sV[key + 8][d] | (uint32_t)sV[key + 9][d] << 16};
        mma16816<BF>(acc[n], pa, vb);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = r ? rowHi : rowLo;
    if (row >= s.seqQ) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    const i64 o = (((i64)b * s.seqQ + row) * s.heads + h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      st(out, dtO, o + n * 8 + 2 * t, acc[n][2 * r] * inv);
      st(out, dtO, o + n * 8 + 2 * t + 1, acc[n][2 * r + 1] * inv);
    }
    if (t == 0) lse[((i64)b * s.heads + h) * s.seqQ + row] = l[r] > 0.0f ? m[r] * 0.6931471805599453f + logf(l[r]) : -INFINITY;
  }
}

#define ATTENTION_TC_KERNEL(D, NAME, BF)                                                                                                  \
  extern "C" __global__ void __launch_bounds__(128) attention_fwd_tc_##NAME##_##D(void* out, int dtO, float* lse, const void* q,         \
                                                                                    const void* k, const void* v, const int* mask,      \
                                                                                    AttnShape s) {                                      \
    attention_fwd_tc<D, BF>(out, dtO, lse, static_cast<const uint16_t*>(q), static_cast<const uint16_t*>(k),                            \
                            static_cast<const uint16_t*>(v), mask, s);                                                                  \
  }

ATTENTION_TC_KERNEL(64, bf16, true)
ATTENTION_TC_KERNEL(128, bf16, true)
ATTENTION_TC_KERNEL(64, f16, false)
ATTENTION_TC_KERNEL(128, f16, false)

// --- Tensor-core backward: q, k, v and dO of one 16-bit dtype, D = 64 or 128 ------------------------
// FlashAttention-2's backward in two kernels: dq per block of 64 queries (16 per warp), streaming
// keys in tiles of 32; then dk and dv per block of 64 keys (16 per warp), streaming the queries of
// every head of the key's group in tiles of 32. P is recomputed from the saved log-sum-exp and
// rounded to the input dtype as an mma operand (for dv: no cancellation there); dS goes in as a
// hi + lo pair (c_to_a_split); the sums are float32. No atomics: each output
// element is written by one thread. delta_i = Σ_j P_ij·dP_ij is summed by the dq kernel in a first
// pass over the keys rather than taken as Σ_d dO_id·O_id from the 16-bit output: when softmax is
// peaked, dP_ij − delta_i cancels, and O's rounding (2⁻⁹ relative in bfloat16) then moves dq by
// tens of percent (seen on the conformance case "large scores").
#define TC_BWD_TILE 32

template <int D, bool BF>
__device__ void attention_bwd_dkdv_tc(void* dk, int dtDk, void* dv, int dtDv, const uint16_t* dO, const uint16_t* q, const uint16_t* k,
                                      const uint16_t* v, const float* lse, const float* delta, const int* mask, AttnShape s) {
  extern __shared__ uint4 smem_tc[];
  constexpr int P = D + TC_PAD;
  uint16_t* sK = reinterpret_cast<uint16_t*>(smem_tc);  // this block's 64 keys [64][P]
  uint16_t* sV = sK + TC_KEYS * P;                        // [64][P]
  uint16_t* sQ = sV + TC_KEYS * P;                        // query tile [32][P]
  uint16_t* sG = sQ + TC_BWD_TILE * P;                    // dO tile [32][P]
  float* sL = reinterpret_cast<float*>(sG + TC_BWD_TILE * P);  // lse·log2(e) of the tile's queries
  float* sD = sL + TC_BWD_TILE;                                // delta of the tile's queries
  const int b = blockIdx.z, kh = blockIdx.y, group = s.heads / s.kvHeads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int key0 = blockIdx.x * TC_KEYS, wk = warp * 16;  // this warp's keys: key0 + wk + (0..15)
  const float scale2 = s.scale * 1.4426950408889634f;
  tc_load_rows<D>(sK, k, b, s.seqK, s.kvHeads, kh, key0, TC_KEYS);
  tc_load_rows<D>(sV, v, b, s.seqK, s.kvHeads, kh, key0, TC_KEYS);

  float aK[D / 8][4], aV[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) aK[n][e] = aV[n][e] = 0.0f;
  // Queries before this one see none of the block's keys (causal).
  const int firstQ = s.causal ? max(0, key0 - (s.seqK - s.seqQ)) : 0;
  for (int hh = 0; hh < group; hh++) {
    const int h = kh * group + hh;
    for (int q0 = firstQ / TC_BWD_TILE * TC_BWD_TILE; q0 < s.seqQ; q0 += TC_BWD_TILE) {
      __syncthreads();
      tc_load_rows<D>(sQ, q, b, s.seqQ, s.heads, h, q0, TC_BWD_TILE);
      tc_load_rows<D>(sG, dO, b, s.seqQ, s.heads, h, q0, TC_BWD_TILE);
      for (int i = threadIdx.x; i < TC_BWD_TILE; i += blockDim.x) {
        const bool in = q0 + i < s.seqQ;
        const i64 at = ((i64)b * s.heads + h) * s.seqQ + q0 + i;
        sL[i] = in ? lse[at] * 1.4426950408889634f : -INFINITY;
        sD[i] = in ? delta[at] : 0.0f;
      }
      __syncthreads();
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for this warp's 16 keys × 32 queries.
      float st_[TC_BWD_TILE / 8][4], dp[TC_BWD_TILE / 8][4];
#pragma unroll
      for (int n = 0; n < TC_BWD_TILE / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) st_[n][e] = dp[n][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t ka[4], va[4];
        frag_a(ka, sK, P, wk, kk * 16);
        frag_a(va, sV, P, wk, kk * 16);
#pragma unroll
        for (int n = 0; n < TC_BWD_TILE / 8; n++) {
          uint32_t qb[2], gb[2];
          frag_b_nk(qb, sQ, P, n * 8, kk * 16);
          frag_b_nk(gb, sG, P, n * 8, kk * 16);
          mma16816<BF>(st_[n], ka, qb);
          mma16816<BF>(dp[n], va, gb);
        }
      }
      // Pᵀ and dSᵀ = scale·Pᵀ·(dPᵀ − delta).
#pragma unroll
      for (int n = 0; n < TC_BWD_TILE / 8; n++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = key0 + wk + g + 8 * (e >> 1), qi = n * 8 + 2 * t + (e & 1);
          const float L = sL[qi];
          const float p = (L != -INFINITY && sees(s, mask, b, q0 + qi, key)) ? exp2f(st_[n][e] * scale2 - L) : 0.0f;
          st_[n][e] = p;
          dp[n][e] = s.scale * p * (dp[n][e] - sD[qi]);
        }
      }
      // dV += Pᵀ·dO and dK += dSᵀ·Q over the tile's 32 queries (two 16-query steps).
#pragma unroll
      for (int kc = 0; kc < TC_BWD_TILE / 16; kc++) {
        uint32_t pa[4], sh[4], sl[4];
        c_to_a<BF>(pa, st_[2 * kc], st_[2 * kc + 1]);
        c_to_a_split<BF>(sh, sl, dp[2 * kc], dp[2 * kc + 1]);
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
          uint32_t gb[2], qb[2];
          frag_b_kn(gb, sG, P, kc * 16, n * 8);
          frag_b_kn(qb, sQ, P, kc * 16, n * 8);
          mma16816<BF>(aV[n], pa, gb);
          mma16816<BF>(aK[n], sh, qb);
          mma16816<BF>(aK[n], sl, qb);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int key = key0 + wk + g + 8 * r;
    if (key >= s.seqK) continue;
    const i64 o = (((i64)b * s.seqK + key) * s.kvHeads + kh) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
#pragma unroll
      for (int c = 0; c < 2; c++) {
        st(dk, dtDk, o + n * 8 + 2 * t + c, aK[n][2 * r + c]);
        st(dv, dtDv, o + n * 8 + 2 * t + c, aV[n][2 * r + c]);
      }
    }
  }
}

template <int D, bool BF>
__device__ void attention_bwd_dq_tc(void* dq, int dtDq, float* delta, const uint16_t* dO, const uint16_t* q, const uint16_t* k,
                                    const uint16_t* v, const float* lse, const int* mask, AttnShape s) {
  __shared__ __align__(16) uint16_t sK[TC_BWD_TILE][D + TC_PAD];
  __shared__ __align__(16) uint16_t sV[TC_BWD_TILE][D + TC_PAD];
  const int b = blockIdx.z, h = blockIdx.y, kh = h / (s.heads / s.kvHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int rowLo = blockIdx.x * TC_ROWS + warp * 16 + g, rowHi = rowLo + 8;
  const float scale2 = s.scale * 1.4426950408889634f;
  uint32_t qf[D / 16][4], gf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int row = (r & 1) ? rowHi : rowLo, col = kk * 16 + 2 * t + 8 * (r >> 1);
      const i64 at = (((i64)b * s.seqQ + row) * s.heads + h) * D + col;
      qf[kk][r] = row < s.seqQ ? *reinterpret_cast<const uint32_t*>(q + at) : 0u;
      gf[kk][r] = row < s.seqQ ? *reinterpret_cast<const uint32_t*>(dO + at) : 0u;
    }
  }
  float L[2], Dl[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = r ? rowHi : rowLo;
    L[r] = row < s.seqQ ? lse[((i64)b * s.heads + h) * s.seqQ + row] * 1.4426950408889634f : -INFINITY;
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  const int lastQ = min(s.seqQ - 1, (int)blockIdx.x * TC_ROWS + TC_ROWS - 1);
  const int lastK = s.causal ? min(s.seqK - 1, lastQ + s.seqK - s.seqQ) : s.seqK - 1;
  for (int pass = 0; pass < 2; pass++) {
  if (pass == 1) {
    // delta over the quad, saved for the dk/dv kernel.
#pragma unroll
    for (int r = 0; r < 2; r++) {
      Dl[r] += __shfl_xor_sync(0xffffffffu, Dl[r], 1);
      Dl[r] += __shfl_xor_sync(0xffffffffu, Dl[r], 2);
      const int row = r ? rowHi : rowLo;
      if (t == 0 && row < s.seqQ) delta[((i64)b * s.heads + h) * s.seqQ + row] = Dl[r];
    }
  }
  for (int k0 = 0; k0 <= lastK; k0 += TC_BWD_TILE) {
    __syncthreads();
    tc_load_rows<D>(&sK[0][0], k, b, s.seqK, s.kvHeads, kh, k0, TC_BWD_TILE);
    tc_load_rows<D>(&sV[0][0], v, b, s.seqK, s.kvHeads, kh, k0, TC_BWD_TILE);
    __syncthreads();
    float sc[TC_BWD_TILE / 8][4], dp[TC_BWD_TILE / 8][4];
#pragma unroll
    for (int n = 0; n < TC_BWD_TILE / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) sc[n][e] = dp[n][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
      for (int n = 0; n < TC_BWD_TILE / 8; n++) {
        uint32_t kb[2], vb[2];
        frag_b_nk(kb, &sK[0][0], D + TC_PAD, n * 8, kk * 16);
        frag_b_nk(vb, &sV[0][0], D + TC_PAD, n * 8, kk * 16);
        mma16816<BF>(sc[n], qf[kk], kb);
        mma16816<BF>(dp[n], gf[kk], vb);
      }
    }
#pragma unroll
    for (int n = 0; n < TC_BWD_TILE / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, j = k0 + n * 8 + 2 * t + (e & 1);
        const float p = (L[r] != -INFINITY && sees(s, mask, b, r ? rowHi : rowLo, j)) ? exp2f(sc[n][e] * scale2 - L[r]) : 0.0f;
        if (pass == 0) Dl[r] += p * dp[n][e];  // this thread's share
        else dp[n][e] = s.scale * p * (dp[n][e] - Dl[r]);
      }
    }
    if (pass == 0) continue;
    // dQ += dS·K over the tile's 32 keys.
#pragma unroll
    for (int kc = 0; kc < TC_BWD_TILE / 16; kc++) {
      uint32_t sh[4], sl[4];
      c_to_a_split<BF>(sh, sl, dp[2 * kc], dp[2 * kc + 1]);
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        uint32_t kb[2];
        frag_b_kn(kb, &sK[0][0], D + TC_PAD, kc * 16, n * 8);
        mma16816<BF>(acc[n], sh, kb);
        mma16816<BF>(acc[n], sl, kb);
      }
    }
  }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = r ? rowHi : rowLo;
    if (row >= s.seqQ) continue;
    const i64 o = (((i64)b * s.seqQ + row) * s.heads + h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      st(dq, dtDq, o + n * 8 + 2 * t, acc[n][2 * r]);
      st(dq, dtDq, o + n * 8 + 2 * t + 1, acc[n][2 * r + 1]);
    }
  }
}

#define ATTENTION_TC_BWD_KERNELS(D, NAME, BF)                                                                                             \
  extern "C" __global__ void __launch_bounds__(128)                                                                                      \
      attention_bwd_dkdv_tc_##NAME##_##D(void* dk, int dtDk, void* dv, int dtDv, const void* dO, const void* q, const void* k,            \
                                         const void* v, const float* lse, const float* delta, const int* mask, AttnShape s) {            \
    attention_bwd_dkdv_tc<D, BF>(dk, dtDk, dv, dtDv, static_cast<const uint16_t*>(dO), static_cast<const uint16_t*>(q),                  \
                                 static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), lse, delta, mask, s);                 \
  }                                                                                                                                      \
  extern "C" __global__ void __launch_bounds__(128)                                                                                      \
      attention_bwd_dq_tc_##NAME##_##D(void* dq, int dtDq, float* delta, const void* dO, const void* q, const void* k, const void* v,      \
                                       const float* lse, const int* mask, AttnShape s) {                                                 \
    attention_bwd_dq_tc<D, BF>(dq, dtDq, delta, static_cast<const uint16_t*>(dO), static_cast<const uint16_t*>(q),                       \
                               static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), lse, mask, s);                          \
  }

ATTENTION_TC_BWD_KERNELS(64, bf16, true)
ATTENTION_TC_BWD_KERNELS(128, bf16, true)
ATTENTION_TC_BWD_KERNELS(64, f16, false)
ATTENTION_TC_BWD_KERNELS(128, f16, false)
