/**
 * The argument checks of every kernel of `Backend`, written once. `composeBackend` (compose.ts)
 * runs `kernelChecks[kernel]` before it calls a backend's implementation, so a kernel
 * implementation receives only buffers that are live buffers of its own backend, of the right
 * role and with the elements its parameters need, and parameters that are counts, finite numbers
 * and consistent with each other. What is left to a backend is what only it can check (values
 * inside buffers, such as ids and targets, on a backend that can read them).
 *
 * Each check takes the backend's `CheckContext` and then the kernel's own arguments. The wording
 * of every message is the reference backend's: `<kernel>: <argument> <what was wrong>`.
 */
import type {
  AttentionParams,
  Backend,
  BinaryOp,
  CrossEntropyParams,
  DeviceBuffer,
  DropoutParams,
  MatmulParams,
  NormParams,
  RandomParams,
  ReduceOp,
  RotaryParams,
  RowDropoutParams,
  UnaryOp,
  View,
} from './backend.js';
import { type BufferRole, type CheckContext, checkBuffer, checkCount, checkFinite, checkSameSize, checkView } from './backend-args.js';

/** The kernels of `Backend`: every method but memory management. */
export type KernelName = Exclude<
  keyof Backend,
  'name' | 'dtypes' | 'alloc' | 'write' | 'read' | 'free' | 'memory' | 'resetPeak' | 'sync' | 'destroy' | 'captureGraph'
>;

/** One check per kernel: the backend's context, then the kernel's arguments. */
export type KernelChecks = { readonly [K in KernelName]: (c: CheckContext, ...args: Parameters<Backend[K]>) => void };

export const UNARY_OPS: ReadonlySet<string> = new Set<UnaryOp>([
  'neg',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'square',
  'abs',
  'silu',
  'sigmoid',
  'tanh',
  'relu',
]);
export const BINARY_OPS: ReadonlySet<string> = new Set<BinaryOp>(['add', 'sub', 'mul', 'div', 'max', 'min']);

/** Unary ops whose backward reads the forward output y rather than x. */
export function unaryBackwardReadsY(op: UnaryOp): boolean {
  return op === 'exp' || op === 'sqrt' || op === 'rsqrt' || op === 'sigmoid' || op === 'tanh';
}

const buf = checkBuffer;

/** An elementwise operand: at least, then exactly, `size` elements. */
function same(c: CheckContext, kernel: string, name: string, b: DeviceBuffer, size: number, role: BufferRole): void {
  checkBuffer(c, kernel, name, b, size, role);
  checkSameSize(kernel, name, b, size);
}

function opt(c: CheckContext, kernel: string, name: string, b: DeviceBuffer | null | undefined, need: number, role: BufferRole): void {
  if (b !== null && b !== undefined) checkBuffer(c, kernel, name, b, need, role);
}

function checkSeed(kernel: string, seed: number, offset: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${kernel}: seed must be a non-negative safe integer, got ${seed}`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`${kernel}: offset must be a non-negative safe integer, got ${offset}`);
}

// --- data movement and elementwise ----------------------------------------------------------------

function fill(c: CheckContext, out: DeviceBuffer, value: number): void {
  buf(c, 'fill', 'out', out, 0, 'any');
  if (out.dtype === 'int32' && (!Number.isInteger(value) || value < -2147483648 || value > 2147483647)) {
    throw new Error(`fill: value ${value} cannot be stored in an int32 buffer: use an integer in [-2^31, 2^31)`);
  }
}

function copy(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  buf(c, 'copy', 'x', x, 0, 'any');
  const count = checkView('copy', 'x', view, view.shape, x.size);
  buf(c, 'copy', 'out', out, count, 'any');
  if (out === x) throw new Error('copy: out and x are the same buffer: copy into a separate buffer');
}

function addInto(c: CheckContext, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  buf(c, 'addInto', 'dst', dst, 0, 'float');
  const count = checkView('addInto', 'dst', view, view.shape, dst.size);
  buf(c, 'addInto', 'src', src, count, 'float');
  if (dst === src) throw new Error('addInto: dst and src are the same buffer');
}

function unary(c: CheckContext, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  if (!UNARY_OPS.has(op)) throw new Error(`unary: unknown op ${JSON.stringify(op)}`);
  const K = `unary(${op})`;
  buf(c, K, 'out', out, 0, 'float');
  same(c, K, 'x', x, out.size, 'float');
}

function unaryBackward(c: CheckContext, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  if (!UNARY_OPS.has(op)) throw new Error(`unaryBackward: unknown op ${JSON.stringify(op)}`);
  const K = `unaryBackward(${op})`;
  buf(c, K, 'dx', dx, 0, 'float');
  same(c, K, 'dy', dy, dx.size, 'float');
  if (unaryBackwardReadsY(op)) same(c, K, 'y', y, dx.size, 'float');
  else same(c, K, 'x', x, dx.size, 'float');
}

function affine(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  checkFinite('affine', 'alpha', alpha);
  checkFinite('affine', 'beta', beta);
  buf(c, 'affine', 'out', out, 0, 'float');
  same(c, 'affine', 'x', x, out.size, 'float');
}

function binary(c: CheckContext, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  if (!BINARY_OPS.has(op)) throw new Error(`binary: unknown op ${JSON.stringify(op)}`);
  const K = `binary(${op})`;
  buf(c, K, 'a', a, 0, 'float');
  buf(c, K, 'b', b, 0, 'float');
  const count = checkView(K, 'a', aView, aView.shape, a.size);
  checkView(K, 'b', bView, aView.shape, b.size);
  buf(c, K, 'out', out, count, 'float');
}

function reduce(c: CheckContext, op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, len: number, inner: number): void {
  const K = `reduce(${op})`;
  checkCount(K, 'outer', outer);
  checkCount(K, 'reduce', len);
  checkCount(K, 'inner', inner);
  if (op !== 'sum' && op !== 'max') throw new Error(`reduce: unknown op ${JSON.stringify(op)}`);
  buf(c, K, 'out', out, outer * inner, 'float');
  buf(c, K, 'x', x, outer * len * inner, 'float');
}

function argmax(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
  checkCount('argmax', 'rows', rows);
  checkCount('argmax', 'cols', cols);
  if (cols === 0 && rows > 0) throw new Error('argmax: cols is 0, so the rows have no largest element');
  buf(c, 'argmax', 'out', out, rows, 'int32');
  buf(c, 'argmax', 'x', x, rows * cols, 'float');
}

// --- matmul and gather ----------------------------------------------------------------------------

/** Elements that `batch` matrices of `size` elements, `stride` apart, span (0 for an empty batch or matrix). */
export function matmulSpan(batch: number, stride: number, size: number): number {
  return batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size;
}

function matmul(c: CheckContext, out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
  const { batch, m, n, k } = p;
  for (const key of MATMUL_COUNTS) checkCount('matmul', key, p[key]);
  checkFinite('matmul', 'alpha', p.alpha);
  buf(c, 'matmul', 'a', a, matmulSpan(batch, p.strideA, m * k), 'float');
  buf(c, 'matmul', 'b', b, matmulSpan(batch, p.strideB, k * n), 'float');
  buf(c, 'matmul', 'out', out, matmulSpan(batch, p.strideOut, m * n), 'float');
  if (out === a || out === b) throw new Error('matmul: out must not be the same buffer as a or b');
}
const MATMUL_COUNTS = ['batch', 'm', 'n', 'k', 'strideA', 'strideB', 'strideOut'] as const;

/** The rows of an embedding table of `size` elements and width `dim` (0 when dim is 0). */
export function embeddingRows(kernel: string, weight: DeviceBuffer, dim: number): number {
  if (dim === 0) return 0;
  if (weight.size % dim !== 0) throw new Error(`${kernel}: the weight buffer has ${weight.size} elements, not a multiple of dim ${dim}`);
  return weight.size / dim;
}

function embedding(c: CheckContext, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  checkCount('embedding', 'n', n);
  checkCount('embedding', 'dim', dim);
  buf(c, 'embedding', 'out', out, n * dim, 'float');
  buf(c, 'embedding', 'weight', weight, dim, 'float');
  buf(c, 'embedding', 'ids', ids, n, 'int32');
  embeddingRows('embedding', weight, dim);
}

function embeddingBackward(c: CheckContext, dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  const K = 'embeddingBackward';
  checkCount(K, 'n', n);
  checkCount(K, 'dim', dim);
  buf(c, K, 'dWeight', dWeight, dim, 'float');
  embeddingRows(K, dWeight, dim);
  buf(c, K, 'dOut', dOut, n * dim, 'float');
  buf(c, K, 'ids', ids, n, 'int32');
}

/**
 * For backends that read ids on the host (CPU, oracle): each of the first `n` ids names a row of
 * the table, 0..rows − 1.
 */
export function checkIdsInRange(kernel: string, ids: ArrayLike<number>, n: number, rows: number): void {
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= rows) throw new Error(`${kernel}: ids[${i}] = ${id} is outside the weight's rows: valid ids are 0..${rows - 1}`);
  }
}

/** For backends that read targets on the host: each of the `rows` targets is a class or ignoreIndex. */
export function checkTargetsInRange(kernel: string, targets: ArrayLike<number>, p: CrossEntropyParams): void {
  for (let r = 0; r < p.rows; r++) {
    const t = targets[r]!;
    if (t !== p.ignoreIndex && (t < 0 || t >= p.classes)) {
      throw new Error(`${kernel}: targets[${r}] = ${t} is not a class: use 0..${p.classes - 1} or ignoreIndex ${p.ignoreIndex}`);
    }
  }
}

// --- norms and rotary -----------------------------------------------------------------------------

function normParams(kernel: string, p: NormParams): void {
  checkCount(kernel, 'rows', p.rows);
  checkCount(kernel, 'dim', p.dim);
  checkFinite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
}

const layerNorm: KernelChecks['layerNorm'] = (c, out, mean, rstd, x, weight, bias, p) => {
  const K = 'layerNorm';
  normParams(K, p);
  const { rows, dim } = p;
  buf(c, K, 'out', out, rows * dim, 'float');
  buf(c, K, 'mean', mean, rows, 'float32');
  buf(c, K, 'rstd', rstd, rows, 'float32');
  buf(c, K, 'x', x, rows * dim, 'float');
  opt(c, K, 'weight', weight, dim, 'float');
  opt(c, K, 'bias', bias, dim, 'float');
};

const layerNormBackward: KernelChecks['layerNormBackward'] = (c, dx, dWeight, dBias, dy, x, weight, mean, rstd, p) => {
  const K = 'layerNormBackward';
  normParams(K, p);
  const { rows, dim } = p;
  buf(c, K, 'dx', dx, rows * dim, 'float');
  opt(c, K, 'dWeight', dWeight, dim, 'float32');
  opt(c, K, 'dBias', dBias, dim, 'float32');
  buf(c, K, 'dy', dy, rows * dim, 'float');
  buf(c, K, 'x', x, rows * dim, 'float');
  opt(c, K, 'weight', weight, dim, 'float');
  buf(c, K, 'mean', mean, rows, 'float32');
  buf(c, K, 'rstd', rstd, rows, 'float32');
};

const rmsNorm: KernelChecks['rmsNorm'] = (c, out, rstd, x, weight, p) => {
  const K = 'rmsNorm';
  normParams(K, p);
  const { rows, dim } = p;
  buf(c, K, 'out', out, rows * dim, 'float');
  buf(c, K, 'rstd', rstd, rows, 'float32');
  buf(c, K, 'x', x, rows * dim, 'float');
  opt(c, K, 'weight', weight, dim, 'float');
};

const rmsNormBackward: KernelChecks['rmsNormBackward'] = (c, dx, dWeight, dy, x, weight, rstd, p) => {
  const K = 'rmsNormBackward';
  normParams(K, p);
  const { rows, dim } = p;
  buf(c, K, 'dx', dx, rows * dim, 'float');
  opt(c, K, 'dWeight', dWeight, dim, 'float32');
  buf(c, K, 'dy', dy, rows * dim, 'float');
  buf(c, K, 'x', x, rows * dim, 'float');
  opt(c, K, 'weight', weight, dim, 'float');
  buf(c, K, 'rstd', rstd, rows, 'float32');
};

function rotation(
  c: CheckContext,
  K: string,
  outName: string,
  xName: string,
  out: DeviceBuffer,
  x: DeviceBuffer,
  positions: DeviceBuffer,
  p: RotaryParams,
): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  checkCount(K, 'batch', batch);
  checkCount(K, 'seq', seq);
  checkCount(K, 'heads', heads);
  checkCount(K, 'headDim', headDim);
  checkCount(K, 'rotaryDim', rotaryDim);
  checkFinite(K, 'base', base);
  checkFinite(K, 'positionScale', positionScale);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim)
    throw new Error(`${K}: rotaryDim ${rotaryDim} must be even and at most headDim ${headDim}`);
  if (!(base > 0) || !(positionScale > 0)) throw new Error(`${K}: base (${base}) and positionScale (${positionScale}) must be positive`);
  const n = batch * seq * heads * headDim;
  buf(c, K, outName, out, n, 'float');
  buf(c, K, xName, x, n, 'float');
  buf(c, K, 'positions', positions, batch * seq, 'int32');
}

function rotary(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotation(c, 'rotary', 'out', 'x', out, x, positions, p);
}

function rotaryBackward(c: CheckContext, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotation(c, 'rotaryBackward', 'dx', 'dy', dx, dy, positions, p);
}

// --- attention ------------------------------------------------------------------------------------

function attentionParams(K: string, p: AttentionParams): void {
  checkCount(K, 'batch', p.batch);
  checkCount(K, 'seqQ', p.seqQ);
  checkCount(K, 'seqK', p.seqK);
  checkCount(K, 'heads', p.heads);
  checkCount(K, 'kvHeads', p.kvHeads);
  checkCount(K, 'headDim', p.headDim);
  checkFinite(K, 'scale', p.scale);
  if (p.kvHeads === 0 ? p.heads !== 0 : p.heads % p.kvHeads !== 0) {
    throw new Error(`${K}: heads ${p.heads} must be a multiple of kvHeads ${p.kvHeads}`);
  }
}

const attention: KernelChecks['attention'] = (c, out, lse, q, k, v, mask, p) => {
  const K = 'attention';
  attentionParams(K, p);
  const nq = p.batch * p.seqQ * p.heads * p.headDim;
  const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
  buf(c, K, 'out', out, nq, 'float');
  buf(c, K, 'lse', lse, p.batch * p.heads * p.seqQ, 'float32');
  buf(c, K, 'q', q, nq, 'float');
  buf(c, K, 'k', k, nk, 'float');
  buf(c, K, 'v', v, nk, 'float');
  opt(c, K, 'mask', mask, p.batch * p.seqK, 'int32');
  if (out === q || out === k || out === v) throw new Error('attention: out must not be the same buffer as q, k or v');
};

const attentionBackward: KernelChecks['attentionBackward'] = (c, dq, dk, dv, dOut, q, k, v, out, lse, mask, p) => {
  const K = 'attentionBackward';
  attentionParams(K, p);
  const nq = p.batch * p.seqQ * p.heads * p.headDim;
  const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
  buf(c, K, 'dq', dq, nq, 'float');
  buf(c, K, 'dk', dk, nk, 'float');
  buf(c, K, 'dv', dv, nk, 'float');
  buf(c, K, 'dOut', dOut, nq, 'float');
  buf(c, K, 'q', q, nq, 'float');
  buf(c, K, 'k', k, nk, 'float');
  buf(c, K, 'v', v, nk, 'float');
  buf(c, K, 'out', out, nq, 'float');
  buf(c, K, 'lse', lse, p.batch * p.heads * p.seqQ, 'float32');
  opt(c, K, 'mask', mask, p.batch * p.seqK, 'int32');
  notAnInput('dq', dq, dOut, q, k, v, out);
  notAnInput('dk', dk, dOut, q, k, v, out);
  notAnInput('dv', dv, dOut, q, k, v, out);
};

function notAnInput(
  name: string,
  g: DeviceBuffer,
  dOut: DeviceBuffer,
  q: DeviceBuffer,
  k: DeviceBuffer,
  v: DeviceBuffer,
  out: DeviceBuffer,
): void {
  if (g === dOut || g === q || g === k || g === v || g === out) {
    throw new Error(`attentionBackward: ${name} must not be the same buffer as an input`);
  }
}

// --- activations, loss, randomness, optimizer -----------------------------------------------------

function gelu(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, _approximate: boolean): void {
  buf(c, 'gelu', 'out', out, 0, 'float');
  same(c, 'gelu', 'x', x, out.size, 'float');
}

function geluBackward(c: CheckContext, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, _approximate: boolean): void {
  buf(c, 'geluBackward', 'dx', dx, 0, 'float');
  same(c, 'geluBackward', 'dy', dy, dx.size, 'float');
  same(c, 'geluBackward', 'x', x, dx.size, 'float');
}

function siluMul(c: CheckContext, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  buf(c, 'siluMul', 'out', out, 0, 'float');
  same(c, 'siluMul', 'gate', gate, out.size, 'float');
  same(c, 'siluMul', 'up', up, out.size, 'float');
}

const siluMulBackward: KernelChecks['siluMulBackward'] = (c, dGate, dUp, dy, gate, up) => {
  const K = 'siluMulBackward';
  buf(c, K, 'dGate', dGate, 0, 'float');
  const n = dGate.size;
  same(c, K, 'dUp', dUp, n, 'float');
  if (dGate === dUp) throw new Error(`${K}: dGate and dUp must be different buffers`);
  same(c, K, 'dy', dy, n, 'float');
  same(c, K, 'gate', gate, n, 'float');
  same(c, K, 'up', up, n, 'float');
};

function lossParams(K: string, p: CrossEntropyParams): void {
  checkCount(K, 'rows', p.rows);
  checkCount(K, 'classes', p.classes);
  if (!Number.isSafeInteger(p.ignoreIndex)) throw new Error(`${K}: ignoreIndex must be an integer, got ${p.ignoreIndex}`);
}

const crossEntropy: KernelChecks['crossEntropy'] = (c, loss, lse, logits, targets, p) => {
  const K = 'crossEntropy';
  lossParams(K, p);
  buf(c, K, 'loss', loss, p.rows, 'float32');
  buf(c, K, 'lse', lse, p.rows, 'float32');
  buf(c, K, 'logits', logits, p.rows * p.classes, 'float');
  buf(c, K, 'targets', targets, p.rows, 'int32');
};

const crossEntropyBackward: KernelChecks['crossEntropyBackward'] = (c, dLogits, dLoss, logits, targets, lse, p) => {
  const K = 'crossEntropyBackward';
  lossParams(K, p);
  buf(c, K, 'dLogits', dLogits, p.rows * p.classes, 'float');
  buf(c, K, 'dLoss', dLoss, p.rows, 'float');
  buf(c, K, 'logits', logits, p.rows * p.classes, 'float');
  buf(c, K, 'targets', targets, p.rows, 'int32');
  buf(c, K, 'lse', lse, p.rows, 'float32');
};

function random(c: CheckContext, out: DeviceBuffer, p: RandomParams): void {
  buf(c, 'random', 'out', out, 0, 'float');
  checkFinite('random', 'low', p.low);
  checkFinite('random', 'high', p.high);
  if (p.distribution !== 'uniform' && p.distribution !== 'normal')
    throw new Error(`random: distribution ${JSON.stringify(p.distribution)} is not supported: use uniform or normal`);
  checkSeed('random', p.seed, p.offset);
}

function masked(c: CheckContext, K: string, outName: string, xName: string, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  checkFinite(K, 'p', p.p);
  if (p.p < 0 || p.p > 1) throw new Error(`${K}: p must be in [0, 1], got ${p.p}`);
  buf(c, K, outName, out, 0, 'float');
  same(c, K, xName, x, out.size, 'float');
  checkSeed(K, p.seed, p.offset);
}

function dropout(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  masked(c, 'dropout', 'out', 'x', out, x, p);
}

function dropoutBackward(c: CheckContext, dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
  masked(c, 'dropoutBackward', 'dx', 'dy', dx, dy, p);
}

/**
 * rowDropout(±Backward): p in [0, 1]; rows · features = out's size; x (dy) the same size; streamKeys
 * int32 holding key pair `stream`; rowKeys int32 with a (key, position) pair per row. The keys'
 * values are data, checked by the backends that read them (see `Backend.rowDropout`).
 */
function rowMasked(
  c: CheckContext,
  K: string,
  outName: string,
  xName: string,
  out: DeviceBuffer,
  x: DeviceBuffer,
  streamKeys: DeviceBuffer,
  rowKeys: DeviceBuffer,
  p: RowDropoutParams,
): void {
  checkFinite(K, 'p', p.p);
  if (p.p < 0 || p.p > 1) throw new Error(`${K}: p must be in [0, 1], got ${p.p}`);
  checkCount(K, 'rows', p.rows);
  checkCount(K, 'features', p.features);
  checkCount(K, 'stream', p.stream);
  buf(c, K, outName, out, 0, 'float');
  if (p.rows * p.features !== out.size)
    throw new Error(`${K}: ${outName} has ${out.size} elements but rows · features is ${p.rows} · ${p.features} = ${p.rows * p.features}`);
  same(c, K, xName, x, out.size, 'float');
  buf(c, K, 'streamKeys', streamKeys, 0, 'int32');
  if (2 * p.stream + 2 > streamKeys.size)
    throw new Error(
      `${K}: stream ${p.stream} needs streamKeys[${2 * p.stream}..${2 * p.stream + 1}], but streamKeys holds ${streamKeys.size / 2} key pairs (${streamKeys.size} elements)`,
    );
  buf(c, K, 'rowKeys', rowKeys, 2 * p.rows, 'int32');
}

function rowDropout(c: CheckContext, out: DeviceBuffer, x: DeviceBuffer, sk: DeviceBuffer, rk: DeviceBuffer, p: RowDropoutParams): void {
  rowMasked(c, 'rowDropout', 'out', 'x', out, x, sk, rk, p);
}

function rowDropoutBackward(
  c: CheckContext,
  dx: DeviceBuffer,
  dy: DeviceBuffer,
  sk: DeviceBuffer,
  rk: DeviceBuffer,
  p: RowDropoutParams,
): void {
  rowMasked(c, 'rowDropoutBackward', 'dx', 'dy', dx, dy, sk, rk, p);
}

const adamw: KernelChecks['adamw'] = (c, param, grad, m, v, p, scalars) => {
  const K = 'adamw';
  for (const key of ADAMW_FINITE) checkFinite(K, key, p[key]);
  if (!Number.isSafeInteger(p.step) || p.step < 1) throw new Error(`${K}: step must be an integer ≥ 1 (it is 1-based), got ${p.step}`);
  buf(c, K, 'param', param, 0, 'float');
  const n = param.size;
  same(c, K, 'grad', grad, n, 'float');
  same(c, K, 'm', m, n, 'float32');
  same(c, K, 'v', v, n, 'float32');
  if (param === grad || param === m || param === v || m === v) throw new Error(`${K}: param, m and v must be distinct buffers`);
  if (scalars !== null && scalars !== undefined) same(c, K, 'scalars', scalars, 4, 'float32');
};
const ADAMW_FINITE = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'gradScale'] as const;

/** Every kernel's argument check (see the top of this file). */
export const kernelChecks: KernelChecks = {
  fill,
  copy,
  addInto,
  unary,
  affine,
  binary,
  reduce,
  argmax,
  matmul,
  embedding,
  embeddingBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  rotary,
  rotaryBackward,
  attention,
  attentionBackward,
  gelu,
  geluBackward,
  siluMul,
  siluMulBackward,
  unaryBackward,
  crossEntropy,
  crossEntropyBackward,
  random,
  dropout,
  dropoutBackward,
  rowDropout,
  rowDropoutBackward,
  adamw,
};
