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
  GRID_STRIDE(i, n) st(out, dtOut, i, unary_f(op, ld(x, dtX, i)));
}

// dx = dy · f'(·); v is x, or y = f(x) for exp, sqrt, rsqrt, sigmoid, tanh. abs'(0) = relu'(0) = 0.
extern "C" __global__ void unary_backward(int op, void* dx, int dtDx, const void* dy, int dtDy, const void* v, int dtV, i64 n) {
  GRID_STRIDE(i, n) {
    const float g = ld(dy, dtDy, i), a = ld(v, dtV, i);
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
    st(dx, dtDx, i, d);
  }
}

extern "C" __global__ void affine(void* out, int dtOut, const void* x, int dtX, float alpha, float beta, i64 n) {
  GRID_STRIDE(i, n) st(out, dtOut, i, fmaf(ld(x, dtX, i), alpha, beta));
}

// Keep equal to BINARY_CODE in src/kernels.ts.
#define B_ADD 0
#define B_SUB 1
#define B_MUL 2
#define B_DIV 3
#define B_MAX 4
#define B_MIN 5

// out[i] = a[av(i)] op b[bv(i)]; av and bv have the same shape. out may alias a or b only when
// the alias reads element i exactly where it writes it (the host checks).
extern "C" __global__ void binary(int op, void* out, int dtOut, const void* a, int dtA, View av, const void* b, int dtB, View bv, i64 n) {
  GRID_STRIDE(i, n) {
    const float x = ld(a, dtA, view_at(av, i)), y = ld(b, dtB, view_at(bv, i));
    float r;
    switch (op) {
      case B_ADD: r = x + y; break;
      case B_SUB: r = x - y; break;
      case B_MUL: r = x * y; break;
      case B_DIV: r = x / y; break;
      case B_MAX: r = nan_max(x, y); break;
      default: r = nan_min(x, y);
    }
    st(out, dtOut, i, r);
  }
}
