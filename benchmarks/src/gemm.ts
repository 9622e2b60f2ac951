/**
 * f32 GEMM benchmark engines: @peft/backend-cpu's createSgemm (1 thread and all threads) and
 * tfjs-core with its `cpu` and `wasm` backends. Each engine computes C = A·B for square n³.
 */
import { createSgemm } from '@peft/backend-cpu';

export interface GemmEngine {
  /** Short id used in tables and JSON, e.g. "peft x2", "tfjs-wasm". */
  id: string;
  /** Group for --backend filtering: "cpu" (@peft/backend-cpu), "tfjs", or "webgpu" (every engine on the WebGPU adapter). */
  backend: 'cpu' | 'tfjs' | 'webgpu';
  /** How it runs, as reported by the engine. */
  description: string;
  /** Prepares operands of size n (random), returns a function computing one product. */
  prepare(n: number): () => void | Promise<void>;
  dispose(): void;
}

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

export function peftEngine(threads: number | undefined): GemmEngine {
  const engine = createSgemm(threads === undefined ? {} : { threads });
  const n = Number(/x(\d+)/.exec(engine.description)?.[1] ?? 1);
  return {
    id: `peft x${n}`,
    backend: 'cpu',
    description: engine.description,
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
      return () => engine.sgemm(args);
    },
    dispose: () => engine.destroy(),
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
}

/**
 * Times several engines at one size, interleaved: after each engine's warm-up, rounds run every
 * engine once in turn, so that load from other processes on the machine hits all of them alike.
 * Returns the median per engine.
 */
export async function measureInterleaved(engines: GemmEngine[], size: number, opts: TimingOptions): Promise<Measurement[]> {
  const runs: (() => void | Promise<void>)[] = [];
  const times: number[][] = [];
  const slow: boolean[] = [];
  let roundMs = 0;
  for (const engine of engines) {
    const run = engine.prepare(size);
    runs.push(run);
    const samples: number[] = [];
    times.push(samples);
    let t = performance.now();
    await run();
    let last = performance.now() - t;
    slow.push(last > opts.slowMs);
    if (last > opts.slowMs) {
      samples.push(last); // too slow to repeat: the first product is the only sample
      continue;
    }
    const warmStart = performance.now();
    do {
      t = performance.now();
      await run();
      last = performance.now() - t;
    } while (performance.now() - warmStart < opts.warmMs && last < opts.slowMs / 4);
    roundMs += last;
  }
  const rounds = Math.max(1, Math.min(opts.maxReps, Math.floor(opts.budgetMs / Math.max(roundMs, 0.01))));
  for (let r = 0; r < rounds; r++) {
    for (let e = 0; e < engines.length; e++) {
      if (slow[e]) continue;
      const t = performance.now();
      await runs[e]!();
      times[e]!.push(performance.now() - t);
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
