/**
 * cuBLASLt, loaded at run time (never linked): libcublasLt.so.13 or .12, searched in
 * LD_LIBRARY_PATH, CUDA_HOME / CUDA_PATH (lib64, lib), the nvidia/cublas/lib folders of Python
 * installs (PyTorch's pip wheels bring one), then the loader's default search. The declarations
 * and enum values below are written from cublasLt.h (stable across CUDA 11.4–13).
 *
 * GEMMs are row-major here and column-major in cuBLAS: out[M,N] = op(A)·op(B) is computed as
 * outᵀ[N,M] = op(B)ᵀ·op(A)ᵀ, i.e. cuBLAS's first operand is our B. float32 operands compute in
 * float32 (CUBLAS_COMPUTE_32F; TF32 only when asked), float16/bfloat16 operands on tensor cores
 * with float32 accumulation.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { DType } from '@peft/core';
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

export interface CublasLtSearch {
  env: Record<string, string | undefined>;
  exists: (path: string) => boolean;
  /** Lists a directory (for the python3.X folders); [] when it cannot be read. */
  list: (dir: string) => string[];
  home: string;
}

const NAMES_NEW_FIRST = ['libcublasLt.so.13', 'libcublasLt.so.12'];

/**
 * The paths to try, in order: LD_LIBRARY_PATH, CUDA_HOME/CUDA_PATH, Python's nvidia/cublas/lib,
 * then the bare names (the dynamic loader's own search). The .13 library needs a CUDA 13 driver:
 * with an older driver (driverVersion < 13000) only .12 is tried.
 */
export function cublasLtCandidates(search: CublasLtSearch, driverVersion: number): string[] {
  const names = driverVersion >= 13000 ? NAMES_NEW_FIRST : NAMES_NEW_FIRST.filter((n) => !n.endsWith('.13'));
  const dirs: string[] = [];
  for (const d of (search.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d);
  for (const key of ['CUDA_HOME', 'CUDA_PATH']) {
    const root = search.env[key];
    if (root) dirs.push(join(root, 'lib64'), join(root, 'lib'), join(root, 'targets', 'x86_64-linux', 'lib'));
  }
  const prefixes = [search.env.VIRTUAL_ENV, search.env.CONDA_PREFIX, join(search.home, '.local'), '/usr/local', '/usr', '/opt/conda'];
  for (const prefix of prefixes) {
    if (!prefix) continue;
    for (const lib of ['lib', 'lib64']) {
      const base = join(prefix, lib);
      for (const py of search.list(base).filter((n) => /^python3(\.\d+)?$/.test(n))) {
        for (const site of ['site-packages', 'dist-packages']) dirs.push(join(base, py, site, 'nvidia', 'cublas', 'lib'));
      }
    }
  }
  dirs.push('/usr/local/cuda/lib64');
  const out: string[] = [];
  for (const name of names) for (const dir of dirs) if (search.exists(join(dir, name))) out.push(join(dir, name));
  for (const name of names) out.push(name);
  return [...new Set(out)];
}

/** The real file system and environment, plus the folder a `python3` on PATH reports, last. */
function realSearch(): CublasLtSearch {
  return {
    env: process.env,
    exists: existsSync,
    list: (dir) => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    },
    home: homedir(),
  };
}

function pythonCublasDir(): string | null {
  try {
    const out = execFileSync('python3', ['-c', 'import nvidia.cublas as m; print(list(m.__path__)[0])'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out ? join(out, 'lib') : null;
  } catch {
    return null;
  }
}

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
  algo: Ptr; // pointer into `heuristics` native memory
  workspace: number;
}

/** cuBLASLt for one stream: a handle, a workspace, and a plan cache keyed by shape, dtypes and alignment. */
export class CublasLt {
  private readonly plans = new Map<string, Plan | null>();
  private readonly scratch: Ptr; // native memory for attribute values
  private readonly scratchView: DataView;
  private readonly alphaBeta = new Float32Array(2);
  private handle: Ptr;

  private constructor(
    private readonly koffi: Koffi,
    private readonly lt: Lt,
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
   * Loads cuBLASLt (search order above). Returns null with the paths tried when no library loads;
   * the backend then uses its own tiled GEMM kernel.
   */
  static load(
    koffi: Koffi,
    driverVersion: number,
    stream: Ptr,
    workspace: { ptr: number; bytes: number },
    allowTf32: boolean,
  ): { lt: CublasLt } | { lt: null; tried: string[]; errors: string[] } {
    const candidates = cublasLtCandidates(realSearch(), driverVersion);
    const py = pythonCublasDir();
    if (py) for (const name of NAMES_NEW_FIRST) if (existsSync(join(py, name))) candidates.splice(candidates.length - 2, 0, join(py, name));
    const errors: string[] = [];
    for (const path of candidates) {
      try {
        const lib = koffi.load(path);
        const lt = {} as Lt;
        for (const [key, decl] of Object.entries(DECLS)) (lt as Record<string, Fn>)[key] = lib.func(decl);
        const version = Number(lt.cublasLtGetVersion());
        return { lt: new CublasLt(koffi, lt, path, version, stream, workspace, allowTf32) };
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    return { lt: null, tried: candidates, errors };
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

  /** Enqueues the GEMM; returns false when no algorithm fits (the caller falls back). */
  matmul(c: GemmCall): boolean {
    const bytes = (dt: DType) => (dt === 'float32' ? 4 : 2);
    const align = (ptr: number, strideBytes: number) => {
      let a = 256;
      while (a > 1 && (ptr % a !== 0 || strideBytes % a !== 0)) a /= 2;
      return a;
    };
    const alA = align(c.a, c.batch > 1 ? c.strideA * bytes(c.dtA) : 0);
    const alB = align(c.b, c.batch > 1 ? c.strideB * bytes(c.dtB) : 0);
    const alO = align(c.out, c.batch > 1 ? c.strideOut * bytes(c.dtOut) : 0);
    const key = [c.m, c.n, c.k, c.transA, c.transB, c.batch, c.strideA, c.strideB, c.strideOut, c.dtA, c.dtB, c.dtOut, alA, alB, alO].join(
      ',',
    );
    let plan = this.plans.get(key);
    if (plan === undefined) {
      plan = this.plan(c, [alA, alB, alO]);
      this.plans.set(key, plan);
    }
    if (plan === null) return false;
    this.alphaBeta[0] = c.alpha;
    this.alphaBeta[1] = c.accumulate ? 1 : 0;
    const [la, lb, lc] = plan.layouts;
    this.check(
      this.lt.cublasLtMatmul(
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
        plan.algo,
        this.workspace.ptr,
        plan.workspace,
        this.stream,
      ),
      'cublasLtMatmul',
    );
    return true;
  }

  private plan(c: GemmCall, [alA, alB, alO]: number[]): Plan | null {
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
    const results = this.koffi.alloc('uint8_t', HEURISTIC_BYTES);
    const returned = [0];
    const rc = lt.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, la, lb, lc, lc, pref[0], 1, results, returned);
    lt.cublasLtMatmulPreferenceDestroy(pref[0]);
    if (rc !== 0 || returned[0] < 1) {
      lt.cublasLtMatmulDescDestroy(desc);
      for (const l of [la, lb, lc]) lt.cublasLtMatrixLayoutDestroy(l);
      this.koffi.free(results);
      return null;
    }
    const view = new DataView(this.koffi.view(results, HEURISTIC_BYTES));
    const workspace = Number(view.getBigUint64(64, true));
    return { desc, layouts: [la, lb, lc], algo: results, workspace };
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

  destroy(): void {
    for (const plan of this.plans.values()) {
      if (!plan) continue;
      this.lt.cublasLtMatmulDescDestroy(plan.desc);
      for (const l of plan.layouts) this.lt.cublasLtMatrixLayoutDestroy(l);
      this.koffi.free(plan.algo);
    }
    this.plans.clear();
    if (this.handle !== null) this.lt.cublasLtDestroy(this.handle);
    this.handle = null;
    this.koffi.free(this.scratch);
  }
}

const STATUS: Record<number, string> = {
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
