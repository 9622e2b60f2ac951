// Checks of the emulator itself (run by src/emulated.test.ts): block and warp barriers,
// shuffles, __syncthreads_or, grid/block indices, dynamic shared memory, and the errors it
// reports for code that is undefined behaviour on a GPU. Prints one "ok <name>" or
// "FAIL <name>: <why>" line per check.
#include "cuda_emu.h"
#include "common.cuh"

extern "C" __global__ void k_block_sum(float* out) {
  const float s = block_sum((float)threadIdx.x);
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}
extern "C" __global__ void k_sync_or(int* out, int who) { out[threadIdx.x] = __syncthreads_or(threadIdx.x == (unsigned)who); }
extern "C" __global__ void k_shuffles(int* out) {
  const int t = (int)threadIdx.x;
  out[t] = __shfl_sync(0xffffffffu, t * 10, 3) + 1000 * __shfl_xor_sync(0xffffffffu, t, 1);
}
extern "C" __global__ void k_shuffle64(long long* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (long long)threadIdx.x << 40, 16); }
extern "C" __global__ void k_smem(float* out, int write) {
  float* sm = (float*)emu::dynamic_smem();
  if (write) sm[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = sm[blockDim.x - 1 - threadIdx.x];
}
extern "C" __global__ void k_indices(int* out) {
  const int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 1000 + thread;
}
extern "C" __global__ void k_grid_stride(int* out, i64 n) { GRID_STRIDE(i, n) out[i] += (int)i; }
extern "C" __global__ void k_exit_then_shuffle(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
extern "C" __global__ void k_divergent(float* out) {
  if ((threadIdx.x & 31) < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  else __syncthreads();
}
extern "C" __global__ void k_early_exit_then_sync(float* out) {
  if (threadIdx.x >= 40) return;  // exited threads do not hold up a later barrier
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// D[16×8] = A[16×16]·B[16×8] with one mma; fragments built from the PTX ISA's element formulas
// (a_i: row groupID + 8·((i/2) mod 2), column 2t + (i mod 2) + 8·(i/4); b_i: row 2t + (i mod 2)
// + 8·(i/2), column groupID; c_i: row groupID + 8·(i/2), column 2t + (i mod 2)).
extern "C" __global__ void k_mma(float* out, const float* A, const float* B, int bf16) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  auto bits = [bf16](float v) -> uint32_t {
    return bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
  };
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  for (int i = 0; i < 8; i++) a[i / 2] |= bits(A[(g + 8 * ((i / 2) % 2)) * 16 + 2 * t + (i % 2) + 8 * (i / 4)]) << (16 * (i % 2));
  for (int i = 0; i < 4; i++) b[i / 2] |= bits(B[(2 * t + (i % 2) + 8 * (i / 2)) * 8 + g]) << (16 * (i % 2));
  float d[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  emu::mma_m16n8k16(d, a, b, bf16 != 0);
  for (int i = 0; i < 4; i++) out[(g + 8 * (i / 2)) * 8 + 2 * t + (i % 2)] = d[i];
}
extern "C" __global__ void k_mma_partial(float* out) {
  if (threadIdx.x == 31) return;
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  emu::mma_m16n8k16(out, a, b, true);
}

// The elementwise kernels' contiguous fast path (common.cuh) against the scalar loop.
extern "C" __global__ void k_vec_convert(void* out, int dtOut, const void* x, int dtX, i64 n) {
  GRID_STRIDE_VEC(i, n) {
    float r[VEC];
    ld_vec(x, dtX, i, r);
    st_vec(out, dtOut, i, r);
  }
  GRID_STRIDE_TAIL(i, n) st(out, dtOut, i, ld(x, dtX, i));
}
extern "C" __global__ void k_scalar_convert(void* out, int dtOut, const void* x, int dtX, i64 n) { GRID_STRIDE(i, n) st(out, dtOut, i, ld(x, dtX, i)); }

static int failures = 0;
static void report(const char* name, bool ok, const char* why = "") {
  printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, why);
  failures += !ok;
}

template <typename K, typename... A>
static int call(K kernel, const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                char* err, A... args) {
  uint8_t buf[256];
  size_t off = 0;
  ((off = (off + alignof(A) - 1) & ~(alignof(A) - 1), memcpy(buf + off, &args, sizeof(A)), off += sizeof(A)), ...);
  const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
  return emu::launch(kernel, name, dims, smem, buf, off, err, 512);
}

int main() {
  char err[512];
  {
    std::vector<float> out(2 * 256);
    const int rc = call(k_block_sum, "block_sum", 2, 1, 1, 256, 1, 1, 0, err, out.data());
    bool ok = rc == 0;
    for (float v : out) ok = ok && v == 32640.0f;  // 0 + 1 + … + 255
    report("block_sum gives every thread of every block the sum", ok, err);
  }
  {
    std::vector<int> out(128);
    int rc = call(k_sync_or, "sync_or", 1, 1, 1, 128, 1, 1, 0, err, out.data(), 77);
    bool ok = rc == 0;
    for (int v : out) ok = ok && v == 1;
    rc = call(k_sync_or, "sync_or", 1, 1, 1, 128, 1, 1, 0, err, out.data(), -1);
    for (int v : out) ok = ok && rc == 0 && v == 0;
    report("__syncthreads_or", ok, err);
  }
  {
    std::vector<int> out(64);
    const int rc = call(k_shuffles, "shuffles", 1, 1, 1, 64, 1, 1, 0, err, out.data());
    bool ok = rc == 0;
    for (int t = 0; t < 64; t++) ok = ok && out[t] == ((t & ~31) + 3) * 10 + 1000 * (t ^ 1);
    std::vector<long long> wide(32);
    ok = ok && call(k_shuffle64, "shuffle64", 1, 1, 1, 32, 1, 1, 0, err, wide.data()) == 0;
    for (int t = 0; t < 32; t++) ok = ok && wide[t] == (long long)(t ^ 16) << 40;
    report("__shfl_sync and __shfl_xor_sync stay within the warp (32- and 64-bit values)", ok, err);
  }
  {
    std::vector<float> out(64);
    bool ok = call(k_smem, "smem", 1, 1, 1, 64, 1, 1, 64 * 4, err, out.data(), 1) == 0;
    for (int t = 0; t < 64; t++) ok = ok && out[t] == (float)(63 - t);
    ok = ok && call(k_smem, "smem", 1, 1, 1, 64, 1, 1, 64 * 4, err, out.data(), 0) == 0;
    for (int t = 0; t < 64; t++) ok = ok && out[t] != out[t];  // never written: NaN
    report("dynamic shared memory is shared by the block, and NaN until written", ok, err);
  }
  {
    std::vector<int> out(3 * 2 * 2 * 8 * 2 * 2, -1);
    bool ok = call(k_indices, "indices", 3, 2, 2, 8, 2, 2, 0, err, out.data()) == 0;
    for (int b = 0; b < 12; b++)
      for (int t = 0; t < 32; t++) ok = ok && out[b * 32 + t] == b * 1000 + t;
    std::vector<int> g(1000, 0);
    ok = ok && call(k_grid_stride, "grid_stride", 3, 1, 1, 64, 1, 1, 0, err, g.data(), (i64)1000) == 0;
    for (int i = 0; i < 1000; i++) ok = ok && g[i] == i;
    report("threadIdx, blockIdx, blockDim and gridDim in three dimensions; a grid-stride loop covers every element once", ok, err);
  }
  {
    std::vector<float> out(64);
    const int rc = call(k_early_exit_then_sync, "early_exit", 1, 1, 1, 64, 1, 1, 0, err, out.data());
    report("threads that have exited do not hold up __syncthreads()", rc == 0 && out[39] == 1.0f, err);
  }
  {
    std::vector<float> out(32);
    const int rc = call(k_exit_then_shuffle, "exit_then_shuffle", 1, 1, 1, 32, 1, 1, 0, err, out.data());
    report("a full-mask shuffle after a lane exited is an error", rc == 1 && strstr(err, "exited") && strstr(err, "exit_then_shuffle"), err);
  }
  {
    std::vector<float> out(64);
    const int rc = call(k_divergent, "divergent", 1, 1, 1, 64, 1, 1, 0, err, out.data());
    report("half a warp at a shuffle and half at __syncthreads() is reported as a deadlock", rc == 1 && strstr(err, "deadlock"), err);
  }
  {
    std::vector<float> out(4);
    uint8_t buf[16] = {0};
    const unsigned dims[6] = {1, 1, 1, 32, 1, 1};
    const int rc = emu::launch(k_block_sum, "short_args", dims, 0, buf, 4, err, 512);
    report("an argument buffer shorter than the parameters is refused", rc == 1 && strstr(err, "argument buffer"), err);
  }
  for (int bf16 = 0; bf16 < 2; bf16++) {
    std::vector<float> A(16 * 16), B(16 * 8), out(16 * 8);
    for (int i = 0; i < 256; i++) A[i] = (float)((i * 7) % 13 - 6) * 0.25f;  // exact in both 16-bit types
    for (int i = 0; i < 128; i++) B[i] = (float)((i * 5) % 11 - 5) * 0.5f;
    bool ok = call(k_mma, "mma", 1, 1, 1, 32, 1, 1, 0, err, out.data(), (const float*)A.data(), (const float*)B.data(), bf16) == 0;
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < 8; c++) {
        float want = 0.5f;
        for (int k = 0; k < 16; k++) want += A[r * 16 + k] * B[k * 8 + c];
        ok = ok && out[r * 8 + c] == want;
      }
    report(bf16 ? "mma m16n8k16 bf16: fragments as the PTX ISA lays them out" : "mma m16n8k16 f16: fragments as the PTX ISA lays them out", ok, err);
  }
  {
    std::vector<float> out(4);
    const int rc = call(k_mma_partial, "mma_partial", 1, 1, 1, 32, 1, 1, 0, err, out.data());
    report("an mma without the whole warp is an error", rc == 1 && strstr(err, "all 32 lanes"), err);
  }
  {
    // Random bits (NaN payloads, infinities, subnormals, rounding ties among them) read and written
    // as every storage dtype, from aligned and misaligned addresses, at lengths with and without a
    // tail; the buffers' bytes past the length must stay untouched.
    const int N = 4097 + 16;
    uint32_t* src = (uint32_t*)aligned_alloc(16, N * 4);
    uint32_t* outVec = (uint32_t*)aligned_alloc(16, N * 4);
    uint32_t* outScalar = (uint32_t*)aligned_alloc(16, N * 4);
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) src[i] = seed = seed * 1664525u + 1013904223u;
    const uint32_t specials[] = {0x7fc00001u, 0xff800000u, 0x00000001u, 0x3f808000u, 0x7f7fffffu, 0x80000000u, 0x477ff000u, 0x33000000u};
    memcpy(src, specials, sizeof specials);
    bool ok = true;
    char why[200] = "";
    const i64 lengths[] = {1, 7, 8, 9, 1023, 4097};
    for (int dtX = 0; dtX < 4; dtX++)
      for (int dtOut = 0; dtOut < 4; dtOut++)
        for (int xo : {0, 1})
          for (int oo : {0, 3})
            for (i64 n : lengths) {
              memset(outVec, 0xab, N * 4);
              memset(outScalar, 0xab, N * 4);
              const void* x = (const char*)src + xo * (dtX == DT_F16 || dtX == DT_BF16 ? 2 : 4);
              const int ob = oo * (dtOut == DT_F16 || dtOut == DT_BF16 ? 2 : 4);
              ok = ok && call(k_vec_convert, "vec_convert", 3, 1, 1, 64, 1, 1, 0, err, (void*)((char*)outVec + ob), dtOut, x, dtX, n) == 0;
              ok = ok && call(k_scalar_convert, "scalar_convert", 3, 1, 1, 64, 1, 1, 0, err, (void*)((char*)outScalar + ob), dtOut, x, dtX, n) == 0;
              if (ok && memcmp(outVec, outScalar, N * 4) != 0) {
                ok = false;
                snprintf(why, sizeof why, "dtX %d dtOut %d x offset %d out offset %d n %lld differ", dtX, dtOut, xo, oo, (long long)n);
              }
            }
    free(src);
    free(outVec);
    free(outScalar);
    report("ld_vec/st_vec equal ld/st bit for bit (every dtype pair, aligned and misaligned, with tails) and the vector loop covers each element once", ok,
           why[0] ? why : err);
  }
  printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
