// What the conformance suite does not cover: the caching allocator on the device, CUDA-graph
// capture and replay, reads that leave the event loop free, and the GEMM path taken. GPU only.
import { backward, crossEntropy, Generator, Linear, tensor, tidy } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { type CudaBackend, createCudaBackend, isAvailable } from './index.js';

const cuda = isAvailable();
if (!cuda.available) console.warn(`[backend-cuda] skipping the CUDA device tests: ${cuda.reason}`);

describe.skipIf(!cuda.available)('cuda backend on the device', () => {
  const withBackend = async (fn: (b: CudaBackend) => Promise<void>) => {
    const b = createCudaBackend();
    try {
      await fn(b);
    } finally {
      b.destroy();
    }
  };

  it('reuses freed blocks: a second identical step makes no new device allocations', () =>
    withBackend(async (backend) => {
      const step = () => {
        const bufs = [1000, 5000, 70000].map((n) => backend.alloc('bfloat16', n));
        for (const b of bufs) backend.fill(b, 1);
        for (const b of bufs) backend.free(b);
      };
      step();
      const before = backend.memoryStats().deviceAllocs;
      step();
      const s = backend.memoryStats();
      expect(s.deviceAllocs).toBe(before);
      expect(s.current).toBeLessThan(s.reserved);
      expect(s.peak).toBeGreaterThan(0);
      expect(s.deviceTotal).toBeGreaterThan(0);
      backend.trimPool();
      expect(backend.memory().pooledBytes).toBe(0);
    }));

  it('a read does not block the event loop', () =>
    withBackend(async (backend) => {
      const n = 1 << 22;
      const a = backend.alloc('float32', n);
      const out = backend.alloc('float32', 1024 * 1024);
      backend.fill(a, 1);
      for (let i = 0; i < 20; i++) {
        backend.matmul(out, a, a, {
          batch: 1,
          m: 1024,
          n: 1024,
          k: 4096,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideOut: 0,
          alpha: 1,
          accumulate: false,
        });
      }
      let ticks = 0;
      const timer = setInterval(() => ticks++, 0);
      const data = (await backend.read(out)) as Float32Array;
      clearInterval(timer);
      expect(data[0]).toBe(4096);
      console.log(`event-loop ticks while waiting: ${ticks}; GEMM path ${backend.gemmLibrary}`);
    }));

  it('captures a step into a CUDA graph and replays it', () =>
    withBackend(async (backend) => {
      const x = backend.alloc('float32', 4);
      const y = backend.alloc('float32', 4);
      backend.write(x, new Float32Array([1, 2, 3, 4]));
      await backend.sync();
      const graph = backend.captureGraph(() => {
        const t = backend.alloc('float32', 4);
        backend.affine(t, x, 2, 1);
        backend.unary('square', y, t);
        backend.free(t);
      });
      graph.launch();
      expect([...((await backend.read(y)) as Float32Array)]).toEqual([9, 25, 49, 81]);
      backend.write(x, new Float32Array([0, 1, 0, 1]));
      graph.launch();
      expect([...((await backend.read(y)) as Float32Array)]).toEqual([1, 9, 1, 9]);
      graph.destroy();
    }));

  it('trains a Linear layer one step (LoRA-style frozen base would skip its weight GEMM)', () =>
    withBackend(async (backend) => {
      const layer = new Linear(64, 8, { backend, generator: new Generator(0) });
      const x = tensor(
        Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i)),
        [4, 64],
        { backend },
      );
      const loss = tidy(() => crossEntropy(layer.forward(x), [1, 2, 3, 4]));
      backward(loss);
      expect(Number.isFinite(await loss.item())).toBe(true);
      expect(layer.weight.grad?.shape).toEqual([8, 64]);
      for (const t of [x, loss]) t.dispose();
      layer.dispose();
    }));
});
