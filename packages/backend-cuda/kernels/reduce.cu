// Reductions over the middle axis of x [outer, reduce, inner] into out [outer, inner], and row argmax.
#include "common.cuh"

// Block (32, 8): threadIdx.x walks inner (coalesced), threadIdx.y splits the reduced axis; grid
// outer · ceil(inner / 32) blocks. op 0 = sum (empty: 0), 1 = max (NaN propagates, empty: −Infinity).
extern "C" __global__ void reduce_axis(int op, void* out, int dtOut, const void* x, int dtX, i64 outer, i64 reduce, i64 inner) {
  __shared__ float part[8][33];
  const i64 innerBlocks = (inner + 31) / 32;
  const i64 o = blockIdx.x / innerBlocks;
  const i64 c = (blockIdx.x - o * innerBlocks) * 32 + threadIdx.x;
  float acc = op == 0 ? 0.0f : -INFINITY;
  if (c < inner) {
    for (i64 r = threadIdx.y; r < reduce; r += 8) {
      const float v = ld(x, dtX, (o * reduce + r) * inner + c);
      acc = op == 0 ? acc + v : nan_max(acc, v);
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < inner) {
    for (int y = 1; y < 8; y++) acc = op == 0 ? acc + part[y][threadIdx.x] : nan_max(acc, part[y][threadIdx.x]);
    st(out, dtOut, o * inner + c, acc);
  }
}

// inner == 1: one block per row, a tree over the block.
extern "C" __global__ void reduce_rows(int op, void* out, int dtOut, const void* x, int dtX, i64 reduce) {
  __shared__ float part[32];
  const i64 row = blockIdx.x;
  float acc = op == 0 ? 0.0f : -INFINITY;
  for (i64 r = threadIdx.x; r < reduce; r += blockDim.x) {
    const float v = ld(x, dtX, row * reduce + r);
    acc = op == 0 ? acc + v : nan_max(acc, v);
  }
  if (op == 0) {
    acc = block_sum(acc);
  } else {
    for (int s = 16; s > 0; s >>= 1) acc = nan_max(acc, __shfl_xor_sync(0xffffffffu, acc, s));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    acc = lane < (int)(blockDim.x >> 5) ? part[lane] : -INFINITY;
    for (int s = 16; s > 0; s >>= 1) acc = nan_max(acc, __shfl_xor_sync(0xffffffffu, acc, s));
  }
  if (threadIdx.x == 0) st(out, dtOut, row, acc);
}

// (value, index) pairs: a NaN beats everything (first NaN wins), then larger values, then smaller indices.
__device__ __forceinline__ bool better(float v, i64 i, float bv, i64 bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// out int32 [rows]: one block per row.
extern "C" __global__ void argmax_rows(int* out, const void* x, int dtX, i64 cols) {
  __shared__ float pv[32];
  __shared__ i64 pi[32];
  const i64 row = blockIdx.x;
  float bv = -INFINITY;
  i64 bi = cols;  // "none yet": any real element beats it (−Infinity included, through the index)
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = ld(x, dtX, row * cols + c);
    if (bi == cols || better(v, c, bv, bi)) {
      bv = v;
      bi = c;
    }
  }
  for (int s = 16; s > 0; s >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, s);
    const i64 oi = __shfl_xor_sync(0xffffffffu, bi, s);
    if (oi != cols && (bi == cols || better(ov, oi, bv, bi))) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    pv[warp] = bv;
    pi[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < (int)(blockDim.x >> 5) ? pv[lane] : -INFINITY;
    bi = lane < (int)(blockDim.x >> 5) ? pi[lane] : cols;
    for (int s = 16; s > 0; s >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, s);
      const i64 oi = __shfl_xor_sync(0xffffffffu, bi, s);
      if (oi != cols && (bi == cols || better(ov, oi, bv, bi))) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) out[row] = (int)(bi == cols ? 0 : bi);
  }
}
