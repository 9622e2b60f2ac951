// Host emulation of the CUDA C++ that kernels/*.cu use, so the kernels themselves (not a port)
// compile with a C++ compiler and run on the CPU under test/emu/libcuda-emu.cc: the driver API
// stand-in that src/emulated.test.ts loads in place of libcuda.so.1.
//
// Each thread of a block is a fiber (its own stack, switched with the compiler's
// __builtin_setjmp/__builtin_longjmp after a first entry through makecontext); one OS thread runs
// the blocks of a launch one after another.
// __syncthreads() parks a fiber until every live thread of the block has arrived; a warp
// shuffle parks it until every live lane of its warp has, then hands each lane the value of its
// source lane. A barrier that can never complete (threads of one block at different barriers, a
// shuffle whose mask names a lane that has exited) stops the launch with an error naming the
// kernel, instead of hanging: on a GPU those are undefined behaviour.
//
// __shared__ variables become function-local statics (one copy, shared by the block's fibers;
// blocks run one at a time); `extern __shared__ T name[];` is rewritten by the build into a
// pointer to the launch's dynamic shared memory, which each block gets filled with 0xff bytes
// (NaN as float) so that reading it before writing shows. float16/bfloat16 conversions round
// to nearest even, like the device intrinsics.
//
// Not emulated: tensor-core instructions, inline PTX, timing. Threads of a warp interleave at
// barriers only, so a race that needs another interleaving is not found.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <tuple>
#include <vector>

struct uint3 {
  unsigned x, y, z;
};
typedef uint3 dim3;

namespace emu {

enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct Fiber {
  uint3 tid;
  int lane, warp;
  State state;
  bool started;  // has run in the current block
  bool created;  // has a context, parked after a finished kernel (reused across blocks and launches)
  void* jb[5];  // __builtin_setjmp buffer
  ucontext_t uc;
  char* stack;
  // __syncthreads_or
  int pred, result;
  // shuffles
  uint64_t value, out;
  int src;
  unsigned mask;
  // warp-wide gathers (mma): this lane's bytes, and where every lane's go
  const void* gather_in;
  void* gather_out;
  size_t gather_bytes;
};

struct Launch {
  const char* name;
  std::function<void()> entry;
  Fiber* fibers;  // the first `threads` of the pool
  int threads;
  std::vector<char> smem;
  void* sched[5];
  ucontext_t sched_uc;
  char error[512];
  bool failed;
};

inline Fiber* cur = nullptr;
inline Launch* L = nullptr;
inline uint3 block_idx, block_dim, grid_dim;
inline size_t stack_bytes = 256 * 1024;

inline std::vector<char*> stacks;
// One fiber per thread slot, created once and reused: after its kernel returns, a fiber parks
// (DONE) and the next block or launch resumes it at the top of its loop, without the signal-mask
// system calls of getcontext/makecontext/swapcontext.
inline std::vector<Fiber> pool;

// Records why the launch failed (the first reason wins).
inline void set_error(const char* fmt, int x = 0, int y = 0, int z = 0) {
  if (L->failed) return;
  char what[400];
  snprintf(what, sizeof what, fmt, x, y, z);
  snprintf(L->error, sizeof L->error, "%s, block (%u,%u,%u): %s", L->name, block_idx.x, block_idx.y, block_idx.z, what);
  L->failed = true;
}

// A switch to the context saved in `buf` by __builtin_setjmp. Unlike libc's _longjmp it restores
// only the frame and stack pointers and the resume address (the compiler keeps everything else
// live across the setjmp on the stack) and walks no pthread cleanup handlers; it must not be
// called from the function that called __builtin_setjmp, hence a function of its own.
[[noreturn]] __attribute__((noinline)) inline void jump(void** buf) { __builtin_longjmp(buf, 1); }

// From a fiber: fail the launch and never come back.
[[noreturn]] inline void fail(const char* fmt, int x = 0, int y = 0, int z = 0) {
  set_error(fmt, x, y, z);
  cur->state = DONE;
  jump(L->sched);
}

// Back to the scheduler; returns when the scheduler runs this fiber again.
inline void yield() {
  if (!__builtin_setjmp(cur->jb)) jump(L->sched);
}

inline void trampoline() {
  for (;;) {
    L->entry();
    cur->state = DONE;
    if (!__builtin_setjmp(cur->jb)) jump(L->sched);
    // Resumed for the next block: run the kernel again.
  }
}

inline void* dynamic_smem() { return L->smem.data(); }

inline void syncthreads() {
  cur->state = AT_BLOCK_BARRIER;
  yield();
}

inline int syncthreads_or(int pred) {
  cur->pred = pred != 0;
  syncthreads();
  return cur->result;
}

// Every lane of the warp passes `bytes` bytes; each gets all 32 lanes' in `all` (lane-major).
// The whole warp must take part (like mma.sync.aligned).
inline void warp_gather(const void* mine, size_t bytes, void* all) {
  cur->gather_in = mine;
  cur->gather_out = all;
  cur->gather_bytes = bytes;
  cur->mask = 0;
  cur->state = AT_WARP_BARRIER;
  yield();
}

template <typename T>
inline T shuffle(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  if (!(mask >> cur->lane & 1u)) fail("thread %d: a shuffle's mask leaves out the calling lane", (int)(cur - L->fibers));
  cur->value = 0;
  memcpy(&cur->value, &v, sizeof(T));
  cur->src = src & 31;
  cur->mask = mask;
  cur->gather_in = nullptr;
  cur->state = AT_WARP_BARRIER;
  yield();
  T r;
  memcpy(&r, &cur->out, sizeof(T));
  return r;
}

// Runs every thread of the current block to completion.
inline void run_block() {
  struct Span {
    Fiber* p;
    int n;
    Fiber* begin() { return p; }
    Fiber* end() { return p + n; }
    Fiber& operator[](int i) { return p[i]; }
  } fs{L->fibers, L->threads};
  const int n = fs.n;
  for (Fiber& f : fs) {
    f.state = RUNNABLE;
    f.started = false;
  }
  int live = n;
  // PEFT_CUDA_EMU_ORDER picks the interleaving, to expose a missing __syncthreads (a thread
  // reading shared memory that another thread writes before the next barrier):
  //   (unset)       threads in order, all warps advancing one shuffle at a time;
  //   reverse       the same, last thread first;
  //   skew          one warp runs until every lane of it waits at __syncthreads() or has
  //                 exited, then the next: warps as far apart as a GPU may schedule them;
  //   skew-reverse  the same, last warp first.
  const char* order = getenv("PEFT_CUDA_EMU_ORDER");
  const bool reverse = order && (strcmp(order, "reverse") == 0 || strcmp(order, "skew-reverse") == 0);
  const bool skew = order && strncmp(order, "skew", 4) == 0;
  const int warps = (n + 31) / 32;
  const int firstWarp = reverse ? warps - 1 : 0;
  int focus = firstWarp;
  while (live > 0) {
    bool ran = false;
    for (int fi = 0; fi < n; fi++) {
      Fiber& f = fs[reverse ? n - 1 - fi : fi];
      if (f.state != RUNNABLE) continue;
      if (skew && f.warp != focus) continue;
      ran = true;
      cur = &f;
      if (!__builtin_setjmp(L->sched)) {
        if (f.started || f.created) {
          f.started = true;
          jump(f.jb);
        }
        f.started = true;
        f.created = true;
        getcontext(&f.uc);
        f.uc.uc_stack.ss_sp = f.stack;
        f.uc.uc_stack.ss_size = stack_bytes;
        f.uc.uc_link = nullptr;
        makecontext(&f.uc, trampoline, 0);
        swapcontext(&L->sched_uc, &f.uc);
      }
      cur = nullptr;
      if (L->failed) return;
      if (f.state == DONE) live--;
    }
    if (live == 0) break;
    bool released = false;
    // Warps whose live lanes all wait at a shuffle.
    for (int w = 0; w < warps; w++) {
      Fiber* lanes = &fs[w * 32];
      const int count = n - w * 32 < 32 ? n - w * 32 : 32;
      bool waiting = false, all = true;
      for (int l = 0; l < count; l++) {
        if (lanes[l].state == AT_WARP_BARRIER) waiting = true;
        else if (lanes[l].state != DONE) all = false;
      }
      if (!waiting || !all) continue;
      int first = 0;
      while (lanes[first].state != AT_WARP_BARRIER) first++;
      if (lanes[first].gather_in) {
        // A warp-wide gather: every lane of a full warp, all at one.
        for (int l = 0; l < 32; l++) {
          if (l >= count || lanes[l].state != AT_WARP_BARRIER || !lanes[l].gather_in || lanes[l].gather_bytes != lanes[first].gather_bytes) {
            set_error("warp %d: a warp-wide matrix instruction (mma) without all 32 lanes at it (lane %d is not)", w, l);
            return;
          }
        }
        // Lane 0's copy first, then the same 32 entries into every other lane's.
        const size_t bytes = lanes[0].gather_bytes;
        for (int m = 0; m < 32; m++) memcpy((char*)lanes[0].gather_out + m * bytes, lanes[m].gather_in, bytes);
        for (int l = 1; l < 32; l++) memcpy(lanes[l].gather_out, lanes[0].gather_out, 32 * bytes);
        for (int l = 0; l < 32; l++) lanes[l].state = RUNNABLE;
        released = true;
        continue;
      }
      for (int l = 0; l < count; l++) {
        Fiber& f = lanes[l];
        if (f.state != AT_WARP_BARRIER) continue;
        if (f.gather_in) {
          set_error("warp %d: lane %d is at a warp-wide matrix instruction while lane %d is at a shuffle", w, l, first);
          return;
        }
        const int s = f.src;
        if (s >= count || lanes[s].state != AT_WARP_BARRIER || !(f.mask >> s & 1u)) {
          set_error("warp %d, lane %d: a shuffle reads lane %d, which has exited or is not in the mask", w, l, s);
          return;
        }
        for (int m = 0; m < count; m++) {
          if ((f.mask >> m & 1u) && lanes[m].state != AT_WARP_BARRIER) {
            set_error("warp %d, lane %d: a shuffle's mask names lane %d, which has exited", w, l, m);
            return;
          }
        }
        f.out = lanes[s].value;
      }
      for (int l = 0; l < count; l++)
        if (lanes[l].state == AT_WARP_BARRIER) lanes[l].state = RUNNABLE;
      released = true;
    }
    if (released) continue;
    if (skew) {
      // The warp in focus waits at __syncthreads() (or is done): the next warp with work runs.
      int next = -1;
      for (int k = 1; k <= warps && next < 0; k++) {
        const int w = reverse ? (focus - k + 2 * warps) % warps : (focus + k) % warps;
        for (int l = w * 32; l < n && l < w * 32 + 32; l++)
          if (fs[l].state == RUNNABLE) next = w;
      }
      if (next >= 0) {
        focus = next;
        continue;
      }
    }
    // The block barrier: every live thread waits at one.
    int at = 0, anyPred = 0;
    for (Fiber& f : fs) {
      if (f.state == AT_BLOCK_BARRIER) {
        at++;
        anyPred |= f.pred;
      }
    }
    if (at == live) {
      focus = firstWarp;
      for (Fiber& f : fs) {
        if (f.state != AT_BLOCK_BARRIER) continue;
        f.result = anyPred;
        f.pred = 0;
        f.state = RUNNABLE;
      }
      continue;
    }
    if (!ran) {
      int shuffling = 0;
      for (Fiber& f : fs) shuffling += f.state == AT_WARP_BARRIER;
      set_error("deadlock: %d threads wait at __syncthreads() and %d at a warp shuffle that their warp cannot complete", at, shuffling);
      return;
    }
  }
}

template <typename T>
inline T take(const uint8_t* buf, size_t& off) {
  off = (off + alignof(T) - 1) & ~(alignof(T) - 1);
  T v;
  memcpy(&v, buf + off, sizeof(T));
  off += sizeof(T);
  return v;
}

// Unpacks the CU_LAUNCH_PARAM_BUFFER_POINTER buffer into the kernel's parameters (C ABI layout:
// each at the next offset aligned to its own alignment) and runs the grid. Returns 0, or 1 with
// the reason in err.
template <typename... A>
inline int launch(void (*kernel)(A...), const char* name, const unsigned* dims, unsigned smem, const void* args, size_t size, char* err,
                  size_t errlen) {
  size_t off = 0;
  const uint8_t* buf = static_cast<const uint8_t*>(args);
  std::tuple<A...> params{take<A>(buf, off)...};
  if (off > size || ((off + 7) & ~(size_t)7) < size) {
    snprintf(err, errlen, "%s: the argument buffer has %zu bytes, the kernel's parameters take %zu", name, size, off);
    return 1;
  }
  const unsigned threads = dims[3] * dims[4] * dims[5];
  if (threads == 0 || threads > 1024 || dims[0] == 0 || dims[1] == 0 || dims[2] == 0) {
    snprintf(err, errlen, "%s: invalid launch grid (%u,%u,%u) x block (%u,%u,%u)", name, dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]);
    return 1;
  }
  while (stacks.size() < threads) stacks.push_back(static_cast<char*>(malloc(stack_bytes)));
  Launch launch;
  launch.name = name;
  launch.failed = false;
  launch.error[0] = 0;
  launch.entry = [&] { std::apply(kernel, params); };
  if (pool.size() < threads) pool.resize(threads);  // new fibers: created = false
  launch.fibers = pool.data();
  launch.threads = (int)threads;
  launch.smem.resize(smem ? smem : 1);
  for (unsigned t = 0; t < threads; t++) {
    Fiber& f = pool[t];
    f.tid = {t % dims[3], t / dims[3] % dims[4], t / (dims[3] * dims[4])};
    f.lane = (int)(t & 31);
    f.warp = (int)(t >> 5);
    f.stack = stacks[t];
    f.pred = 0;
  }
  Launch* outer = L;
  L = &launch;
  grid_dim = {dims[0], dims[1], dims[2]};
  block_dim = {dims[3], dims[4], dims[5]};
  for (unsigned z = 0; z < dims[2] && !launch.failed; z++)
    for (unsigned y = 0; y < dims[1] && !launch.failed; y++)
      for (unsigned x = 0; x < dims[0] && !launch.failed; x++) {
        block_idx = {x, y, z};
        memset(launch.smem.data(), 0xff, launch.smem.size());
        run_block();
      }
  L = outer;
  if (launch.failed) {
    // Fibers stopped mid-kernel cannot be resumed: make them afresh next time.
    for (Fiber& f : pool) f.created = false;
    snprintf(err, errlen, "%s", launch.error);
    return 1;
  }
  return 0;
}

}  // namespace emu

#define threadIdx (emu::cur->tid)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() emu::syncthreads()
#define __syncthreads_or(p) emu::syncthreads_or(p)

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src) {
  return emu::shuffle(mask, v, src);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask) {
  return emu::shuffle(mask, v, emu::cur->lane ^ laneMask);
}

// One OS thread runs every fiber, so a read-modify-write cannot be interrupted.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}

inline float __int_as_float(int x) {
  float f;
  memcpy(&f, &x, 4);
  return f;
}
inline int __float_as_int(float f) {
  int x;
  memcpy(&x, &f, 4);
  return x;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline void sincospif(float x, float* s, float* c) {
  *s = (float)sin(M_PI * (double)x);
  *c = (float)cos(M_PI * (double)x);
}

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// --- float16 and bfloat16 storage types ---------------------------------------------------------
struct __half {
  uint16_t x;
};
struct __nv_bfloat16 {
  uint16_t x;
};

inline float __half2float(__half h) {
  const uint32_t sign = (uint32_t)(h.x & 0x8000) << 16, exp = h.x >> 10 & 0x1f, man = h.x & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | man << 13;
  else if (exp != 0) bits = sign | (exp + 112) << 23 | man << 13;
  else if (man == 0) bits = sign;
  else {
    // Subnormal: normalise.
    int e = -1;
    uint32_t m = man;
    do {
      e++;
      m <<= 1;
    } while (!(m & 0x400));
    bits = sign | (uint32_t)(112 - e) << 23 | (m & 0x3ff) << 13;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

inline __half __float2half_rn(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint16_t sign = (uint16_t)(x >> 16 & 0x8000);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return {(uint16_t)(sign | 0x7e00)};  // NaN
  if (a >= 0x477ff000u) return {(uint16_t)(sign | 0x7c00)};  // rounds to infinity (65520 and up)
  if (a >= 0x38800000u) {
    // Normal half: drop 13 mantissa bits, round to nearest even.
    const uint32_t r = a - 0x38000000u;  // rebias 127 → 15
    const uint32_t keep = r >> 13, rest = r & 0x1fff;
    const uint32_t out = keep + (rest > 0x1000 || (rest == 0x1000 && (keep & 1)));
    return {(uint16_t)(sign | out)};
  }
  if (a < 0x33000000u) return {sign};  // below half the smallest subnormal
  // Subnormal half: value / 2^-24, rounded to nearest even.
  const int e = (int)(a >> 23);
  const uint32_t m = (a & 0x7fffff) | 0x800000;
  const int shift = 126 - e;  // 14..24
  const uint32_t keep = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  const uint32_t out = keep + (rest > half || (rest == half && (keep & 1)));
  return {(uint16_t)(sign | out)};
}

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t bits = (uint32_t)h.x << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)((x >> 16) | 0x40)};  // quiet NaN
  x += 0x7fffu + (x >> 16 & 1);
  return {(uint16_t)(x >> 16)};
}

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return {x}; }
inline __half __ushort_as_half(unsigned short x) { return {x}; }

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct alignas(16) float4 {
  float x, y, z, w;
};

namespace emu {
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D = A·B + D over a warp, with the PTX ISA's
// fragment layout. groupID = lane / 4, t = lane % 4. A (16×16, row-major), 4 registers of two
// 16-bit values (low half first): register r holds row groupID + 8·(r & 1), columns 2t, 2t+1
// (+ 8 when r ≥ 2). B (16×8, column-major), 2 registers: register r holds rows 2t, 2t+1 (+ 8 when
// r = 1) of column groupID. C/D (16×8 float): element e is row groupID + 8·(e ≥ 2), column
// 2t + (e & 1). Products are exact in float32; the sum is accumulated in float32 in k order.
inline void mma_m16n8k16(float* d, const uint32_t* a, const uint32_t* b, bool bf16) {
  struct Regs {
    uint32_t a[4], b[2];
  };
  const Regs mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  Regs all[32];
  warp_gather(&mine, sizeof mine, all);
  auto value = [bf16](uint32_t reg, int high) {
    const uint16_t h = (uint16_t)(high ? reg >> 16 : reg & 0xffff);
    return bf16 ? __bfloat162float(__nv_bfloat16{h}) : __half2float(__half{h});
  };
  auto A = [&](int row, int k) { return value(all[(row & 7) * 4 + (k & 7) / 2].a[(row >= 8) + 2 * (k >= 8)], k & 1); };
  auto B = [&](int k, int n) { return value(all[n * 4 + (k & 7) / 2].b[k >= 8], k & 1); };
  const int g = cur->lane >> 2, t = cur->lane & 3;
  // This lane's two rows of A and two columns of B, decoded once.
  float a_rows[2][16], b_cols[2][16];
  for (int k = 0; k < 16; k++) {
    a_rows[0][k] = A(g, k);
    a_rows[1][k] = A(g + 8, k);
    b_cols[0][k] = B(k, 2 * t);
    b_cols[1][k] = B(k, 2 * t + 1);
  }
  for (int e = 0; e < 4; e++) {
    const float* row = a_rows[e >> 1];
    const float* col = b_cols[e & 1];
    float acc = d[e];
    for (int k = 0; k < 16; k++) acc = fmaf(row[k], col[k], acc);
    d[e] = acc;
  }
}
}  // namespace emu
