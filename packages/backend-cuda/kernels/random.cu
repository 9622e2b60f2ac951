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
