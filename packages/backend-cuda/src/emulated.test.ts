// The CUDA kernels run on the CPU: kernels/*.cu compiled for the host with test/emu/cuda_emu.h
// (threads as fibers, __syncthreads and warp shuffles as barriers) and launched through
// test/emu/libcuda-emu.cc, a driver stand-in loaded in place of libcuda.so.1. The whole backend
// runs unchanged above it: argument packing, the caching allocator, graph capture, and every
// kernel's indexing, reductions, masks and dtype handling, checked by the conformance suite
// against the float64 oracle and the CPU backend, and by the gradient checks. What this cannot
// show: cuBLASLt (the tiled GEMM kernel stands in), timing, and races that need another
// interleaving of threads than the emulator's. Needs a C++17 compiler; skips visibly without one.
import { dirname } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSelftest, useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();
const only = process.env.PEFT_CUDA_CASES;

describe.skipIf(!emu)('the host emulator itself', () => {
  it('keeps CUDA semantics: barriers, shuffles, indices, shared memory; reports deadlocks and exited lanes', async () => {
    const { output, status } = await runSelftest(emu!.cxx, dirname(emu!.driver));
    const lines = output.trim().split('\n');
    expect(
      lines.filter((l) => l.startsWith('FAIL')),
      output,
    ).toEqual([]);
    expect(lines.filter((l) => l.startsWith('ok ')).length).toBe(13);
    expect(status).toBe(0);
  });
});

describe.skipIf(!emu)('the CUDA kernels on the host emulator: conformance (@peft/core/testing)', async () => {
  const { createCudaBackend, isAvailable } = await import('./index.js');

  it('loads the emulated device and the cuBLASLt stand-in', () => {
    expect(isAvailable().reason).toMatch(/Emulated GPU/);
    const b = createCudaBackend();
    expect(b.gemmLibrary).toMatch(/cuBLASLt.*libcublasLt\.so\.13/);
    b.destroy();
    const tiled = createCudaBackend({ cublas: false });
    expect(tiled.gemmLibrary).toMatch(/tiled/);
    tiled.destroy();
  });

  it('captures a step (kernels and a cuBLASLt GEMM) into a graph and replays it on new inputs', async () => {
    const b = createCudaBackend();
    const x = b.alloc('float32', 4);
    const y = b.alloc('float32', 4);
    const z = b.alloc('float32', 4);
    b.write(x, new Float32Array([1, 2, 3, 4]));
    b.fill(y, 0);
    b.fill(z, 0);
    const whole = { shape: [4], strides: [1], offset: 0 };
    const g = b.captureGraph(() => {
      const t = b.alloc('float32', 4);
      b.affine(t, x, 2, 1);
      b.binary('mul', y, t, whole, x, whole);
      // z [2, 2] = x [2, 2] · y [2, 2]
      const mm = {
        batch: 1,
        m: 2,
        n: 2,
        k: 2,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: 0,
        strideOut: 0,
        alpha: 1,
        accumulate: false,
      };
      b.matmul(z, x, y, mm);
      b.free(t);
    });
    // Captured, not run.
    expect([...((await b.read(y)) as Float32Array)]).toEqual([0, 0, 0, 0]);
    expect([...((await b.read(z)) as Float32Array)]).toEqual([0, 0, 0, 0]);
    g.launch();
    expect([...((await b.read(y)) as Float32Array)]).toEqual([3, 10, 21, 36]);
    expect([...((await b.read(z)) as Float32Array)]).toEqual([1 * 3 + 2 * 21, 1 * 10 + 2 * 36, 3 * 3 + 4 * 21, 3 * 10 + 4 * 36]);
    b.write(x, new Float32Array([-1, 0, 0.5, 10]));
    g.launch();
    expect([...((await b.read(y)) as Float32Array)]).toEqual([1, 0, 1, 210]);
    expect([...((await b.read(z)) as Float32Array)]).toEqual([-1, 0, 0.5 + 10, 2100]);
    expect(b.gemmCounts).toEqual({ cublasLt: 1, tiled: 0, skinny: 0 });
    g.destroy();
    b.destroy();
  });

  it('an allocation the device cannot hold during a capture fails at once (no sync, which the emulated driver would answer with CAPTURE_INVALIDATED), and the capture still replays', async () => {
    const b = createCudaBackend();
    const x = b.alloc('float32', 4);
    b.write(x, new Float32Array([1, 2, 3, 4]));
    const cached = b.alloc('float32', 1 << 20);
    const g = b.captureGraph(() => {
      b.free(cached); // a cached block: outside a capture the retry would sync and free it
      // 12 GiB on the 8 GiB emulated device.
      expect(() => b.alloc('float32', 3 * 2 ** 30)).toThrow(
        /^alloc: out of device memory for 12884901888 bytes .*while a CUDA graph is being captured/,
      );
      b.affine(x, x, 2, 1);
    });
    g.launch();
    expect([...((await b.read(x)) as Float32Array)]).toEqual([3, 5, 7, 9]);
    g.destroy();
    b.destroy();
  });

  for (const c of conformanceCases({
    create: () => createCudaBackend(),
    dtypes: ['float32', 'float16', 'bfloat16'],
    // Outputs must also agree with the CPU backend (the meaning of every kernel) within twice the tolerance.
    reference: () => createCpuBackend(),
  })) {
    if (only && !c.name.includes(only) && c.name !== 'destroy the backend') continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!emu)('the CUDA kernels on the host emulator: LoRA’s mixed-dtype GEMMs on the skinny kernels', async () => {
  const { createCudaBackend } = await import('./index.js');
  const { encode } = await import('@peft/core');
  const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.37) * 0.8);
  // x · Aᵀ (x [tokens, in] bfloat16, A [r, in] float32) and dA = dhᵀ · x (dh [tokens, r] float32),
  // for ranks on both sides of 16/32/64, k over several tiles and chunks; against the same GEMM
  // with the bfloat16 operand widened for cuBLASLt (mixedKernels: false) and against float64.
  const shapes = [
    { tokens: 70, hidden: 300, r: 16 },
    { tokens: 45, hidden: 129, r: 5 },
    { tokens: 33, hidden: 520, r: 33 },
    { tokens: 16, hidden: 64, r: 64 },
  ];
  for (const { tokens, hidden, r } of shapes) {
    it(`tokens ${tokens}, in ${hidden}, r ${r}: x·Aᵀ and dhᵀ·x, alpha and accumulate`, async () => {
      const x = rand(tokens * hidden, 1);
      const xBits = encode(x, 'bfloat16') as Uint16Array;
      const xr = new Float32Array(new Uint32Array(Array.from(xBits, (h) => h << 16)).buffer); // x as bfloat16 rounds it
      const A = rand(r * hidden, 2);
      const dh = rand(tokens * r, 3);
      const init = (n: number) => rand(n, 4);
      const results: Float32Array[][] = [];
      for (const mixedKernels of [true, false]) {
        const b = createCudaBackend({ mixedKernels });
        const put = (dt: 'float32' | 'bfloat16', v: Float32Array | Uint16Array, n: number) => {
          const buf = b.alloc(dt, n);
          b.write(buf, v);
          return buf;
        };
        const xb = put('bfloat16', xBits, tokens * hidden);
        const Ab = put('float32', A, r * hidden);
        const dhb = put('float32', dh, tokens * r);
        const h = put('float32', init(tokens * r), tokens * r);
        const dA = put('float32', init(r * hidden), r * hidden);
        const common = { batch: 1, strideA: 0, strideB: 0, strideOut: 0, alpha: 0.5, accumulate: true };
        b.matmul(h, xb, Ab, { ...common, m: tokens, n: r, k: hidden, transA: false, transB: true });
        b.matmul(dA, dhb, xb, { ...common, m: r, n: hidden, k: tokens, transA: true, transB: false });
        results.push([(await b.read(h)) as Float32Array, (await b.read(dA)) as Float32Array]);
        expect(b.gemmCounts.skinny).toBe(mixedKernels ? 2 : 0);
        b.destroy();
      }
      // float64 reference.
      const h0 = init(tokens * r);
      const dA0 = init(r * hidden);
      for (let i = 0; i < tokens; i++)
        for (let j = 0; j < r; j++) {
          let s = 0;
          for (let q = 0; q < hidden; q++) s += xr[i * hidden + q]! * A[j * hidden + q]!;
          h0[i * r + j] = 0.5 * s + h0[i * r + j]!;
        }
      for (let i = 0; i < r; i++)
        for (let j = 0; j < hidden; j++) {
          let s = 0;
          for (let q = 0; q < tokens; q++) s += dh[q * r + i]! * xr[q * hidden + j]!;
          dA0[i * hidden + j] = 0.5 * s + dA0[i * hidden + j]!;
        }
      for (const [k, ref] of [h0, dA0].entries()) {
        const tol = 2e-6 * Math.sqrt(k === 0 ? hidden : tokens) * 4;
        for (const got of [results[0]![k]!, results[1]![k]!]) {
          let worst = 0;
          for (let e = 0; e < ref.length; e++) worst = Math.max(worst, Math.abs(got[e]! - ref[e]!) / (1 + Math.abs(ref[e]!)));
          expect(worst).toBeLessThan(tol);
        }
      }
    });
  }
});

describe.skipIf(!emu)('the CUDA kernels on the host emulator: matmul with the tiled GEMM kernel (no cuBLASLt)', async () => {
  const { createCudaBackend } = await import('./index.js');
  for (const c of conformanceCases({
    create: () => createCudaBackend({ cublas: false, mixedKernels: false }),
    dtypes: ['float32', 'float16', 'bfloat16'],
    reference: () => createCpuBackend(),
  })) {
    if (!c.name.startsWith('matmul') && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});

describe.skipIf(!emu)('the CUDA kernels on the host emulator: attention on the float32 kernels (tensorCores: false)', async () => {
  const { createCudaBackend } = await import('./index.js');
  for (const c of conformanceCases({
    create: () => createCudaBackend({ tensorCores: false }),
    dtypes: ['float16', 'bfloat16'],
    reference: () => createCpuBackend(),
  })) {
    if (!c.name.startsWith('attention') && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});

// Other interleavings of threads (see run_block in test/emu/cuda_emu.h): a missing
// __syncthreads (a thread reading shared memory that another writes before the next barrier)
// changes results in at least one of them.
for (const order of ['reverse', 'skew', 'skew-reverse']) {
  describe.skipIf(!emu)(`the CUDA kernels on the host emulator, thread order ${order}: conformance`, async () => {
    const { createCudaBackend } = await import('./index.js');
    beforeAll(() => {
      process.env.PEFT_CUDA_EMU_ORDER = order;
    });
    afterAll(() => {
      delete process.env.PEFT_CUDA_EMU_ORDER;
    });
    for (const c of conformanceCases({ create: () => createCudaBackend(), dtypes: ['float32', 'bfloat16'] })) {
      if (only && !c.name.includes(only) && c.name !== 'destroy the backend') continue;
      it(c.name, c.run);
    }
  });
}

describe.skipIf(!emu)('the CUDA kernels on the host emulator: gradient checks', async () => {
  const { createCudaBackend } = await import('./index.js');
  for (const c of gradcheckCases({ create: () => createCudaBackend({ cublas: false }) })) {
    if (only && !c.name.includes(only) && !c.name.startsWith('destroy')) continue;
    it(c.name, c.run);
  }
});
