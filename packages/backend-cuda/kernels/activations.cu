// GELU (exact erf and the tanh approximation) and SwiGLU's silu(gate)·up, forward and backward.
#include "common.cuh"

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define TANH_C 0.79788456080286536f  // √(2/π)
#define TANH_A 0.044715f

// exact: y = 0.5·x·erfc(−x/√2) (accurate for very negative x); approximate: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
__device__ __forceinline__ float gelu_f(float v, int approximate) {
  return approximate ? 0.5f * v * (1.0f + tanhf(TANH_C * (v + TANH_A * v * v * v))) : 0.5f * v * erfcf(-v * SQRT1_2);
}

// Contiguous operands: the vectorised fast path (common.cuh), then the scalar tail.
extern "C" __global__ void gelu(void* out, int dtOut, const void* x, int dtX, int approximate, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float v[VEC];
    ld_vec(x, dtX, i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = gelu_f(v[k], approximate);
    st_vec(out, dtOut, i, v);
  }
  GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, gelu_f(ld(x, dtX, i), approximate));
}

// dGELU/dx at v, times g.
__device__ __forceinline__ float gelu_backward_f(float g, float v, int approximate) {
  float d;
  if (approximate) {
    const float t = tanhf(TANH_C * (v + TANH_A * v * v * v));
    d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * TANH_C * (1.0f + 3.0f * TANH_A * v * v);
  } else {
    d = 0.5f * erfcf(-v * SQRT1_2) + v * INV_SQRT_2PI * expf(-0.5f * v * v);
  }
  return g * d;
}

extern "C" __global__ void gelu_backward(void* dx, int dtDx, const void* dy, int dtDy, const void* x, int dtX, int approximate, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float v[VEC], g[VEC];
    ld_vec(x, dtX, i, v);
    ld_vec(dy, dtDy, i, g);
#pragma unroll
    for (int k = 0; k < VEC; k++) g[k] = gelu_backward_f(g[k], v[k], approximate);
    st_vec(dx, dtDx, i, g);
  }
  GRID_STRIDE_TAIL(i, n) st(dx, dtDx, i, gelu_backward_f(ld(dy, dtDy, i), ld(x, dtX, i), approximate));
}

extern "C" __global__ void silu_mul(void* out, int dtOut, const void* gate, int dtG, const void* up, int dtU, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float g[VEC], u[VEC];
    ld_vec(gate, dtG, i, g);
    ld_vec(up, dtU, i, u);
#pragma unroll
    for (int k = 0; k < VEC; k++) g[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
    st_vec(out, dtOut, i, g);
  }
  GRID_STRIDE_TAIL(i, n) {
    const float g = ld(gate, dtG, i), u = ld(up, dtU, i);
    st(out, dtOut, i, g / (1.0f + expf(-g)) * u);
  }
}

// dUp = dy·silu(gate); dGate = dy·up·s·(1 + gate·(1 − s)), s = sigmoid(gate). Outputs may alias inputs
// (each element is read before it is written, by the same thread).
extern "C" __global__ void silu_mul_backward(void* dGate, int dtDg, void* dUp, int dtDu, const void* dy, int dtDy, const void* gate, int dtG,
                                             const void* up, int dtU, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float g[VEC], a[VEC], u[VEC];
    ld_vec(dy, dtDy, i, g);
    ld_vec(gate, dtG, i, a);
    ld_vec(up, dtU, i, u);
    float du[VEC], dg[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      const float s = 1.0f / (1.0f + expf(-a[k]));
      du[k] = g[k] * a[k] * s;
      dg[k] = g[k] * u[k] * s * (1.0f + a[k] * (1.0f - s));
    }
    st_vec(dUp, dtDu, i, du);
    st_vec(dGate, dtDg, i, dg);
  }
  GRID_STRIDE_TAIL(i, n) {
    const float g = ld(dy, dtDy, i), a = ld(gate, dtG, i), u = ld(up, dtU, i);
    const float s = 1.0f / (1.0f + expf(-a));
    st(dUp, dtDu, i, g * a * s);
    st(dGate, dtDg, i, g * u * s * (1.0f + a * (1.0f - s)));
  }
}
