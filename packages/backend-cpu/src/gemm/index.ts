import { WasmSgemm, type WasmSgemmOptions, wasmSimdSupported } from './wasm-engine.js';

export type { WasmSgemmOptions } from './wasm-engine.js';

/**
 * Single-precision GEMM on row-major float32 arrays: C = alpha · op(A) · op(B) (+ C).
 * op(A) is [m, k]: A is stored [m, k] (lda = k) or, with transA, [k, m] (lda = m).
 * op(B) is [k, n]: B is stored [k, n] (ldb = n) or, with transB, [n, k] (ldb = k).
 * C is [m, n] (ldc = n).
 */
export interface SgemmArgs {
  m: number;
  n: number;
  k: number;
  a: Float32Array;
  aOffset: number;
  transA: boolean;
  b: Float32Array;
  bOffset: number;
  transB: boolean;
  c: Float32Array;
  cOffset: number;
  alpha: number;
  accumulate: boolean;
}

export interface SgemmEngine {
  sgemm(args: SgemmArgs): void;
  /** Ends worker threads and frees memory. */
  destroy(): void;
  /** How the engine runs, for logs and benchmarks: e.g. "wasm-simd x2 threads" or "js". */
  readonly description: string;
}

/** Plain TypeScript GEMM: the fallback and the meaning of the fast paths. */
export function sgemmReference(args: SgemmArgs): void {
  const { m, n, k, a, aOffset, transA, b, bOffset, transB, c, cOffset, alpha, accumulate } = args;
  const row = new Float32Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[aOffset + p * m + i]! : a[aOffset + i * k + p]!;
      if (transB) {
        for (let j = 0; j < n; j++) row[j]! += av * b[bOffset + j * k + p]!;
      } else {
        const base = bOffset + p * n;
        for (let j = 0; j < n; j++) row[j]! += av * b[base + j]!;
      }
    }
    const cBase = cOffset + i * n;
    for (let j = 0; j < n; j++) c[cBase + j] = alpha * row[j]! + (accumulate ? c[cBase + j]! : 0);
  }
}

/** Below this many multiply-adds (m·n·k) the plain loop beats copying into WebAssembly memory. */
const TINY_MACS = 16 * 16 * 16;

export interface CreateSgemmOptions extends WasmSgemmOptions {
  /** Threads in all, the calling thread included (default: hardware concurrency, at most 8). */
  threads?: number;
  /** Force the plain TypeScript engine. */
  js?: boolean;
}

/**
 * The fast GEMM: WebAssembly SIMD micro-kernel on worker threads sharing one memory (Node:
 * worker_threads; browsers: Web Workers from a Blob URL, needs cross-origin isolation for
 * SharedArrayBuffer, otherwise single-threaded). Falls back to `sgemmReference` where
 * WebAssembly SIMD is missing. Tiny products run `sgemmReference` directly; small ones run on the
 * calling thread only. Call `destroy()` to end the workers (they never keep Node alive).
 */
export function createSgemm(opts: CreateSgemmOptions = {}): SgemmEngine {
  if (opts.js || !wasmSimdSupported()) return { sgemm: sgemmReference, destroy() {}, description: 'js' };
  const engine = new WasmSgemm(opts);
  return {
    sgemm(args: SgemmArgs): void {
      if (args.m * args.n * args.k < TINY_MACS) sgemmReference(args);
      else engine.sgemm(args);
    },
    destroy(): void {
      engine.destroy();
    },
    description: engine.description,
  };
}
