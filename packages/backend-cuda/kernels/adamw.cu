// AdamW in place, PyTorch semantics: decoupled weight decay, bias-corrected moments. m and v are
// float32; the parameter may be 16-bit (rounded on store). bc1 = 1 − β1^t and bc2 = 1 − β2^t come
// from the host in double precision, rounded once. With `scalars` (float32 [4]: lr, bc1, bc2,
// gradScale, written between replays of a captured step) those are read on the device instead,
// and decay = 1 − lr·wd is formed here in float32.
#include "common.cuh"

extern "C" __global__ void adamw(void* param, int dtP, const void* grad, int dtG, float* m, float* v, float lr, float beta1, float beta2,
                                 float eps, float decay, float bc1, float bc2, float gradScale, const float* scalars, float wd, i64 n) {
  if (scalars != nullptr) {
    lr = scalars[0];
    bc1 = scalars[1];
    bc2 = scalars[2];
    gradScale = scalars[3];
    decay = 1.0f - lr * wd;
  }
  GRID_STRIDE(i, n) {
    const float g = ld(grad, dtG, i) * gradScale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = ld(param, dtP, i) * decay - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    st(param, dtP, i, p);
  }
}
