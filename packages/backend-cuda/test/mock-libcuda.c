// A stand-in for libcuda.so.1 on machines without a GPU, for src/driver-mock.test.ts: device
// memory is host memory (so copies and memsets really happen), kernels are recorded instead of
// run, events report "not ready" once before "done" (so the polling path runs). Built by the
// test with `cc -shared -fPIC`; loaded through PEFT_CUDA_DRIVER_PATH.
//
// The primary context is reference-counted like the driver's: retain/release/reset and their
// counts are readable. mock_inject_sticky(code) poisons it as a GPU fault does (every call that
// touches the context answers `code`) until the context is destroyed (last release, or reset).
// mock_fail(name, code) makes the call of that name answer `code` from then on ("" clears it).
// During a capture, cuStreamSynchronize, cuCtxSynchronize and cuMemFree invalidate it, as the
// driver does: they answer CUDA_ERROR_STREAM_CAPTURE_INVALIDATED and are counted.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
static int launches = 0;
static char last_name[128];
static uint8_t last_args[4096];
static int last_size = 0;
static unsigned last_dims[7];
static int graph_launches = 0;
static int ctx_refs = 0, ctx_retains = 0, ctx_releases = 0, ctx_resets = 0;
static int sticky = 0;
static char fail_name[64];
static int fail_code = 0;
static int capturing = 0, capture_breaks = 0;
// A poisoned context answers its fault; a call named by mock_fail answers its code.
#define FAULT(name)                                        \
  do {                                                     \
    if (sticky) return sticky;                             \
    if (fail_code && !strcmp(fail_name, name)) return fail_code; \
  } while (0)
// Calls that wait for the stream break a capture.
#define NO_SYNC_IN_CAPTURE()  \
  do {                        \
    if (capturing) {          \
      capture_breaks++;       \
      return 901;             \
    }                         \
  } while (0)

CUresult cuInit(unsigned flags) { return 0; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return 0; }
CUresult cuGetErrorName(int e, const char** s) {
  *s = e == 600 ? "CUDA_ERROR_NOT_READY" : e == 200 ? "CUDA_ERROR_INVALID_IMAGE" : e == 700 ? "CUDA_ERROR_ILLEGAL_ADDRESS"
       : e == 901 ? "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED" : e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_MOCK";
  return 0;
}
CUresult cuGetErrorString(int e, const char** s) { *s = "mock error"; return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int i) { *d = i; return i == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char* name, int len, int dev) { strncpy(name, "Mock GPU", len); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int dev) {
  *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? 4 : attr == 97 ? 232448 : 1024;
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int dev) { *b = (size_t)1 << 30; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** c, int dev) { *c = (void*)0x10; ctx_refs++; ctx_retains++; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
  if (fail_code && !strcmp(fail_name, "cuDevicePrimaryCtxRelease_v2")) return fail_code;
  if (ctx_refs == 0) return 201;  // CUDA_ERROR_INVALID_CONTEXT
  ctx_releases++;
  if (--ctx_refs == 0) sticky = 0;  // the context is destroyed with its fault
  return 0;
}
CUresult cuDevicePrimaryCtxGetState(int dev, unsigned* flags, int* active) { *flags = 0; *active = ctx_refs > 0; return 0; }
CUresult cuDevicePrimaryCtxReset_v2(int dev) { ctx_resets++; ctx_refs = 0; sticky = 0; return 0; }
CUresult cuCtxSetCurrent(void* c) { return 0; }
CUresult cuCtxSynchronize(void) { NO_SYNC_IN_CAPTURE(); FAULT("cuCtxSynchronize"); return 0; }
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) { *f = (size_t)1 << 29; *t = (size_t)1 << 30; return 0; }
CUresult cuMemAlloc_v2(uint64_t* p, size_t n) {
  void* m = NULL;
  FAULT("cuMemAlloc_v2");
  if (n > ((size_t)1 << 31)) return 2;  // CUDA_ERROR_OUT_OF_MEMORY
  if (posix_memalign(&m, 256, n ? n : 1)) return 2;
  *p = (uint64_t)(uintptr_t)m;
  return 0;
}
CUresult cuMemFree_v2(uint64_t p) { NO_SYNC_IN_CAPTURE(); FAULT("cuMemFree_v2"); free((void*)(uintptr_t)p); return 0; }
CUresult cuMemAllocHost_v2(void** p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
CUresult cuMemFreeHost(void* p) { FAULT("cuMemFreeHost"); free(p); return 0; }
CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void* s, size_t n, void* st) { memcpy((void*)(uintptr_t)d, s, n); return 0; }
CUresult cuMemcpyDtoHAsync_v2(void* d, uint64_t s, size_t n, void* st) { memcpy(d, (void*)(uintptr_t)s, n); return 0; }
CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t s, size_t n, void* st) { memmove((void*)(uintptr_t)d, (void*)(uintptr_t)s, n); return 0; }
CUresult cuMemsetD8Async(uint64_t d, uint8_t v, size_t n, void* st) { memset((void*)(uintptr_t)d, v, n); return 0; }
CUresult cuMemsetD16Async(uint64_t d, uint16_t v, size_t n, void* st) { uint16_t* p = (uint16_t*)(uintptr_t)d; for (size_t i = 0; i < n; i++) p[i] = v; return 0; }
CUresult cuMemsetD32Async(uint64_t d, uint32_t v, size_t n, void* st) { uint32_t* p = (uint32_t*)(uintptr_t)d; for (size_t i = 0; i < n; i++) p[i] = v; return 0; }
CUresult cuStreamCreate(void** s, unsigned f) { *s = (void*)0x20; return 0; }
CUresult cuStreamDestroy_v2(void* s) { FAULT("cuStreamDestroy_v2"); return 0; }
CUresult cuStreamSynchronize(void* s) { NO_SYNC_IN_CAPTURE(); FAULT("cuStreamSynchronize"); return 0; }
CUresult cuEventCreate(void** e, unsigned f) { *e = calloc(1, sizeof(int)); return 0; }
CUresult cuEventRecord(void* e, void* s) { FAULT("cuEventRecord"); *(int*)e = 1; return 0; }
CUresult cuEventQuery(void* e) { FAULT("cuEventQuery"); if (*(int*)e > 0) { (*(int*)e)--; return 600; } return 0; }
CUresult cuEventDestroy_v2(void* e) { FAULT("cuEventDestroy_v2"); free(e); return 0; }
CUresult cuModuleLoadData(void** m, const void* image) { return *(const uint32_t*)image == 0xba55ed50u ? (*m = (void*)0x30, 0) : 200; }
CUresult cuModuleUnload(void* m) { FAULT("cuModuleUnload"); return 0; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) { *f = strdup(name); return 0; }
CUresult cuFuncSetAttribute(void* f, int a, int v) { return 0; }
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void* st, void** params,
                        void** extra) {
  FAULT("cuLaunchKernel");
  if (params || !extra || extra[0] != (void*)1 || extra[2] != (void*)2 || extra[4] != NULL) return 1;
  launches++;
  strncpy(last_name, (const char*)f, sizeof last_name - 1);
  last_size = (int)*(size_t*)extra[3];
  memcpy(last_args, extra[1], last_size);
  unsigned dims[7] = {gx, gy, gz, bx, by, bz, smem};
  memcpy(last_dims, dims, sizeof dims);
  return 0;
}
CUresult cuStreamBeginCapture_v2(void* s, int mode) { FAULT("cuStreamBeginCapture_v2"); if (mode != 2 || capturing) return 1; capturing = 1; return 0; }
CUresult cuStreamEndCapture(void* s, void** g) { if (!capturing) return 1; capturing = 0; *g = (void*)0x40; return 0; }
CUresult cuGraphInstantiateWithFlags(void** e, void* g, unsigned long long f) { *e = (void*)0x50; return 0; }
CUresult cuGraphLaunch(void* e, void* s) { graph_launches++; return 0; }
CUresult cuGraphExecDestroy(void* e) { return 0; }
CUresult cuGraphDestroy(void* g) { return 0; }

// For the test: what the last launch received.
int mock_launches(void) { return launches; }
int mock_graph_launches(void) { return graph_launches; }
int mock_last_launch(char* name, uint8_t* args, unsigned* dims) {
  strcpy(name, last_name);
  memcpy(args, last_args, last_size);
  memcpy(dims, last_dims, sizeof last_dims);
  return last_size;
}
int mock_ctx_refs(void) { return ctx_refs; }
int mock_ctx_retains(void) { return ctx_retains; }
int mock_ctx_releases(void) { return ctx_releases; }
int mock_ctx_resets(void) { return ctx_resets; }
int mock_capture_breaks(void) { return capture_breaks; }
void mock_inject_sticky(int code) { sticky = code; }
void mock_fail(const char* name, int code) {
  strncpy(fail_name, name, sizeof fail_name - 1);
  fail_code = name[0] ? code : 0;
}
