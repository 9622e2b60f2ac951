// The CUDA kernels run on the CPU: kernels/*.cu compiled for the host with test/emu/cuda_emu.h
// (threads as fibers, __syncthreads and warp shuffles as barriers) and launched through
// test/emu/libcuda-emu.cc, a driver stand-in loaded in place of libcuda.so.1. The whole backend
// runs unchanged above it: argument packing, the caching allocator, graph capture, and every
// kernel's indexing, reductions, masks and dtype handling, checked by the conformance suite
// against the float64 oracle and the CPU backend, and by the gradient checks. What this cannot
// show: cuBLASLt (the tiled GEMM kernel stands in), timing, and races that need another
// interleaving of threads than the emulator's. Needs a C++17 compiler; skips visibly without one.
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSelftest, useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();
const only = process.env.PEFT_CUDA_CASES;

describe.skipIf(!emu)('the host emulator itself', () => {
  it('keeps CUDA semantics: barriers, shuffles, indices, shared memory; reports deadlocks and exited lanes', async () => {
    const { output, status } = await runSelftest(emu!.cxx);
    const lines = output.trim().split('\n');
    expect(
      lines.filter((l) => l.startsWith('FAIL')),
      output,
    ).toEqual([]);
    expect(lines.filter((l) => l.startsWith('ok ')).length).toBe(12);
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
    expect(b.gemmCounts).toEqual({ cublasLt: 1, tiled: 0 });
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

describe.skipIf(!emu)('the CUDA kernels on the host emulator: matmul with the tiled GEMM kernel (no cuBLASLt)', async () => {
  const { createCudaBackend } = await import('./index.js');
  for (const c of conformanceCases({
    create: () => createCudaBackend({ cublas: false }),
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
