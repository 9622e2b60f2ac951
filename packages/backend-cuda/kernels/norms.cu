// LayerNorm and RMSNorm over the last dimension of x [rows, dim], forward and backward. One block
// per row; statistics in float32 (saved), the output computed from the saved statistics so that
// backward differentiates exactly what forward computed. Weight gradients: a column-parallel
// kernel summing dy·x̂ over row chunks with one atomicAdd per chunk into a zeroed float32 buffer.
#include "common.cuh"

// mean may be null (RMSNorm: no centring); weight and bias may be null.
extern "C" __global__ void layer_norm(void* out, int dtOut, float* mean, float* rstd, const void* x, int dtX, const void* w, int dtW,
                                      const void* b, int dtB, i64 dim, float eps, int rms) {
  const i64 base = (i64)blockIdx.x * dim;
  float mu = 0.0f;
  if (!rms) {
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < dim; j += blockDim.x) s += ld(x, dtX, base + j);
    mu = block_sum(s) / (float)dim;
  }
  float sq = 0.0f;
  for (i64 j = threadIdx.x; j < dim; j += blockDim.x) {
    const float d = ld(x, dtX, base + j) - mu;
    sq += d * d;
  }
  const float r = rsqrtf(block_sum(sq) / (float)dim + eps);
  if (threadIdx.x == 0) {
    if (!rms) mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = r;
  }
  for (i64 j = threadIdx.x; j < dim; j += blockDim.x) {
    float y = (ld(x, dtX, base + j) - mu) * r;
    if (w) y *= ld(w, dtW, j);
    if (b) y += ld(b, dtB, j);
    st(out, dtOut, base + j, y);
  }
}

// With x̂ = (x − mean)·rstd and g = dy·weight: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); RMSNorm
// (mean null) drops the mean(g) term. dx may alias dy or x: each thread reads its elements in the
// reductions, and rereads them before writing.
extern "C" __global__ void layer_norm_backward(void* dx, int dtDx, const void* dy, int dtDy, const void* x, int dtX, const void* w, int dtW,
                                               const float* mean, const float* rstd, i64 dim) {
  const i64 base = (i64)blockIdx.x * dim;
  const float mu = mean ? mean[blockIdx.x] : 0.0f, r = rstd[blockIdx.x];
  float sg = 0.0f, sgx = 0.0f;
  for (i64 j = threadIdx.x; j < dim; j += blockDim.x) {
    const float xh = (ld(x, dtX, base + j) - mu) * r;
    const float g = w ? ld(dy, dtDy, base + j) * ld(w, dtW, j) : ld(dy, dtDy, base + j);
    sg += g;
    sgx += g * xh;
  }
  const float mg = mean ? block_sum(sg) / (float)dim : 0.0f;
  const float mgx = block_sum(sgx) / (float)dim;
  __syncthreads();  // dx may alias x or dy: every read above happens before any write below
  for (i64 j = threadIdx.x; j < dim; j += blockDim.x) {
    const float xh = (ld(x, dtX, base + j) - mu) * r;
    const float g = w ? ld(dy, dtDy, base + j) * ld(w, dtW, j) : ld(dy, dtDy, base + j);
    st(dx, dtDx, base + j, r * (g - mg - xh * mgx));
  }
}

// dW[j] += Σ_{rows of this chunk} dy·x̂, dB[j] += Σ dy (float32, zeroed by the host). Grid
// (ceil(dim / blockDim), chunks); consecutive threads take consecutive columns (coalesced).
extern "C" __global__ void norm_param_grad(float* dW, float* dB, const void* dy, int dtDy, const void* x, int dtX, const float* mean,
                                           const float* rstd, i64 rows, i64 dim, i64 rowsPerChunk) {
  const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= dim) return;
  const i64 r0 = (i64)blockIdx.y * rowsPerChunk;
  const i64 r1 = min(rows, r0 + rowsPerChunk);
  float sw = 0.0f, sb = 0.0f;
  for (i64 r = r0; r < r1; r++) {
    const float g = ld(dy, dtDy, r * dim + j);
    sb += g;
    if (dW) sw += g * (ld(x, dtX, r * dim + j) - (mean ? mean[r] : 0.0f)) * rstd[r];
  }
  if (dW) atomicAdd(dW + j, sw);
  if (dB) atomicAdd(dB + j, sb);
}
