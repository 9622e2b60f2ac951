import { decode, encode } from '@peft/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createWebGpuBackend, type WebGpuBackend, webGpuAvailable } from './index.js';

const gpu = await webGpuAvailable();
if (!gpu.available) console.warn(`[backend-webgpu] skipping the WebGPU backend tests: no adapter (${gpu.reason})`);

describe('createWebGpuBackend without an adapter', () => {
  it('rejects with an explanation when the GPU has no adapter', async () => {
    const fake = { requestAdapter: async () => null } as unknown as GPU;
    await expect(createWebGpuBackend({ gpu: fake })).rejects.toThrow(/has no GPU adapter.*npm i webgpu.*VK_ICD_FILENAMES/s);
  });

  it('uses navigator.gpu when there is one, and explains when it has no adapter', async () => {
    const requestAdapter = vi.fn(async () => null);
    vi.stubGlobal('navigator', { gpu: { requestAdapter } });
    try {
      await expect(createWebGpuBackend()).rejects.toThrow(/navigator\.gpu has no GPU adapter.*createWebGpuBackend\(\{ device \}\)/s);
      expect(requestAdapter).toHaveBeenCalledOnce();
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe.skipIf(!gpu.available)(`webgpu backend (${gpu.reason})`, () => {
  let b: WebGpuBackend;
  beforeAll(async () => {
    b = await createWebGpuBackend();
  });
  afterAll(() => b?.destroy());

  it('reuses pooled buffers: 100 steps of alloc, kernels, read, free keep memory flat', async () => {
    const n = 64;
    const w = b.alloc('float32', n * n);
    const m = b.alloc('float32', n * n);
    const v = b.alloc('float32', n * n);
    b.write(w, new Float32Array(n * n).fill(0.01));
    b.fill(m, 0);
    b.fill(v, 0);
    const seen: string[] = [];
    for (let step = 1; step <= 100; step++) {
      const x = b.alloc('float16', 8 * n);
      const h = b.alloc('float32', 8 * n);
      const y = b.alloc('float32', 8 * n);
      const g = b.alloc('float32', n * n);
      const loss = b.alloc('float32', 1);
      b.random(x, { seed: 7, offset: step * 1000, distribution: 'normal', low: 0, high: 1 });
      b.matmul(h, x, w, {
        batch: 1,
        m: 8,
        n,
        k: n,
        transA: false,
        transB: true,
        strideA: 8 * n,
        strideB: n * n,
        strideOut: 8 * n,
        alpha: 1,
        accumulate: false,
      });
      b.gelu(y, h, false);
      b.reduce('sum', loss, y, 1, 8 * n, 1);
      b.matmul(g, y, x, {
        batch: 1,
        m: n,
        n,
        k: 8,
        transA: true,
        transB: false,
        strideA: 8 * n,
        strideB: 8 * n,
        strideOut: n * n,
        alpha: 1,
        accumulate: false,
      });
      b.adamw(w, g, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 });
      const l = (await b.read(loss))[0]!;
      expect(Number.isFinite(l)).toBe(true);
      for (const t of [x, h, y, g, loss]) b.free(t);
      const mem = b.memory();
      if (step >= 2) seen.push(`${mem.buffers}/${mem.bytes}/${mem.pooledBytes}`);
    }
    // After the first step every allocation comes from the pool: buffers, bytes and pooled bytes never change.
    expect(new Set(seen)).toEqual(new Set([seen[0]]));
    expect(b.memory().buffers).toBe(3);
    for (const t of [w, m, v]) b.free(t);
  });

  it('read-back does not block the event loop', async () => {
    const n = 128;
    const a = b.alloc('float32', n * n);
    const c = b.alloc('float32', n * n);
    b.random(a, { seed: 1, offset: 0, distribution: 'uniform', low: -1, high: 1 });
    for (let i = 0; i < 4; i++) {
      b.matmul(c, a, a, {
        batch: 1,
        m: n,
        n,
        k: n,
        transA: false,
        transB: false,
        strideA: n * n,
        strideB: n * n,
        strideOut: n * n,
        alpha: 1 / n,
        accumulate: false,
      });
      b.copy(a, c, { shape: [n * n], strides: [1], offset: 0 });
    }
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    const pending = b.read(c);
    const atCall = ticks;
    const data = await pending;
    clearInterval(timer);
    expect(data.length).toBe(n * n);
    expect(atCall).toBe(0); // read() returned at once
    expect(ticks).toBeGreaterThan(0); // timers ran while the GPU worked
    console.log(
      `[backend-webgpu] read after 8 kernels on ${n}×${n}: ${(performance.now() - started).toFixed(1)} ms, ${ticks} timer ticks meanwhile`,
    );
    b.free(a);
    b.free(c);
  });

  it('writes float16 at odd offsets and lengths without touching the neighbours', async () => {
    const buf = b.alloc('float16', 9);
    b.write(buf, encode([1, 2, 3, 4, 5, 6, 7, 8, 9], 'float16'));
    b.write(buf, encode([-1, -2, -3], 'float16'), 3);
    b.write(buf, encode([-9], 'float16'), 8);
    expect(Array.from(decode(await b.read(buf), 'float16'))).toEqual([1, 2, 3, -1, -2, -3, 7, 8, -9]);
    b.free(buf);
  });

  it('splits launches of more than maxComputeWorkgroupsPerDimension workgroups over a 2-D grid', async () => {
    const n = b.device.limits.maxComputeWorkgroupsPerDimension * 256 + 1000;
    const x = b.alloc('float32', n);
    b.fill(x, 2);
    b.affine(x, x, 3, 1);
    const out = (await b.read(x)) as Float32Array;
    expect([out[0], out[n - 1], out[n - 1001], out.every((v) => v === 7)]).toEqual([7, 7, 7, true]);
    b.free(x);
  });

  it('refuses a buffer larger than maxBufferSize, naming the size and the limit', () => {
    const limit = b.device.limits.maxBufferSize;
    const size = Math.floor(limit / 4) + 1;
    expect(() => b.alloc('float32', size)).toThrow(
      new RegExp(`alloc\\(float32, ${size}\\): ${size * 4} bytes .* maxBufferSize of ${limit} bytes`),
    );
  });
});

describe.skipIf(!gpu.available)('webgpu backend on devices it does not own', () => {
  it('names the tensor and maxStorageBufferBindingSize when a binding is too large', async () => {
    const { findGpu } = await import('./device.js');
    const found = await findGpu();
    const adapter = await found.gpu!.requestAdapter();
    // Default binding limit (128 MiB) but the adapter's maxBufferSize: a 160 MiB tensor can exist but not be bound.
    const device = await adapter!.requestDevice({ requiredLimits: { maxBufferSize: adapter!.limits.maxBufferSize } });
    const b = await createWebGpuBackend({ device });
    const limit = device.limits.maxStorageBufferBindingSize;
    const big = b.alloc('float32', (limit + 32 * 1024 * 1024) / 4);
    const out = b.alloc('float32', 1);
    expect(() => b.reduce('sum', out, big, 1, big.size, 1)).toThrow(
      new RegExp(`reduce\\(sum\\): x holds \\d+ bytes, more than this GPU's maxStorageBufferBindingSize of ${limit}`),
    );
    b.destroy();
    device.destroy();
  });

  it('turns device loss into errors, never a hang', async () => {
    const { findGpu } = await import('./device.js');
    const adapter = await (await findGpu()).gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const b = await createWebGpuBackend({ device });
    const x = b.alloc('float32', 1024);
    b.fill(x, 1);
    await b.sync();
    device.destroy();
    await device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(() => b.fill(x, 2)).toThrow(/fill: webgpu backend: the GPU device was lost \(destroyed/);
    await expect(b.read(x)).rejects.toThrow(/device was lost/);
    await expect(b.sync()).rejects.toThrow(/device was lost/);
    b.destroy();
  });
});

describe.skipIf(!gpu.available)('webgpu backend and asynchronous device errors', () => {
  it('rejects the next sync with an error the device reported', async () => {
    const b = await createWebGpuBackend();
    // An invalid buffer (MAP_READ may not be combined with STORAGE) makes the device report a validation error.
    b.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    await expect(b.sync()).rejects.toThrow(/the device reported an error/);
    await b.sync(); // reported once
    b.destroy();
  });
});
