// What the attention kernels share (attention.cu: float32 on CUDA cores; attention_tc.cu:
// tensor cores): the launch shape and the rule of which keys a query sees.
#pragma once
#include "common.cuh"

struct AttnShape {
  int batch, seqQ, seqK, heads, kvHeads, D;
  float scale;
  int causal;
};

__device__ __forceinline__ bool sees(const AttnShape& s, const int* mask, int b, int i, int j) {
  if (j >= s.seqK || i >= s.seqQ) return false;
  if (s.causal && j > i + (s.seqK - s.seqQ)) return false;
  return mask == nullptr || mask[(i64)b * s.seqK + j] != 0;
}
