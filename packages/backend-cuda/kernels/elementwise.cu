// Elementwise ops: unary and its backward, affine, binary over two strided views. Operands of
// unary, affine and unaryBackward have exactly n elements and may alias the output.
#include "common.cuh"

// Keep equal to UNARY_CODE in src/kernels.ts.
#define U_NEG 0
#define U_EXP 1
#define U_LOG 2
#define U_SQRT 3
#define U_RSQRT 4
#define U_SQUARE 5
#define U_ABS 6
#define U_SILU 7
#define U_SIGMOID 8
#define U_TANH 9
#define U_RELU 10

__device__ __forceinline__ float unary_f(int op, float x) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_SQUARE: return x * x;
    case U_ABS: return fabsf(x);
    case U_SILU: return x / (1.0f + expf(-x));
    case U_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case U_TANH: return tanhf(x);
    case U_RELU: return x > 0.0f ? x : (x != x ? x : 0.0f);
  }
  return __int_as_float(0x7fc00000);
}

extern "C" __global__ void unary(int op, void* out, int dtOut, const void* x, int dtX, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float v[VEC];
    ld_vec(x, dtX, i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = unary_f(op, v[k]);
    st_vec(out, dtOut, i, v);
  }
  GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, unary_f(op, ld(x, dtX, i)));
}

// dx = dy · f'(·); v is x, or y = f(x) for exp, sqrt, rsqrt, sigmoid, tanh. abs'(0) = relu'(0) = 0.
__device__ __forceinline__ float unary_backward_f(int op, float g, float a) {
  float d;
  switch (op) {
    case U_NEG: d = -g; break;
    case U_EXP: d = g * a; break;
    case U_LOG: d = g / a; break;
    case U_SQRT: d = 0.5f * g / a; break;
    case U_RSQRT: d = -0.5f * g * a * a * a; break;
    case U_SQUARE: d = 2.0f * a * g; break;
    case U_ABS: d = a > 0.0f ? g : a < 0.0f ? -g : a == 0.0f ? 0.0f : a; break;
    case U_SILU: {
      const float s = 1.0f / (1.0f + expf(-a));
      d = g * s * (1.0f + a * (1.0f - s));
      break;
    }
    case U_SIGMOID: d = g * a * (1.0f - a); break;
    case U_TANH: d = g * (1.0f - a * a); break;
    case U_RELU: d = a > 0.0f ? g : 0.0f; break;
    default: d = __int_as_float(0x7fc00000);
  }
  return d;
}

extern "C" __global__ void unary_backward(int op, void* dx, int dtDx, const void* dy, int dtDy, const void* v, int dtV, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float g[VEC], a[VEC];
    ld_vec(dy, dtDy, i, g);
    ld_vec(v, dtV, i, a);
#pragma unroll
    for (int k = 0; k < VEC; k++) g[k] = unary_backward_f(op, g[k], a[k]);
    st_vec(dx, dtDx, i, g);
  }
  GRID_STRIDE_TAIL(i, n) st(dx, dtDx, i, unary_backward_f(op, ld(dy, dtDy, i), ld(v, dtV, i)));
}

extern "C" __global__ void affine(void* out, int dtOut, const void* x, int dtX, float alpha, float beta, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float v[VEC];
    ld_vec(x, dtX, i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = fmaf(v[k], alpha, beta);
    st_vec(out, dtOut, i, v);
  }
  GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, fmaf(ld(x, dtX, i), alpha, beta));
}

// Keep equal to BINARY_CODE in src/kernels.ts.
#define B_ADD 0
#define B_SUB 1
#define B_MUL 2
#define B_DIV 3
#define B_MAX 4
#define B_MIN 5

__device__ __forceinline__ float binary_f(int op, float x, float y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_MAX: return nan_max(x, y);
    default: return nan_min(x, y);
  }
}

// out[i] = a[av(i)] op b[bv(i)]; av and bv have the same shape. out may alias a or b only when
// the alias reads element i exactly where it writes it (the host checks). Both views contiguous
// (the common case): the vectorised fast path from each view's offset.
extern "C" __global__ void binary(int op, void* out, int dtOut, const void* a, int dtA, View av, const void* b, int dtB, View bv, i64 n) {
  if (view_flat(av) && view_flat(bv)) {
    const void* pa = elem_ptr(a, dtA, av.offset);
    const void* pb = elem_ptr(b, dtB, bv.offset);
    GRID_STRIDE_VEC(i, n) {
      float x[VEC], y[VEC];
      ld_vec(pa, dtA, i, x);
      ld_vec(pb, dtB, i, y);
#pragma unroll
      for (int k = 0; k < VEC; k++) x[k] = binary_f(op, x[k], y[k]);
      st_vec(out, dtOut, i, x);
    }
    GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, binary_f(op, ld(pa, dtA, i), ld(pb, dtB, i)));
    return;
  }
  GRID_STRIDE(i, n) st(out, dtOut, i, binary_f(op, ld(a, dtA, view_at(av, i)), ld(b, dtB, view_at(bv, i))));
}
