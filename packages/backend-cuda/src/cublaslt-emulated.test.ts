// cuBLASLt on the emulated device (src/emulator.testkit.ts): the library found in a fake PyTorch
// install through the Python it names, the message when none is found, and the algorithm
// fallback when cublasLtMatmul refuses (test/emu/libcublaslt-emu.cc refuses on request).
// Needs a C++17 compiler; skips visibly without one.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MatmulParams } from '@peft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();

/** A Python stand-in that answers any question with this list of site-packages folders. */
function fakePython(root: string, sites: string[]): string {
  const path = join(root, 'python3');
  writeFileSync(path, `#!/bin/sh\necho '${JSON.stringify(sites)}'\n`);
  chmodSync(path, 0o755);
  return path;
}

const saved = { ...process.env };
afterEach(() => {
  for (const key of [
    'LD_LIBRARY_PATH',
    'PEFT_BENCH_PYTHON',
    'CUDA_HOME',
    'CUDA_PATH',
    'PEFT_CUDA_EMU_LT_REFUSE',
    'PEFT_CUDA_EMU_LT_REFUSE_SHAPE',
  ]) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

/** Only the environment of this test: no cuBLASLt on LD_LIBRARY_PATH or CUDA_HOME, the given Python. */
function isolate(python: string): void {
  process.env.LD_LIBRARY_PATH = '';
  delete process.env.CUDA_HOME;
  delete process.env.CUDA_PATH;
  process.env.PEFT_BENCH_PYTHON = python;
}

describe.skipIf(!emu)('cuBLASLt on the emulated device', async () => {
  const { createCudaBackend } = await import('./index.js');

  it("loads libcublasLt.so.13 from a PyTorch CUDA 13 wheel's nvidia/cu13/lib, found through $PEFT_BENCH_PYTHON's site-packages", async () => {
    const root = mkdtempSync(join(tmpdir(), 'peft-fake-torch-'));
    const site = join(root, 'venv', 'lib', 'python3.12', 'site-packages');
    const lib = join(site, 'nvidia', 'cu13', 'lib');
    mkdirSync(lib, { recursive: true });
    copyFileSync(join(emu!.cublasDir, 'libcublasLt.so.13'), join(lib, 'libcublasLt.so.13'));
    isolate(fakePython(root, [site]));
    const b = createCudaBackend();
    expect(b.gemmLibrary).toBe(`cuBLASLt 13.0.0 (cublasLtGetVersion 130000) from ${join(lib, 'libcublasLt.so.13')}`);
    const x = b.alloc('float32', 4);
    const out = b.alloc('float32', 4);
    b.write(x, new Float32Array([1, 2, 3, 4]));
    b.matmul(out, x, x, gemm(2, 2, 2));
    expect([...((await b.read(out)) as Float32Array)]).toEqual([7, 10, 15, 22]);
    expect(b.gemmCounts.cublasLt).toBe(1);
    b.destroy();
  });

  it('says where it looked when no cuBLASLt is found, and runs the tiled kernel', () => {
    const root = mkdtempSync(join(tmpdir(), 'peft-no-torch-'));
    const site = join(root, 'site-packages');
    isolate(fakePython(root, [site]));
    process.env.LD_LIBRARY_PATH = join(root, 'ld');
    const b = createCudaBackend();
    expect(b.lt).toBeNull();
    const text = b.gemmLibrary;
    expect(text).toMatch(/^tiled kernel: no cuBLASLt found\. Looked for libcublasLt\.so\.13, libcublasLt\.so\.12, libcublasLt\.so in /);
    for (const dir of [join(root, 'ld'), join(site, 'nvidia/cu13/lib'), join(site, 'nvidia/cu12/lib'), join(site, 'nvidia/cublas/lib')]) {
      expect(text).toContain(dir);
    }
    expect(text).toContain(`the site-packages of ${join(root, 'python3')}: ${site}`);
    expect(text).toContain("then in the loader's default search");
    expect(b.gemmFallbacks).toEqual([]);
    b.destroy();
  });
});

/** matmul parameters: out [m, n] = a [m, k] · b [k, n]. */
function gemm(m: number, n: number, k: number): MatmulParams {
  return { batch: 1, m, n, k, transA: false, transB: false, strideA: 0, strideB: 0, strideOut: 0, alpha: 1, accumulate: false };
}

describe.skipIf(!emu)('cuBLASLt algorithm fallback on the emulated device', async () => {
  const { createCudaBackend } = await import('./index.js');
  const m = 3;
  const n = 5;
  const k = 4;
  const a = Float32Array.from({ length: m * k }, (_, i) => i - 5);
  const bv = Float32Array.from({ length: k * n }, (_, i) => (i % 7) - 2);
  const expected = Array.from({ length: m * n }, (_, e) => {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[Math.floor(e / n) * k + p]! * bv[p * n + (e % n)]!;
    return s;
  });

  async function product(b: ReturnType<typeof createCudaBackend>): Promise<number[]> {
    const [x, y, out] = [b.alloc('bfloat16', m * k), b.alloc('bfloat16', k * n), b.alloc('float32', m * n)];
    b.copy(x, upload(b, a), { shape: [m * k], strides: [1], offset: 0 });
    b.copy(y, upload(b, bv), { shape: [k * n], strides: [1], offset: 0 });
    b.matmul(out, x, y, gemm(m, n, k));
    return [...((await b.read(out)) as Float32Array)];
  }
  function upload(b: ReturnType<typeof createCudaBackend>, v: Float32Array) {
    const t = b.alloc('float32', v.length);
    b.write(t, v);
    return t;
  }

  it('tries the next algorithm when cublasLtMatmul answers NOT_SUPPORTED, and records nothing when one runs', async () => {
    process.env.PEFT_CUDA_EMU_LT_REFUSE = '3'; // the first three of the six offered
    const b = createCudaBackend();
    expect(await product(b)).toEqual(expected);
    expect(await product(b)).toEqual(expected);
    expect(b.gemmCounts).toMatchObject({ cublasLt: 2, tiled: 0 });
    expect(b.gemmFallbacks).toEqual([]);
    b.destroy();
    // The same refusal of all six: now the shape falls back, so above the fourth algorithm ran.
    process.env.PEFT_CUDA_EMU_LT_REFUSE = '6';
    const all = createCudaBackend();
    expect(await product(all)).toEqual(expected);
    expect(all.gemmCounts).toMatchObject({ cublasLt: 0, tiled: 1 });
    expect(all.gemmFallbacks.map((f) => f.reason)).toEqual([
      expect.stringMatching(/refused all 6 algorithms .*algorithm 6: CUBLAS_STATUS_NOT_SUPPORTED\)$/),
    ]);
    all.destroy();
  });

  it('runs a shape on the tiled kernel when every algorithm is refused, records why once, and keeps that decision', async () => {
    // cuBLAS's column-major m, n, k: our n, m, k.
    process.env.PEFT_CUDA_EMU_LT_REFUSE_SHAPE = `${n},${m},${k}`;
    const b = createCudaBackend();
    expect(await product(b)).toEqual(expected);
    expect(b.gemmCounts).toMatchObject({ cublasLt: 0, tiled: 1 });
    const refusals = Array.from({ length: 6 }, (_, i) => `algorithm ${i + 1}: CUBLAS_STATUS_NOT_SUPPORTED`).join(', ');
    expect(b.gemmFallbacks).toEqual([
      {
        shape: `bf16→f32 m=${m} n=${n} k=${k} batch=1 transA=0 transB=0`,
        reason: `cublasLtMatmul refused all 6 algorithms the heuristic offered (${refusals})`,
      },
    ]);
    // Decided once per shape: cuBLASLt is not asked again even when it would now accept.
    delete process.env.PEFT_CUDA_EMU_LT_REFUSE_SHAPE;
    expect(await product(b)).toEqual(expected);
    expect(b.gemmCounts).toMatchObject({ cublasLt: 0, tiled: 2 });
    expect(b.gemmFallbacks.length).toBe(1);
    // Another shape still goes to cuBLASLt.
    const out = b.alloc('float32', 4);
    const x = upload(b, new Float32Array([1, 2, 3, 4]));
    b.matmul(out, x, x, gemm(2, 2, 2));
    expect([...((await b.read(out)) as Float32Array)]).toEqual([7, 10, 15, 22]);
    expect(b.gemmCounts).toMatchObject({ cublasLt: 1, tiled: 2 });
    b.destroy();
  });
});
