// Softmax cross-entropy over rows of logits [rows, classes], int32 targets. The logits are read in
// their storage dtype and the log-sum-exp is taken online (running max and rescaled sum) in one
// pass, so no float32 copy of the [rows, vocabulary] logits is ever made; the backward recomputes
// softmax from the saved lse. A target that is neither ignoreIndex nor a class gives NaN.
#include "common.cuh"

__device__ __forceinline__ void lse_merge(float& m, float& s, float om, float os) {
  const float nm = fmaxf(m, om);
  if (nm == -INFINITY) return;  // both empty
  s = s * expf(m - nm) + os * expf(om - nm);
  m = nm;
}

// One block per row.
// Launched with up to 512 threads (a row per block): the bound keeps registers within what 512 threads may use.
extern "C" __global__ void __launch_bounds__(512) cross_entropy(float* loss, float* lse, const void* logits, int dtL, const int* targets, i64 classes,
                                         int ignoreIndex) {
  __shared__ float pm[32], ps[32];
  const i64 base = (i64)blockIdx.x * classes;
  float m = -INFINITY, s = 0.0f;
  bool nan = false;
  for (i64 c = threadIdx.x; c < classes; c += blockDim.x) {
    const float v = ld(logits, dtL, base + c);
    if (v != v) nan = true;
    else if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else if (v != -INFINITY) {
      s += expf(v - m);
    }
  }
  nan = __syncthreads_or(nan);
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, om, os);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    pm[warp] = m;
    ps[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < (int)(blockDim.x >> 5) ? pm[lane] : -INFINITY;
    s = lane < (int)(blockDim.x >> 5) ? ps[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
      const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
      lse_merge(m, s, om, os);
    }
    if (lane == 0) {
      const float l = nan ? __int_as_float(0x7fc00000) : m == -INFINITY ? -INFINITY : m + logf(s);
      lse[blockIdx.x] = l;
      const int t = targets[blockIdx.x];
      loss[blockIdx.x] = t == ignoreIndex ? 0.0f : (t < 0 || t >= classes) ? __int_as_float(0x7fc00000) : l - ld(logits, dtL, base + t);
    }
  }
}

// dLogits[r, c] = (exp(logits − lse[r]) − [c = target]) · dLoss[r]; 0 for ignored rows. Grid (rows, chunks).
// In place over logits is safe: each element is read, then written, by one thread.
extern "C" __global__ void cross_entropy_backward(void* dLogits, int dtD, const void* dLoss, int dtG, const void* logits, int dtL,
                                                  const int* targets, const float* lse, i64 classes, int ignoreIndex) {
  const i64 r = blockIdx.x;
  const i64 base = r * classes;
  const int t = targets[r];
  const float g = ld(dLoss, dtG, r), l = lse[r];
  const bool bad = t != ignoreIndex && (t < 0 || t >= classes);
  for (i64 c = (i64)blockIdx.y * blockDim.x + threadIdx.x; c < classes; c += (i64)gridDim.y * blockDim.x) {
    float d;
    if (t == ignoreIndex) d = 0.0f;
    else if (bad) d = __int_as_float(0x7fc00000);
    else d = (expf(ld(logits, dtL, base + c) - l) - (c == t ? 1.0f : 0.0f)) * g;
    st(dLogits, dtD, base + c, d);
  }
}
