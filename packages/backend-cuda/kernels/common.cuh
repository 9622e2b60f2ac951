// Shared device helpers: dtype codes, float32 loads and round-to-nearest-even stores of every
// storage dtype, strided views, warp/block reductions and Philox4x32-10.
//
// Every kernel reads its float operands through `ld(ptr, dtype, i)` and writes through
// `st(ptr, dtype, i, v)`, with the dtype passed at launch (uniform over the grid, so the switch
// never diverges). One compiled kernel then serves every mix of storage dtypes the interface
// allows (a bfloat16 input with a float32 output, say) and the fatbin stays small.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

// Keep these equal to DTYPE_CODE in src/launch.ts.
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_I32 3

typedef long long i64;

__device__ __forceinline__ float ld(const void* p, int dt, i64 i) {
  switch (dt) {
    case DT_F16: return __half2float(static_cast<const __half*>(p)[i]);
    case DT_BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DT_I32: return (float)static_cast<const int*>(p)[i];
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void st(void* p, int dt, i64 i, float v) {
  switch (dt) {
    case DT_F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case DT_BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    case DT_I32: {
      // float → int32 truncates toward zero and saturates (NaN → 0): the GPU cannot throw.
      int r;
      if (v != v) r = 0;
      else if (v >= 2147483647.0f) r = 2147483647;
      else if (v <= -2147483648.0f) r = (-2147483647 - 1);
      else r = (int)v;
      static_cast<int*>(p)[i] = r;
      break;
    }
    default: static_cast<float*>(p)[i] = v;
  }
}

// A strided view of at most MAX_RANK dims (the host merges contiguous dims first):
// element (i0, …) lives at offset + Σ i_d · stride[d].
#define MAX_RANK 8
struct View {
  i64 rank;
  i64 offset;
  i64 shape[MAX_RANK];
  i64 stride[MAX_RANK];
};

// Buffer index of the view's element number `i` (row-major over shape). A rank-1 view (what the
// host's merging leaves of any view whose dims collapse) needs no division.
__device__ __forceinline__ i64 view_at(const View& v, i64 i) {
  if (v.rank == 1) return v.offset + i * v.stride[0];
  i64 at = v.offset;
  for (int d = (int)v.rank - 1; d >= 0; d--) {
    const i64 n = v.shape[d];
    const i64 q = i / n;
    at += (i - q * n) * v.stride[d];
    i = q;
  }
  return at;
}

// Whether the view reads element i at offset + i: a contiguous view (the host merges its dims
// into one of stride 1). Uniform over a launch, so branching on it never diverges.
__device__ __forceinline__ bool view_flat(const View& v) { return v.rank == 1 && v.stride[0] == 1; }

// Bytes per element of a storage dtype.
__device__ __forceinline__ int dt_bytes(int dt) { return dt == DT_F16 || dt == DT_BF16 ? 2 : 4; }

// Element `offset` of p (a dtype-`dt` buffer), as an untyped pointer.
__device__ __forceinline__ const void* elem_ptr(const void* p, int dt, i64 offset) {
  return static_cast<const char*>(p) + offset * dt_bytes(dt);
}

// --- contiguous fast path ---------------------------------------------------------------------------
// Elementwise kernels over contiguous operands take VEC consecutive elements per thread and step,
// loaded and stored as 16-byte vectors (float32: two float4; float16/bfloat16: one uint4 of
// eight) where the address is 16-byte aligned, element by element otherwise (int32, or a
// misaligned base or view offset: the group start is a multiple of VEC, so alignment depends on
// the base alone and is uniform over the launch). The last n % VEC elements go through the scalar
// loop GRID_STRIDE_TAIL. Each element is converted and computed exactly as on the scalar path,
// so results are bit for bit the same.
#define VEC 8
#define GRID_STRIDE_VEC(i, n) \
  for (i64 i = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * VEC; i + VEC <= (n); i += (i64)gridDim.x * blockDim.x * VEC)
#define GRID_STRIDE_TAIL(i, n) \
  for (i64 i = (n) / VEC * VEC + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

__device__ __forceinline__ bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

// Elements i .. i+VEC-1 of p (dtype dt) as float32.
__device__ __forceinline__ void ld_vec(const void* p, int dt, i64 i, float (&r)[VEC]) {
  if (dt == DT_F32 && aligned16(static_cast<const float*>(p) + i)) {
    const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    const float4 a = q[0], b = q[1];
    r[0] = a.x, r[1] = a.y, r[2] = a.z, r[3] = a.w, r[4] = b.x, r[5] = b.y, r[6] = b.z, r[7] = b.w;
    return;
  }
  if ((dt == DT_F16 || dt == DT_BF16) && aligned16(static_cast<const uint16_t*>(p) + i)) {
    const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p) + i);
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 8; k++) {
      const unsigned short h = (unsigned short)(w[k >> 1] >> (16 * (k & 1)));
      r[k] = dt == DT_F16 ? __half2float(__ushort_as_half(h)) : __bfloat162float(__ushort_as_bfloat16(h));
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < VEC; k++) r[k] = ld(p, dt, i + k);
}

// Stores v as elements i .. i+VEC-1 of p (dtype dt), each rounded as st() rounds it.
__device__ __forceinline__ void st_vec(void* p, int dt, i64 i, const float (&v)[VEC]) {
  if (dt == DT_F32 && aligned16(static_cast<float*>(p) + i)) {
    float4* q = reinterpret_cast<float4*>(static_cast<float*>(p) + i);
    float4 a, b;
    a.x = v[0], a.y = v[1], a.z = v[2], a.w = v[3], b.x = v[4], b.y = v[5], b.z = v[6], b.w = v[7];
    q[0] = a;
    q[1] = b;
    return;
  }
  if ((dt == DT_F16 || dt == DT_BF16) && aligned16(static_cast<uint16_t*>(p) + i)) {
    unsigned w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int k = 0; k < 8; k++) {
      const unsigned h = dt == DT_F16 ? __half_as_ushort(__float2half_rn(v[k])) : __bfloat16_as_ushort(__float2bfloat16_rn(v[k]));
      w[k >> 1] |= h << (16 * (k & 1));
    }
    uint4 u;
    u.x = w[0], u.y = w[1], u.z = w[2], u.w = w[3];
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p) + i) = u;
    return;
  }
#pragma unroll
  for (int k = 0; k < VEC; k++) st(p, dt, i + k, v[k]);
}

#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : 0.0f;
  return warp_sum(v);
}

// NaN-propagating max (torch.amax / torch.maximum semantics).
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b); }
__device__ __forceinline__ float nan_min(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fc00000) : fminf(a, b); }

// --- Philox4x32-10, bit for bit core/src/random/philox.ts ------------------------------------------
struct u4 {
  uint32_t x, y, z, w;
};

__device__ __forceinline__ u4 philox(uint64_t counter, uint32_t k0, uint32_t k1) {
  uint32_t x0 = (uint32_t)counter, x1 = (uint32_t)(counter >> 32), x2 = 0, x3 = 0;
#pragma unroll
  for (int r = 0; r < 10; r++) {
    const uint32_t hi0 = __umulhi(0xd2511f53u, x0), lo0 = 0xd2511f53u * x0;
    const uint32_t hi1 = __umulhi(0xcd9e8d57u, x2), lo1 = 0xcd9e8d57u * x2;
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return {x0, x1, x2, x3};
}

__device__ __forceinline__ uint32_t lane_of(const u4& r, int lane) { return lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w; }

// (x >> 8) · 2⁻²⁴ ∈ [0, 1), exact in float32.
__device__ __forceinline__ float u01(uint32_t x) { return (float)(x >> 8) * 5.9604644775390625e-8f; }
