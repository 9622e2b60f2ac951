/**
 * The WebAssembly SIMD elementwise kernels (wasm/elementwise.as.ts) and how the host feeds them.
 *
 * The kernels work in the module's own memory: a call walks its elements in chunks of CHUNK,
 * copies each operand's chunk in (float32: `TypedArray.set`; float16 / bfloat16: decoded by
 * storage.ts's `decodeInto`), runs the kernel and copies the results out (rounded by `roundInto`
 * for 16-bit storage). Every input chunk is in the module before any output of that chunk is
 * written, so an output may be one of the inputs (in place). The results are the TypeScript
 * kernels' bit for bit (see the module), which stay the meaning and run where WebAssembly SIMD
 * is missing and for views the chunk copies do not cover.
 *
 * Each kernel is a pure function of an element range, so a call could be split across worker
 * threads, each with its own instance and memory; this file runs one instance on the calling thread.
 */
import type { BinaryOp } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { type CallArg, type JobOperand, KernelPool, PARALLEL_MIN } from '../parallel.js';
import { decodeInto, roundInto } from '../storage.js';
import type { ViewPlan } from '../view.js';
import { ELEMENTWISE_WASM_BASE64 } from './elementwise.wasm.js';
import { EXP_FRAC } from './math.js';

/**
 * Elements per chunk: five float32 chunks (the most a kernel uses) fit in L2. A multiple of 8:
 * gelu and geluBackward go eight elements a step and may read and write past a chunk's end, in its slot.
 */
export const CHUNK = 8192;
/** Chunk slots (float32 arrays of CHUNK) in the module's memory. */
const SLOTS = 5;
/** Row or scalar operands of `binary` up to this many elements stay in the module for the whole call. */
const MAX_RESIDENT = 1 << 20;
const PAGE = 65536;
/**
 * Rows of `addInto` and gathered `binary` operands shorter than this stay with the TypeScript
 * loops: a `TypedArray.set` per row (a view allocated for each) costs more than the loop saves.
 */
export const MIN_ROW = 128;

interface Exports {
  memory: WebAssembly.Memory;
  RESERVED_BYTES: WebAssembly.Global;
  /** gelu / geluBackward: eight elements a step, so up to seven past `end` are read and written (in their slots). */
  gelu(out: number, x: number, start: number, end: number, tanh: boolean): void;
  geluBackward(dx: number, dy: number, x: number, start: number, end: number, tanh: boolean): void;
  /** Byte address in memory of row `row` of GELU table `t` (math.ts: geluTables), for tests. */
  geluRowAddress(t: number, row: number): number;
  siluMul(out: number, gate: number, up: number, start: number, end: number): void;
  siluMulBackward(dGate: number, dUp: number, dy: number, gate: number, up: number, start: number, end: number): void;
  affine(out: number, x: number, alpha: number, beta: number, start: number, end: number): void;
  binary(op: number, out: number, a: number, aMode: number, b: number, bMode: number, rowLen: number, start: number, end: number): void;
}

/** One instance with its memory laid out: the module's table and constants, SLOTS chunks, then two resident operands. */
export class ElementwiseWasm {
  readonly fns: Exports;
  /** The whole memory as float32 (re-read after `reserve`: growing replaces it). */
  heap: Float32Array;
  /** Float32 index of each chunk slot in `heap`. */
  readonly slot: readonly number[];
  /** Byte address of each chunk slot (what the kernels take). */
  readonly ptr: readonly number[];
  /** Float32 index of the two resident operands (binary's a and b). */
  private readonly residentAt: [number, number];
  private residentLen = 0;

  constructor(module: WebAssembly.Module) {
    // fastExp's arguments outside (−708, 708) go to Math.exp, as in math.ts
    this.fns = new WebAssembly.Instance(module, { 'elementwise.as': { exp: Math.exp }, 'gelu-tables.as': { exp: Math.exp } })
      .exports as unknown as Exports;
    const base = Math.ceil((this.fns.RESERVED_BYTES.value as number) / 64) * 16;
    this.slot = Array.from({ length: SLOTS }, (_, i) => base + i * CHUNK);
    this.ptr = this.slot.map((i) => 4 * i);
    this.residentAt = [base + SLOTS * CHUNK, base + SLOTS * CHUNK];
    this.heap = new Float32Array(0);
    this.reserve(0);
    new Float64Array(this.fns.memory.buffer, 0, EXP_FRAC.length).set(EXP_FRAC);
  }

  /** Makes room for two resident operands of `n` elements each. */
  reserve(n: number): void {
    if (n > this.residentLen) {
      this.residentLen = Math.ceil(n / 16) * 16;
      this.residentAt[1] = this.residentAt[0] + this.residentLen;
    }
    const bytes = 4 * (this.residentAt[1] + this.residentLen);
    const have = this.fns.memory.buffer.byteLength;
    if (bytes > have) this.fns.memory.grow(Math.ceil((bytes - have) / PAGE));
    if (this.heap.buffer !== this.fns.memory.buffer) this.heap = new Float32Array(this.fns.memory.buffer);
  }

  /** Float32 index of resident operand `which` (room for `reserve`'s n). */
  resident(which: 0 | 1): number {
    return this.residentAt[which];
  }
}

let compiled: WebAssembly.Module | null | undefined;
let instance: ElementwiseWasm | null = null;
let enabled = true;

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function compile(): void {
  const bytes = decodeBase64(ELEMENTWISE_WASM_BASE64);
  try {
    compiled = new WebAssembly.Module(bytes);
  } catch (e) {
    compiled = null; // no WebAssembly SIMD: the TypeScript kernels run
    // A browser's main thread refuses to compile a module over 4 KiB synchronously (RangeError):
    // compile it in the background, the TypeScript kernels run until it is there.
    if (e instanceof RangeError && typeof WebAssembly.compile === 'function') {
      pendingCompile = WebAssembly.compile(bytes).then(
        (m) => {
          compiled = m;
        },
        () => {},
      );
    }
  }
}

let pendingCompile: Promise<void> | null = null;

/** The instance on this thread, or null where WebAssembly SIMD is unavailable (or `setElementwiseWasm(false)`). */
export function elementwiseWasm(): ElementwiseWasm | null {
  if (!enabled) return null;
  if (instance !== null) return instance;
  if (compiled === undefined) compile();
  if (compiled === null || compiled === undefined) return null;
  try {
    instance = new ElementwiseWasm(compiled);
  } catch {
    compiled = null;
  }
  return instance;
}

/** The compiled module (for worker threads), or null where WebAssembly SIMD is unavailable. */
export function elementwiseModule(): WebAssembly.Module | null {
  if (compiled === undefined) compile();
  return compiled ?? null;
}

/** Chunk slots of an instance's memory, for worker threads that lay theirs out alike. */
export const CHUNK_SLOTS = SLOTS;

/** Settles when a background compile (see `compile`) has finished; at once when none runs. */
export function elementwiseWasmCompiled(): Promise<void> {
  return pendingCompile ?? Promise.resolve();
}

/**
 * Turns the WebAssembly kernels off (the TypeScript ones run) or back on; returns the previous
 * setting. For tests and benchmarks that compare the two.
 */
export function setElementwiseWasm(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/** Elements [start, start + n) of a float buffer into heap[at, at + n) as float32. */
export function loadChunk(w: ElementwiseWasm, buf: CpuBuffer, start: number, n: number, at: number): void {
  if (buf.dtype === 'float32') w.heap.set((buf.data as Float32Array).subarray(start, start + n), at);
  else decodeInto(buf, start, n, w.heap, at);
}

/** heap[at, at + n) into elements [start, start + n) of a float buffer, rounded to its storage dtype. */
export function storeChunk(w: ElementwiseWasm, buf: CpuBuffer, start: number, n: number, at: number): void {
  if (buf.dtype === 'float32') (buf.data as Float32Array).set(w.heap.subarray(at, at + n), start);
  else roundInto(buf.data as Uint16Array, buf.dtype as 'float16' | 'bfloat16', start, w.heap, n, at);
}

// ---- binary ----

const OPS: Readonly<Record<string, number>> = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5 };
/** Operand layouts of the module's `binary`. */
const FLAT = 0;
const ROW = 1;
const SCALAR = 2;
const MODES = { flat: FLAT, row: ROW, scalar: SCALAR } as const;

/** A float32 operand for worker threads: a row or scalar not in shared memory travels as a shared copy. */
function jobOperand(X: { kind: 'flat' | 'row' | 'scalar'; x0: number }, buf: CpuBuffer, rowLen: number): JobOperand {
  const data = buf.data as Float32Array;
  if (X.kind === 'flat' || KernelPool.shared(data)) return { data, x0: X.x0, mode: X.kind };
  const len = X.kind === 'row' ? rowLen : 1;
  const copy = new Float32Array(new SharedArrayBuffer(4 * len));
  copy.set(data.subarray(X.x0, X.x0 + len));
  return { data: copy, x0: 0, mode: X.kind };
}

/** Whether every buffer is float32 in shared memory, so worker threads can take part. */
function shareable(...bufs: CpuBuffer[]): boolean {
  for (const b of bufs) if (b.dtype !== 'float32' || !KernelPool.shared(b.data)) return false;
  return true;
}

/**
 * `kernel` over elements [0, n) of contiguous operands on the backend's worker threads as well
 * (`args`: the export's arguments, with `{ in: k }` / `{ out: k }` for operand addresses and
 * 'start' / 'end' for the chunk's range); false when the call is too small, a buffer is not
 * float32 in shared memory, or the backend has no pool: the caller runs `runChunks` then.
 */
export function runParallel(
  ctx: CpuContext,
  n: number,
  inputs: readonly CpuBuffer[],
  outputs: readonly CpuBuffer[],
  fn: string,
  args: readonly CallArg[],
): boolean {
  const pool = ctx.pool;
  if (pool === null || n < PARALLEL_MIN || !shareable(...inputs, ...outputs)) return false;
  const ins: JobOperand[] = inputs.map((b) => ({ data: b.data as Float32Array, x0: 0, mode: 'flat' }));
  pool.run({ fn, n, rowLen: 0, inputs: ins, outputs: outputs.map((b) => b.data as Float32Array), args });
  return true;
}

/**
 * How one operand of a planned binary op reaches the kernel: `flat` (elements x0 + i, read chunk
 * by chunk), `row` (the same row at x0 for every row) or `scalar` (the element x0 everywhere),
 * both copied into the module once; `rows` (a row of step 1 or 0 at its own start per row),
 * gathered chunk by chunk. Null: a step other than 0 or 1.
 */
type Operand = { kind: 'flat' | 'row' | 'scalar'; x0: number } | { kind: 'rows'; step: 0 | 1; starts: Float64Array };

function classify(plan: ViewPlan, v: number): Operand | null {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[v];
  const step = plan.step[v];
  if (step !== 0 && step !== 1) return null;
  const x0 = starts[0];
  if (rows === 1) return { kind: step === 1 ? 'flat' : 'scalar', x0 };
  let flat = step === 1;
  let same = true;
  for (let r = 1; r < rows && (flat || same); r++) {
    const s = starts[r];
    if (s !== x0 + r * rowLen) flat = false;
    if (s !== x0) same = false;
  }
  if (flat) return { kind: 'flat', x0 };
  if (same && (step === 0 || rowLen <= MAX_RESIDENT)) return { kind: step === 1 ? 'row' : 'scalar', x0 };
  return { kind: 'rows', step, starts };
}

/** Elements [s, s + n) of the op's output from a `rows` operand into heap[at, …). */
function gatherRows(
  w: ElementwiseWasm,
  buf: CpuBuffer,
  op: { step: 0 | 1; starts: Float64Array },
  rowLen: number,
  s: number,
  n: number,
  at: number,
): void {
  let r = Math.floor(s / rowLen);
  let c = s - r * rowLen;
  for (let done = 0; done < n; r++, c = 0) {
    const len = Math.min(rowLen - c, n - done);
    const p = op.starts[r];
    if (op.step === 1) {
      loadChunk(w, buf, p + c, len, at + done);
    } else {
      loadChunk(w, buf, p, 1, at + done);
      w.heap.fill(w.heap[at + done], at + done + 1, at + done + len);
    }
    done += len;
  }
}

/**
 * out (contiguous, plan.count elements) = a op b in the module, or false when its views are not
 * covered (a step other than 0 or 1, or out aliasing a gathered operand): the caller runs the
 * TypeScript loops then.
 */
export function binaryWasm(
  w: ElementwiseWasm,
  op: BinaryOp,
  o: CpuBuffer,
  ab: CpuBuffer,
  bb: CpuBuffer,
  plan: ViewPlan,
  pool: KernelPool | null = null,
): boolean {
  const code = OPS[op];
  if (code === undefined) return false;
  const A = classify(plan, 0);
  const B = classify(plan, 1);
  if (A === null || B === null) return false;
  // A gathered operand may be overwritten before it is read; flat ones are read ahead of the writes (x0 ≥ 0).
  if ((A.kind === 'rows' && o === ab) || (B.kind === 'rows' && o === bb)) return false;
  if ((A.kind === 'rows' || B.kind === 'rows') && plan.rowLen < MIN_ROW) return false;
  const { count, rowLen } = plan;
  // Threads write their ranges of out while others still read: out may alias an operand only
  // element for element (flat at offset 0).
  const aliasFree = (X: Operand, buf: CpuBuffer) => o !== buf || (X.kind === 'flat' && X.x0 === 0);
  if (
    pool !== null &&
    count >= PARALLEL_MIN &&
    A.kind !== 'rows' &&
    B.kind !== 'rows' &&
    aliasFree(A, ab) &&
    aliasFree(B, bb) &&
    shareable(o, ...(A.kind === 'flat' ? [ab] : []), ...(B.kind === 'flat' ? [bb] : [])) &&
    ab.dtype === 'float32' &&
    bb.dtype === 'float32'
  ) {
    pool.run({
      fn: 'binary',
      n: count,
      rowLen,
      inputs: [jobOperand(A, ab, rowLen), jobOperand(B, bb, rowLen)],
      outputs: [o.data as Float32Array],
      args: [code, { out: 0 }, { in: 0 }, MODES[A.kind], { in: 1 }, MODES[B.kind], rowLen, 'start', 'end'],
    });
    return true;
  }
  const resident = (X: Operand, buf: CpuBuffer, which: 0 | 1): number => {
    if (X.kind !== 'row' && X.kind !== 'scalar') return 0;
    const at = w.resident(which);
    if (X.kind === 'row') {
      loadChunk(w, buf, X.x0, rowLen, at);
    } else {
      loadChunk(w, buf, X.x0, 1, at);
      w.heap.fill(w.heap[at], at + 1, at + 4); // the module reads a scalar as 16 bytes
    }
    return at;
  };
  w.reserve(Math.max(A.kind === 'row' || B.kind === 'row' ? rowLen : 0, 4));
  const ra = resident(A, ab, 0);
  const rb = resident(B, bb, 1);
  const [sa, sb, so] = w.slot;
  const aMode = A.kind === 'row' ? ROW : A.kind === 'scalar' ? SCALAR : FLAT;
  const bMode = B.kind === 'row' ? ROW : B.kind === 'scalar' ? SCALAR : FLAT;
  const aPtr = 4 * (aMode === FLAT ? sa : ra);
  const bPtr = 4 * (bMode === FLAT ? sb : rb);
  const fns = w.fns;
  for (let s = 0; s < count; s += CHUNK) {
    const n = Math.min(CHUNK, count - s);
    if (A.kind === 'flat') loadChunk(w, ab, A.x0 + s, n, sa);
    else if (A.kind === 'rows') gatherRows(w, ab, A, rowLen, s, n, sa);
    if (B.kind === 'flat') loadChunk(w, bb, B.x0 + s, n, sb);
    else if (B.kind === 'rows') gatherRows(w, bb, B, rowLen, s, n, sb);
    fns.binary(code, 4 * so, aPtr, aMode, bPtr, bMode, rowLen, s, s + n);
    storeChunk(w, o, s, n, so);
  }
  return true;
}

/**
 * Runs `kernel(start, end)` over elements [0, n) chunk by chunk: input k is copied into slot k
 * first, output k copied out of slot inputs.length + k after (`w.ptr[k]`: slot k's byte address).
 */
export function runChunks(
  w: ElementwiseWasm,
  n: number,
  inputs: readonly CpuBuffer[],
  outputs: readonly CpuBuffer[],
  kernel: (start: number, end: number) => void,
): void {
  const ni = inputs.length;
  for (let s = 0; s < n; s += CHUNK) {
    const len = Math.min(CHUNK, n - s);
    for (let k = 0; k < ni; k++) loadChunk(w, inputs[k], s, len, w.slot[k]);
    kernel(s, s + len);
    for (let k = 0; k < outputs.length; k++) storeChunk(w, outputs[k], s, len, w.slot[ni + k]);
  }
}

/** heap[at, …) into the places of elements [s, s + n) of a `rows` operand of step 1 (gatherRows' inverse). */
function scatterRows(w: ElementwiseWasm, buf: CpuBuffer, starts: Float64Array, rowLen: number, s: number, n: number, at: number): void {
  let r = Math.floor(s / rowLen);
  let c = s - r * rowLen;
  for (let done = 0; done < n; r++, c = 0) {
    const len = Math.min(rowLen - c, n - done);
    storeChunk(w, buf, starts[r] + c, len, at + done);
    done += len;
  }
}

/**
 * dst[view(i)] += src[i] for a view whose rows have step 1 (plan.step[0] === 1), chunk by chunk:
 * dst's rows are gathered into the module, added to in float32 and put back.
 */
export function addIntoWasm(w: ElementwiseWasm, d: CpuBuffer, src: CpuBuffer, plan: ViewPlan): void {
  const { count, rowLen } = plan;
  const dst = { step: 1 as const, starts: plan.rowStart[0] };
  const [s0, s1] = w.slot;
  const p = w.ptr;
  for (let s = 0; s < count; s += CHUNK) {
    const n = Math.min(CHUNK, count - s);
    gatherRows(w, d, dst, rowLen, s, n, s0);
    loadChunk(w, src, s, n, s1);
    w.fns.binary(OPS.add, p[0], p[0], FLAT, p[1], FLAT, rowLen, s, s + n);
    scatterRows(w, d, dst.starts, rowLen, s, n, s0);
  }
}
