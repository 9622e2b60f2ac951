/**
 * The float64 oracle wrapped as a `Backend`: every kernel computes with `reference.ts` in float64
 * and rounds once to the output dtype on store. Slow and synchronous; for testing the conformance
 * suite itself and for tests of code above the backend that want exact answers.
 */
import type { Backend, BackendMemory, DeviceBuffer, View } from '../backend.js';
import { composeBackend, type KernelImpls, type MemoryParts } from '../compose.js';
import { bytesPerElement, type DType, decode, encode, type RawArray } from '../dtype.js';
import { checkIdsInRange } from '../kernel-checks.js';
import * as ref from './reference.js';

class OracleBuffer implements DeviceBuffer {
  freed = false;
  readonly data: Float64Array;
  constructor(
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
  ) {
    this.data = new Float64Array(size);
  }
}

function round(values: ArrayLike<number>, dtype: DType): Float64Array {
  if (dtype === 'int32') return Float64Array.from(values, (v) => Math.trunc(v) | 0);
  return Float64Array.from(decode(encode(values, dtype), dtype));
}

/** The values of a buffer (checked by core: a live buffer of this backend with the elements the kernel needs). */
const val = (buf: DeviceBuffer): Float64Array => (buf as OracleBuffer).data;
const opt = (buf: DeviceBuffer | null): Float64Array | null => (buf === null ? null : val(buf));
/** Stores `values`, rounded once to the buffer's dtype, from element 0. */
const store = (buf: DeviceBuffer, values: ArrayLike<number>): void => val(buf).set(round(values, buf.dtype));
const attentionSizes = (p: { batch: number; seqQ: number; seqK: number; heads: number; kvHeads: number; headDim: number }) => ({
  qn: p.batch * p.seqQ * p.heads * p.headDim,
  kn: p.batch * p.seqK * p.kvHeads * p.headDim,
});

class OracleMemory implements MemoryParts<OracleBuffer> {
  readonly live = new Set<OracleBuffer>();
  private peak = 0;
  constructor(readonly owner: object) {}
  private bytes(): number {
    let n = 0;
    for (const b of this.live) n += b.size * bytesPerElement(b.dtype);
    return n;
  }
  alloc(dtype: DType, size: number): OracleBuffer {
    const buf = new OracleBuffer(this.owner, dtype, size);
    this.live.add(buf);
    this.peak = Math.max(this.peak, this.bytes());
    return buf;
  }
  write(buf: OracleBuffer, data: RawArray, offset: number): void {
    buf.data.set(decode(data, buf.dtype), offset);
  }
  async read(buf: OracleBuffer): Promise<RawArray> {
    return encode(buf.data, buf.dtype);
  }
  free(buf: OracleBuffer): void {
    buf.freed = true;
    this.live.delete(buf);
  }
  memory(): BackendMemory {
    return { buffers: this.live.size, bytes: this.bytes(), peakBytes: this.peak, pooledBytes: 0 };
  }
  resetPeak(): void {
    this.peak = this.bytes();
  }
  async sync(): Promise<void> {}
  destroy(): void {
    for (const b of this.live) b.freed = true;
    this.live.clear();
  }
}

/** Every kernel through the float64 reference; arguments are checked by core before these run. */
const oracleKernels: KernelImpls<null> = {
  fill: (_, out, value) => store(out, ref.fill(out.size, value)),
  copy: (_, out, x, view: View) => store(out, ref.copy(val(x), view)),
  addInto: (_, dst, src, view) => store(dst, ref.addInto(val(dst), val(src), view)),
  unary: (_, op, out, x) => store(out, ref.unary(op, val(x))),
  affine: (_, out, x, alpha, beta) => store(out, ref.affine(val(x), alpha, beta)),
  binary: (_, op, out, a, aView, b, bView) => store(out, ref.binary(op, val(a), aView, val(b), bView)),
  reduce: (_, op, out, x, outer, len, inner) => store(out, ref.reduce(op, val(x), outer, len, inner)),
  argmax: (_, out, x, rows, cols) => store(out, ref.argmax(val(x), rows, cols)),
  matmul(_, out, a, b, p) {
    store(out, ref.matmul(val(a), val(b), p, val(out).subarray(0, ref.matmulSpan(p.batch, p.strideOut, p.m * p.n))));
  },
  embedding(_, out, weight, ids, n, dim) {
    const idv = val(ids);
    checkIdsInRange('embedding', idv, n, dim === 0 ? 0 : weight.size / dim);
    store(out, ref.embedding(val(weight), idv, n, dim));
  },
  embeddingBackward(_, dWeight, dOut, ids, n, dim) {
    store(dWeight, ref.embeddingBackward(val(dOut), val(ids), n, dim, dim === 0 ? 0 : dWeight.size / dim));
  },
  layerNorm(_, out, mean, rstd, x, weight, bias, p) {
    const r = ref.layerNorm(val(x), opt(weight), opt(bias), p);
    store(out, r.out);
    store(mean, r.mean);
    store(rstd, r.rstd);
  },
  layerNormBackward(_, dx, dWeight, dBias, dy, x, weight, _mean, _rstd, p) {
    const r = ref.layerNormBackward(val(dy), val(x), opt(weight), p);
    store(dx, r.dx);
    if (dWeight) store(dWeight, r.dWeight);
    if (dBias) store(dBias, r.dBias);
  },
  rmsNorm(_, out, rstd, x, weight, p) {
    const r = ref.rmsNorm(val(x), opt(weight), p);
    store(out, r.out);
    store(rstd, r.rstd);
  },
  rmsNormBackward(_, dx, dWeight, dy, x, weight, _rstd, p) {
    const r = ref.rmsNormBackward(val(dy), val(x), opt(weight), p);
    store(dx, r.dx);
    if (dWeight) store(dWeight, r.dWeight);
  },
  rotary(_, out, x, positions, p) {
    store(out, ref.rotary(val(x).subarray(0, p.batch * p.seq * p.heads * p.headDim), val(positions), p));
  },
  rotaryBackward(_, dx, dy, positions, p) {
    store(dx, ref.rotaryBackward(val(dy).subarray(0, p.batch * p.seq * p.heads * p.headDim), val(positions), p));
  },
  attention(_, out, lse, q, k, v, mask, p) {
    const r = ref.attention(val(q), val(k), val(v), opt(mask), p);
    store(out, r.out);
    store(lse, r.lse);
  },
  attentionBackward(_, dq, dk, dv, dOut, q, k, v, _out, _lse, mask, p) {
    const { qn, kn } = attentionSizes(p);
    const sub = (b: DeviceBuffer, n: number) => val(b).subarray(0, n);
    const r = ref.attentionBackward(sub(dOut, qn), sub(q, qn), sub(k, kn), sub(v, kn), opt(mask), p);
    store(dq, r.dq);
    store(dk, r.dk);
    store(dv, r.dv);
  },
  gelu: (_, out, x, approximate) => store(out, ref.gelu(val(x), approximate)),
  geluBackward: (_, dx, dy, x, approximate) => store(dx, ref.geluBackward(val(dy), val(x), approximate)),
  siluMul: (_, out, gate, up) => store(out, ref.siluMul(val(gate), val(up))),
  siluMulBackward(_, dGate, dUp, dy, gate, up) {
    const r = ref.siluMulBackward(val(dy), val(gate), val(up));
    store(dGate, r.dGate);
    store(dUp, r.dUp);
  },
  unaryBackward: (_, op, dx, dy, x, y) => store(dx, ref.unaryBackward(op, val(dy), val(x), val(y))),
  crossEntropy(_, loss, lse, logits, targets, p) {
    const r = ref.crossEntropy(val(logits), val(targets), p);
    store(loss, r.loss);
    store(lse, r.lse);
  },
  crossEntropyBackward(_, dLogits, dLoss, logits, targets, _lse, p) {
    store(dLogits, ref.crossEntropyBackward(val(dLoss), val(logits), val(targets), p));
  },
  random: (_, out, p) => store(out, ref.random(out.size, p)),
  dropout: (_, out, x, p) => store(out, ref.dropout(val(x), p)),
  dropoutBackward: (_, dx, dy, p) => store(dx, ref.dropoutBackward(val(dy), p)),
  rowDropout: (_, out, x, sk, rk, p) => store(out, ref.rowDropout(val(x), val(sk), val(rk), p)),
  rowDropoutBackward: (_, dx, dy, sk, rk, p) => store(dx, ref.rowDropoutBackward(val(dy), val(sk), val(rk), p)),
  adamw(_, param, grad, m, v, p, scalars) {
    const r = ref.adamw(val(param), val(grad), val(m), val(v), p, scalars ? val(scalars) : null);
    store(param, r.param);
    store(m, r.m);
    store(v, r.v);
  },
};

export function createOracleBackend(): Backend {
  const owner = {};
  return composeBackend({
    name: 'oracle (float64)',
    dtypes: ['float32', 'float16', 'bfloat16', 'int32'],
    bufferClass: OracleBuffer,
    owner,
    context: null,
    memory: new OracleMemory(owner),
    kernels: oracleKernels,
  });
}
