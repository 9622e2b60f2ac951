// Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers), and its
// backward (the rotation by −θ, sign = −1). For i < half = rotaryDim/2 and
// θ_i = position / positionScale · base^(−2i/rotaryDim):
//   out[i] = x[i]·cos θ − x[i+half]·sin θ,   out[i+half] = x[i+half]·cos θ + x[i]·sin θ.
// One thread per rotated pair (or per passed-through feature), so out may alias x.
#include "common.cuh"

extern "C" __global__ void rotary(void* out, int dtOut, const void* x, int dtX, const int* positions, i64 tokens, int heads, int headDim,
                                  int rotaryDim, float base, float positionScale, float sign) {
  const int half = rotaryDim / 2;
  const i64 per = half + (headDim - rotaryDim);
  GRID_STRIDE(e, tokens * heads * per) {
    const i64 row = e / per;
    const int k = (int)(e - row * per);
    const i64 at = row * headDim;
    if (k < half) {
      const i64 t = row / heads;
      const float angle = ((float)positions[t] / positionScale) * powf(base, -2.0f * (float)k / (float)rotaryDim);
      float s, c;
      sincosf(angle, &s, &c);
      s *= sign;
      const float a = ld(x, dtX, at + k), b = ld(x, dtX, at + k + half);
      st(out, dtOut, at + k, a * c - b * s);
      st(out, dtOut, at + k + half, b * c + a * s);
    } else {
      const i64 f = at + rotaryDim + (k - half);
      st(out, dtOut, f, ld(x, dtX, f));
    }
  }
}
