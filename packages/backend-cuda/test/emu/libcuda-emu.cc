// A stand-in for libcuda.so.1 that runs the kernels: the driver API calls the backend makes,
// with device memory in host memory and every kernel launch carried out on the CPU by the
// kernel's own source compiled for the host (test/emu/cuda_emu.h). A "module" is a shared
// library built from one kernels/<family>.cu; its fatbin stand-in (16-byte header with the
// fatbin magic, then the library's path) is what cuModuleLoadData receives. Kernels run at
// launch, in stream order; during graph capture launches, copies and memsets are recorded and
// cuGraphLaunch replays them. Used by src/emulated.test.ts through PEFT_CUDA_DRIVER_PATH.
//
// Each allocation ends at an inaccessible page, so a kernel writing or reading past the end of
// its buffer (beyond the allocator's size class) stops the process with SIGSEGV.
//
// PEFT_CUDA_EMU_DRY=1: a memory plan, not a computation. Kernels, GEMMs, device copies and
// memsets are accepted and skipped; allocations reserve address space without committing it
// (MAP_NORESERVE), so the allocator's peak for a real model size (a 7B model on an 80 GiB GPU,
// PEFT_CUDA_EMU_TOTAL_GIB=80) can be measured on a small machine. Values read back are garbage.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

typedef int CUresult;
typedef int (*Launcher)(const unsigned* dims, unsigned smem, const void* args, size_t size, char* err, size_t errlen);

namespace {
const CUresult OK = 0, OUT_OF_MEMORY = 2, INVALID_IMAGE = 200, NOT_FOUND = 500, NOT_READY = 600, LAUNCH_FAILED = 719,
               CAPTURE_INVALIDATED = 901;
std::string last_error;
size_t device_bytes = 0;
const bool DRY = getenv("PEFT_CUDA_EMU_DRY") && getenv("PEFT_CUDA_EMU_DRY")[0] == '1';
const size_t DEVICE_TOTAL = (size_t)(getenv("PEFT_CUDA_EMU_TOTAL_GIB") ? atof(getenv("PEFT_CUDA_EMU_TOTAL_GIB")) : 8.0) << 30;

struct Allocation {
  void* map;
  size_t length;
  size_t bytes;
};
std::map<uint64_t, Allocation> allocations;

struct Function {
  Launcher launch;
  std::string name;
};

struct Op {
  enum Kind { LAUNCH, COPY, SET8, SET16, SET32, HOST } kind;
  void (*host)(const void*);
  Function* fn;
  unsigned dims[6];
  unsigned smem;
  std::vector<uint8_t> args;
  uint64_t dst, src;
  size_t n;
  uint32_t value;
};

struct Graph {
  std::vector<Op> ops;
};
bool capturing = false;
Graph* capture = nullptr;

CUresult run(const Op& op) {
  if (DRY) return OK;
  switch (op.kind) {
    case Op::LAUNCH: {
      char err[512];
      if (op.fn->launch(op.dims, op.smem, op.args.data(), op.args.size(), err, sizeof err)) {
        last_error = err;
        fprintf(stderr, "[emulated CUDA] %s\n", err);
        return LAUNCH_FAILED;
      }
      return OK;
    }
    case Op::COPY: memmove((void*)(uintptr_t)op.dst, (const void*)(uintptr_t)op.src, op.n); return OK;
    case Op::SET8: memset((void*)(uintptr_t)op.dst, (int)op.value, op.n); return OK;
    case Op::SET16: {
      uint16_t* p = (uint16_t*)(uintptr_t)op.dst;
      for (size_t i = 0; i < op.n; i++) p[i] = (uint16_t)op.value;
      return OK;
    }
    case Op::HOST: op.host(op.args.data()); return OK;
    case Op::SET32: {
      uint32_t* p = (uint32_t*)(uintptr_t)op.dst;
      for (size_t i = 0; i < op.n; i++) p[i] = op.value;
      return OK;
    }
  }
  return OK;
}

CUresult submit(Op op) {
  if (capturing) {
    capture->ops.push_back(std::move(op));
    return OK;
  }
  return run(op);
}
}  // namespace

extern "C" {
CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int* v) {
  *v = 13000;
  return OK;
}
CUresult cuGetErrorName(int e, const char** s) {
  *s = e == NOT_READY ? "CUDA_ERROR_NOT_READY"
       : e == INVALID_IMAGE ? "CUDA_ERROR_INVALID_IMAGE"
       : e == NOT_FOUND ? "CUDA_ERROR_NOT_FOUND"
       : e == LAUNCH_FAILED ? "CUDA_ERROR_LAUNCH_FAILED"
       : e == OUT_OF_MEMORY ? "CUDA_ERROR_OUT_OF_MEMORY"
       : e == CAPTURE_INVALIDATED ? "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"
                            : "CUDA_ERROR_UNKNOWN";
  return OK;
}
CUresult cuGetErrorString(int e, const char** s) {
  *s = e == LAUNCH_FAILED ? last_error.c_str() : "emulated device error";
  return OK;
}
CUresult cuDeviceGetCount(int* n) {
  *n = 1;
  return OK;
}
CUresult cuDeviceGet(int* d, int i) {
  *d = i;
  return i == 0 ? OK : 101;
}
CUresult cuDeviceGetName(char* name, int len, int) {
  strncpy(name, "Emulated GPU (host)", len);
  return OK;
}
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
  // 75/76: compute capability 9.0; 16: multiprocessors; 97: max opt-in shared memory per block.
  *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? 4 : attr == 97 ? 232448 : 1024;
  return OK;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int) {
  *b = DEVICE_TOTAL;
  return OK;
}
CUresult cuDevicePrimaryCtxRetain(void** c, int) {
  *c = (void*)0x10;
  return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
CUresult cuDevicePrimaryCtxGetState(int, unsigned* flags, int* active) {
  *flags = 0;
  *active = 1;
  return OK;
}
CUresult cuDevicePrimaryCtxReset_v2(int) { return OK; }
CUresult cuCtxSetCurrent(void*) { return OK; }
// Waiting for the device during a capture invalidates it, as on the GPU.
CUresult cuCtxSynchronize(void) { return capturing ? CAPTURE_INVALIDATED : OK; }
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) {
  *t = DEVICE_TOTAL;
  *f = DEVICE_TOTAL - device_bytes;
  return OK;
}
CUresult cuMemAlloc_v2(uint64_t* p, size_t n) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (n > DEVICE_TOTAL - device_bytes) return OUT_OF_MEMORY;
  const size_t body = ((n ? n : 1) + 255) / 256 * 256;
  const size_t pages = (body + page - 1) / page * page;
  void* m = mmap(nullptr, pages + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (DRY ? MAP_NORESERVE : 0), -1, 0);
  if (m == MAP_FAILED) return OUT_OF_MEMORY;
  mprotect((char*)m + pages, page, PROT_NONE);
  const uint64_t ptr = (uint64_t)(uintptr_t)((char*)m + pages - body);
  allocations[ptr] = {m, pages + page, n};
  device_bytes += n;
  *p = ptr;
  return OK;
}
CUresult cuMemFree_v2(uint64_t p) {
  if (capturing) return CAPTURE_INVALIDATED;  // cuMemFree waits for the device
  auto it = allocations.find(p);
  if (it == allocations.end()) return 1;
  munmap(it->second.map, it->second.length);
  device_bytes -= it->second.bytes;
  allocations.erase(it);
  return OK;
}
CUresult cuMemAllocHost_v2(void** p, size_t n) {
  *p = malloc(n ? n : 1);
  return *p ? OK : OUT_OF_MEMORY;
}
CUresult cuMemFreeHost(void* p) {
  free(p);
  return OK;
}
CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void* s, size_t n, void*) {
  memcpy((void*)(uintptr_t)d, s, n);
  return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void* d, uint64_t s, size_t n, void*) {
  memcpy(d, (void*)(uintptr_t)s, n);
  return OK;
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t s, size_t n, void*) {
  Op op{};
  op.kind = Op::COPY;
  op.dst = d;
  op.src = s;
  op.n = n;
  return submit(std::move(op));
}
static CUresult memset_op(Op::Kind kind, uint64_t d, uint32_t v, size_t n) {
  Op op{};
  op.kind = kind;
  op.dst = d;
  op.value = v;
  op.n = n;
  return submit(std::move(op));
}
CUresult cuMemsetD8Async(uint64_t d, uint8_t v, size_t n, void*) { return memset_op(Op::SET8, d, v, n); }
CUresult cuMemsetD16Async(uint64_t d, uint16_t v, size_t n, void*) { return memset_op(Op::SET16, d, v, n); }
CUresult cuMemsetD32Async(uint64_t d, uint32_t v, size_t n, void*) { return memset_op(Op::SET32, d, v, n); }
CUresult cuStreamCreate(void** s, unsigned) {
  *s = (void*)0x20;
  return OK;
}
CUresult cuStreamDestroy_v2(void*) { return OK; }
CUresult cuStreamSynchronize(void*) { return capturing ? CAPTURE_INVALIDATED : OK; }
// Work is done by the time it is enqueued; events still answer "not ready" once, so the
// backend's polling path runs.
CUresult cuEventCreate(void** e, unsigned) {
  *e = calloc(1, sizeof(int));
  return OK;
}
CUresult cuEventRecord(void* e, void*) {
  *(int*)e = 1;
  return OK;
}
CUresult cuEventQuery(void* e) {
  if (*(int*)e > 0) {
    (*(int*)e)--;
    return NOT_READY;
  }
  return OK;
}
CUresult cuEventDestroy_v2(void* e) {
  free(e);
  return OK;
}
CUresult cuModuleLoadData(void** m, const void* image) {
  if (*(const uint32_t*)image != 0xba55ed50u) return INVALID_IMAGE;
  const char* path = (const char*)image + 16;
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    last_error = dlerror();
    fprintf(stderr, "[emulated CUDA] %s\n", last_error.c_str());
    return INVALID_IMAGE;
  }
  *m = lib;
  return OK;
}
CUresult cuModuleUnload(void*) { return OK; }  // kept loaded: other backends may still use it
CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
  const std::string symbol = std::string("emu_launch_") + name;
  Launcher launch = (Launcher)dlsym(m, symbol.c_str());
  if (!launch) return NOT_FOUND;
  *f = new Function{launch, name};
  return OK;
}
CUresult cuFuncSetAttribute(void*, int, int) { return OK; }
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void*, void** params,
                        void** extra) {
  // The backend passes its arguments as one buffer: {CU_LAUNCH_PARAM_BUFFER_POINTER, p, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, END}.
  if (params || !extra || extra[0] != (void*)1 || extra[2] != (void*)2 || extra[4] != nullptr) return 1;
  Op op{};
  op.kind = Op::LAUNCH;
  op.fn = (Function*)f;
  const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
  memcpy(op.dims, dims, sizeof dims);
  op.smem = smem;
  const size_t size = *(size_t*)extra[3];
  op.args.assign((const uint8_t*)extra[1], (const uint8_t*)extra[1] + size);
  return submit(std::move(op));
}
CUresult cuStreamBeginCapture_v2(void*, int) {
  if (capturing) return 1;
  capturing = true;
  capture = new Graph();
  return OK;
}
CUresult cuStreamEndCapture(void*, void** g) {
  capturing = false;
  *g = capture;
  capture = nullptr;
  return OK;
}
CUresult cuGraphInstantiateWithFlags(void** e, void* g, unsigned long long) {
  *e = new Graph(*(Graph*)g);
  return OK;
}
CUresult cuGraphLaunch(void* e, void*) {
  for (const Op& op : ((Graph*)e)->ops) {
    const CUresult rc = run(op);
    if (rc) return rc;
  }
  return OK;
}
CUresult cuGraphExecDestroy(void* e) {
  delete (Graph*)e;
  return OK;
}
CUresult cuGraphDestroy(void* g) {
  delete (Graph*)g;
  return OK;
}

// For test/emu/libcublaslt-emu.cc: work a library other than ours puts on the stream, run now
// or recorded into the graph being captured. `data` is copied.
__attribute__((visibility("default"))) int emu_enqueue_host(void (*fn)(const void*), const void* data, size_t size) {
  Op op{};
  op.kind = Op::HOST;
  op.host = fn;
  op.args.assign((const uint8_t*)data, (const uint8_t*)data + size);
  return submit(std::move(op));
}
}
