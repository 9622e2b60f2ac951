// A stand-in for libcublasLt.so.13 on the emulated device (see libcuda-emu.cc): the calls
// src/cublaslt.ts makes, with cuBLASLt's documented semantics — column-major layouts
// (rows, cols, ld), op(A) = Aᵀ under CUBLASLT_MATMUL_DESC_TRANSA, strided batches,
// D = alpha·op(A)·op(B) + beta·C with C unread when beta = 0, float32 accumulation, the storage
// dtype combinations cuBLASLt accepts with CUBLAS_COMPUTE_32F — and its checks: mismatched
// dimensions, ld < rows, unequal batch counts, unsupported types, and pointers or batch strides
// less aligned than the algorithm was chosen for are refused with the status cuBLASLt returns.
// The product is enqueued on the emulated stream, so graph capture records it.
//
// The heuristic offers up to ALGOS_OFFERED algorithms (numbered from 0, best first). For the
// tests of the backend's algorithm fallback, cublasLtMatmul refuses with NOT_SUPPORTED:
// PEFT_CUDA_EMU_LT_REFUSE=N the algorithms numbered below N, and
// PEFT_CUDA_EMU_LT_REFUSE_SHAPE=m,n,k (cuBLAS's column-major m, n, k) every algorithm for that shape.
// Both are read at each call.
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <initializer_list>
#include <vector>

typedef int Status;
namespace {
const Status OK = 0, INVALID_VALUE = 7, NOT_SUPPORTED = 15, EXECUTION_FAILED = 13;
const int R_32F = 0, R_16F = 2, R_16BF = 14, COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77;

struct Desc {
  int compute, scale, transa, transb;
};
struct Layout {
  int type;
  uint64_t rows, cols;
  int64_t ld;
  int batch;
  int64_t stride;
};
struct Pref {
  uint64_t maxWorkspace;
  uint32_t align[4];  // A, B, C, D
};
// Lives in the 64 bytes of cublasLtMatmulAlgo_t.
struct Algo {
  uint32_t magic;
  uint32_t index;
  uint32_t align[4];
  uint64_t workspace;
};
const uint32_t ALGO_MAGIC = 0xa160e11;

float load(const void* p, int type, int64_t i) {
  if (type == R_32F) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  uint32_t bits;
  if (type == R_16BF) bits = (uint32_t)h << 16;
  else {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) bits = sign | 0x7f800000u | man << 13;
    else if (exp) bits = sign | (exp + 112) << 23 | man << 13;
    else {
      float f = std::ldexp((float)man, -24);
      return sign ? -f : f;
    }
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

void store(void* p, int type, int64_t i, float v) {
  if (type == R_32F) {
    static_cast<float*>(p)[i] = v;
    return;
  }
  uint32_t x;
  memcpy(&x, &v, 4);
  uint16_t out;
  if (type == R_16BF) {
    if ((x & 0x7fffffffu) > 0x7f800000u) out = (uint16_t)((x >> 16) | 0x40);
    else out = (uint16_t)((x + 0x7fffu + (x >> 16 & 1)) >> 16);
  } else {
    // float16, round to nearest even (via the exact scaled integer).
    const uint16_t sign = (uint16_t)(x >> 16 & 0x8000);
    const float a = std::fabs(v);
    if (v != v) out = sign | 0x7e00;
    else if (a >= 65520.0f) out = sign | 0x7c00;
    else if (a < 6.103515625e-05f) out = sign | (uint16_t)std::nearbyint(a * 16777216.0f);  // subnormal: units of 2^-24
    else {
      int e;
      const float m = std::frexp(a, &e);  // a = m·2^e, m ∈ [0.5, 1)
      uint32_t q = (uint32_t)std::nearbyint(m * 2048.0f);  // 11 significant bits
      if (q == 2048) {
        q = 1024;
        e++;
      }
      out = (e + 14 >= 31) ? (sign | 0x7c00) : (uint16_t)(sign | (uint32_t)(e + 14) << 10 | (q - 1024));
    }
  }
  static_cast<uint16_t*>(p)[i] = out;
}

struct Call {
  Desc d;
  Layout a, b, c, dl;
  float alpha, beta;
  uint64_t A, B, C, D;
  uint64_t m, n, k;
};

void run(const void* data) {
  const Call& x = *static_cast<const Call*>(data);
  // op(A) row by row and op(B) a column at a time, decoded to float once: the sums below are the
  // same fma chains in the same order as loading each element where it is used.
  std::vector<float> rowsA(x.m * x.k), colB(x.k);
  for (int bt = 0; bt < x.dl.batch; bt++) {
    const void* A = (const void*)(uintptr_t)x.A;
    const void* B = (const void*)(uintptr_t)x.B;
    for (uint64_t i = 0; i < x.m; i++)
      for (uint64_t p = 0; p < x.k; p++)
        rowsA[i * x.k + p] = load(A, x.a.type, bt * x.a.stride + (x.d.transa ? p + i * x.a.ld : i + p * x.a.ld));
    for (uint64_t j = 0; j < x.n; j++) {
      for (uint64_t p = 0; p < x.k; p++) colB[p] = load(B, x.b.type, bt * x.b.stride + (x.d.transb ? j + p * x.b.ld : p + j * x.b.ld));
      for (uint64_t i = 0; i < x.m; i++) {
        const float* a = &rowsA[i * x.k];
        float acc = 0.0f;
        for (uint64_t p = 0; p < x.k; p++) acc = std::fma(a[p], colB[p], acc);
        float v = x.alpha * acc;
        if (x.beta != 0.0f) v += x.beta * load((const void*)(uintptr_t)x.C, x.c.type, bt * x.c.stride + i + j * x.c.ld);
        store((void*)(uintptr_t)x.D, x.dl.type, bt * x.dl.stride + i + j * x.dl.ld, v);
      }
    }
  }
}

// The shape checks cuBLASLt makes; fills m, n, k.
Status check(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dl, uint64_t& m, uint64_t& n, uint64_t& k) {
  if (d.compute != COMPUTE_32F && d.compute != COMPUTE_32F_FAST_TF32) return NOT_SUPPORTED;
  if (d.scale != R_32F) return NOT_SUPPORTED;
  if (a.type != b.type) return NOT_SUPPORTED;
  if (a.type == R_32F && (c.type != R_32F || dl.type != R_32F)) return NOT_SUPPORTED;
  if (a.type != R_32F && ((c.type != a.type && c.type != R_32F) || dl.type != c.type)) return NOT_SUPPORTED;
  if (d.compute == COMPUTE_32F_FAST_TF32 && a.type != R_32F) return NOT_SUPPORTED;
  m = dl.rows;
  n = dl.cols;
  k = d.transa ? a.rows : a.cols;
  if ((d.transa ? a.cols : a.rows) != m) return INVALID_VALUE;
  if ((d.transb ? b.cols : b.rows) != k || (d.transb ? b.rows : b.cols) != n) return INVALID_VALUE;
  if (c.rows != m || c.cols != n) return INVALID_VALUE;
  for (const Layout* l : {&a, &b, &c, &dl})
    if (l->ld < (int64_t)l->rows || l->ld < 1) return INVALID_VALUE;
  if (a.batch != dl.batch || b.batch != dl.batch || c.batch != dl.batch) return INVALID_VALUE;
  return OK;
}

size_t type_bytes(int t) { return t == R_32F ? 4 : 2; }

const int ALGOS_OFFERED = 6;

// Whether the test asks cublasLtMatmul to refuse this algorithm or shape (see the top of the file).
bool refused(uint32_t index, uint64_t m, uint64_t n, uint64_t k) {
  const char* below = getenv("PEFT_CUDA_EMU_LT_REFUSE");
  if (below && *below && index < (uint32_t)atoi(below)) return true;
  const char* shape = getenv("PEFT_CUDA_EMU_LT_REFUSE_SHAPE");
  unsigned long long sm, sn, sk;
  return shape && sscanf(shape, "%llu,%llu,%llu", &sm, &sn, &sk) == 3 && sm == m && sn == n && sk == k;
}

int (*enqueue)(void (*)(const void*), const void*, size_t) = nullptr;
}  // namespace

extern "C" {
Status cublasLtCreate(void** h) {
  const char* driver = getenv("PEFT_CUDA_DRIVER_PATH");
  void* lib = driver ? dlopen(driver, RTLD_NOW | RTLD_NOLOAD) : nullptr;
  enqueue = lib ? (int (*)(void (*)(const void*), const void*, size_t))dlsym(lib, "emu_enqueue_host") : nullptr;
  if (!enqueue) return 1;  // CUBLAS_STATUS_NOT_INITIALIZED: not on the emulated device
  *h = malloc(1);
  return OK;
}
Status cublasLtDestroy(void* h) {
  free(h);
  return OK;
}
size_t cublasLtGetVersion() { return 130000; }
Status cublasLtMatmulDescCreate(void** d, int compute, int scale) {
  *d = new Desc{compute, scale, 0, 0};
  return OK;
}
Status cublasLtMatmulDescDestroy(void* d) {
  delete (Desc*)d;
  return OK;
}
Status cublasLtMatmulDescSetAttribute(void* d, int attr, const void* buf, size_t size) {
  Desc* x = (Desc*)d;
  if (attr == 3 || attr == 4) {  // TRANSA, TRANSB: int32 cublasOperation_t
    if (size != 4) return INVALID_VALUE;
    int32_t v;
    memcpy(&v, buf, 4);
    if (v != 0 && v != 1) return INVALID_VALUE;
    (attr == 3 ? x->transa : x->transb) = v;
    return OK;
  }
  return NOT_SUPPORTED;
}
Status cublasLtMatrixLayoutCreate(void** l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (type != R_32F && type != R_16F && type != R_16BF) return NOT_SUPPORTED;
  *l = new Layout{type, rows, cols, ld, 1, 0};
  return OK;
}
Status cublasLtMatrixLayoutDestroy(void* l) {
  delete (Layout*)l;
  return OK;
}
Status cublasLtMatrixLayoutSetAttribute(void* l, int attr, const void* buf, size_t size) {
  Layout* x = (Layout*)l;
  if (attr == 5 && size == 4) {  // BATCH_COUNT: int32
    memcpy(&x->batch, buf, 4);
    return x->batch >= 1 ? OK : INVALID_VALUE;
  }
  if (attr == 6 && size == 8) {  // STRIDED_BATCH_OFFSET: int64, in elements
    memcpy(&x->stride, buf, 8);
    return OK;
  }
  return INVALID_VALUE;
}
Status cublasLtMatmulPreferenceCreate(void** p) {
  *p = new Pref{0, {256, 256, 256, 256}};
  return OK;
}
Status cublasLtMatmulPreferenceDestroy(void* p) {
  delete (Pref*)p;
  return OK;
}
Status cublasLtMatmulPreferenceSetAttribute(void* p, int attr, const void* buf, size_t size) {
  Pref* x = (Pref*)p;
  if (attr == 1 && size == 8) {  // MAX_WORKSPACE_BYTES: uint64
    memcpy(&x->maxWorkspace, buf, 8);
    return OK;
  }
  if (attr >= 5 && attr <= 8 && size == 4) {  // MIN_ALIGNMENT_{A,B,C,D}_BYTES: uint32
    memcpy(&x->align[attr - 5], buf, 4);
    return OK;
  }
  return INVALID_VALUE;
}
Status cublasLtMatmulAlgoGetHeuristic(void*, void* op, void* a, void* b, void* c, void* d, void* pref, int requested, void* results,
                                      int* returned) {
  uint64_t m, n, k;
  *returned = 0;
  if (requested < 1) return INVALID_VALUE;
  const Status rc = check(*(Desc*)op, *(Layout*)a, *(Layout*)b, *(Layout*)c, *(Layout*)d, m, n, k);
  if (rc) return rc;
  const Pref& p = *(Pref*)pref;
  // cublasLtMatmulHeuristicResult_t: algo[64], workspaceSize, state, wavesCount, reserved[4]
  const int count = requested < ALGOS_OFFERED ? requested : ALGOS_OFFERED;
  const uint64_t workspace = p.maxWorkspace < 4096 ? p.maxWorkspace : 4096;  // ask for some when allowed
  for (int i = 0; i < count; i++) {
    uint8_t* r = (uint8_t*)results + 96 * i;
    memset(r, 0, 96);
    Algo algo{ALGO_MAGIC, (uint32_t)i, {p.align[0], p.align[1], p.align[2], p.align[3]}, workspace};
    memcpy(r, &algo, sizeof algo);
    memcpy(r + 64, &workspace, 8);
    const float waves = 1.0f;
    memcpy(r + 76, &waves, 4);
  }
  *returned = count;
  return OK;
}
Status cublasLtMatmul(void*, void* op, const void* alpha, uint64_t A, void* a, uint64_t B, void* b, const void* beta, uint64_t C, void* c,
                      uint64_t D, void* d, const void* algo, uint64_t workspace, size_t workspaceBytes, void*) {
  Call x;
  x.d = *(Desc*)op;
  x.a = *(Layout*)a;
  x.b = *(Layout*)b;
  x.c = *(Layout*)c;
  x.dl = *(Layout*)d;
  Status rc = check(x.d, x.a, x.b, x.c, x.dl, x.m, x.n, x.k);
  if (rc) return rc;
  const Algo* al = (const Algo*)algo;
  if (!al || al->magic != ALGO_MAGIC) return INVALID_VALUE;
  if (refused(al->index, x.m, x.n, x.k)) return NOT_SUPPORTED;
  const uint64_t ptrs[4] = {A, B, C, D};
  const Layout* ls[4] = {&x.a, &x.b, &x.c, &x.dl};
  for (int i = 0; i < 4; i++) {
    // The algorithm was chosen for this alignment: a pointer or batch stride with less is a misaligned access.
    if (ptrs[i] % al->align[i]) return INVALID_VALUE;
    if (ls[i]->batch > 1 && (uint64_t)(ls[i]->stride * type_bytes(ls[i]->type)) % al->align[i]) return INVALID_VALUE;
  }
  if (workspaceBytes < al->workspace || (workspaceBytes > 0 && workspace == 0)) return INVALID_VALUE;  // less than the algorithm needs
  memcpy(&x.alpha, alpha, 4);
  memcpy(&x.beta, beta, 4);
  x.A = A;
  x.B = B;
  x.C = C;
  x.D = D;
  return enqueue(run, &x, sizeof x) ? EXECUTION_FAILED : OK;
}
}
