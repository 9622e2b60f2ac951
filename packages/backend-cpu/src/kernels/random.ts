/**
 * Philox4x32-10 random numbers and dropout; the numbers are core's `philoxUniform` /
 * `philoxNormal` bit for bit (rounded to the output's storage dtype).
 *
 * The words and their transforms run in WebAssembly SIMD (wasm/random.as.ts) over chunks of
 * CHUNK elements in the module's memory; the normal transform's rare pairs whose float32 rounding
 * its table-driven fast path cannot vouch for are recomputed here with Math.log/cos/sin, as the
 * reference does. Without WebAssembly SIMD the reference functions of core run instead.
 */
import {
  type DeviceBuffer,
  type DropoutParams,
  type KernelFamily,
  philox4x32,
  philoxNormal,
  philoxUniform,
  type RandomParams,
  type RowDropoutParams,
  splitKey,
} from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';
import { RANDOM_WASM_BASE64 } from './random.wasm.js';

/** Elements per chunk (a multiple of 8, so chunks start on Philox block pairs). */
const CHUNK = 16384;
const TWO32 = 4294967296;

interface RandomExports {
  memory: WebAssembly.Memory;
  TABLE_BYTES: WebAssembly.Global;
  CONST_BYTES: WebAssembly.Global;
  FRAME_BYTES: WebAssembly.Global;
  init(k: number): void;
  philox(out: number, k0: number, k1: number, cLo: number, cHi: number, nBlocks: number, k: number, frame: number): void;
  uniform(words: number, out: number, n: number, low: number, scale: number, k: number, frame: number): void;
  normal(words: number, out: number, nPairs: number, mean: number, std: number, fails: number, k: number, frame: number): number;
  normalParts(words: number, out: number, nPairs: number): void;
  dropout(words: number, x: number, out: number, n: number, keepFrom: number, scale: number, bf16: number, k: number, frame: number): void;
  roundBf16(src: number, dst: number, n: number, k: number): void;
}

/**
 * The module with its memory laid out: tables at 0, the constants, a call's scratch frame, then
 * one chunk's words, results (float32, or dropout's bfloat16 bits), failed pair indices and
 * dropout input.
 */
export interface RandomWasm {
  readonly exports: RandomExports;
  readonly consts: number;
  readonly frame: number;
  readonly words: number;
  readonly out: number;
  readonly fails: number;
  readonly x: number;
  readonly wordView: Uint32Array;
  readonly outView: Float32Array;
  readonly out16View: Uint16Array;
  readonly failView: Int32Array;
  readonly xView: Float32Array;
  readonly x16View: Uint16Array;
}

let wasm: RandomWasm | null | undefined;

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The instantiated module, or null where WebAssembly SIMD is unavailable. */
export function randomWasm(): RandomWasm | null {
  if (wasm !== undefined) return wasm;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(decodeBase64(RANDOM_WASM_BASE64)), {});
    const exports = instance.exports as unknown as RandomExports;
    const tableBytes = exports.TABLE_BYTES.value as number;
    const consts = Math.ceil(tableBytes / 64) * 64;
    const frame = consts + Math.ceil((exports.CONST_BYTES.value as number) / 64) * 64;
    const words = frame + Math.ceil((exports.FRAME_BYTES.value as number) / 64) * 64;
    const out = words + CHUNK * 4;
    const fails = out + CHUNK * 4;
    const x = fails + CHUNK * 2;
    const end = x + CHUNK * 4;
    const pages = Math.ceil(end / 65536) - exports.memory.buffer.byteLength / 65536;
    if (pages > 0) exports.memory.grow(pages);
    const buffer = exports.memory.buffer;
    fillTables(new Float64Array(buffer, 0, tableBytes / 8));
    exports.init(consts);
    wasm = {
      exports,
      consts,
      frame,
      words,
      out,
      fails,
      x,
      wordView: new Uint32Array(buffer, words, CHUNK),
      outView: new Float32Array(buffer, out, CHUNK),
      out16View: new Uint16Array(buffer, out, CHUNK),
      failView: new Int32Array(buffer, fails, CHUNK / 2),
      xView: new Float32Array(buffer, x, CHUNK),
      x16View: new Uint16Array(buffer, x, CHUNK),
    };
  } catch {
    wasm = null;
  }
  return wasm;
}

/** The tables of `normal` in wasm/random.as.ts, from the Math functions the reference calls. */
function fillTables(t: Float64Array): void {
  const lo = 4096 * 2;
  const lg = lo + 4096 * 2;
  for (let h = 0; h < 4096; h++) {
    t[2 * h] = Math.cos(2 * Math.PI * (h / 4096));
    t[2 * h + 1] = Math.sin(2 * Math.PI * (h / 4096));
  }
  for (let l = 0; l < 4096; l++) {
    t[lo + 2 * l] = Math.cos(2 * Math.PI * (l / 16777216));
    t[lo + 2 * l + 1] = Math.sin(2 * Math.PI * (l / 16777216));
  }
  for (let i = 0; i <= 256; i++) {
    const r = 1 / (1 + i / 256);
    t[lg + 2 * i] = r;
    // ln(1/r) for the rounded r; the end points exact so that ln u1 near 1 cancels exactly
    t[lg + 2 * i + 1] = i === 0 ? 0 : i === 256 ? Math.LN2 : -Math.log(r);
  }
}

/** Writes the Philox words of elements [start, start + m) of stream (key, offset) into the module's word chunk. */
function chunkWords(w: RandomWasm, k0: number, k1: number, offset: number, start: number, m: number): void {
  const c = offset + start / 4;
  w.exports.philox(w.words, k0, k1, c % TWO32, Math.floor(c / TWO32), Math.ceil(m / 4), w.consts, w.frame);
}

/** Reference Box–Muller (philoxNormal) for the word pair at 2j into out[2j], out[2j + 1]. */
function normalPair(words: Uint32Array, out: Float32Array, j: number, mean: number, std: number): void {
  const u1 = ((words[2 * j] >>> 8) + 1) * 2 ** -24;
  const u2 = (words[2 * j + 1] >>> 8) * 2 ** -24;
  const r = Math.sqrt(-2 * Math.log(u1));
  const t = 2 * Math.PI * u2;
  out[2 * j] = mean + std * r * Math.cos(t);
  out[2 * j + 1] = mean + std * r * Math.sin(t);
}

/** Whether `normal`'s error bounds hold: std and mean of moderate size (no float64 underflow or overflow). */
function fastNormalRange(mean: number, std: number): boolean {
  const s = Math.abs(std);
  return s >= 2 ** -100 && s <= 2 ** 100 && Math.abs(mean) <= 2 ** 100;
}

function random(_ctx: CpuContext, out: DeviceBuffer, p: RandomParams): void {
  const o = out as CpuBuffer;
  const [k0, k1] = splitKey(p.seed);
  const w = randomWasm();
  if (w === null) {
    storeF32(
      o,
      p.distribution === 'uniform'
        ? philoxUniform(p.seed, p.offset, o.size, p.low, p.high)
        : philoxNormal(p.seed, p.offset, o.size, p.low, p.high),
    );
    return;
  }
  const n = o.size;
  const fast = p.distribution === 'uniform' || fastNormalRange(p.low, p.high);
  for (let start = 0; start < n; start += CHUNK) {
    const m = Math.min(CHUNK, n - start);
    chunkWords(w, k0, k1, p.offset, start, m);
    const nPairs = Math.ceil(m / 4) * 2;
    if (p.distribution === 'uniform') {
      w.exports.uniform(w.words, w.out, m, p.low, p.high - p.low, w.consts, w.frame);
    } else if (fast) {
      const nf = w.exports.normal(w.words, w.out, nPairs, p.low, p.high, w.fails, w.consts, w.frame);
      for (let f = 0; f < nf; f++) normalPair(w.wordView, w.outView, w.failView[f], p.low, p.high);
    } else {
      for (let j = 0; j < nPairs; j++) normalPair(w.wordView, w.outView, j, p.low, p.high);
    }
    storeChunk(w, o, start, m);
  }
}

/** Stores the chunk's float32 results at element `start` of `o`, rounded to its dtype (bfloat16 in the module). */
function storeChunk(w: RandomWasm, o: CpuBuffer, start: number, m: number): void {
  if (o.dtype === 'bfloat16') {
    w.exports.roundBf16(w.out, w.x, m, w.consts);
    (o.data as Uint16Array).set(w.x16View.subarray(0, m), start);
  } else {
    storeF32(o, w.outView.subarray(0, m), start);
  }
}

/**
 * out = x · mask / (1 − p) with mask[i] = (u[i] ≥ p), u = philoxUniform(seed, offset, n). p is
 * compared in float32 (as a GPU kernel would). p = 0 keeps everything; p = 1 gives zeros.
 */
function dropout(_ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  applyMask(out as CpuBuffer, x as CpuBuffer, p);
}

/** dx = dy · mask / (1 − p), the mask regenerated from (seed, offset). */
function dropoutBackward(_ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
  applyMask(dx as CpuBuffer, dy as CpuBuffer, p);
}

/**
 * Per-example dropout keyed on the device (here: in host memory): row r draws from the key pair
 * `stream` of streamKeys at counter rowKeys[2r] · 2²⁶ + rowKeys[2r+1] · ⌈features/4⌉. A key outside
 * [0, 2²⁷) or a position past the example's 2²⁶ counters throws, naming the row.
 */
function rowDropout(
  _ctx: CpuContext,
  out: DeviceBuffer,
  x: DeviceBuffer,
  streamKeys: DeviceBuffer,
  rowKeys: DeviceBuffer,
  p: RowDropoutParams,
): void {
  applyRowMask('rowDropout', out as CpuBuffer, x as CpuBuffer, streamKeys as CpuBuffer, rowKeys as CpuBuffer, p);
}

/** dx = dy · mask / (1 − p), rowDropout's mask regenerated from the same keys. */
function rowDropoutBackward(
  _ctx: CpuContext,
  dx: DeviceBuffer,
  dy: DeviceBuffer,
  streamKeys: DeviceBuffer,
  rowKeys: DeviceBuffer,
  p: RowDropoutParams,
): void {
  applyRowMask('rowDropoutBackward', dx as CpuBuffer, dy as CpuBuffer, streamKeys as CpuBuffer, rowKeys as CpuBuffer, p);
}

/** The randomness kernels; their arguments are checked in core (kernelChecks), the row keys' values here. */
export const randomKernels = { random, dropout, dropoutBackward, rowDropout, rowDropoutBackward } satisfies KernelFamily<CpuContext>;

function applyMask(o: CpuBuffer, xb: CpuBuffer, p: DropoutParams): void {
  const n = o.size;
  const [k0, k1] = splitKey(p.seed);
  const scale = p.p < 1 ? 1 / (1 - p.p) : 0;
  const w = randomWasm();
  if (w === null) {
    const u = philoxUniform(p.seed, p.offset, n);
    const threshold = Math.fround(p.p);
    const xs = loadF32(xb, 0, n);
    const ys = outF32(o, n);
    for (let i = 0; i < n; i++) ys[i] = u[i] >= threshold ? xs[i] * scale : 0;
    storeF32(o, ys);
    return;
  }
  // u[i] = (w[i] >>> 8) 2⁻²⁴ exactly, so u[i] ≥ fround(p) ⇔ (w[i] >>> 8) ≥ ⌈fround(p) 2²⁴⌉.
  const keepFrom = Math.ceil(Math.fround(p.p) * 16777216);
  // bfloat16 in and out stay raw bits in the module; other dtypes pass through float32.
  const raw16 = o.dtype === 'bfloat16' && xb.dtype === 'bfloat16';
  for (let start = 0; start < n; start += CHUNK) {
    const m = Math.min(CHUNK, n - start);
    chunkWords(w, k0, k1, p.offset, start, m);
    if (raw16) {
      w.x16View.set((xb.data as Uint16Array).subarray(start, start + m));
      w.exports.dropout(w.words, w.x, w.out, m, keepFrom, scale, 1, w.consts, w.frame);
      (o.data as Uint16Array).set(w.out16View.subarray(0, m), start);
    } else {
      w.xView.set(loadF32(xb, start, m));
      w.exports.dropout(w.words, w.x, w.out, m, keepFrom, scale, 0, w.consts, w.frame);
      storeChunk(w, o, start, m);
    }
  }
}

const EXAMPLE_KEYS = 2 ** 27;
const EXAMPLE_COUNTERS = 2 ** 26;

/** Each row's first Philox counter from its (example key, position) pair; out-of-range pairs throw naming the row. */
function rowCounters(K: string, rowKeys: Int32Array, rows: number, features: number): Float64Array {
  const blocks = Math.ceil(features / 4);
  const first = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const key = rowKeys[2 * r]!;
    const position = rowKeys[2 * r + 1]!;
    if (key < 0 || key >= EXAMPLE_KEYS) throw new Error(`${K}: row ${r} has example key ${key} (rowKeys[${2 * r}]), outside [0, 2^27)`);
    if (position < 0 || (position + 1) * blocks > EXAMPLE_COUNTERS)
      throw new Error(
        `${K}: row ${r} has position ${position} (rowKeys[${2 * r + 1}]), outside the 2^26 counters of one example for rows of ${features} features`,
      );
    first[r] = key * EXAMPLE_COUNTERS + position * blocks;
  }
  return first;
}

function applyRowMask(K: string, o: CpuBuffer, xb: CpuBuffer, sk: CpuBuffer, rk: CpuBuffer, p: RowDropoutParams): void {
  const { rows, features } = p;
  const streamKeys = sk.data as Int32Array;
  const k0 = streamKeys[2 * p.stream]! >>> 0;
  const k1 = streamKeys[2 * p.stream + 1]! >>> 0;
  const first = rowCounters(K, rk.data as Int32Array, rows, features);
  if (o.size === 0) return;
  const w = randomWasm();
  if (w === null) {
    rowMaskJs(o, xb, k0, k1, first, p);
    return;
  }
  const scale = p.p < 1 ? 1 / (1 - p.p) : 0;
  const keepFrom = Math.ceil(Math.fround(p.p) * 16777216);
  const raw16 = o.dtype === 'bfloat16' && xb.dtype === 'bfloat16';
  // A chunk holds whole rows (a row longer than a chunk is cut at multiples of CHUNK, so at whole
  // counters), row q's words at q · features.
  const words = (at: number, counter: number, m: number) =>
    w.exports.philox(at, k0, k1, counter % TWO32, Math.floor(counter / TWO32), Math.ceil(m / 4), w.consts, w.frame);
  const apply = (start: number, m: number) => {
    if (raw16) {
      w.x16View.set((xb.data as Uint16Array).subarray(start, start + m));
      w.exports.dropout(w.words, w.x, w.out, m, keepFrom, scale, 1, w.consts, w.frame);
      (o.data as Uint16Array).set(w.out16View.subarray(0, m), start);
    } else {
      w.xView.set(loadF32(xb, start, m));
      w.exports.dropout(w.words, w.x, w.out, m, keepFrom, scale, 0, w.consts, w.frame);
      storeChunk(w, o, start, m);
    }
  };
  for (let r = 0; r < rows; ) {
    if (features > CHUNK) {
      for (let j = 0; j < features; j += CHUNK) {
        const m = Math.min(CHUNK, features - j);
        words(w.words, first[r]! + j / 4, m);
        apply(r * features + j, m);
      }
      r++;
      continue;
    }
    const count = Math.min(rows - r, Math.floor(CHUNK / features));
    chunkRowWords(w, first, r, count, features, words);
    apply(r * features, count * features);
    r += count;
  }
}

/**
 * The words of rows [r, r + count) into the chunk, row q at q · features. Rows whose counters run
 * on (consecutive positions of one example) share one philox call: written in place when a row
 * is whole blocks, else into the output area and moved row by row. philox writes whole groups of
 * 8 blocks; what runs past a row is overwritten by the next one (or by the dropout's output).
 */
function chunkRowWords(
  w: RandomWasm,
  first: Float64Array,
  r: number,
  count: number,
  features: number,
  words: (at: number, counter: number, m: number) => void,
): void {
  const blocks = Math.ceil(features / 4);
  const aligned = features % 4 === 0;
  const mem = new Uint32Array(w.exports.memory.buffer);
  const scratchRows = Math.max(1, Math.floor((CHUNK - 32) / (blocks * 4)));
  for (let q = 0; q < count; ) {
    const limit = Math.min(count - q, aligned ? count : scratchRows);
    let len = 1;
    while (len < limit && first[r + q + len] === first[r + q]! + len * blocks) len++;
    if (aligned || len === 1) {
      words(w.words + q * features * 4, first[r + q]!, len * blocks * 4);
    } else {
      words(w.out, first[r + q]!, len * blocks * 4);
      for (let k = 0; k < len; k++) {
        const from = w.out / 4 + k * blocks * 4;
        mem.copyWithin(w.words / 4 + (q + k) * features, from, from + features);
      }
    }
    q += len;
  }
}

/** rowDropout without WebAssembly SIMD: Philox block by block, as core's reference. */
function rowMaskJs(o: CpuBuffer, xb: CpuBuffer, k0: number, k1: number, first: Float64Array, p: RowDropoutParams): void {
  const { rows, features } = p;
  const n = rows * features;
  const scale = p.p < 1 ? 1 / (1 - p.p) : 0;
  const threshold = Math.fround(p.p);
  const xs = loadF32(xb, 0, n);
  const ys = outF32(o, n);
  const block = new Uint32Array(4);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < features; j += 4) {
      const c = first[r]! + j / 4;
      philox4x32(c % TWO32, Math.floor(c / TWO32), 0, 0, k0, k1, block);
      for (let l = 0; l < 4 && j + l < features; l++) {
        const i = r * features + j + l;
        ys[i] = (block[l]! >>> 8) * 2 ** -24 >= threshold ? xs[i]! * scale : 0;
      }
    }
  }
  storeF32(o, ys);
}
