// Philox4x32-10 random numbers and dropout, bit for bit core's philoxUniform (and its dropout
// masks); normal numbers by Box–Muller on lane pairs, in float32. Element i uses counter
// offset + ⌊i/4⌋, lane i mod 4; one thread per counter writes up to four elements.
#include "common.cuh"

// dist 0: uniform in [low, high); 1: normal with mean low, standard deviation high.
extern "C" __global__ void random_fill(void* out, int dtOut, uint32_t k0, uint32_t k1, unsigned long long offset, int dist, float low,
                                       float high, i64 n) {
  GRID_STRIDE(blk, (n + 3) / 4) {
    const u4 r = philox(offset + (unsigned long long)blk, k0, k1);
    const i64 i0 = blk * 4;
    if (dist == 0) {
      const float scale = high - low;
      for (int l = 0; l < 4 && i0 + l < n; l++) st(out, dtOut, i0 + l, low + scale * u01(lane_of(r, l)));
    } else {
      for (int l = 0; l < 4 && i0 + l < n; l += 2) {
        const uint32_t a = lane_of(r, l), b = lane_of(r, l + 1);
        const float u1 = (float)((a >> 8) + 1) * 5.9604644775390625e-8f;
        const float u2 = u01(b);
        const float rad = sqrtf(-2.0f * logf(u1));
        float s, c;
        sincospif(2.0f * u2, &s, &c);
        st(out, dtOut, i0 + l, low + high * rad * c);
        if (i0 + l + 1 < n) st(out, dtOut, i0 + l + 1, low + high * rad * s);
      }
    }
  }
}

// out = x · (u ≥ p) · scale, scale = 1/(1 − p) (0 when p = 1); dropoutBackward is the same kernel on dy.
extern "C" __global__ void dropout(void* out, int dtOut, const void* x, int dtX, uint32_t k0, uint32_t k1, unsigned long long offset, float p,
                                   float scale, i64 n) {
  GRID_STRIDE(blk, (n + 3) / 4) {
    const u4 r = philox(offset + (unsigned long long)blk, k0, k1);
    const i64 i0 = blk * 4;
    for (int l = 0; l < 4 && i0 + l < n; l++) {
      const float keep = u01(lane_of(r, l)) >= p ? scale : 0.0f;
      st(out, dtOut, i0 + l, ld(x, dtX, i0 + l) * keep);
    }
  }
}

// Per-example dropout keyed by device data (rowDropout and its backward): block b of row r (4
// elements) draws counter rowKeys[2r] · 2²⁶ + rowKeys[2r+1] · nb + b (nb = ⌈features/4⌉) under the
// key pair `stream` of streamKeys; key and position are read as uint32 and the counter wraps past
// 2⁶⁴, so any key values draw some mask and only those two words of the row are read. Nothing on
// the host depends on the keys: a CUDA graph replays it with whatever keys were written since.
extern "C" __global__ void row_dropout(void* out, int dtOut, const void* x, int dtX, const int* streamKeys, int stream, const int* rowKeys,
                                       float p, float scale, i64 rows, i64 features) {
  const i64 nb = (features + 3) / 4;
  const uint32_t k0 = (uint32_t)streamKeys[2 * stream], k1 = (uint32_t)streamKeys[2 * stream + 1];
  GRID_STRIDE(blk, rows * nb) {
    const i64 r = blk / nb;
    const i64 b = blk - r * nb;
    const unsigned long long key = (uint32_t)rowKeys[2 * r], pos = (uint32_t)rowKeys[2 * r + 1];
    const u4 w = philox((key << 26) + pos * (unsigned long long)nb + (unsigned long long)b, k0, k1);
    const i64 i0 = r * features + b * 4;
    for (int l = 0; l < 4 && b * 4 + l < features; l++) {
      const float keep = u01(lane_of(w, l)) >= p ? scale : 0.0f;
      st(out, dtOut, i0 + l, ld(x, dtX, i0 + l) * keep);
    }
  }
}
