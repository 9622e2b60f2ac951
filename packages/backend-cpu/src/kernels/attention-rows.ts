/**
 * The per-row math of attention (see attention-rows.as.ts for its meaning): a block of score rows
 * and its per-row statistics, with the softmax and the backward's P / dS on it, in WebAssembly
 * SIMD where the engine has it and in TypeScript otherwise. The wasm kernels work in their own
 * memory, so the block arrays are views into it; the GEMMs read and write them like any array.
 */
import { ATTENTION_ROWS_WASM_BASE64 } from './attention-rows.wasm.js';

export interface AttentionRows {
  readonly kind: 'wasm' | 'js';
  /** Scores [rows, ld]; softmax: probabilities after; grad: P after. Re-read after `reserve`. */
  s: Float32Array;
  /** grad: dP [rows, ld] before, dS after. */
  ds: Float32Array;
  /** Per key of the block: 0 (real) or −Infinity (padding), read where `biased`. */
  bias: Float32Array;
  /** softmax: each row's max (−Infinity for a row that sees nothing). */
  max: Float32Array;
  /** softmax: each row's Σ e^(x − max) in float64 (0 for a row that sees nothing). */
  sum: Float64Array;
  /** grad: each row's log-sum-exp. */
  lse: Float32Array;
  /**
   * Makes room for blocks of `block` values, `keys` bias entries and `rows` rows; the arrays may
   * move. A block's rows are `ld` apart, ld a multiple of 4 (rowStride); bias needs ld entries.
   */
  reserve(block: number, keys: number, rows: number): void;
  /**
   * Softmax of each row over the first clamp(seen0 + r·step, 0, n) keys, normalized (the row
   * sums to 1; 0 where unseen, up to ld); max and sum as before normalizing.
   */
  softmax(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void;
  /** P and dS in place of S and dP (rows see as in softmax; 0 where unseen, up to ld). */
  grad(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void;
}

/** The row stride of a block of n keys: n rounded up to a multiple of 4 (whole vectors per row). */
export const rowStride = (n: number) => (n + 3) & ~3;

interface RowExports {
  init(k: number): void;
  softmaxRows(
    s: number,
    rows: number,
    n: number,
    ld: number,
    seen0: number,
    step: number,
    bias: number,
    maxOut: number,
    sumOut: number,
    k: number,
  ): void;
  gradRows(
    p: number,
    ds: number,
    rows: number,
    n: number,
    ld: number,
    seen0: number,
    step: number,
    bias: number,
    lse: number,
    k: number,
  ): void;
}

let rowModule: WebAssembly.Module | null | undefined;

function loadRowModule(): WebAssembly.Module | null {
  if (rowModule === undefined) {
    try {
      const bin = atob(ATTENTION_ROWS_WASM_BASE64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      // Synchronous compile: browsers allow it on the main thread for modules under 4 KiB.
      rowModule = new WebAssembly.Module(bytes);
    } catch {
      rowModule = null; // no WebAssembly SIMD
    }
  }
  return rowModule;
}

const PAGE = 65536;
/** Byte offset of the row module's constants (52 bytes, stored by its init); the blocks start at 64. */
const CONSTANTS = 0;
/** The module's declared maximum memory, in pages (4 GiB); nothing is reserved up front. */
const MAX_PAGES = 65536;
const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;
const seenOf = (r: number, n: number, seen0: number, step: number) => Math.min(Math.max(seen0 + r * step, 0), n);

class WasmRows implements AttentionRows {
  readonly kind = 'wasm';
  s = new Float32Array(0);
  ds = new Float32Array(0);
  bias = new Float32Array(0);
  max = new Float32Array(0);
  sum = new Float64Array(0);
  lse = new Float32Array(0);
  private readonly memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  private readonly fns: RowExports;
  private capacity = { block: -1, keys: -1, rows: -1 };
  private at = { s: 0, ds: 0, bias: 0, max: 0, sum: 0, lse: 0 };

  constructor(module: WebAssembly.Module) {
    this.fns = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as RowExports;
    this.fns.init(CONSTANTS);
  }

  reserve(block: number, keys: number, rows: number): void {
    const c = this.capacity;
    if (block <= c.block && keys <= c.keys && rows <= c.rows && this.s.buffer === this.memory.buffer) return;
    block = Math.max(block, c.block);
    keys = Math.max(keys, c.keys);
    rows = Math.max(rows, c.rows);
    const at = { s: 64, ds: 0, bias: 0, max: 0, sum: 0, lse: 0 };
    at.ds = at.s + align16(4 * block);
    at.bias = at.ds + align16(4 * block);
    at.max = at.bias + align16(4 * keys);
    at.sum = at.max + align16(4 * rows);
    at.lse = at.sum + align16(8 * rows);
    const end = at.lse + align16(4 * rows);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    const buf = this.memory.buffer;
    this.s = new Float32Array(buf, at.s, block);
    this.ds = new Float32Array(buf, at.ds, block);
    this.bias = new Float32Array(buf, at.bias, keys);
    this.max = new Float32Array(buf, at.max, rows);
    this.sum = new Float64Array(buf, at.sum, rows);
    this.lse = new Float32Array(buf, at.lse, rows);
    this.at = at;
    this.capacity = { block, keys, rows };
  }

  softmax(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void {
    const a = this.at;
    this.fns.softmaxRows(a.s, rows, n, ld, seen0, step, biased ? a.bias : 0, a.max, a.sum, CONSTANTS);
  }

  grad(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void {
    const a = this.at;
    this.fns.gradRows(a.s, a.ds, rows, n, ld, seen0, step, biased ? a.bias : 0, a.lse, CONSTANTS);
  }
}

/** The same math in TypeScript (exp in float64), where WebAssembly SIMD is missing. */
class JsRows implements AttentionRows {
  readonly kind = 'js';
  s = new Float32Array(0);
  ds = new Float32Array(0);
  bias = new Float32Array(0);
  max = new Float32Array(0);
  sum = new Float64Array(0);
  lse = new Float32Array(0);

  reserve(block: number, keys: number, rows: number): void {
    if (this.s.length < block) {
      this.s = new Float32Array(block);
      this.ds = new Float32Array(block);
    }
    if (this.bias.length < keys) this.bias = new Float32Array(keys);
    if (this.max.length < rows) {
      this.max = new Float32Array(rows);
      this.sum = new Float64Array(rows);
      this.lse = new Float32Array(rows);
    }
  }

  softmax(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void {
    const { s, bias } = this;
    for (let r = 0; r < rows; r++) {
      const row = r * ld;
      const seen = seenOf(r, n, seen0, step);
      let max = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < seen; c++) {
        const x = biased ? s[row + c] + bias[c] : s[row + c];
        if (x > max || Number.isNaN(x)) max = x;
      }
      this.max[r] = max;
      if (max === Number.NEGATIVE_INFINITY) {
        s.fill(0, row, row + ld);
        this.sum[r] = 0;
        continue;
      }
      let sum = 0;
      for (let c = 0; c < seen; c++) {
        const e = Math.fround(Math.exp((biased ? s[row + c] + bias[c] : s[row + c]) - max));
        s[row + c] = e;
        sum += e;
      }
      this.sum[r] = sum;
      const inv = Math.fround(1 / sum);
      for (let c = 0; c < seen; c++) s[row + c] *= inv;
      s.fill(0, row + seen, row + ld);
    }
  }

  grad(rows: number, n: number, ld: number, seen0: number, step: number, biased: boolean): void {
    const { s: P, ds: dS, bias } = this;
    for (let r = 0; r < rows; r++) {
      const row = r * ld;
      const l = this.lse[r];
      if (l === Number.NEGATIVE_INFINITY) {
        P.fill(0, row, row + ld);
        dS.fill(0, row, row + ld);
        continue;
      }
      const seen = seenOf(r, n, seen0, step);
      let di = 0;
      for (let c = 0; c < seen; c++) {
        const e = Math.exp((biased ? P[row + c] + bias[c] : P[row + c]) - l);
        P[row + c] = e;
        di += P[row + c] * dS[row + c];
      }
      const d = Math.fround(di);
      for (let c = 0; c < seen; c++) dS[row + c] = P[row + c] * (dS[row + c] - d);
      P.fill(0, row + seen, row + ld);
      dS.fill(0, row + seen, row + ld);
    }
  }
}

/** Row kernels: 'wasm' when the engine has WebAssembly SIMD (else 'js'), or the one asked for. */
export function createAttentionRows(kind?: 'wasm' | 'js'): AttentionRows {
  const module = kind === 'js' ? null : loadRowModule();
  if (module === null) {
    if (kind === 'wasm') throw new Error('attention: WebAssembly SIMD is not supported here');
    return new JsRows();
  }
  return new WasmRows(module);
}
