// Embedding gather and its scatter-add backward. An id outside [0, rows) reads zeros in the
// forward pass and is skipped in the backward pass (the GPU cannot throw; documented).
#include "common.cuh"

// out [n, dim] = weight[ids[i]].
extern "C" __global__ void embedding(void* out, int dtOut, const void* weight, int dtW, const int* ids, i64 n, i64 dim, i64 rows) {
  GRID_STRIDE(e, n * dim) {
    const i64 i = e / dim, j = e - i * dim;
    const int id = ids[i];
    st(out, dtOut, e, (id >= 0 && id < rows) ? ld(weight, dtW, (i64)id * dim + j) : 0.0f);
  }
}

// acc float32 [rows, dim] (zeroed by the host) += dOut[i] at row ids[i]; the host then rounds acc
// into a 16-bit dWeight when dWeight is not float32 itself. Atomics: repeated ids add up.
extern "C" __global__ void embedding_backward(float* acc, const void* dOut, int dtD, const int* ids, i64 n, i64 dim, i64 rows) {
  GRID_STRIDE(e, n * dim) {
    const i64 i = e / dim, j = e - i * dim;
    const int id = ids[i];
    if (id >= 0 && id < rows) atomicAdd(acc + (i64)id * dim + j, ld(dOut, dtD, e));
  }
}
