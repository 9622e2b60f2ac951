import { leadingDims, type SgemmArgs } from './args.js';
import type { SgemmEngine } from './index.js';
import { hardwareThreads, nodeBuiltin } from './platform.js';
import { SGEMM_WASM_MAX_PAGES, SGEMM_WASM_PLAIN_BASE64, SGEMM_WASM_SHARED_BASE64 } from './sgemm.wasm.js';
import { CTL, WORKER_SOURCE } from './worker-source.js';

/**
 * WebAssembly SIMD GEMM (see wasm/sgemm.as.ts) on a pool of worker threads sharing one
 * WebAssembly.Memory. The calling thread copies A, B (and C when accumulating) into the memory,
 * publishes a job of C tiles, computes tiles itself alongside the workers, waits for the last
 * one and copies C back. Tiles are handed out dynamically, so a worker that is still starting
 * (workers start asynchronously) or busy simply takes fewer tiles; nothing ever waits for a
 * particular worker.
 */

const PAGE = 65536;
/** Byte offsets in the memory: control block (Int32 slots), job description, then data. */
const CTL_OFFSET = 1024;
const JOB_OFFSET = 2048;
const DATA_OFFSET = 4096;
/** Problems below this many multiply-adds run on the calling thread only. */
const DEFAULT_MIN_THREADED_MACS = 160 * 160 * 160;

export interface WasmSgemmOptions {
  /** Threads in all, the calling thread included (default: hardware concurrency, at most 8). */
  threads?: number;
  /** Problems with fewer multiply-adds (m·n·k) run on the calling thread alone. */
  minThreadedMacs?: number;
  /** Largest memory in bytes; bigger problems are split into blocks (default: 2 GiB). */
  maxMemoryBytes?: number;
}

interface NodeWorker {
  postMessage(v: unknown): void;
  unref(): void;
  terminate(): unknown;
  on(ev: 'error', f: (e: unknown) => void): void;
}
interface WorkerHandle {
  post(v: unknown): void;
  terminate(): unknown;
}

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let modules: { shared?: WebAssembly.Module | null; plain?: WebAssembly.Module | null } = {};
function loadModule(shared: boolean): WebAssembly.Module | null {
  const key = shared ? 'shared' : 'plain';
  if (modules[key] === undefined) {
    try {
      const bytes = decodeBase64(shared ? SGEMM_WASM_SHARED_BASE64 : SGEMM_WASM_PLAIN_BASE64);
      modules = { ...modules, [key]: new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>) };
    } catch {
      modules = { ...modules, [key]: null };
    }
  }
  return modules[key] ?? null;
}

/** Whether this JS engine can run the WebAssembly SIMD kernel at all. */
export function wasmSimdSupported(): boolean {
  return typeof WebAssembly === 'object' && loadModule(false) !== null;
}

function sharedMemorySupported(): boolean {
  return typeof SharedArrayBuffer === 'function' && typeof Atomics === 'object' && loadModule(true) !== null;
}

function spawnWorker(): WorkerHandle | null {
  const wt = nodeBuiltin<{ Worker: new (src: string, o: object) => NodeWorker }>('node:worker_threads');
  if (wt) {
    // execArgv []: the worker is plain JS and needs none of the parent's loaders (e.g. tsx).
    const w = new wt.Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    w.unref();
    w.on('error', () => {});
    return {
      post: (v) => w.postMessage(v),
      terminate: () => w.terminate(),
    };
  }
  const g = globalThis as {
    Worker?: new (url: string, o?: object) => { postMessage(v: unknown): void; terminate(): void };
    Blob?: typeof Blob;
    URL?: typeof URL;
  };
  if (!g.Worker || !g.Blob || !g.URL?.createObjectURL) return null;
  const url = g.URL.createObjectURL(new g.Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  try {
    const w = new g.Worker(url);
    return { post: (v) => w.postMessage(v), terminate: () => w.terminate() };
  } finally {
    // The worker has fetched (or is fetching) the script; revoking later would leak nothing much,
    // but revoking now may race the fetch in some browsers, so revoke after a tick.
    setTimeout(() => g.URL?.revokeObjectURL(url), 10_000);
  }
}

interface Plan {
  tm: number;
  tn: number;
  kc: number;
  mc: number;
  tilesM: number;
  tilesN: number;
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
const roundUp = (a: number, b: number) => ceilDiv(a, b) * b;

/**
 * Tiling of one job: tasks are tm x tn tiles of C, each over the full k (blocked by kc) with its
 * own packing of B (kc x tn, re-used by all its rows) and A (mc x kc blocks). Every task packs its
 * B columns again, so tiles are few and tall: about `targetTasks` of them, at least MR rows each.
 */
export function planGemm(m: number, n: number, k: number, targetTasks: number, MR: number, NR: number, mcMax = 120): Plan {
  const kc = k <= 384 ? k : roundUp(ceilDiv(k, ceilDiv(k, 256)), 4);
  const tn = n <= 512 ? n : roundUp(ceilDiv(n, ceilDiv(n, 512)), NR);
  const tilesN = ceilDiv(n, tn);
  let tilesM = Math.min(Math.max(1, ceilDiv(targetTasks, tilesN)), ceilDiv(m, MR));
  const tm = roundUp(ceilDiv(m, tilesM), MR);
  tilesM = ceilDiv(m, tm);
  const mc = Math.min(tm, mcMax);
  return { tm, tn, kc, mc, tilesM, tilesN };
}

/** Tasks to aim for: one per thread for small products, up to four per thread for big ones. */
function targetTasks(macs: number, threads: number): number {
  if (threads <= 1) return 1;
  const per = macs >= 768 ** 3 ? 4 : macs >= 384 ** 3 ? 2 : 1;
  return threads * per;
}

export class WasmSgemm implements SgemmEngine {
  readonly description: string;
  readonly threads: number;
  private readonly memory: WebAssembly.Memory;
  private readonly task: (job: number, idx: number, pack: number) => void;
  private readonly packBytes: (tn: number, kc: number, mc: number) => number;
  private ctl: Int32Array;
  private readonly workers: WorkerHandle[] = [];
  private readonly canWait: boolean;
  private readonly minThreadedMacs: number;
  private readonly maxBytes: number;
  private readonly MR: number;
  private readonly NR: number;
  /** Blocks run so far (a product too big for the memory runs as several). */
  blocksRun = 0;
  private gen = 0;
  private terminating: Promise<unknown>[] = [];
  private destroyed = false;
  private f32: Float32Array;
  private i32: Int32Array;

  constructor(opts: WasmSgemmOptions = {}) {
    const wanted = Math.max(1, Math.floor(opts.threads ?? Math.min(hardwareThreads(), 8)));
    const shared = wanted > 1 && sharedMemorySupported();
    const module = loadModule(shared);
    if (!module) throw new Error('WebAssembly SIMD is not supported');
    this.minThreadedMacs = opts.minThreadedMacs ?? DEFAULT_MIN_THREADED_MACS;
    const maxPagesWanted = Math.min(SGEMM_WASM_MAX_PAGES, Math.floor((opts.maxMemoryBytes ?? 2 ** 31) / PAGE));
    let memory: WebAssembly.Memory | undefined;
    for (let pages = maxPagesWanted; !memory; pages = Math.floor(pages / 2)) {
      try {
        memory = new WebAssembly.Memory({ initial: 2, maximum: pages, shared } as WebAssembly.MemoryDescriptor);
      } catch (e) {
        if (pages <= 64) throw e;
      }
    }
    this.memory = memory;
    this.maxBytes = (memory as { maximum?: number }).maximum
      ? ((memory as { maximum?: number }).maximum as number) * PAGE
      : maxPagesWanted * PAGE;
    const inst = new WebAssembly.Instance(module, { env: { memory } });
    const ex = inst.exports as unknown as {
      task: (job: number, idx: number, pack: number) => void;
      packBytes: (tn: number, kc: number, mc: number) => number;
      microTile: () => number;
    };
    this.MR = ex.microTile() >> 8;
    this.NR = ex.microTile() & 0xff;
    this.task = ex.task;
    this.packBytes = ex.packBytes;
    this.f32 = new Float32Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
    this.ctl = new Int32Array(memory.buffer, CTL_OFFSET, 64);

    let canWait = false;
    if (shared) {
      try {
        Atomics.wait(this.ctl, CTL.QUIT, 1, 0); // value differs: returns at once where waiting is allowed
        canWait = true;
      } catch {
        canWait = false; // browser main thread: spin instead
      }
    }
    this.canWait = canWait;
    if (shared) {
      for (let i = 1; i < wanted; i++) {
        const w = spawnWorker();
        if (!w) break;
        w.post({ module, memory, id: i, ctl: CTL_OFFSET, job: JOB_OFFSET });
        this.workers.push(w);
      }
    }
    this.threads = this.workers.length + 1;
    this.description = `wasm-simd x${this.threads} thread${this.threads > 1 ? 's' : ''}`;
  }

  /** Workers that have started and are taking tasks (they start asynchronously). */
  get readyWorkers(): number {
    return Atomics.load(this.ctl, CTL.READY);
  }

  /** Tasks (C tiles) computed by worker threads so far. */
  get workerTasks(): number {
    return Atomics.load(this.ctl, CTL.WTASKS);
  }

  /** Resolves when every worker thread has exited (after `destroy()`). */
  exited(): Promise<void> {
    return Promise.all(this.terminating).then(() => {});
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.workers.length) {
      Atomics.store(this.ctl, CTL.QUIT, 1);
      Atomics.store(this.ctl, CTL.GEN, this.gen + 1);
      Atomics.notify(this.ctl, CTL.GEN);
      for (const w of this.workers) this.terminating.push(Promise.resolve(w.terminate()));
      this.workers.length = 0;
    }
  }

  sgemm(args: SgemmArgs): void {
    if (this.destroyed) throw new Error('sgemm engine destroyed');
    const { m, n, k } = args;
    if (m <= 0 || n <= 0) return;
    const { lda, ldb, ldc } = leadingDims(args);
    this.block(args, 0, m, 0, n, 0, k, lda, ldb, ldc, args.accumulate);
  }

  /** C[i0:i0+m, j0:j0+n] (+)= alpha · op(A)[i0.., p0..] · op(B)[p0.., j0..], splitting if too big. */
  private block(
    g: SgemmArgs,
    i0: number,
    m: number,
    j0: number,
    n: number,
    p0: number,
    k: number,
    lda: number,
    ldb: number,
    ldc: number,
    accumulate: boolean,
  ): void {
    const { MR, NR } = this;
    const bytes = this.footprint(m, n, k);
    if (bytes > this.maxBytes && (m > MR || n > NR || k > 4)) {
      // Halve the largest dimension (k last: splitting k re-reads C).
      if (m >= n && m > MR && (m >= k || k <= 4)) {
        const h = roundUp(m >> 1, MR);
        this.block(g, i0, h, j0, n, p0, k, lda, ldb, ldc, accumulate);
        this.block(g, i0 + h, m - h, j0, n, p0, k, lda, ldb, ldc, accumulate);
      } else if (n > NR && (n >= k || k <= 4)) {
        const h = roundUp(n >> 1, NR);
        this.block(g, i0, m, j0, h, p0, k, lda, ldb, ldc, accumulate);
        this.block(g, i0, m, j0 + h, n - h, p0, k, lda, ldb, ldc, accumulate);
      } else {
        const h = k >> 1;
        this.block(g, i0, m, j0, n, p0, h, lda, ldb, ldc, accumulate);
        this.block(g, i0, m, j0, n, p0 + h, k - h, lda, ldb, ldc, true);
      }
      return;
    }
    this.run(g, i0, m, j0, n, p0, k, lda, ldb, ldc, accumulate);
  }

  private footprint(m: number, n: number, k: number): number {
    const plan = planGemm(m, n, k, targetTasks(m * n * k, this.threads), this.MR, this.NR);
    return DATA_OFFSET + 4 * (m * k + k * n + m * n) + 256 + this.threads * (this.packBytes(plan.tn, plan.kc, plan.mc) + 64);
  }

  private ensureBytes(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      this.memory.grow(ceilDiv(bytes - have, PAGE));
    }
    if (this.f32.length * 4 !== this.memory.buffer.byteLength) {
      this.f32 = new Float32Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
      // A non-shared memory's old buffer is detached by grow; a shared one's stays valid.
      this.ctl = new Int32Array(this.memory.buffer, CTL_OFFSET, 64);
    }
  }

  private run(
    g: SgemmArgs,
    i0: number,
    m: number,
    j0: number,
    n: number,
    p0: number,
    k: number,
    lda: number,
    ldb: number,
    ldc: number,
    accumulate: boolean,
  ): void {
    this.blocksRun++;
    const cOff = g.cOffset + i0 * ldc + j0;
    if (k <= 0) {
      if (!accumulate) for (let i = 0; i < m; i++) g.c.fill(0, cOff + i * ldc, cOff + i * ldc + n);
      return;
    }
    const macs = m * n * k;
    const threaded = this.workers.length > 0 && macs >= this.minThreadedMacs;
    const plan = planGemm(m, n, k, threaded ? targetTasks(macs, this.threads) : 1, this.MR, this.NR);
    const participants = threaded ? this.threads : 1;
    const pack = this.packBytes(plan.tn, plan.kc, plan.mc) + 64;

    // Layout (bytes): A [m*k] | B [k*n] | C [m*n] | packing areas.
    const aPtr = DATA_OFFSET;
    const bPtr = aPtr + roundUp(4 * m * k, 64);
    const cPtr = bPtr + roundUp(4 * k * n, 64);
    const packPtr = cPtr + roundUp(4 * m * n, 64);
    this.ensureBytes(packPtr + participants * pack);
    const f32 = this.f32;

    // Copy op(A)[i0:i0+m, p0:p0+k] keeping its storage order, then op(B) and C.
    if (g.transA) copyRows(g.a, g.aOffset + p0 * lda + i0, lda, k, m, f32, aPtr >> 2);
    else copyRows(g.a, g.aOffset + i0 * lda + p0, lda, m, k, f32, aPtr >> 2);
    if (g.transB) copyRows(g.b, g.bOffset + j0 * ldb + p0, ldb, n, k, f32, bPtr >> 2);
    else copyRows(g.b, g.bOffset + p0 * ldb + j0, ldb, k, n, f32, bPtr >> 2);
    if (accumulate) copyRows(g.c, cOff, ldc, m, n, f32, cPtr >> 2);

    const J = JOB_OFFSET >> 2;
    const i32 = this.i32;
    i32[J + 0] = m;
    i32[J + 1] = n;
    i32[J + 2] = k;
    i32[J + 3] = aPtr;
    i32[J + 4] = bPtr;
    i32[J + 5] = cPtr;
    i32[J + 6] = g.transA ? m : k;
    i32[J + 7] = g.transB ? k : n;
    i32[J + 8] = n;
    i32[J + 9] = g.transA ? 1 : 0;
    i32[J + 10] = g.transB ? 1 : 0;
    f32[J + 11] = g.alpha;
    i32[J + 12] = accumulate ? 1 : 0;
    i32[J + 13] = plan.tilesN;
    i32[J + 14] = plan.tm;
    i32[J + 15] = plan.tn;
    i32[J + 16] = plan.kc;
    i32[J + 17] = plan.mc;
    const ntasks = plan.tilesM * plan.tilesN;

    if (!threaded || ntasks === 1) {
      for (let t = 0; t < ntasks; t++) this.task(JOB_OFFSET, t, packPtr);
    } else {
      this.dispatch(ntasks, packPtr, pack);
    }
    copyRowsOut(f32, cPtr >> 2, m, n, g.c, cOff, ldc);
  }

  private dispatch(ntasks: number, packPtr: number, pack: number): void {
    const c = this.ctl;
    for (let i = 0; i < this.threads; i++) c[CTL.PACK + i] = packPtr + i * pack;
    c[CTL.NTASKS] = ntasks;
    Atomics.store(c, CTL.DONE, 0);
    const gen = (this.gen = (this.gen + 1) | 0);
    const g = gen & 0x7ff;
    Atomics.store(c, CTL.CNT, (g << 20) | ntasks);
    Atomics.store(c, CTL.GEN, gen);
    Atomics.notify(c, CTL.GEN);
    // Take tasks like any worker.
    for (;;) {
      const w = Atomics.load(c, CTL.CNT);
      if (w >>> 20 !== g || (w & 0xfffff) === 0) break;
      if (Atomics.compareExchange(c, CTL.CNT, w, w - 1) !== w) continue;
      this.task(JOB_OFFSET, ntasks - (w & 0xfffff), packPtr);
      Atomics.add(c, CTL.DONE, 1);
    }
    // Wait for tasks other threads took.
    let spins = 0;
    for (;;) {
      const d = Atomics.load(c, CTL.DONE);
      if (d === ntasks) break;
      if (this.canWait && ++spins > 2000) Atomics.wait(c, CTL.DONE, d, 50);
    }
  }
}

/** dst[d0 + r*cols + j] = src[s0 + r*ld + j] for r < rows, j < cols. */
function copyRows(src: Float32Array, s0: number, ld: number, rows: number, cols: number, dst: Float32Array, d0: number): void {
  if (ld === cols || rows === 1) {
    dst.set(src.subarray(s0, s0 + rows * cols), d0);
    return;
  }
  for (let r = 0; r < rows; r++) dst.set(src.subarray(s0 + r * ld, s0 + r * ld + cols), d0 + r * cols);
}

function copyRowsOut(src: Float32Array, s0: number, rows: number, cols: number, dst: Float32Array, d0: number, ld: number): void {
  if (ld === cols || rows === 1) {
    dst.set(src.subarray(s0, s0 + rows * cols), d0);
    return;
  }
  for (let r = 0; r < rows; r++) dst.set(src.subarray(s0 + r * cols, s0 + (r + 1) * cols), d0 + r * ld);
}
