// Data movement: strided copy with dtype conversion (cast, permute, slice, broadcast) and its
// backward, addInto. `fill` is a cuMemsetD32/D16 of the value's bits on the host side.
#include "common.cuh"

// out[i] = x[view(i)] through float32 (converting dtype; float → int32 truncates and saturates).
// A contiguous view of a float dtype (casts, LoRA's widening of 16-bit operands): the vectorised
// fast path from the view's offset.
extern "C" __global__ void copy_convert(void* out, int dtOut, const void* x, int dtX, View v, i64 n) {
  if (view_flat(v) && !(dtX == DT_I32 && dtOut == DT_I32)) {
    const void* px = elem_ptr(x, dtX, v.offset);
    GRID_STRIDE_VEC(i, n) {
      float r[VEC];
      ld_vec(px, dtX, i, r);
      st_vec(out, dtOut, i, r);
    }
    GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, ld(px, dtX, i));
    return;
  }
  GRID_STRIDE(i, n) {
    const i64 at = view_at(v, i);
    if (dtX == DT_I32 && dtOut == DT_I32) static_cast<int*>(out)[i] = static_cast<const int*>(x)[at];
    else st(out, dtOut, i, ld(x, dtX, at));
  }
}

// Same dtype: raw bits (NaN payloads included), 4- or 2-byte elements.
extern "C" __global__ void copy_bits32(uint32_t* out, const uint32_t* x, View v, i64 n) {
  GRID_STRIDE(i, n) out[i] = x[view_at(v, i)];
}
extern "C" __global__ void copy_bits16(uint16_t* out, const uint16_t* x, View v, i64 n) {
  GRID_STRIDE(i, n) out[i] = x[view_at(v, i)];
}

// dst[view(i)] += src[i] in float32, rounded to dst's dtype. The view maps no two elements to one
// place (the interface says so), so there are no races and no atomics. A contiguous view: the
// vectorised fast path from the view's offset.
extern "C" __global__ void add_into(void* dst, int dtDst, const void* src, int dtSrc, View v, i64 n) {
  if (view_flat(v)) {
    void* pd = const_cast<void*>(elem_ptr(dst, dtDst, v.offset));
    GRID_STRIDE_VEC(i, n) {
      float d[VEC], s[VEC];
      ld_vec(pd, dtDst, i, d);
      ld_vec(src, dtSrc, i, s);
#pragma unroll
      for (int k = 0; k < VEC; k++) d[k] += s[k];
      st_vec(pd, dtDst, i, d);
    }
    GRID_STRIDE_TAIL(i, n) st(pd, dtDst, i, ld(pd, dtDst, i) + ld(src, dtSrc, i));
    return;
  }
  GRID_STRIDE(i, n) {
    const i64 at = view_at(v, i);
    st(dst, dtDst, at, ld(dst, dtDst, at) + ld(src, dtSrc, i));
  }
}
