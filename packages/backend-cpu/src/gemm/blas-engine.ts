/**
 * f32 GEMM through the platform BLAS (`cblas_sgemm`, row-major), loaded at run time through the
 * koffi FFI: OpenBLAS, BLIS, MKL or Apple Accelerate, whichever is found first. Float32Arrays go
 * to the library as `float *` pointing into their own memory (no copies); the thread count is set
 * through the library's own call before each product that needs another count.
 *
 * Nothing here runs at import, and nothing imports a Node module statically: koffi is required
 * lazily through `process.getBuiltinModule('node:module')`, so the package still loads in
 * browsers and where koffi cannot load (there `loadBlas` throws a `BlasUnavailable`).
 */
import { checkSgemmArgs, leadingDims, type SgemmArgs } from './args.js';
import type { SgemmEngine } from './index.js';
import { envDefault, envVar, hardwareThreads, nodeBuiltin, nodePlatform } from './platform.js';

/** koffi's module and the C functions it declares, typed loosely (declared from C strings at run time). */
// biome-ignore lint/suspicious/noExplicitAny: koffi's API is untyped here.
type Koffi = any;
// biome-ignore lint/suspicious/noExplicitAny: a C function declared from a string.
type Fn = (...args: any[]) => any;
interface KoffiLib {
  func(decl: string): Fn;
  unload(): void;
}

/** Which BLAS a library is; 'blas' is one that exports cblas_sgemm but none of the vendors' own calls. */
export type BlasVendor = 'openblas' | 'blis' | 'mkl' | 'accelerate' | 'blas';

/** Thrown when no BLAS can be loaded; `reason` names what was tried and why each failed. */
export class BlasUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'BlasUnavailable';
  }
}

/** A loaded BLAS: its cblas_sgemm and thread control. One per library path, shared by engines. */
export interface BlasLibrary {
  readonly vendor: BlasVendor;
  /** The name or path it was loaded by. */
  readonly name: string;
  /** The file it was loaded from, where the platform tells (Linux: /proc/self/maps), else `name`. */
  readonly path: string;
  /** The library's own description of itself, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen". */
  readonly version: string;
  /** Whether the thread count can be set (not for an unknown BLAS; Accelerate: 1 or its own choice). */
  readonly threadControl: boolean;
  readonly sgemm: Fn;
  /** Sets the threads the next calls from this thread use (no-op without thread control). */
  setThreads(n: number): void;
  /** The thread count the library reports, or undefined where it has no such call. */
  getThreads(): number | undefined;
}

/** cblas enums. */
const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

const ACCELERATE = '/System/Library/Frameworks/Accelerate.framework/Accelerate';

/** Where to look, in order, on this platform. */
export function blasCandidates(platform = nodePlatform()): string[] {
  if (platform === 'darwin') return [ACCELERATE, 'libopenblas.dylib'];
  if (platform === 'win32') return ['libopenblas.dll', 'openblas.dll', 'mkl_rt.2.dll'];
  return ['libopenblas.so.0', 'libopenblas.so', 'libblis.so.4', 'libmkl_rt.so.2', 'libmkl_rt.so', 'libblas.so.3', 'libcblas.so.3'];
}

/** PEFT_BLAS: unset (search), 'off' (no BLAS), or a library name or path to load instead of the search. */
export function blasFromEnv(): { off: true } | { library: string } | undefined {
  const v = envVar('PEFT_BLAS');
  if (v === undefined) return undefined;
  if (/^(off|none|0|false|no)$/i.test(v.trim())) return { off: true };
  return { library: v };
}

let koffiModule: Koffi | null | undefined;
let koffiError = '';

/** koffi, required on first use; null (with `koffiError`) outside Node or when it fails to load. */
function loadKoffi(): Koffi | null {
  if (koffiModule !== undefined) return koffiModule;
  const mod = nodeBuiltin<{ createRequire(url: string): (id: string) => unknown }>('node:module');
  if (!mod) {
    koffiError = 'not running in Node.js (the BLAS is reached through the koffi FFI)';
    koffiModule = null;
    return null;
  }
  try {
    koffiModule = mod.createRequire(import.meta.url)('koffi');
  } catch (err) {
    koffiError = `the koffi package (FFI) could not be loaded: ${firstLine(err)}`;
    koffiModule = null;
  }
  return koffiModule;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}

/** Declares `decl` if the library exports it, else undefined. */
function optional(lib: KoffiLib, decl: string): Fn | undefined {
  try {
    return lib.func(decl);
  } catch {
    return undefined;
  }
}

/** The mapped file of a library loaded as `name` (Linux), by its base name up to ".so". */
function mappedPath(name: string): string {
  const fs = nodeBuiltin<{ readFileSync(p: string, e: string): string }>('node:fs');
  if (!fs || nodePlatform() !== 'linux') return name;
  const base = name.slice(name.lastIndexOf('/') + 1);
  const stem = base.includes('.so') ? base.slice(0, base.indexOf('.so')) : base;
  try {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    let fallback: string | undefined;
    for (const line of maps.split('\n')) {
      const path = line.slice(line.indexOf('/'));
      if (!line.includes('/')) continue;
      const file = path.slice(path.lastIndexOf('/') + 1);
      if (file === base) return path;
      if (fallback === undefined && file.startsWith(stem) && file.includes('.so')) fallback = path;
    }
    return fallback ?? name;
  } catch {
    return name;
  }
}

const loaded = new Map<string, BlasLibrary>();

/**
 * Opens one library and identifies it. Throws a one-line reason when it cannot be opened or does
 * not export cblas_sgemm.
 */
export function openBlas(name: string): BlasLibrary {
  const cached = loaded.get(name);
  if (cached) return cached;
  const koffi = loadKoffi();
  if (!koffi) throw new Error(koffiError);
  // OpenBLAS's pthread workers spin (sched_yield) for 2^28 cycles (~0.1 s) after each product before
  // sleeping, taking a core from whatever runs next; 2^20 cycles (~0.4 ms) still covers back-to-back
  // products. Read once, when the library loads; a value set by the user stays.
  envDefault('OPENBLAS_THREAD_TIMEOUT', '20');
  let lib: KoffiLib;
  try {
    lib = koffi.load(name);
  } catch (err) {
    throw new Error(firstLine(err).replace(/^Failed to load shared library:\s*/, ''));
  }
  const sgemm = optional(
    lib,
    'void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)',
  );
  if (!sgemm) {
    lib.unload();
    throw new Error('does not export cblas_sgemm');
  }
  const blas = identify(lib, name, sgemm);
  loaded.set(name, blas);
  return blas;
}

function identify(lib: KoffiLib, name: string, sgemm: Fn): BlasLibrary {
  const path = name.startsWith('/') ? name : mappedPath(name);
  // State shared by every engine on this library: the count last set, to skip redundant calls.
  let current = -1;
  const base = { name, path, sgemm };

  const openblasConfig = optional(lib, 'const char *openblas_get_config()');
  if (openblasConfig) {
    const set = lib.func('void openblas_set_num_threads(int n)');
    const get = lib.func('int openblas_get_num_threads()');
    const parallel = optional(lib, 'int openblas_get_parallel()');
    const mode = parallel ? ['sequential', 'pthreads', 'OpenMP'][parallel() as number] : undefined;
    return {
      ...base,
      vendor: 'openblas',
      version: `${String(openblasConfig()).trim()}${mode ? `, ${mode}` : ''}`,
      threadControl: true,
      setThreads(n) {
        // OpenMP builds keep the count per calling thread; others globally.
        if (n !== current || mode === 'OpenMP') set(n);
        current = n;
      },
      getThreads: () => get() as number,
    };
  }
  const blisVersion = optional(lib, 'const char *bli_info_get_version_str()');
  if (blisVersion) {
    // dim_t is a 64-bit integer in BLIS builds with the default integer size.
    const set = lib.func('void bli_thread_set_num_threads(int64_t n)');
    const get = lib.func('int64_t bli_thread_get_num_threads()');
    return {
      ...base,
      vendor: 'blis',
      version: `BLIS ${blisVersion()}`,
      threadControl: true,
      setThreads(n) {
        if (n !== current) set(n);
        current = n;
      },
      getThreads: () => Number(get()),
    };
  }
  const mklVersion = optional(lib, 'void MKL_Get_Version_String(_Out_ uint8_t *buf, int len)');
  if (mklVersion) {
    const set = lib.func('void MKL_Set_Num_Threads(int n)');
    const get = lib.func('int MKL_Get_Max_Threads()');
    const buf = new Uint8Array(256);
    mklVersion(buf, buf.length);
    const end = buf.indexOf(0);
    return {
      ...base,
      vendor: 'mkl',
      version: new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end)).trim(),
      threadControl: true,
      setThreads(n) {
        // MKL keeps the count per calling thread.
        set(n);
        current = n;
      },
      getThreads: () => get() as number,
    };
  }
  // Accelerate (macOS 15+): BLASSetThreading(0) multi-threaded (its own count), (1) single-threaded, per calling thread.
  const setThreading = optional(lib, 'int BLASSetThreading(unsigned int threading)');
  if (
    name === ACCELERATE ||
    setThreading ||
    optional(lib, 'void vDSP_vadd(const float *a, long sa, const float *b, long sb, float *c, long sc, unsigned long n)')
  ) {
    const getThreading = setThreading ? lib.func('unsigned int BLASGetThreading()') : undefined;
    return {
      ...base,
      vendor: 'accelerate',
      version: setThreading ? 'Accelerate (BLASSetThreading)' : 'Accelerate (threads chosen by the system)',
      threadControl: Boolean(setThreading),
      setThreads(n) {
        setThreading?.(n === 1 ? 1 : 0);
        current = n;
      },
      getThreads: () => (getThreading ? (getThreading() === 1 ? 1 : undefined) : undefined),
    };
  }
  return {
    ...base,
    vendor: 'blas',
    version: 'a CBLAS without OpenBLAS, BLIS or MKL entry points (possibly the reference BLAS)',
    threadControl: false,
    setThreads() {},
    getThreads: () => undefined,
  };
}

export interface LoadBlasOptions {
  /** A library name or path to load instead of searching (PEFT_BLAS when not given). */
  library?: string;
  /**
   * Accept a library that exports cblas_sgemm but is none of OpenBLAS, BLIS, MKL or Accelerate
   * (e.g. the reference BLAS, slower than the wasm engine). Default: only when named explicitly.
   */
  acceptUnknown?: boolean;
  /** Names to search, in order (default: `blasCandidates()` of this platform). */
  candidates?: readonly string[];
}

/** The first BLAS that loads: `library` (or PEFT_BLAS) alone, else the platform's candidates in order. */
export function loadBlas(opts: LoadBlasOptions = {}): BlasLibrary {
  const env = opts.library === undefined ? blasFromEnv() : { library: opts.library };
  if (env && 'off' in env) throw new BlasUnavailable(`PEFT_BLAS=${envVar('PEFT_BLAS')} turns the BLAS off`);
  if (!loadKoffi()) throw new BlasUnavailable(`no BLAS: ${koffiError}`);
  if (env) {
    const from = opts.library === undefined ? `PEFT_BLAS=${env.library}` : env.library;
    try {
      return openBlas(env.library);
    } catch (err) {
      throw new BlasUnavailable(`cannot use the BLAS ${from}: ${firstLine(err)}`);
    }
  }
  const tried: string[] = [];
  for (const name of opts.candidates ?? blasCandidates()) {
    try {
      const lib = openBlas(name);
      if (lib.vendor === 'blas' && !opts.acceptUnknown) {
        tried.push(`${name} (exports cblas_sgemm but is not OpenBLAS, BLIS or MKL: skipped, likely the slow reference BLAS)`);
        continue;
      }
      return lib;
    } catch (err) {
      tried.push(`${name} (${firstLine(err)})`);
    }
  }
  throw new BlasUnavailable(`no BLAS found: tried ${tried.join(', ')}`);
}

export interface BlasSgemmOptions extends LoadBlasOptions {
  /** Threads the BLAS uses (default: the cores available). */
  threads?: number;
}

/** The SgemmEngine over a BLAS. Throws `BlasUnavailable` when none loads. */
export class BlasSgemm implements SgemmEngine {
  readonly lib: BlasLibrary;
  /** Threads asked for. */
  readonly requestedThreads: number;
  /** Threads the library reports using after being asked (the request where it cannot tell). */
  readonly threads: number;
  readonly description: string;
  private destroyed = false;

  constructor(opts: BlasSgemmOptions = {}) {
    this.lib = loadBlas(opts);
    const threads = opts.threads ?? hardwareThreads();
    if (!Number.isSafeInteger(threads) || threads < 1) throw new Error(`BlasSgemm: threads must be a positive integer, got ${threads}`);
    this.requestedThreads = threads;
    this.lib.setThreads(threads);
    this.threads = this.lib.getThreads() ?? threads;
    const t = this.lib.threadControl ? `x${this.threads} thread${this.threads > 1 ? 's' : ''}` : 'threads chosen by the library';
    this.description = `${this.lib.vendor} ${t}`;
  }

  /** The thread count the library reports now (after this engine set it), where it can tell. */
  libraryThreads(): number | undefined {
    this.lib.setThreads(this.requestedThreads);
    return this.lib.getThreads();
  }

  sgemm(args: SgemmArgs): void {
    if (this.destroyed) throw new Error('sgemm engine destroyed');
    const lds = leadingDims(args);
    checkSgemmArgs(args, lds);
    const { m, n, k, c, cOffset } = args;
    if (m === 0 || n === 0) return;
    if (k === 0) {
      // cblas refuses lda < 1; the product is empty: C = 0 (or kept).
      if (!args.accumulate) for (let i = 0; i < m; i++) c.fill(0, cOffset + i * lds.ldc, cOffset + i * lds.ldc + n);
      return;
    }
    this.lib.setThreads(this.requestedThreads);
    this.lib.sgemm(
      ROW_MAJOR,
      args.transA ? TRANS : NO_TRANS,
      args.transB ? TRANS : NO_TRANS,
      m,
      n,
      k,
      args.alpha,
      args.aOffset === 0 ? args.a : args.a.subarray(args.aOffset),
      lds.lda,
      args.bOffset === 0 ? args.b : args.b.subarray(args.bOffset),
      lds.ldb,
      args.accumulate ? 1 : 0,
      cOffset === 0 ? c : c.subarray(cOffset),
      lds.ldc,
    );
  }

  /** The library stays loaded (other engines may share it); this engine refuses further calls. */
  destroy(): void {
    this.destroyed = true;
  }
}
