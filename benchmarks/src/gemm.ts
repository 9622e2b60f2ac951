/**
 * f32 GEMM benchmark engines: @peft/backend-cpu's createSgemm (the engine 'auto' picks, e.g. the
 * platform BLAS, and the WebAssembly SIMD engine; 1 thread and all threads), torch.matmul in a child
 * Python process at the same thread counts, and tfjs-core with its `cpu` and `wasm` backends. Each
 * engine computes C = A·B for square n³.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createSgemm, type GemmEngineInfo } from '@peft/backend-cpu';

export interface GemmEngine {
  /** Short id used in tables and JSON, e.g. "peft x2", "torch x1", "tfjs-wasm". */
  id: string;
  /** Group for --backend filtering: "cpu" (@peft/backend-cpu), "torch", "tfjs", or "webgpu" (every engine on the WebGPU adapter). */
  backend: 'cpu' | 'torch' | 'tfjs' | 'webgpu';
  /** How it runs, as reported by the engine. */
  description: string;
  /** Prepares operands of size n (random), returns a function computing one product. */
  prepare(n: number): Product | Promise<Product>;
  dispose(): void;
}

/**
 * One product. One that returns (or resolves to) a number timed itself, in ms (e.g. inside another
 * process): that number is the sample instead of the time around the call.
 */
export type Product = () => unknown;

export function randomMatrix(n: number, seed: number): Float32Array {
  const a = new Float32Array(n * n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

/**
 * @peft/backend-cpu's GEMM: `engine` 'auto' (the platform BLAS when found) or 'wasm', on `threads`.
 * Ids: "peft xN" for 'auto', "peft-wasm xN" for 'wasm'.
 */
export function peftEngine(threads: number | undefined, engine: 'auto' | 'wasm' = 'auto'): GemmEngine & { info: GemmEngineInfo } {
  const sgemm = createSgemm({ engine, ...(threads === undefined ? {} : { threads }) });
  const { info } = sgemm;
  return {
    id: `${engine === 'wasm' ? 'peft-wasm' : 'peft'} x${info.threads}`,
    backend: 'cpu',
    description: `${sgemm.description}${info.library ? ` (${info.library})` : ''}: ${info.reason}`,
    info,
    prepare(size) {
      const a = randomMatrix(size, 1);
      const b = randomMatrix(size, 2);
      const c = new Float32Array(size * size);
      const args = {
        m: size,
        n: size,
        k: size,
        a,
        aOffset: 0,
        transA: false,
        b,
        bOffset: 0,
        transB: false,
        c,
        cOffset: 0,
        alpha: 1,
        accumulate: false,
      };
      return () => sgemm.sgemm(args);
    },
    dispose: () => sgemm.destroy(),
  };
}

/** The Python for the torch column: $PEFT_BENCH_PYTHON, else the repository's .venv-bench, else none. */
export function benchPython(): { python: string; from: string } | undefined {
  const env = process.env.PEFT_BENCH_PYTHON;
  if (env) return { python: env, from: 'PEFT_BENCH_PYTHON' };
  const venv = fileURLToPath(new URL('../../.venv-bench/bin/python', import.meta.url));
  return existsSync(venv) ? { python: venv, from: '.venv-bench' } : undefined;
}

export interface TorchInfo {
  torch: string;
  threads: number;
  blas: string;
  python: string;
}

/**
 * torch.matmul at `threads` threads (torch.set_num_threads) in a child Python process
 * (benchmarks/python/torch_matmul.py) that times each product itself, so the pipe's latency is
 * not counted. Rejects with a one-line reason when the process or torch cannot start.
 */
export async function torchEngine(python: string, threads: number): Promise<GemmEngine & { torch: TorchInfo }> {
  const script = fileURLToPath(new URL('../python/torch_matmul.py', import.meta.url));
  const child: ChildProcessWithoutNullStreams = spawn(python, [script, '--threads', String(threads)], { stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + String(d)).slice(-2000);
  });
  const waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure ??= e;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  child.on('error', (e) => fail(new Error(`cannot run ${python}: ${e.message}`)));
  child.on('exit', (code, signal) => {
    const last = stderr.trim().split('\n').pop();
    fail(new Error(`${python} torch_matmul.py exited with ${code ?? signal}${last ? `: ${last}` : ''}`));
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const w = waiting.shift();
    if (!w) return;
    try {
      w.resolve(JSON.parse(line));
    } catch {
      w.reject(new Error(`torch_matmul.py printed ${line}`));
    }
  });
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (failure) reject(failure);
      else waiting.push({ resolve, reject });
    });
  const request = (req: object) => {
    const reply = next();
    child.stdin.write(`${JSON.stringify(req)}\n`);
    return reply;
  };
  const hello = await next().catch((e: Error) => {
    child.kill();
    throw e;
  });
  if (typeof hello.skipped === 'string') {
    child.kill();
    throw new Error(`${python}: ${hello.skipped}`);
  }
  const info: TorchInfo = { torch: String(hello.torch), threads: Number(hello.threads), blas: String(hello.blas), python };
  return {
    id: `torch x${info.threads}`,
    backend: 'torch',
    description: `torch ${info.torch} matmul (${info.blas}), torch.set_num_threads(${info.threads}), ${python}`,
    torch: info,
    async prepare(size) {
      await request({ op: 'prepare', n: size });
      return async () => Number((await request({ op: 'run' })).ms);
    },
    dispose() {
      child.stdin.end();
      setTimeout(() => child.kill(), 2000).unref();
    },
  };
}

type Tf = typeof import('@tensorflow/tfjs-core');

let tfPromise: Promise<Tf> | undefined;
async function loadTf(): Promise<Tf> {
  tfPromise ??= (async () => {
    // tfjs-core prints a hint about tfjs-node on first use in Node; it is irrelevant here.
    const warn = console.warn;
    const log = console.log;
    console.warn = () => {};
    console.log = () => {};
    try {
      const tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-cpu');
      await import('@tensorflow/tfjs-backend-wasm');
      return tf;
    } finally {
      console.warn = warn;
      console.log = log;
    }
  })();
  return tfPromise;
}

export interface TfjsWasmInfo {
  simd: boolean;
  threads: boolean;
  threadsCount: number;
}

/** tfjs-core on one of its backends ("cpu" or "wasm"). */
export async function tfjsEngine(backend: 'cpu' | 'wasm'): Promise<GemmEngine & { wasmInfo?: TfjsWasmInfo }> {
  const tf = await loadTf();
  let wasmInfo: TfjsWasmInfo | undefined;
  const quiet = async <T>(f: () => Promise<T>): Promise<T> => {
    const log = console.log;
    const warn = console.warn;
    console.log = () => {};
    console.warn = () => {};
    try {
      return await f();
    } finally {
      console.log = log;
      console.warn = warn;
    }
  };
  // In Node the wasm backend reads its .wasm files from its own dist folder (no setWasmPaths needed);
  // it picks tfjs-backend-wasm-simd.wasm when SIMD validates and never uses threads in Node
  // (WASM_HAS_MULTITHREAD_SUPPORT is false under IS_NODE, tfjs issue #3830).
  const ok = await quiet(() => tf.setBackend(backend));
  if (!ok) throw new Error(`tfjs backend ${backend} failed to initialise`);
  await tf.ready();
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasmInfo = {
      simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
      threads: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
      threadsCount: wasm.getThreadsCount(),
    };
  }
  const description =
    backend === 'wasm' && wasmInfo
      ? `tfjs-core ${tf.version_core} wasm (${wasmInfo.simd ? 'simd' : 'no simd'}, ${
          wasmInfo.threads ? `${wasmInfo.threadsCount} threads` : 'single thread'
        })`
      : `tfjs-core ${tf.version_core} ${backend}`;
  const live: { dispose(): void }[] = [];
  return {
    id: `tfjs-${backend}`,
    backend: 'tfjs',
    description,
    wasmInfo,
    prepare(size) {
      for (const t of live.splice(0)) t.dispose();
      if (tf.getBackend() !== backend) throw new Error(`tfjs backend switched to ${tf.getBackend()}`);
      const a = tf.tensor2d(randomMatrix(size, 1), [size, size]);
      const b = tf.tensor2d(randomMatrix(size, 2), [size, size]);
      live.push(a, b);
      return () => {
        const c = tf.matMul(a, b);
        c.dataSync();
        c.dispose();
      };
    },
    dispose() {
      for (const t of live.splice(0)) t.dispose();
    },
  };
}

export interface Measurement {
  engine: string;
  size: number;
  reps: number;
  medianMs: number;
  minMs: number;
  gflops: number;
}

export interface TimingOptions {
  /** Most timed products per engine. */
  maxReps: number;
  /** Time budget for the timed products of one size, all engines together. */
  budgetMs: number;
  /** A first product slower than this counts as the only sample (tfjs-cpu at 2048³). */
  slowMs: number;
  /** Warm-up time per engine (at least two products). */
  warmMs: number;
  /** Fewest rounds, even past the budget (default 1). */
  minReps?: number;
}

/**
 * Times several engines at one size, interleaved: after each engine's warm-up, rounds run every
 * engine once in turn, so that load from other processes on the machine hits all of them alike.
 * Returns the median per engine.
 */
export async function measureInterleaved(engines: GemmEngine[], size: number, opts: TimingOptions): Promise<Measurement[]> {
  const runs: Product[] = [];
  const times: number[][] = [];
  const slow: boolean[] = [];
  let roundMs = 0;
  // One product's time: what the engine reports (timed where it runs), else measured here.
  const timed = async (run: Product) => {
    const t = performance.now();
    const own = await run();
    return typeof own === 'number' ? own : performance.now() - t;
  };
  for (const engine of engines) {
    const run = await engine.prepare(size);
    runs.push(run);
    const samples: number[] = [];
    times.push(samples);
    let last = await timed(run);
    slow.push(last > opts.slowMs);
    if (last > opts.slowMs) {
      samples.push(last); // too slow to repeat: the first product is the only sample
      continue;
    }
    const warmStart = performance.now();
    do {
      last = await timed(run);
    } while (performance.now() - warmStart < opts.warmMs && last < opts.slowMs / 4);
    roundMs += last;
  }
  const rounds = Math.max(opts.minReps ?? 1, Math.min(opts.maxReps, Math.floor(opts.budgetMs / Math.max(roundMs, 0.01))));
  for (let r = 0; r < rounds; r++) {
    for (let e = 0; e < engines.length; e++) {
      if (slow[e]) continue;
      times[e]!.push(await timed(runs[e]!));
    }
  }
  return engines.map((engine, e) => summarize(engine.id, size, times[e]!));
}

function summarize(engine: string, size: number, samples: number[]): Measurement {
  const times = [...samples].sort((x, y) => x - y);
  const mid = times.length >> 1;
  const medianMs = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  return { engine, size, reps: times.length, medianMs, minMs: times[0]!, gflops: (2 * size ** 3) / (medianMs * 1e6) };
}
