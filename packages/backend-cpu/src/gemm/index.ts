import { leadingDims, type SgemmArgs } from './args.js';
import { BlasSgemm, BlasUnavailable, type BlasVendor, blasFromEnv } from './blas-engine.js';
import { hardwareThreads } from './platform.js';
import { WasmSgemm, type WasmSgemmOptions, wasmSimdSupported } from './wasm-engine.js';

export type { LeadingDims, SgemmArgs } from './args.js';
export { BlasUnavailable, type BlasVendor, blasCandidates } from './blas-engine.js';
export type { WasmSgemmOptions } from './wasm-engine.js';

export interface SgemmEngine {
  sgemm(args: SgemmArgs): void;
  /** Ends worker threads and frees memory. */
  destroy(): void;
  /** How the engine runs, for logs and benchmarks: e.g. "openblas x2 threads", "wasm-simd x2 threads" or "js". */
  readonly description: string;
}

/** Which GEMM engine: the platform BLAS when found else WebAssembly SIMD ('auto'), or one of them. */
export type GemmChoice = 'auto' | 'blas' | 'wasm' | 'js';

/** Which engine runs a backend's GEMMs, and why. */
export interface GemmEngineInfo {
  name: BlasVendor | 'wasm-simd' | 'js';
  /** The BLAS file (BLAS engines only). */
  library?: string;
  /** Threads the engine runs on (a BLAS: as the library reports after being set). */
  threads: number;
  /** Why this engine: e.g. "found libopenblas.so.0 (OpenBLAS 0.3.21 ...)" or "no BLAS found: tried ...". */
  reason: string;
}

/** An engine together with what it is and why it was chosen. */
export interface ChosenSgemm extends SgemmEngine {
  readonly info: GemmEngineInfo;
}

/** Plain TypeScript GEMM: the fallback and the meaning of the fast paths. */
export function sgemmReference(args: SgemmArgs): void {
  const { m, n, k, a, aOffset, transA, b, bOffset, transB, c, cOffset, alpha, accumulate } = args;
  const { lda, ldb, ldc } = leadingDims(args);
  const row = new Float32Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[aOffset + p * lda + i]! : a[aOffset + i * lda + p]!;
      if (transB) {
        for (let j = 0; j < n; j++) row[j]! += av * b[bOffset + j * ldb + p]!;
      } else {
        const base = bOffset + p * ldb;
        for (let j = 0; j < n; j++) row[j]! += av * b[base + j]!;
      }
    }
    const cBase = cOffset + i * ldc;
    for (let j = 0; j < n; j++) c[cBase + j] = alpha * row[j]! + (accumulate ? c[cBase + j]! : 0);
  }
}

/** Below this many multiply-adds (m·n·k) the plain loop beats copying into WebAssembly memory. */
const TINY_MACS = 16 * 16 * 16;

export interface CreateSgemmOptions extends WasmSgemmOptions {
  /** Which engine (default 'auto': the platform BLAS when found, else WebAssembly SIMD, else js). */
  engine?: GemmChoice;
  /**
   * Threads in all, the calling thread included (default: the cores available; the wasm engine
   * takes at most 8 by default).
   */
  threads?: number;
  /** A BLAS library name or path to use instead of searching, or 'off'; overrides PEFT_BLAS. */
  blas?: string;
  /** Force the plain TypeScript engine (the same as engine: 'js'). */
  js?: boolean;
}

function jsEngine(reason: string): ChosenSgemm {
  return { sgemm: sgemmReference, destroy() {}, description: 'js', info: { name: 'js', threads: 1, reason } };
}

function wasmEngine(opts: CreateSgemmOptions, reason: string): ChosenSgemm {
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
    info: { name: 'wasm-simd', threads: engine.threads, reason },
  };
}

/** `library`: the `blas` option's library (PEFT_BLAS is read by loadBlas); `named`: a library was named either way. */
function blasEngine(opts: CreateSgemmOptions, library: string | undefined, named: boolean): ChosenSgemm {
  const engine = new BlasSgemm({
    ...(library === undefined ? {} : { library }),
    threads: opts.threads ?? hardwareThreads(),
    // A library named explicitly, or engine 'blas', may be a BLAS without a vendor's entry points.
    acceptUnknown: named || opts.engine === 'blas',
  });
  const { lib } = engine;
  return {
    sgemm: (args) => engine.sgemm(args),
    destroy: () => engine.destroy(),
    description: engine.description,
    info: { name: lib.vendor, library: lib.path, threads: engine.threads, reason: `found ${lib.name} (${lib.version})` },
  };
}

/**
 * The GEMM engine: by default ('auto') `cblas_sgemm` of the platform BLAS (OpenBLAS, BLIS, MKL,
 * Accelerate) loaded at run time through koffi; where none loads (or in browsers) the WebAssembly
 * SIMD micro-kernel on worker threads sharing one memory (Node: worker_threads; browsers: Web
 * Workers from a Blob URL, needs cross-origin isolation for SharedArrayBuffer, otherwise
 * single-threaded); without WebAssembly SIMD `sgemmReference`. `engine: 'blas'` throws a
 * `BlasUnavailable` naming every library tried and why it failed; so does a PEFT_BLAS (or `blas`)
 * library that cannot be used. `info` says which engine runs and why. Call `destroy()` to end the
 * wasm engine's workers (they never keep Node alive).
 */
export function createSgemm(opts: CreateSgemmOptions = {}): ChosenSgemm {
  const choice: GemmChoice = opts.js ? 'js' : (opts.engine ?? 'auto');
  if (!['auto', 'blas', 'wasm', 'js'].includes(choice)) {
    throw new Error(`createSgemm: engine must be 'auto', 'blas', 'wasm' or 'js', got ${JSON.stringify(choice)}`);
  }
  if (choice === 'js') return jsEngine(`gemm '${choice}' was asked for`);
  if (choice === 'wasm') {
    if (!wasmSimdSupported())
      throw new Error("createSgemm: engine 'wasm' was asked for, but this JavaScript engine has no WebAssembly SIMD");
    return wasmEngine(opts, "gemm 'wasm' was asked for");
  }
  const override =
    opts.blas === undefined
      ? blasFromEnv()
      : /^(off|none|0|false|no)$/i.test(opts.blas.trim())
        ? { off: true as const }
        : { library: opts.blas };
  const source = opts.blas === undefined ? 'PEFT_BLAS' : 'the blas option';
  let why: string;
  if (override && 'off' in override) {
    if (choice === 'blas') throw new Error(`createSgemm: engine 'blas' was asked for, but ${source} turns the BLAS off`);
    why = `BLAS turned off by ${source}`;
  } else {
    try {
      return blasEngine(opts, opts.blas === undefined ? undefined : override?.library, override !== undefined);
    } catch (err) {
      // A library named explicitly that cannot be used is an error, not a reason to fall back.
      if (override || !(err instanceof BlasUnavailable)) throw err;
      if (choice === 'blas') throw new BlasUnavailable(`createSgemm: engine 'blas' was asked for, but ${err.reason}`);
      why = err.reason;
    }
  }
  return wasmSimdSupported() ? wasmEngine(opts, why) : jsEngine(`${why}; no WebAssembly SIMD`);
}
