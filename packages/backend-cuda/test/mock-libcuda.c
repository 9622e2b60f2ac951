// A stand-in for libcuda.so.1 on machines without a GPU, for src/driver-mock.test.ts: device
// memory is host memory (so copies and memsets really happen), kernels are recorded instead of
// run, events report "not ready" once before "done" (so the polling path runs). Built by the
// test with `cc -shared -fPIC`; loaded through PEFT_CUDA_DRIVER_PATH.
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

CUresult cuInit(unsigned flags) { return 0; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return 0; }
CUresult cuGetErrorName(int e, const char** s) { *s = e == 600 ? "CUDA_ERROR_NOT_READY" : e == 200 ? "CUDA_ERROR_INVALID_IMAGE" : "CUDA_ERROR_MOCK"; return 0; }
CUresult cuGetErrorString(int e, const char** s) { *s = "mock error"; return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int i) { *d = i; return i == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char* name, int len, int dev) { strncpy(name, "Mock GPU", len); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int dev) {
  *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? 4 : attr == 97 ? 232448 : 1024;
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int dev) { *b = (size_t)1 << 30; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** c, int dev) { *c = (void*)0x10; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { return 0; }
CUresult cuCtxSetCurrent(void* c) { return 0; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) { *f = (size_t)1 << 29; *t = (size_t)1 << 30; return 0; }
CUresult cuMemAlloc_v2(uint64_t* p, size_t n) {
  void* m = NULL;
  if (n > ((size_t)1 << 31)) return 2;  // CUDA_ERROR_OUT_OF_MEMORY
  if (posix_memalign(&m, 256, n ? n : 1)) return 2;
  *p = (uint64_t)(uintptr_t)m;
  return 0;
}
CUresult cuMemFree_v2(uint64_t p) { free((void*)(uintptr_t)p); return 0; }
CUresult cuMemAllocHost_v2(void** p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
CUresult cuMemFreeHost(void* p) { free(p); return 0; }
CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void* s, size_t n, void* st) { memcpy((void*)(uintptr_t)d, s, n); return 0; }
CUresult cuMemcpyDtoHAsync_v2(void* d, uint64_t s, size_t n, void* st) { memcpy(d, (void*)(uintptr_t)s, n); return 0; }
CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t s, size_t n, void* st) { memmove((void*)(uintptr_t)d, (void*)(uintptr_t)s, n); return 0; }
CUresult cuMemsetD8Async(uint64_t d, uint8_t v, size_t n, void* st) { memset((void*)(uintptr_t)d, v, n); return 0; }
CUresult cuMemsetD16Async(uint64_t d, uint16_t v, size_t n, void* st) { uint16_t* p = (uint16_t*)(uintptr_t)d; for (size_t i = 0; i < n; i++) p[i] = v; return 0; }
CUresult cuMemsetD32Async(uint64_t d, uint32_t v, size_t n, void* st) { uint32_t* p = (uint32_t*)(uintptr_t)d; for (size_t i = 0; i < n; i++) p[i] = v; return 0; }
CUresult cuStreamCreate(void** s, unsigned f) { *s = (void*)0x20; return 0; }
CUresult cuStreamDestroy_v2(void* s) { return 0; }
CUresult cuStreamSynchronize(void* s) { return 0; }
CUresult cuEventCreate(void** e, unsigned f) { *e = calloc(1, sizeof(int)); return 0; }
CUresult cuEventRecord(void* e, void* s) { *(int*)e = 1; return 0; }
CUresult cuEventQuery(void* e) { if (*(int*)e > 0) { (*(int*)e)--; return 600; } return 0; }
CUresult cuEventDestroy_v2(void* e) { free(e); return 0; }
CUresult cuModuleLoadData(void** m, const void* image) { return *(const uint32_t*)image == 0xba55ed50u ? (*m = (void*)0x30, 0) : 200; }
CUresult cuModuleUnload(void* m) { return 0; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) { *f = strdup(name); return 0; }
CUresult cuFuncSetAttribute(void* f, int a, int v) { return 0; }
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void* st, void** params,
                        void** extra) {
  if (params || !extra || extra[0] != (void*)1 || extra[2] != (void*)2 || extra[4] != NULL) return 1;
  launches++;
  strncpy(last_name, (const char*)f, sizeof last_name - 1);
  last_size = (int)*(size_t*)extra[3];
  memcpy(last_args, extra[1], last_size);
  unsigned dims[7] = {gx, gy, gz, bx, by, bz, smem};
  memcpy(last_dims, dims, sizeof dims);
  return 0;
}
CUresult cuStreamBeginCapture_v2(void* s, int mode) { return mode == 2 ? 0 : 1; }
CUresult cuStreamEndCapture(void* s, void** g) { *g = (void*)0x40; return 0; }
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
