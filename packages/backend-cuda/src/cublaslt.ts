/**
 * cuBLASLt, loaded at run time (never linked): libcublasLt.so.13 or .12, searched as
 * cublaslt-search.ts says (LD_LIBRARY_PATH, CUDA_HOME / CUDA_PATH, the nvidia/cu13, cu12 and
 * cublas lib folders of Python's site-packages, then the loader's default search). The
 * declarations and enum values below are written from cublasLt.h (stable across CUDA 11.4–13).
 *
 * GEMMs are row-major here and column-major in cuBLAS: out[M,N] = op(A)·op(B) is computed as
 * outᵀ[N,M] = op(B)ᵀ·op(A)ᵀ, i.e. cuBLAS's first operand is our B. float32 operands compute in
 * float32 (CUBLAS_COMPUTE_32F; TF32 only when asked), float16/bfloat16 operands on tensor cores
 * with float32 accumulation.
 *
 * The heuristic is asked for up to ALGOS algorithms per shape; cublasLtMatmul answering
 * CUBLAS_STATUS_NOT_SUPPORTED or INVALID_VALUE for one moves on to the next, and when none
 * runs (or the heuristic offers none) the shape is left to the tiled kernel. The plan cache keeps
 * the algorithm that ran, or the refusal, so each shape is decided once; refusals are listed in
 * `fallbacks`.
 */
import { readFileSync } from 'node:fs';
import type { DType } from '@peft/core';
import { cublasLtCandidates, type PythonSites, pythonSitePackages, realSearch } from './cublaslt-search.js';
import type { Koffi, Ptr } from './driver.js';

// biome-ignore lint/suspicious/noExplicitAny: C functions declared from strings at run time.
type Fn = (...args: any[]) => any;

const CUDA_R_32F = 0;
const CUDA_R_16F = 2;
const CUDA_R_16BF = 14;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
const DESC_TRANSA = 3;
const DESC_TRANSB = 4;
const LAYOUT_BATCH_COUNT = 5;
const LAYOUT_STRIDED_BATCH_OFFSET = 6;
const PREF_MAX_WORKSPACE_BYTES = 1;
const PREF_MIN_ALIGNMENT = { a: 5, b: 6, c: 7, d: 8 } as const;
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state (4) + wavesCount (4) + reserved (16). */
const HEURISTIC_BYTES = 96;

const DATA_TYPE: Partial<Record<DType, number>> = { float32: CUDA_R_32F, float16: CUDA_R_16F, bfloat16: CUDA_R_16BF };

const DECLS = {
  cublasLtCreate: 'int cublasLtCreate(_Out_ void **handle)',
  cublasLtDestroy: 'int cublasLtDestroy(void *handle)',
  cublasLtGetVersion: 'size_t cublasLtGetVersion()',
  cublasLtMatmulDescCreate: 'int cublasLtMatmulDescCreate(_Out_ void **desc, int computeType, int scaleType)',
  cublasLtMatmulDescDestroy: 'int cublasLtMatmulDescDestroy(void *desc)',
  cublasLtMatmulDescSetAttribute: 'int cublasLtMatmulDescSetAttribute(void *desc, int attr, void *buf, size_t size)',
  cublasLtMatrixLayoutCreate: 'int cublasLtMatrixLayoutCreate(_Out_ void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld)',
  cublasLtMatrixLayoutDestroy: 'int cublasLtMatrixLayoutDestroy(void *layout)',
  cublasLtMatrixLayoutSetAttribute: 'int cublasLtMatrixLayoutSetAttribute(void *layout, int attr, void *buf, size_t size)',
  cublasLtMatmulPreferenceCreate: 'int cublasLtMatmulPreferenceCreate(_Out_ void **pref)',
  cublasLtMatmulPreferenceDestroy: 'int cublasLtMatmulPreferenceDestroy(void *pref)',
  cublasLtMatmulPreferenceSetAttribute: 'int cublasLtMatmulPreferenceSetAttribute(void *pref, int attr, void *buf, size_t size)',
  cublasLtMatmulAlgoGetHeuristic:
    'int cublasLtMatmulAlgoGetHeuristic(void *handle, void *op, void *a, void *b, void *c, void *d, void *pref, int requested, void *results, _Out_ int *returned)',
  cublasLtMatmul:
    'int cublasLtMatmul(void *handle, void *op, void *alpha, uint64_t a, void *adesc, uint64_t b, void *bdesc, void *beta, uint64_t c, void *cdesc, uint64_t d, void *ddesc, void *algo, uint64_t workspace, size_t workspaceBytes, void *stream)',
} as const;

type Lt = { [K in keyof typeof DECLS]: Fn };

export interface GemmCall {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  batch: number;
  strideA: number;
  strideB: number;
  strideOut: number;
  dtA: DType;
  dtB: DType;
  dtOut: DType;
  /** Device addresses. */
  a: number;
  b: number;
  out: number;
  alpha: number;
  accumulate: boolean;
}

interface Plan {
  desc: Ptr;
  layouts: [Ptr, Ptr, Ptr]; // cuBLAS A (= our b), cuBLAS B (= our a), C = D
  /** Native memory with `count` heuristic results, HEURISTIC_BYTES each, best first. */
  results: Ptr;
  resultsAddr: bigint;
  count: number;
  /** Workspace bytes each result needs. */
  workspaces: number[];
  /** The result that runs: the first one cublasLtMatmul took. */
  chosen: number;
  /** Algorithms cublasLtMatmul refused so far, with its status. */
  refused: string[];
}

/** A shape left to the tiled kernel, and why. */
interface Refusal {
  reason: string;
}

/** Algorithms asked of the heuristic per shape: the next one runs when cublasLtMatmul refuses one. */
export const ALGOS = 8;
const STATUS_INVALID_VALUE = 7;
const STATUS_NOT_SUPPORTED = 15;

/** One GEMM shape that cuBLASLt did not take and the tiled kernel runs instead. */
export interface GemmFallback {
  /** dtypes, sizes, batch and transposes, e.g. "bf16 m=128 n=4096 k=4096 batch=1 transA=0 transB=1". */
  shape: string;
  /** Why: the heuristic offered nothing, or cublasLtMatmul refused every algorithm (with its statuses). */
  reason: string;
}

/** What load() looked at when no library loaded: the folders, the names, the Python asked, and the load errors. */
export interface CublasLtSearchReport {
  searched: string[];
  names: string[];
  python: PythonSites;
  errors: string[];
}

const SHORT: Partial<Record<DType, string>> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

/** "bf16 m=… n=… k=… batch=… transA=0 transB=1", with " align=a/b/out" when a pointer is less than 256-byte aligned. */
export function gemmShape(c: GemmCall, [alA, alB, alO]: readonly number[]): string {
  const [a, b, o] = [SHORT[c.dtA], SHORT[c.dtB], SHORT[c.dtOut]];
  const dt = a === b ? (o === a ? a : `${a}→${o}`) : `${a}·${b}→${o}`;
  const align = alA === 256 && alB === 256 && alO === 256 ? '' : ` align=${alA}/${alB}/${alO}`;
  return `${dt} m=${c.m} n=${c.n} k=${c.k} batch=${c.batch} transA=${c.transA ? 1 : 0} transB=${c.transB ? 1 : 0}${align}`;
}

/** "13.1.0" from cublasLtGetVersion's 130100. */
export function formatLtVersion(v: number): string {
  return `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`;
}

/** The libcublasLt files mapped into this process (Linux: /proc/self/maps); [] elsewhere. */
function mappedCublasLt(): string[] {
  try {
    const paths = readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .map((l) => l.slice(l.indexOf('/')))
      .filter((p) => p.startsWith('/') && /\/libcublasLt\.so[^/]*$/.test(p));
    return [...new Set(paths)];
  } catch {
    return [];
  }
}

/** cuBLASLt for one stream: a handle, a workspace, and a plan cache keyed by shape, dtypes and alignment. */
export class CublasLt {
  private readonly plans = new Map<string, Plan | Refusal>();
  private readonly scratch: Ptr; // native memory for attribute values
  private readonly scratchView: DataView;
  private readonly alphaBeta = new Float32Array(2);
  private handle: Ptr;
  /** The shapes left to the tiled kernel (see GemmFallback); the backend's `gemmFallbacks`. */
  readonly fallbacks: GemmFallback[] = [];

  private constructor(
    private readonly koffi: Koffi,
    private readonly lt: Lt,
    /** The file loaded: its full path (for a bare name, the one the loader mapped, where /proc/self/maps tells). */
    readonly path: string,
    readonly version: number,
    private readonly stream: Ptr,
    private readonly workspace: { ptr: number; bytes: number },
    private readonly allowTf32: boolean,
  ) {
    const h: Ptr[] = [null];
    this.check(lt.cublasLtCreate(h), 'cublasLtCreate');
    this.handle = h[0];
    this.scratch = koffi.alloc('uint8_t', 64);
    this.scratchView = new DataView(koffi.view(this.scratch, 64));
  }

  /**
   * Loads cuBLASLt (search order in cublaslt-search.ts). Returns null with what was searched when
   * no library loads; the backend then uses its own tiled GEMM kernel.
   */
  static load(
    koffi: Koffi,
    driverVersion: number,
    stream: Ptr,
    workspace: { ptr: number; bytes: number },
    allowTf32: boolean,
  ): { lt: CublasLt } | ({ lt: null } & CublasLtSearchReport) {
    const python = pythonSitePackages();
    const { paths, searched, names } = cublasLtCandidates(realSearch(python.dirs), driverVersion);
    const errors: string[] = [];
    for (const path of paths) {
      const before = path.includes('/') ? [] : mappedCublasLt();
      try {
        const lib = koffi.load(path);
        const lt = {} as Lt;
        for (const [key, decl] of Object.entries(DECLS)) (lt as Record<string, Fn>)[key] = lib.func(decl);
        const version = Number(lt.cublasLtGetVersion());
        const mapped = path.includes('/') ? [] : mappedCublasLt();
        const full = path.includes('/') ? path : (mapped.find((p) => !before.includes(p)) ?? mapped[0] ?? path);
        return { lt: new CublasLt(koffi, lt, full, version, stream, workspace, allowTf32) };
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    return { lt: null, searched, names, python, errors };
  }

  /**
   * Whether cuBLASLt takes this call: a and b of one 16-bit dtype (out that dtype or float32), or
   * all float32; no summed batch (strideOut = 0 with batch > 1). Otherwise the caller uses the
   * tiled kernel.
   */
  static supports(c: Pick<GemmCall, 'dtA' | 'dtB' | 'dtOut' | 'batch' | 'strideOut'>): boolean {
    if (c.batch > 1 && c.strideOut === 0) return false;
    if (c.dtA !== c.dtB) return false;
    if (c.dtA === 'float32') return c.dtOut === 'float32';
    return (c.dtA === 'float16' || c.dtA === 'bfloat16') && (c.dtOut === c.dtA || c.dtOut === 'float32');
  }

  /**
   * Enqueues the GEMM; returns false when cuBLASLt does not take this shape (the caller runs the
   * tiled kernel): the heuristic offered no algorithm, or cublasLtMatmul refused every one it
   * offered (NOT_SUPPORTED or INVALID_VALUE). Either is decided once per shape and listed in
   * `fallbacks`; any other status throws.
   */
  matmul(c: GemmCall): boolean {
    const bytes = (dt: DType) => (dt === 'float32' ? 4 : 2);
    const align = (ptr: number, strideBytes: number) => {
      let a = 256;
      while (a > 1 && (ptr % a !== 0 || strideBytes % a !== 0)) a /= 2;
      return a;
    };
    const alignment = [
      align(c.a, c.batch > 1 ? c.strideA * bytes(c.dtA) : 0),
      align(c.b, c.batch > 1 ? c.strideB * bytes(c.dtB) : 0),
      align(c.out, c.batch > 1 ? c.strideOut * bytes(c.dtOut) : 0),
    ];
    const key = [c.m, c.n, c.k, c.transA, c.transB, c.batch, c.strideA, c.strideB, c.strideOut, c.dtA, c.dtB, c.dtOut, ...alignment].join(
      ',',
    );
    let plan = this.plans.get(key);
    if (plan === undefined) {
      plan = this.plan(c, alignment);
      this.plans.set(key, plan);
      if ('reason' in plan) this.fallbacks.push({ shape: gemmShape(c, alignment), reason: plan.reason });
    }
    if ('reason' in plan) return false;
    this.alphaBeta[0] = c.alpha;
    this.alphaBeta[1] = c.accumulate ? 1 : 0;
    for (;;) {
      const rc = this.run(plan, c);
      if (rc === 0) return true;
      if (rc !== STATUS_NOT_SUPPORTED && rc !== STATUS_INVALID_VALUE) this.check(rc, `cublasLtMatmul (${gemmShape(c, alignment)})`);
      plan.refused.push(`algorithm ${plan.chosen + 1}: ${STATUS[rc]}`);
      if (plan.chosen + 1 < plan.count) {
        plan.chosen++;
        continue;
      }
      const reason = `cublasLtMatmul refused all ${plan.count} algorithms the heuristic offered (${plan.refused.join(', ')})`;
      this.freePlan(plan);
      this.plans.set(key, { reason });
      this.fallbacks.push({ shape: gemmShape(c, alignment), reason });
      return false;
    }
  }

  /** cublasLtMatmul with the plan's chosen algorithm; its status. */
  private run(plan: Plan, c: GemmCall): number {
    const [la, lb, lc] = plan.layouts;
    return this.lt.cublasLtMatmul(
      this.handle,
      plan.desc,
      this.alphaBeta.subarray(0, 1),
      c.b,
      la,
      c.a,
      lb,
      this.alphaBeta.subarray(1, 2),
      c.out,
      lc,
      c.out,
      lc,
      plan.resultsAddr + BigInt(plan.chosen * HEURISTIC_BYTES),
      this.workspace.ptr,
      plan.workspaces[plan.chosen],
      this.stream,
    );
  }

  /** Descriptors, layouts and up to ALGOS heuristic results for a shape, or why cuBLASLt does not take it. */
  private plan(c: GemmCall, [alA, alB, alO]: number[]): Plan | Refusal {
    const lt = this.lt;
    const compute = c.dtA === 'float32' && this.allowTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const out: Ptr[] = [null];
    this.check(lt.cublasLtMatmulDescCreate(out, compute, CUDA_R_32F), 'cublasLtMatmulDescCreate');
    const desc = out[0];
    this.setI32(lt.cublasLtMatmulDescSetAttribute, desc, DESC_TRANSA, c.transB ? 1 : 0);
    this.setI32(lt.cublasLtMatmulDescSetAttribute, desc, DESC_TRANSB, c.transA ? 1 : 0);
    // cuBLAS A = our b: op(b)ᵀ is [N, K] column-major; stored [K, N] row-major (no trans) = N×K col-major, ld N.
    const layout = (dt: DType, rows: number, cols: number, ld: number, stride: number): Ptr => {
      const l: Ptr[] = [null];
      this.check(lt.cublasLtMatrixLayoutCreate(l, DATA_TYPE[dt], rows, cols, ld), 'cublasLtMatrixLayoutCreate');
      if (c.batch > 1) {
        this.setI32(lt.cublasLtMatrixLayoutSetAttribute, l[0], LAYOUT_BATCH_COUNT, c.batch);
        this.setI64(lt.cublasLtMatrixLayoutSetAttribute, l[0], LAYOUT_STRIDED_BATCH_OFFSET, stride);
      }
      return l[0];
    };
    const la = c.transB ? layout(c.dtB, c.k, c.n, c.k, c.strideB) : layout(c.dtB, c.n, c.k, c.n, c.strideB);
    const lb = c.transA ? layout(c.dtA, c.m, c.k, c.m, c.strideA) : layout(c.dtA, c.k, c.m, c.k, c.strideA);
    const lc = layout(c.dtOut, c.n, c.m, c.n, c.strideOut);
    const pref: Ptr[] = [null];
    this.check(lt.cublasLtMatmulPreferenceCreate(pref), 'cublasLtMatmulPreferenceCreate');
    this.scratchView.setBigUint64(0, BigInt(this.workspace.bytes), true);
    this.check(
      lt.cublasLtMatmulPreferenceSetAttribute(pref[0], PREF_MAX_WORKSPACE_BYTES, this.scratch, 8),
      'cublasLtMatmulPreferenceSetAttribute',
    );
    // cuBLAS A is our b, cuBLAS B our a.
    for (const [attr, value] of [
      [PREF_MIN_ALIGNMENT.a, alB],
      [PREF_MIN_ALIGNMENT.b, alA],
      [PREF_MIN_ALIGNMENT.c, alO],
      [PREF_MIN_ALIGNMENT.d, alO],
    ] as const) {
      this.setI32(lt.cublasLtMatmulPreferenceSetAttribute, pref[0], attr, value);
    }
    const results = this.koffi.alloc('uint8_t', ALGOS * HEURISTIC_BYTES);
    const returned = [0];
    const rc = lt.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, la, lb, lc, lc, pref[0], ALGOS, results, returned);
    lt.cublasLtMatmulPreferenceDestroy(pref[0]);
    const plan: Plan = {
      desc,
      layouts: [la, lb, lc],
      results,
      resultsAddr: BigInt(this.koffi.address(results)),
      count: Math.min(returned[0], ALGOS),
      workspaces: [],
      chosen: 0,
      refused: [],
    };
    if (rc !== 0 || plan.count < 1) {
      this.freePlan(plan);
      return {
        reason: `cublasLtMatmulAlgoGetHeuristic offered no algorithm (${rc === 0 ? 'none returned' : `status ${rc} ${STATUS[rc] ?? ''}`.trim()})`,
      };
    }
    const view = new DataView(this.koffi.view(results, plan.count * HEURISTIC_BYTES));
    for (let i = 0; i < plan.count; i++) plan.workspaces.push(Number(view.getBigUint64(i * HEURISTIC_BYTES + 64, true)));
    return plan;
  }

  private freePlan(plan: Plan): string[] {
    const failed: string[] = [];
    const step = (what: string, status: number) => {
      if (status !== 0) failed.push(`${what}: status ${status} (${STATUS[status] ?? 'unknown'})`);
    };
    step('cublasLtMatmulDescDestroy', this.lt.cublasLtMatmulDescDestroy(plan.desc));
    for (const l of plan.layouts) step('cublasLtMatrixLayoutDestroy', this.lt.cublasLtMatrixLayoutDestroy(l));
    this.koffi.free(plan.results);
    return failed;
  }

  private setI32(fn: Fn, obj: Ptr, attr: number, value: number): void {
    this.scratchView.setInt32(0, value, true);
    this.check(fn(obj, attr, this.scratch, 4), 'cublasLt…SetAttribute');
  }

  private setI64(fn: Fn, obj: Ptr, attr: number, value: number): void {
    this.scratchView.setBigInt64(0, BigInt(value), true);
    this.check(fn(obj, attr, this.scratch, 8), 'cublasLt…SetAttribute');
  }

  private check(status: number, call: string): void {
    if (status !== 0) throw new Error(`${call} failed with cublasStatus_t ${status} (${STATUS[status] ?? 'unknown'}) in ${this.path}`);
  }

  /**
   * Releases the plans and the handle, trying every step; returns the steps that failed (after a
   * GPU fault the library may refuse some), never throws.
   */
  destroy(): string[] {
    if (this.handle === null) return [];
    const failed: string[] = [];
    for (const plan of this.plans.values()) if (!('reason' in plan)) failed.push(...this.freePlan(plan));
    this.plans.clear();
    const rc = this.lt.cublasLtDestroy(this.handle);
    if (rc !== 0) failed.push(`cublasLtDestroy: status ${rc} (${STATUS[rc] ?? 'unknown'})`);
    this.handle = null;
    this.koffi.free(this.scratch);
    return failed;
  }
}

const STATUS: Record<number, string> = {
  0: 'CUBLAS_STATUS_SUCCESS',
  1: 'CUBLAS_STATUS_NOT_INITIALIZED',
  3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE',
  8: 'CUBLAS_STATUS_ARCH_MISMATCH',
  11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED',
  14: 'CUBLAS_STATUS_INTERNAL_ERROR',
  15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};
