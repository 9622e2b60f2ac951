/**
 * The elementwise WebAssembly kernels (kernels/wasm/elementwise.as.ts) on worker threads.
 *
 * Buffers of SHARED_MIN_BYTES or more live in SharedArrayBuffers when the backend runs more than
 * one thread, so a worker reads and writes them where they are. A job names one kernel export,
 * its float32 operands (a SharedArrayBuffer, an element offset and a layout each) and a call
 * template; its elements are cut into tasks of TASK elements that the calling thread and the
 * workers claim from a shared counter (a worker still starting, or busy, takes fewer), each
 * copying a task chunk by chunk into its own instance of the module, calling the kernel and
 * copying the results out, exactly as the single-thread path does. The results are the same bits
 * whatever the thread count: every element is computed by the same code from the same inputs.
 *
 * Node only (worker_threads); elsewhere, with one thread or for small, 16-bit or
 * non-shared operands, the kernels run on the calling thread alone.
 */
import { nodeBuiltin } from './gemm/platform.js';

/** Buffers at least this large are SharedArrayBuffers when the backend has worker threads. */
export const SHARED_MIN_BYTES = 256 * 1024;
/** Elements a job needs before it is split across threads. */
export const PARALLEL_MIN = 64 * 1024;
/** Elements per task (a multiple of the module's chunk). */
const TASK = 32 * 1024;

/** An argument of a row kernel: a typed array (shared when a task writes it), a number, a flag, a string or null. */
export type RowArg = Float32Array | Float64Array | Int32Array | Uint16Array | number | boolean | string | null;
/** A row kernel: `(...args, r0, r1)` computes rows [r0, r1). */
// biome-ignore lint/suspicious/noExplicitAny: row kernels take their own typed argument lists.
export type RowFn = (...args: any[]) => void;

/** One argument of the kernel call: an operand's address, the chunk's first / end element, or a number. */
export type CallArg = { in: number } | { out: number } | 'start' | 'end' | number | boolean;

/** An operand: `flat` elements x0 + i; `row` the same rowLen elements at x0 for every row; `scalar` element x0. */
export interface JobOperand {
  data: Float32Array;
  x0: number;
  mode: 'flat' | 'row' | 'scalar';
}

export interface Job {
  /** Export of the elementwise module. */
  fn: string;
  /** Elements of the output. */
  n: number;
  /** Row length for `row` operands (and the kernel's row phase). */
  rowLen: number;
  inputs: readonly JobOperand[];
  outputs: readonly Float32Array[];
  args: readonly CallArg[];
}

// Control block (Int32 slots): CNT = (gen & 0x7ff) << 20 | tasks still to claim; DONE = tasks
// finished; NTASKS; FAIL = a task threw (its message is posted back); WTASKS.
const CNT = 0;
const DONE = 1;
const NTASKS = 2;
const FAIL = 3;
/** Tasks run by workers since the pool started (statistics, tests). */
const WTASKS = 4;

/**
 * The task loop, run by every participant (source shared with the workers). `inst` is an
 * instance of the elementwise module with `heap` (float32 view of its memory), `slots` (float32
 * index of each chunk slot) and `resident` (float32 index of the two resident operands).
 */
const TASK_LOOP = `
function runJob(st, job, c, gen) {
  const ni = job.inputs.length;
  let prepared = false;
  forTasks(st, c, gen, (task) => {
    if (!prepared) { prepare(st, job); prepared = true; }
    const from = task * ${TASK};
    const to = Math.min(job.n, from + ${TASK});
    const fn = st.fns[job.fn];
    const heap = st.heap;
    const args = job.args.slice();
    for (let s = from; s < to; s += __CHUNK__) {
      const len = Math.min(__CHUNK__, to - s);
      for (let k = 0; k < ni; k++) {
        const op = job.inputs[k];
        if (op.mode === 'flat') heap.set(op.data.subarray(op.x0 + s, op.x0 + s + len), st.slots[k]);
      }
      for (let a = 0; a < args.length; a++) {
        const t = job.args[a];
        if (t === 'start') args[a] = s;
        else if (t === 'end') args[a] = s + len;
        else if (typeof t === 'object') args[a] = 4 * ('in' in t ? st.at[t.in] : st.slots[ni + t.out]);
      }
      fn.apply(null, args);
      for (let k = 0; k < job.outputs.length; k++) job.outputs[k].set(heap.subarray(st.slots[ni + k], st.slots[ni + k] + len), s);
    }
  });
}
/**
 * Claims tasks of generation gen from the shared counter until none is left, running run(task)
 * for each; a task that throws marks the job failed (its message through st.report), and the last
 * task to finish wakes the calling thread.
 */
function forTasks(st, c, gen, run) {
  const g = gen & 0x7ff;
  for (;;) {
    const w = Atomics.load(c, ${CNT});
    if ((w >>> 20) !== g || (w & 0xfffff) === 0) return;
    if (Atomics.compareExchange(c, ${CNT}, w, w - 1) !== w) continue;
    const n = c[${NTASKS}];
    try {
      run(n - (w & 0xfffff));
    } catch (e) {
      Atomics.store(c, ${FAIL}, 1);
      if (st.report) st.report(String(e && e.stack || e));
    }
    if (st.worker) Atomics.add(c, ${WTASKS}, 1);
    if (Atomics.add(c, ${DONE}, 1) + 1 === n) Atomics.notify(c, ${DONE});
  }
}
function prepare(st, job) {
  // Where each input is read from: its chunk slot (flat) or its resident copy (row, scalar).
  st.at = [];
  let r = 0;
  for (let k = 0; k < job.inputs.length; k++) {
    const op = job.inputs[k];
    if (op.mode === 'flat') { st.at.push(st.slots[k]); continue; }
    const len = op.mode === 'row' ? job.rowLen : 1;
    st.reserve(len);
    const at = st.resident[r++];
    st.heap.set(op.data.subarray(op.x0, op.x0 + len), at);
    if (op.mode === 'scalar') st.heap.fill(st.heap[at], at + 1, at + 4);
    st.at.push(at);
  }
}
`;

/**
 * The row-job loop (source shared with the workers): `fn(...args, r0, r1)` for the tasks' row
 * ranges. `fns` holds the row kernels compiled from their source, by id.
 */
const ROW_LOOP = `
function runRowJob(st, job, c, gen) {
  const fn = st.rowFns[job.id];
  const args = job.args.slice();
  const na = args.length;
  args.push(0, 0);
  forTasks(st, c, gen, (task) => {
    args[na] = task * job.per;
    args[na + 1] = Math.min(job.rows, args[na] + job.per);
    fn.apply(null, args);
  });
}
function compileRowFn(src) {
  // A transpiler may wrap nested functions in __name(f, "name") (keep-names); it is harmless here.
  return new Function('__name', '"use strict"; return (' + src + ');')((f) => f);
}
`;

/** Participant state over one instance: the module's memory laid out as ElementwiseWasm does. */
const STATE = `
// The first failure of a job, written where the calling thread reads it before the job returns
// (a worker's postMessage would only arrive after): Int32 length (−1 while being written), then UTF-8.
function reportInto(err, msg) {
  const len = new Int32Array(err, 0, 1);
  if (Atomics.compareExchange(len, 0, 0, -1) !== 0) return;
  const bytes = new TextEncoder().encode(msg).subarray(0, err.byteLength - 4);
  new Uint8Array(err, 4).set(bytes);
  Atomics.store(len, 0, bytes.length);
}
function makeState(module, expFrac, slotCount, chunk) {
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') continue;
    (imports[imp.module] ||= {})[imp.name] = Math.exp;
  }
  const inst = new WebAssembly.Instance(module, imports);
  const fns = inst.exports;
  const base = Math.ceil(fns.RESERVED_BYTES.value / 64) * 16;
  const st = { fns, heap: null, slots: [], resident: [0, 0], residentLen: 0, at: [], report: null, worker: false, rowFns: [] };
  for (let i = 0; i < slotCount; i++) st.slots.push(base + i * chunk);
  st.resident[0] = st.resident[1] = base + slotCount * chunk;
  st.reserve = (n) => {
    if (n > st.residentLen) { st.residentLen = Math.ceil(n / 16) * 16; st.resident[1] = st.resident[0] + st.residentLen; }
    const bytes = 4 * (st.resident[1] + Math.max(st.residentLen, 16));
    const have = fns.memory.buffer.byteLength;
    if (bytes > have) fns.memory.grow(Math.ceil((bytes - have) / 65536));
    if (!st.heap || st.heap.buffer !== fns.memory.buffer) st.heap = new Float32Array(fns.memory.buffer);
  };
  st.reserve(16);
  new Float64Array(fns.memory.buffer, 0, expFrac.length).set(expFrac);
  return st;
}
`;

const WORKER_MAIN = `
const { parentPort } = require('node:worker_threads');
let st = null;
let c = null;
parentPort.on('message', (m) => {
  if (m.init) {
    st = makeState(m.module, m.expFrac, m.slotCount, m.chunk);
    st.worker = true;
    st.report = (msg) => reportInto(m.err, msg);
    c = new Int32Array(m.ctl);
    return;
  }
  if (m.define !== undefined) {
    st.rowFns[m.define] = compileRowFn(m.src);
    return;
  }
  if (m.rowJob) runRowJob(st, m.rowJob, c, m.gen);
  else runJob(st, m.job, c, m.gen);
});
`;

function source(chunk: number): { loop: string; state: string } {
  return { loop: TASK_LOOP.replaceAll('__CHUNK__', String(chunk)) + ROW_LOOP, state: STATE };
}

interface State {
  report: ((msg: string) => void) | null;
  rowFns: RowFn[];
}
type RunJob = (st: State, job: Job, c: Int32Array, gen: number) => void;
interface RowJob {
  id: number;
  rows: number;
  per: number;
  args: readonly RowArg[];
}
type RunRowJob = (st: State, job: RowJob, c: Int32Array, gen: number) => void;
type MakeState = (module: WebAssembly.Module, expFrac: Float64Array, slotCount: number, chunk: number) => State;

interface NodeWorker {
  postMessage(v: unknown): void;
  unref(): void;
  terminate(): unknown;
  on(ev: 'message' | 'error', f: (e: unknown) => void): void;
}

/** Worker threads running the elementwise module's kernels beside the calling thread. */
export class KernelPool {
  /** Threads in all, the calling thread included. */
  readonly threads: number;
  private workers: NodeWorker[] = [];
  private readonly ctl = new Int32Array(new SharedArrayBuffer(64));
  /** The job's first failure message (see reportInto). */
  private readonly err = new SharedArrayBuffer(4096);
  private gen = 0;
  private main: State | null = null;
  private runJob: RunJob | null = null;
  private runRowJob: RunRowJob | null = null;
  private compileRowFn: ((src: string) => RowFn) | null = null;
  /** Row kernels sent to the workers, by function, with their id. */
  private readonly rowIds = new Map<RowFn, number>();
  private destroyed = false;
  private lastError: string | null = null;

  private constructor(
    threads: number,
    private readonly module: WebAssembly.Module,
    private readonly expFrac: Float64Array,
    private readonly slotCount: number,
    private readonly chunk: number,
  ) {
    this.threads = threads;
  }

  /**
   * A pool of `threads` (the calling thread included), or null where there is nothing to gain
   * or no way to run one: one thread, no worker_threads or SharedArrayBuffer.
   */
  static create(
    threads: number,
    module: WebAssembly.Module | null,
    expFrac: Float64Array,
    slotCount: number,
    chunk: number,
  ): KernelPool | null {
    if (threads < 2 || module === null || typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return null;
    if (!nodeBuiltin('node:worker_threads')) return null;
    return new KernelPool(threads, module, expFrac, slotCount, chunk);
  }

  /** Whether `data` can take part in a job (it lives in a SharedArrayBuffer). */
  static shared(data: ArrayBufferView): boolean {
    return data.buffer instanceof SharedArrayBuffer;
  }

  private start(): void {
    const wt = nodeBuiltin<{ Worker: new (src: string, o: object) => NodeWorker }>('node:worker_threads')!;
    const { loop, state } = source(this.chunk);
    // eslint-disable-next-line no-new-func -- the same source runs on this thread and in the workers
    const factory = new Function(`${state}\n${loop}\nreturn { makeState, runJob, runRowJob, compileRowFn, reportInto };`) as () => {
      reportInto: (err: SharedArrayBuffer, msg: string) => void;
      makeState: MakeState;
      runJob: RunJob;
      runRowJob: RunRowJob;
      compileRowFn: (src: string) => RowFn;
    };
    const { makeState, runJob, runRowJob, compileRowFn, reportInto } = factory();
    this.runRowJob = runRowJob;
    this.compileRowFn = compileRowFn;
    this.main = makeState(this.module, this.expFrac, this.slotCount, this.chunk);
    this.main.report = (msg) => reportInto(this.err, msg);
    this.runJob = runJob;
    for (let i = 1; i < this.threads; i++) {
      // execArgv []: the worker is plain JS and needs none of the parent's loaders (e.g. tsx).
      const w = new wt.Worker(`'use strict';\n${state}\n${loop}\n${WORKER_MAIN}`, { eval: true, execArgv: [] });
      w.on('error', (e) => {
        this.lastError = String(e);
      });
      w.on('message', (m) => {
        const msg = (m as { error?: string }).error;
        if (msg !== undefined) this.lastError = msg;
      });
      w.postMessage({
        init: true,
        module: this.module,
        expFrac: this.expFrac,
        slotCount: this.slotCount,
        chunk: this.chunk,
        ctl: this.ctl.buffer,
        err: this.err,
      });
      // After the listeners: attaching a 'message' listener refs the worker again, and a pool the
      // caller never destroys must not keep the process alive.
      w.unref();
      this.workers.push(w);
    }
  }

  /** Runs `job` on every thread; throws when a task failed. */
  run(job: Job): void {
    if (this.destroyed) throw new Error('parallel kernels: the pool was destroyed');
    if (this.main === null) this.start();
    const tasks = Math.ceil(job.n / TASK);
    const gen = this.begin(tasks);
    // Only as many workers as there are tasks beyond the calling thread's first.
    const helpers = Math.min(this.workers.length, tasks - 1);
    for (let i = 0; i < helpers; i++) this.workers[i]!.postMessage({ job, gen });
    this.runJob!(this.main!, job, this.ctl, gen);
    this.finish(tasks, job.fn);
  }

  /** Opens a job of `tasks` tasks under a new generation; returns the generation. */
  private begin(tasks: number): number {
    if (tasks > 0xfffff) throw new Error(`parallel kernels: ${tasks} tasks in one job (at most ${0xfffff})`);
    const c = this.ctl;
    this.gen = (this.gen + 1) & 0x7ff;
    Atomics.store(c, DONE, 0);
    Atomics.store(c, FAIL, 0);
    Atomics.store(new Int32Array(this.err, 0, 1), 0, 0);
    Atomics.store(c, NTASKS, tasks);
    Atomics.store(c, CNT, (this.gen << 20) | tasks);
    return this.gen;
  }

  /** Waits until every task of the job is done; throws when one failed. */
  private finish(tasks: number, what: string): void {
    const c = this.ctl;
    for (;;) {
      const done = Atomics.load(c, DONE);
      if (done >= tasks) break;
      if (Atomics.wait(c, DONE, done, 60_000) === 'timed-out' && Atomics.load(c, DONE) === done) {
        throw new Error(
          `parallel kernels: ${what}: no progress in 60 s (${done} of ${tasks} tasks done)${this.lastError ? `: ${this.lastError}` : ''}`,
        );
      }
    }
    if (Atomics.load(c, FAIL) !== 0) {
      const why = this.failure() ?? this.lastError;
      throw new Error(`parallel kernels: ${what} failed${why ? `: ${why}` : ''}`);
    }
  }

  /** The message reportInto left for this job, if any. */
  private failure(): string | null {
    const n = Atomics.load(new Int32Array(this.err, 0, 1), 0);
    if (n <= 0) return null;
    return new TextDecoder().decode(new Uint8Array(this.err, 4, n).slice());
  }

  /**
   * Runs `fn(...args, r0, r1)` over row ranges covering [0, rows), `per` rows a task, on every
   * thread; throws when a task failed. `fn` must be self-contained (it runs from its source in
   * the workers: no free variables but globals), and must give each row the same result whatever
   * the range it is in. Typed arrays in `args` that a task writes must live in SharedArrayBuffers
   * (others are copied to the workers); `rowJobArgsShareable` tells.
   */
  runRows(fn: RowFn, rows: number, per: number, args: readonly RowArg[]): void {
    if (this.destroyed) throw new Error('parallel kernels: the pool was destroyed');
    if (this.main === null) this.start();
    let id = this.rowIds.get(fn);
    if (id === undefined) {
      id = this.rowIds.size;
      this.rowIds.set(fn, id);
      const src = fn.toString();
      this.main!.rowFns[id] = this.compileRowFn!(src);
      for (const w of this.workers) w.postMessage({ define: id, src });
    }
    const tasks = Math.ceil(rows / per);
    const job: RowJob = { id, rows, per, args };
    const gen = this.begin(tasks);
    const helpers = Math.min(this.workers.length, tasks - 1);
    for (let i = 0; i < helpers; i++) this.workers[i]!.postMessage({ rowJob: job, gen });
    this.runRowJob!(this.main!, job, this.ctl, gen);
    this.finish(tasks, fn.name || 'row kernel');
  }

  /** Tasks the worker threads have run since the pool started. */
  get workerTasks(): number {
    return Atomics.load(this.ctl, WTASKS);
  }

  destroy(): void {
    this.destroyed = true;
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }
}
