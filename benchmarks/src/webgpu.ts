/**
 * WebGPU GEMM engines, all on one adapter: @peft/backend-webgpu, tfjs-core's `webgpu` backend
 * (tf.matMul) and gpu.js in its `webgpu` mode. In Node the adapter comes from the `webgpu`
 * package (Dawn), installed as `navigator.gpu`, which is where tfjs-webgpu and gpu.js look for it;
 * our backend is given the same GPU object. Each product C = A·B starts from operands already on
 * the device and ends when C is back in host memory (every engine's own read-back).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createWebGpuBackend, type GemmKind, type WebGpuBackend } from '@peft/backend-webgpu';
import type { MatmulParams } from '@peft/core';
import { type GemmEngine, randomMatrix } from './gemm.js';

export interface WebGpuSetup {
  gpu: GPU;
  /** The adapter, in words (vendor, architecture, description). */
  adapter: string;
  fallback: boolean;
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * The GPU entry point every engine uses: navigator.gpu when this runtime has one, else the
 * `webgpu` package's, installed as navigator.gpu (with Dawn's GPUBufferUsage & co. as globals).
 * Without an adapter and with VK_ICD_FILENAMES unset, tries SwiftShader from Debian's chromium.
 * Resolves to the reason when there is no adapter.
 */
export async function setupWebGpu(): Promise<WebGpuSetup | { reason: string }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  let gpu = nav?.gpu;
  if (!gpu) {
    let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = (await import('webgpu')) as unknown as typeof mod;
    } catch (err) {
      return { reason: `the webgpu package (Dawn) could not be loaded: ${(err as Error).message.split('\n')[0]}` };
    }
    for (const [key, value] of Object.entries(mod.globals)) {
      if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
    }
    gpu = mod.create([]);
    if (!(await gpu.requestAdapter()) && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      gpu = mod.create([]);
    }
    const g = gpu;
    if (nav) Object.defineProperty(nav, 'gpu', { value: g, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu: g }, configurable: true, writable: true });
  }
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    return {
      reason:
        'no WebGPU adapter (on a machine without a GPU: apt-get install chromium libvulkan1 and set ' +
        `VK_ICD_FILENAMES=${SWIFTSHADER_ICD} and XDG_RUNTIME_DIR)`,
    };
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const words = [info.vendor, info.architecture, info.description].filter((s) => s).join(' / ');
  return { gpu, adapter: words || 'unnamed adapter', fallback: info.isFallbackAdapter === true };
}

/** @peft/backend-webgpu's matmul kernel, then `read` of C. */
export async function peftWebGpuEngine(gpu: GPU, gemm?: GemmKind): Promise<GemmEngine & { kind: GemmKind }> {
  const backend = await createWebGpuBackend({ gpu, gemm });
  const id = gemm ? `ours-${gemm}` : 'ours';
  let bufs: ReturnType<WebGpuBackend['alloc']>[] = [];
  const freeAll = () => {
    for (const b of bufs.splice(0)) backend.free(b);
  };
  return {
    id,
    backend: 'webgpu',
    kind: backend.gemm,
    description: `@peft/backend-webgpu matmul (${backend.gemm} kernel), then read()`,
    prepare(n) {
      freeAll();
      const [a, b, c] = [backend.alloc('float32', n * n), backend.alloc('float32', n * n), backend.alloc('float32', n * n)];
      bufs = [a, b, c];
      backend.write(a, randomMatrix(n, 1));
      backend.write(b, randomMatrix(n, 2));
      const p: MatmulParams = {
        batch: 1,
        m: n,
        n,
        k: n,
        strideA: 0,
        strideB: 0,
        strideOut: 0,
        alpha: 1,
        accumulate: false,
        transA: false,
        transB: false,
      };
      return async () => {
        backend.matmul(c, a, b, p);
        await backend.read(c);
      };
    },
    dispose() {
      freeAll();
      backend.destroy();
    },
  };
}

type Tf = typeof import('@tensorflow/tfjs-core');

/** tfjs-core's webgpu backend: tf.matMul, then `await c.data()`. */
export async function tfjsWebGpuEngine(): Promise<GemmEngine> {
  const quiet = async <T>(f: () => Promise<T>): Promise<T> => {
    const { log, warn } = console;
    console.log = () => {};
    console.warn = () => {};
    try {
      return await f();
    } finally {
      console.log = log;
      console.warn = warn;
    }
  };
  const tf: Tf = await quiet(async () => {
    const core = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    return core;
  });
  const ok = await quiet(() => tf.setBackend('webgpu'));
  if (!ok) throw new Error('tfjs backend webgpu failed to initialise (navigator.gpu has no adapter?)');
  await tf.ready();
  const { version } = createRequire(import.meta.url)('@tensorflow/tfjs-backend-webgpu/package.json') as { version: string };
  const live: { dispose(): void }[] = [];
  return {
    id: 'tfjs-webgpu',
    backend: 'webgpu',
    description: `tfjs-core ${tf.version_core} + tfjs-backend-webgpu ${version} tf.matMul, then await data()`,
    prepare(n) {
      for (const t of live.splice(0)) t.dispose();
      if (tf.getBackend() !== 'webgpu') throw new Error(`tfjs backend switched to ${tf.getBackend()}`);
      const a = tf.tensor2d(randomMatrix(n, 1), [n, n]);
      const b = tf.tensor2d(randomMatrix(n, 2), [n, n]);
      live.push(a, b);
      return async () => {
        const c = tf.matMul(a, b);
        await c.data();
        c.dispose();
      };
    },
    dispose() {
      for (const t of live.splice(0)) t.dispose();
    },
  };
}

/**
 * gpu.js in `webgpu` mode (new in gpu.js 2.20): the textbook kernel of its README, one thread
 * per output, over operands made device-resident by an upload kernel with `pipeline: true`;
 * the call resolves to the product as rows of Float32Arrays.
 */
export async function gpujsWebGpuEngine(): Promise<GemmEngine> {
  const mod = (await import('gpu.js')) as unknown as { GPU: GpuJsCtor; default?: { GPU: GpuJsCtor } };
  const GPUjs = mod.GPU ?? mod.default?.GPU;
  if (!(await GPUjs.isWebGPUAvailable())) throw new Error('gpu.js: GPU.isWebGPUAvailable() is false');
  const gpu = new GPUjs({ mode: 'webgpu' });
  const { version } = createRequire(import.meta.url)('gpu.js/package.json') as { version: string };
  let kernels: { destroy?: () => void }[] = [];
  return {
    id: 'gpu.js-webgpu',
    backend: 'webgpu',
    description: `gpu.js ${version} mode 'webgpu' (one thread per output, the README's kernel), then the result read back`,
    prepare(n) {
      for (const k of kernels.splice(0)) k.destroy?.();
      const upload = gpu
        .createKernel(function (this: GpuJsThis, m: number[][]) {
          return m[this.thread.y]![this.thread.x]!;
        })
        .setOutput([n, n])
        .setPipeline(true);
      const matmul = gpu
        .createKernel(function (this: GpuJsThis, a: number[][], b: number[][]) {
          let sum = 0;
          for (let i = 0; i < this.constants.n; i++) sum += a[this.thread.y]![i]! * b[i]![this.thread.x]!;
          return sum;
        })
        .setConstants({ n })
        .setOutput([n, n]);
      kernels = [upload, matmul];
      const rows = (data: Float32Array) => Array.from({ length: n }, (_, r) => data.subarray(r * n, (r + 1) * n));
      let operands: Promise<[unknown, unknown]> | null = null;
      return async () => {
        operands ??= Promise.all([upload(rows(randomMatrix(n, 1))), upload(rows(randomMatrix(n, 2)))]) as Promise<[unknown, unknown]>;
        const [a, b] = await operands;
        await matmul(a, b);
      };
    },
    dispose() {
      for (const k of kernels.splice(0)) k.destroy?.();
      gpu.destroy?.();
    },
  };
}

interface GpuJsThis {
  thread: { x: number; y: number };
  constants: { n: number };
}
interface GpuJsKernel {
  (...args: unknown[]): Promise<unknown>;
  setOutput(o: number[]): GpuJsKernel;
  setPipeline(p: boolean): GpuJsKernel;
  setConstants(c: Record<string, number>): GpuJsKernel;
  destroy?: () => void;
}
interface GpuJsCtor {
  new (opts: { mode: string }): { createKernel(f: (...args: never[]) => number): GpuJsKernel; destroy?: () => void };
  isWebGPUAvailable(): Promise<boolean>;
}
