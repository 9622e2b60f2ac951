// The FFI plumbing without a GPU: the driver declarations, context/stream setup, the caching
// allocator on "device" memory, pinned uploads, event-polled reads, fatbin loading, launch
// argument packing and graph capture, against test/mock-libcuda.c (device memory is host memory,
// kernels are recorded, not run). Needs a C compiler; skips visibly without one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { conformanceCases } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { KERNELS } from './kernels.js';

function buildMock(): string | null {
  const src = fileURLToPath(new URL('../test/mock-libcuda.c', import.meta.url));
  const out = join(mkdtempSync(join(tmpdir(), 'peft-mock-cuda-')), 'libcuda-mock.so');
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (!cc) continue;
    try {
      execFileSync(cc, ['-shared', '-fPIC', '-O1', '-o', out, src], { stdio: 'ignore' });
      return out;
    } catch {
      // next compiler
    }
  }
  return null;
}

/**
 * Stand-in fatbins (the magic number is all the mock checks) and a manifest, so these tests do
 * not depend on nvcc or on fatbin.test.ts having built the real ones.
 */
function fakeFatbins(): string {
  const dir = mkdtempSync(join(tmpdir(), 'peft-mock-fatbin-'));
  const families: Record<string, { hash: string; kernels: Record<string, string[]>; bytes: number }> = {};
  for (const [name, k] of Object.entries(KERNELS)) {
    families[k.family] ??= { hash: 'mock', kernels: {}, bytes: 16 };
    families[k.family].kernels[name] = [];
  }
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, 0xba55ed50, true);
  for (const family of Object.keys(families)) writeFileSync(join(dir, `${family}.fatbin`), header);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ nvcc: 'mock', archs: ['sm_90'], ptx: 'compute_90', totalBytes: 0, families }));
  return dir;
}

const mock = buildMock();
if (!mock) console.warn('[backend-cuda] no C compiler (cc/gcc/clang): skipping the mock-driver tests');
if (mock) {
  process.env.PEFT_CUDA_DRIVER_PATH = mock;
  process.env.PEFT_CUDA_FATBIN_DIR = fakeFatbins();
}

describe.skipIf(!mock)('the driver plumbing, on a stand-in libcuda', async () => {
  const { createCudaBackend, isAvailable } = await import('./index.js');
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(mock);
  const lastLaunch = lib.func('int mock_last_launch(_Out_ char *name, uint8_t *args, uint32_t *dims)');
  const launches = lib.func('int mock_launches()');
  const graphLaunches = lib.func('int mock_graph_launches()');

  it('isAvailable() reports the device', () => {
    const a = isAvailable();
    expect(a.available).toBe(true);
    expect(a.reason).toMatch(/GPU 0: Mock GPU \(sm_90, 1\.0 GiB\), driver 13\.0/);
    expect(isAvailable({ deviceIndex: 1 })).toMatchObject({ available: false });
  });

  it('uploads and reads back raw bits of every dtype, and fills with memset', async () => {
    const b = createCudaBackend({ cublas: false });
    expect(b.device).toMatchObject({ name: 'Mock GPU', computeCapability: [9, 0], multiprocessors: 4 });
    const f = b.alloc('float32', 5);
    b.write(f, new Float32Array([1, -2, 3.5, Number.NaN, -0]));
    expect([...((await b.read(f)) as Float32Array)]).toEqual([1, -2, 3.5, Number.NaN, -0]);
    const h = b.alloc('bfloat16', 3);
    b.write(h, new Uint16Array([0x3f80, 0xc000, 0x7fc1]));
    expect([...((await b.read(h)) as Uint16Array)]).toEqual([0x3f80, 0xc000, 0x7fc1]);
    b.fill(h, 1.5);
    expect([...((await b.read(h)) as Uint16Array)]).toEqual([0x3fc0, 0x3fc0, 0x3fc0]);
    const i = b.alloc('int32', 4);
    b.fill(i, -7);
    b.write(i, new Int32Array([9]), 2);
    expect([...((await b.read(i)) as Int32Array)]).toEqual([-7, -7, 9, -7]);
    const g = b.alloc('float32', 3);
    b.copy(g, f, { shape: [3], strides: [1], offset: 1 }); // contiguous, same dtype: a device-to-device copy
    expect([...((await b.read(g)) as Float32Array)]).toEqual([-2, 3.5, Number.NaN]);
    b.destroy();
  });

  it('packs launch arguments the driver receives: unary exp over 1031 bfloat16 elements into float32', async () => {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('bfloat16', 1031);
    const out = b.alloc('float32', 1031);
    const before = launches();
    b.unary('exp', out, x);
    expect(launches()).toBe(before + 1);
    const name = Buffer.alloc(128);
    const args = new Uint8Array(4096);
    const dims = new Uint32Array(7);
    const size = lastLaunch(name, args, dims);
    expect(name.toString('utf8', 0, name.indexOf(0))).toBe('unary');
    expect(size).toBe(48);
    const v = new DataView(args.buffer);
    expect(v.getInt32(0, true)).toBe(1); // U_EXP
    expect(Number(v.getBigUint64(8, true))).toBe((out as unknown as { ptr: number }).ptr);
    expect(v.getInt32(16, true)).toBe(0); // float32
    expect(Number(v.getBigUint64(24, true))).toBe((x as unknown as { ptr: number }).ptr);
    expect(v.getInt32(32, true)).toBe(2); // bfloat16
    expect(v.getBigInt64(40, true)).toBe(1031n);
    expect([...dims]).toEqual([5, 1, 1, 256, 1, 1, 0]);
    b.destroy();
  });

  it('launches attention with its dynamic shared memory and the tiled GEMM without cuBLASLt', () => {
    const b = createCudaBackend({ cublas: false });
    const q = b.alloc('bfloat16', 2 * 40 * 4 * 128);
    const lse = b.alloc('float32', 2 * 4 * 40);
    const o = b.alloc('bfloat16', 2 * 40 * 4 * 128);
    const shape = { batch: 2, seqQ: 40, seqK: 40, heads: 4, kvHeads: 4, headDim: 128, scale: 0.1, causal: true };
    b.attention(o, lse, q, q, q, null, shape);
    const name = Buffer.alloc(128);
    const dims = new Uint32Array(7);
    lastLaunch(name, new Uint8Array(4096), dims);
    // bfloat16 q/k/v with headDim 128: the tensor-core kernel, 64 query rows per block, static shared memory.
    expect(name.toString('utf8', 0, name.indexOf(0))).toBe('attention_fwd_tc_bf16_128');
    expect([...dims]).toEqual([1, 4, 2, 128, 1, 1, 0]);
    const f32 = createCudaBackend({ cublas: false, tensorCores: false });
    const [q2, lse2, o2] = [
      f32.alloc('bfloat16', 2 * 40 * 4 * 128),
      f32.alloc('float32', 2 * 4 * 40),
      f32.alloc('bfloat16', 2 * 40 * 4 * 128),
    ];
    f32.attention(o2, lse2, q2, q2, q2, null, shape);
    lastLaunch(name, new Uint8Array(4096), dims);
    expect(name.toString('utf8', 0, name.indexOf(0))).toBe('attention_fwd_4');
    expect([...dims]).toEqual([3, 4, 2, 128, 1, 1, (16 * 128 + 32 * 129 + 32 * 128) * 4]);
    f32.destroy();
    const a = b.alloc('float32', 6);
    b.matmul(o, a, a, {
      batch: 1,
      m: 2,
      n: 2,
      k: 3,
      transA: false,
      transB: true,
      strideA: 0,
      strideB: 0,
      strideOut: 0,
      alpha: 1,
      accumulate: false,
    });
    lastLaunch(name, new Uint8Array(4096), dims);
    expect(name.toString('utf8', 0, name.indexOf(0))).toBe('gemm_tiled');
    expect(b.gemmCounts).toEqual({ cublasLt: 0, tiled: 1, skinny: 0 });
    b.destroy();
  });

  it('keeps memory() and memoryStats() in step with alloc/free, and reuses freed blocks', () => {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 1000);
    const s1 = b.memoryStats();
    expect(b.memory()).toMatchObject({ buffers: 1, pooledBytes: 0 });
    b.free(x);
    expect(b.memory()).toMatchObject({ buffers: 0, pooledBytes: 4096 });
    const y = b.alloc('float16', 2000);
    expect(b.memoryStats().deviceAllocs).toBe(s1.deviceAllocs);
    expect(() => b.free(x)).toThrow(/already freed/);
    b.free(y);
    b.trimPool();
    expect(b.memory()).toMatchObject({ bytes: 0, pooledBytes: 0 });
    expect(b.memoryStats()).toMatchObject({ deviceTotal: 2 ** 30, deviceFree: 2 ** 29 });
    b.destroy();
  });

  it('captures a graph (relaxed mode), replays it, and refuses writes during capture', () => {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 4);
    const g = b.captureGraph(() => {
      const t = b.alloc('float32', 4);
      b.affine(t, x, 2, 1);
      expect(() => b.write(x, new Float32Array(4))).toThrow(/graph is being captured/);
      b.free(t);
    });
    g.launch();
    g.launch();
    expect(graphLaunches()).toBe(2);
    g.destroy();
    expect(() => g.launch()).toThrow(/destroyed/);
    b.destroy();
  });

  it("checks arguments in core before any launch, then the CUDA kernels' own limits", () => {
    const b = createCudaBackend({ cublas: false });
    const other = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 8);
    const y = b.alloc('float32', 8);
    const before = launches();
    // Core's checks: a buffer of another instance, a size mismatch, a bad view.
    expect(() => b.affine(y, other.alloc('float32', 8), 2, 1)).toThrow(/affine: x belongs to another cuda backend instance/);
    expect(() => b.gelu(y, b.alloc('float32', 4), false)).toThrow(/gelu: x has 4 elements/);
    expect(() => b.copy(y, x, { shape: [8], strides: [2], offset: 0 })).toThrow(
      /copy: x view .* reaches elements 0\.\.14 of a buffer of 8/,
    );
    // What only these kernels need: headDim at most 256, ignoreIndex a 32-bit int.
    const shape = { batch: 1, seqQ: 1, seqK: 1, heads: 1, kvHeads: 1, headDim: 512, scale: 1, causal: false };
    const q = b.alloc('float32', 512);
    expect(() => b.attention(b.alloc('float32', 512), b.alloc('float32', 1), q, q, q, null, shape)).toThrow(
      /attention: headDim 512 is larger than the 256 these kernels support/,
    );
    const targets = b.alloc('int32', 2);
    const lse = b.alloc('float32', 2);
    const ce = { rows: 2, classes: 4, ignoreIndex: 2 ** 40 };
    expect(() => b.crossEntropy(b.alloc('float32', 2), lse, x, targets, ce)).toThrow(/crossEntropy: ignoreIndex must be a 32-bit integer/);
    expect(launches()).toBe(before);
    other.destroy();
    b.destroy();
    expect(() => b.fill(x, 0)).toThrow(/fill: this cuda backend was destroyed/);
    expect(() => b.free(x)).not.toThrow();
  });

  it('finds no cuBLASLt here and says which GEMM it uses', () => {
    const b = createCudaBackend();
    expect(b.gemmLibrary).toMatch(/cuBLASLt|tiled kernel: no cuBLASLt found/);
    b.destroy();
  });

  it('passes the memory and error cases of the conformance suite', async () => {
    const cases = conformanceCases({ create: () => createCudaBackend({ cublas: false }), dtypes: ['float32', 'float16', 'bfloat16'] });
    const picked = cases.filter((c) => /^memory|^errors|^destroy/.test(c.name));
    expect(picked.length).toBeGreaterThan(5);
    for (const c of picked) await c.run();
  });

  const ctxRefs = lib.func('int mock_ctx_refs()');
  const ctxReleases = lib.func('int mock_ctx_releases()');
  const ctxResets = lib.func('int mock_ctx_resets()');
  const captureBreaks = lib.func('int mock_capture_breaks()');
  const injectSticky = lib.func('void mock_inject_sticky(int code)');
  const mockFail = lib.func('void mock_fail(const char *name, int code)');
  const CUDA_ERROR_ILLEGAL_ADDRESS = 700;

  /** A new backend that uploads and reads back: the context works. */
  async function roundTrip(): Promise<void> {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 3);
    b.write(x, new Float32Array([1, 2, 3]));
    expect([...((await b.read(x)) as Float32Array)]).toEqual([1, 2, 3]);
    b.destroy();
  }

  it('after a GPU fault reported by sync(), destroy() releases everything and the context without throwing; a new backend works', async () => {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 4);
    b.write(x, new Float32Array(4));
    const releases = ctxReleases();
    injectSticky(CUDA_ERROR_ILLEGAL_ADDRESS);
    await expect(b.sync()).rejects.toThrow(/the GPU reported an error in earlier work: CUDA_ERROR_ILLEGAL_ADDRESS/);
    expect(() => b.fill(x, 0)).toThrow(/fill: the CUDA context failed earlier/);
    // Every free answers the fault; the context release still happens, and frees them all.
    expect(() => b.destroy()).not.toThrow();
    expect(ctxReleases()).toBe(releases + 1);
    expect(ctxRefs()).toBe(0);
    await roundTrip();
  });

  it('after a fault, destroy() resets the primary context that another backend still holds, so the next backend gets a fresh one', async () => {
    const a = createCudaBackend({ cublas: false });
    const other = createCudaBackend({ cublas: false });
    const resets = ctxResets();
    injectSticky(CUDA_ERROR_ILLEGAL_ADDRESS);
    await expect(a.sync()).rejects.toThrow(/ILLEGAL_ADDRESS/);
    a.destroy();
    expect(ctxResets()).toBe(resets + 1);
    expect(ctxRefs()).toBe(0);
    await roundTrip();
    // The other backend's hold went with the reset: its destroy says the release failed.
    expect(() => other.destroy()).toThrow(/destroy: could not release: cuDevicePrimaryCtxRelease: /);
  });

  it('a fault first seen by destroy() is thrown by it, after everything and the context are released', async () => {
    const b = createCudaBackend({ cublas: false });
    b.alloc('float32', 100);
    injectSticky(CUDA_ERROR_ILLEGAL_ADDRESS);
    const releases = ctxReleases();
    expect(() => b.destroy()).toThrow(
      /^destroy: the GPU reported an error in earlier work: .*CUDA_ERROR_ILLEGAL_ADDRESS.* \(the context was released: a new backend can be created\)$/,
    );
    expect(ctxReleases()).toBe(releases + 1);
    await roundTrip();
  });

  it('without a fault, a failed release is thrown once, naming it, after the rest and the context are released', async () => {
    const b = createCudaBackend({ cublas: false });
    const releases = ctxReleases();
    mockFail('cuStreamDestroy_v2', 1);
    try {
      expect(() => b.destroy()).toThrow(
        /^destroy: could not release: cuStreamDestroy: CUDA_ERROR_MOCK \(mock error\) \(the context was released/,
      );
    } finally {
      mockFail('', 0);
    }
    expect(ctxReleases()).toBe(releases + 1);
    expect(() => b.destroy()).not.toThrow(); // once
    await roundTrip();
  });

  it('refuses, during a capture, what would wait for the stream (trimPool, graph.destroy, the out-of-memory retry); the capture survives', () => {
    const b = createCudaBackend({ cublas: false });
    const x = b.alloc('float32', 4);
    const first = b.captureGraph(() => b.affine(x, x, 2, 1));
    const cached = b.alloc('float32', 1024);
    const breaks = captureBreaks();
    const g = b.captureGraph(() => {
      b.free(cached); // a cached block the out-of-memory retry would free
      expect(() => b.trimPool()).toThrow(
        /^trimPool: would wait for the stream \(cuStreamSynchronize\) while a CUDA graph is being captured/,
      );
      expect(() => first.destroy()).toThrow(/^graph\.destroy: would wait for the stream/);
      expect(() => b.alloc('float32', 2 ** 30)).toThrow(
        /^alloc: out of device memory for 4294967296 bytes \(4096\.0 MiB\) while a CUDA graph is being captured .*cuMemAlloc\(4294967296 bytes\) failed: CUDA_ERROR_OUT_OF_MEMORY.*run the step once eagerly as a warm-up/,
      );
      expect(() => b.captureGraph(() => {})).toThrow(/captureGraph: a capture is already in progress/);
      b.affine(x, x, 3, 0);
    });
    expect(captureBreaks()).toBe(breaks);
    g.launch();
    first.destroy();
    g.destroy();
    // A step that throws: its error, and the next capture works.
    expect(() =>
      b.captureGraph(() => {
        throw new Error('the step failed');
      }),
    ).toThrow('the step failed');
    b.captureGraph(() => b.affine(x, x, 1, 0)).destroy();
    expect(captureBreaks()).toBe(breaks);
    b.destroy();
  });

  it('destroy() inside a capture ends it and releases the context; the capture reports it', () => {
    const b = createCudaBackend({ cublas: false });
    const releases = ctxReleases();
    expect(() => b.captureGraph(() => b.destroy())).toThrow(/captureGraph: the backend was destroyed during the capture/);
    expect(ctxReleases()).toBe(releases + 1);
    expect(captureBreaks()).toBe(0);
  });
});
