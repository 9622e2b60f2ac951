/**
 * The float64 oracle wrapped as a `Backend`: every kernel computes with `reference.ts` in float64
 * and rounds once to the output dtype on store. Slow and synchronous; for testing the conformance
 * suite itself and for tests of code above the backend that want exact answers.
 */
import type { Backend, BackendMemory, DeviceBuffer, View } from '../backend.js';
import { bytesPerElement, type DType, decode, encode, type RawArray } from '../dtype.js';
import * as ref from './reference.js';

interface OracleBuffer extends DeviceBuffer {
  data: Float64Array;
  freed: boolean;
}

function round(values: ArrayLike<number>, dtype: DType): Float64Array {
  if (dtype === 'int32') return Float64Array.from(values, (v) => Math.trunc(v) | 0);
  return Float64Array.from(decode(encode(values, dtype), dtype));
}

function viewSpan(view: View): number {
  let max = view.offset;
  view.shape.forEach((s, d) => {
    max += (s - 1) * view.strides[d]!;
  });
  return max + 1;
}

export function createOracleBackend(): Backend {
  const live = new Set<OracleBuffer>();
  let peak = 0;
  const bytes = () => [...live].reduce((a, b) => a + b.size * bytesPerElement(b.dtype), 0);

  const use = (buf: DeviceBuffer, need: number, what: string): Float64Array => {
    const b = buf as OracleBuffer;
    if (b.freed || !live.has(b)) throw new Error(`oracle backend: ${what} uses a freed buffer`);
    if (b.size < need) throw new Error(`oracle backend: ${what} needs ${need} elements, the buffer has ${b.size}`);
    return b.data;
  };
  const opt = (buf: DeviceBuffer | null, need: number, what: string) => (buf ? use(buf, need, what) : null);
  const store = (buf: DeviceBuffer, values: ArrayLike<number>, what: string) => {
    use(buf, values.length, what);
    (buf as OracleBuffer).data.set(round(values, buf.dtype));
  };

  const backend: Backend = {
    name: 'oracle (float64)',
    dtypes: ['float32', 'float16', 'bfloat16', 'int32'],

    alloc(dtype, size) {
      const buf: OracleBuffer = { dtype, size, data: new Float64Array(size), freed: false };
      live.add(buf);
      peak = Math.max(peak, bytes());
      return buf;
    },
    write(buf, data: RawArray, offset = 0) {
      const d = use(buf, offset + data.length, 'write');
      d.set(decode(data, buf.dtype), offset);
    },
    async read(buf) {
      return encode(use(buf, 0, 'read'), buf.dtype);
    },
    free(buf) {
      const b = buf as OracleBuffer;
      if (b.freed) throw new Error('oracle backend: double free');
      b.freed = true;
      live.delete(b);
    },
    memory(): BackendMemory {
      return { buffers: live.size, bytes: bytes(), peakBytes: peak, pooledBytes: 0 };
    },
    resetPeak() {
      peak = bytes();
    },
    async sync() {},
    destroy() {
      for (const b of live) b.freed = true;
      live.clear();
    },

    fill(out, value) {
      store(out, ref.fill(out.size, value), 'fill');
    },
    copy(out, x, view) {
      store(out, ref.copy(use(x, viewSpan(view), 'copy'), view), 'copy');
    },
    addInto(dst, src, view) {
      const n = ref.viewSize(view.shape);
      store(dst, ref.addInto(use(dst, viewSpan(view), 'addInto'), use(src, n, 'addInto'), view), 'addInto');
    },
    unary(op, out, x) {
      if (out.size < x.size) throw new Error(`oracle backend: unary ${op} of ${x.size} elements into ${out.size}`);
      store(out, ref.unary(op, use(x, 0, 'unary')), 'unary');
    },
    affine(out, x, alpha, beta) {
      if (out.size < x.size) throw new Error(`oracle backend: affine of ${x.size} elements into ${out.size}`);
      store(out, ref.affine(use(x, 0, 'affine'), alpha, beta), 'affine');
    },
    binary(op, out, a, aView, b, bView) {
      store(out, ref.binary(op, use(a, viewSpan(aView), 'binary'), aView, use(b, viewSpan(bView), 'binary'), bView), 'binary');
    },
    reduce(op, out, x, outer, len, inner) {
      store(out, ref.reduce(op, use(x, outer * len * inner, 'reduce'), outer, len, inner), 'reduce');
    },
    argmax(out, x, rows, cols) {
      store(out, ref.argmax(use(x, rows * cols, 'argmax'), rows, cols), 'argmax');
    },
    matmul(out, a, b, p) {
      const outSize = ref.matmulSpan(p.batch, p.strideOut, p.m * p.n);
      const init = use(out, outSize, 'matmul out').subarray(0, outSize);
      const result = ref.matmul(
        use(a, ref.matmulSpan(p.batch, p.strideA, p.m * p.k), 'matmul a'),
        use(b, ref.matmulSpan(p.batch, p.strideB, p.k * p.n), 'matmul b'),
        p,
        init,
      );
      store(out, result, 'matmul');
    },
    embedding(out, weight, ids, n, dim) {
      const idv = use(ids, n, 'embedding ids');
      const rows = weight.size / dim;
      for (let i = 0; i < n; i++)
        if (idv[i]! < 0 || idv[i]! >= rows) throw new Error(`oracle backend: embedding id ${idv[i]} outside [0, ${rows})`);
      store(out, ref.embedding(use(weight, 0, 'embedding'), idv, n, dim), 'embedding');
    },
    embeddingBackward(dWeight, dOut, ids, n, dim) {
      store(
        dWeight,
        ref.embeddingBackward(use(dOut, n * dim, 'embeddingBackward'), use(ids, n, 'embeddingBackward'), n, dim, dWeight.size / dim),
        'embeddingBackward',
      );
    },
    layerNorm(out, mean, rstd, x, weight, bias, p) {
      const r = ref.layerNorm(use(x, p.rows * p.dim, 'layerNorm'), opt(weight, p.dim, 'layerNorm'), opt(bias, p.dim, 'layerNorm'), p);
      store(out, r.out, 'layerNorm');
      store(mean, r.mean, 'layerNorm');
      store(rstd, r.rstd, 'layerNorm');
    },
    layerNormBackward(dx, dWeight, dBias, dy, x, weight, mean, rstd, p) {
      use(mean, p.rows, 'layerNormBackward');
      use(rstd, p.rows, 'layerNormBackward');
      const r = ref.layerNormBackward(
        use(dy, p.rows * p.dim, 'layerNormBackward'),
        use(x, p.rows * p.dim, 'layerNormBackward'),
        opt(weight, p.dim, 'layerNormBackward'),
        p,
      );
      store(dx, r.dx, 'layerNormBackward');
      if (dWeight) store(dWeight, r.dWeight, 'layerNormBackward');
      if (dBias) store(dBias, r.dBias, 'layerNormBackward');
    },
    rmsNorm(out, rstd, x, weight, p) {
      const r = ref.rmsNorm(use(x, p.rows * p.dim, 'rmsNorm'), opt(weight, p.dim, 'rmsNorm'), p);
      store(out, r.out, 'rmsNorm');
      store(rstd, r.rstd, 'rmsNorm');
    },
    rmsNormBackward(dx, dWeight, dy, x, weight, rstd, p) {
      use(rstd, p.rows, 'rmsNormBackward');
      const r = ref.rmsNormBackward(
        use(dy, p.rows * p.dim, 'rmsNormBackward'),
        use(x, p.rows * p.dim, 'rmsNormBackward'),
        opt(weight, p.dim, 'rmsNormBackward'),
        p,
      );
      store(dx, r.dx, 'rmsNormBackward');
      if (dWeight) store(dWeight, r.dWeight, 'rmsNormBackward');
    },
    rotary(out, x, positions, p) {
      const n = p.batch * p.seq * p.heads * p.headDim;
      store(out, ref.rotary(use(x, n, 'rotary').subarray(0, n), use(positions, p.batch * p.seq, 'rotary'), p), 'rotary');
    },
    rotaryBackward(dx, dy, positions, p) {
      const n = p.batch * p.seq * p.heads * p.headDim;
      store(
        dx,
        ref.rotaryBackward(use(dy, n, 'rotaryBackward').subarray(0, n), use(positions, p.batch * p.seq, 'rotaryBackward'), p),
        'rotaryBackward',
      );
    },
    attention(out, lse, q, k, v, mask, p) {
      const qn = p.batch * p.seqQ * p.heads * p.headDim;
      const kn = p.batch * p.seqK * p.kvHeads * p.headDim;
      const r = ref.attention(
        use(q, qn, 'attention'),
        use(k, kn, 'attention'),
        use(v, kn, 'attention'),
        opt(mask, p.batch * p.seqK, 'attention'),
        p,
      );
      store(out, r.out, 'attention');
      store(lse, r.lse, 'attention');
    },
    attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, mask, p) {
      const qn = p.batch * p.seqQ * p.heads * p.headDim;
      const kn = p.batch * p.seqK * p.kvHeads * p.headDim;
      use(out, qn, 'attentionBackward');
      use(lse, p.batch * p.heads * p.seqQ, 'attentionBackward');
      const r = ref.attentionBackward(
        use(dOut, qn, 'attentionBackward').subarray(0, qn),
        use(q, qn, 'attentionBackward').subarray(0, qn),
        use(k, kn, 'attentionBackward').subarray(0, kn),
        use(v, kn, 'attentionBackward').subarray(0, kn),
        opt(mask, p.batch * p.seqK, 'attentionBackward'),
        p,
      );
      store(dq, r.dq, 'attentionBackward');
      store(dk, r.dk, 'attentionBackward');
      store(dv, r.dv, 'attentionBackward');
    },
    gelu(out, x, approximate) {
      store(out, ref.gelu(use(x, 0, 'gelu'), approximate), 'gelu');
    },
    geluBackward(dx, dy, x, approximate) {
      store(dx, ref.geluBackward(use(dy, x.size, 'geluBackward'), use(x, 0, 'geluBackward'), approximate), 'geluBackward');
    },
    siluMul(out, gate, up) {
      store(out, ref.siluMul(use(gate, 0, 'siluMul'), use(up, gate.size, 'siluMul')), 'siluMul');
    },
    siluMulBackward(dGate, dUp, dy, gate, up) {
      const r = ref.siluMulBackward(
        use(dy, gate.size, 'siluMulBackward'),
        use(gate, 0, 'siluMulBackward'),
        use(up, gate.size, 'siluMulBackward'),
      );
      store(dGate, r.dGate, 'siluMulBackward');
      store(dUp, r.dUp, 'siluMulBackward');
    },
    unaryBackward(op, dx, dy, x, y) {
      store(
        dx,
        ref.unaryBackward(op, use(dy, x.size, 'unaryBackward'), use(x, 0, 'unaryBackward'), use(y, x.size, 'unaryBackward')),
        'unaryBackward',
      );
    },
    crossEntropy(loss, lse, logits, targets, p) {
      const r = ref.crossEntropy(use(logits, p.rows * p.classes, 'crossEntropy'), use(targets, p.rows, 'crossEntropy'), p);
      store(loss, r.loss, 'crossEntropy');
      store(lse, r.lse, 'crossEntropy');
    },
    crossEntropyBackward(dLogits, dLoss, logits, targets, lse, p) {
      use(lse, p.rows, 'crossEntropyBackward');
      store(
        dLogits,
        ref.crossEntropyBackward(
          use(dLoss, p.rows, 'crossEntropyBackward'),
          use(logits, p.rows * p.classes, 'crossEntropyBackward'),
          use(targets, p.rows, 'crossEntropyBackward'),
          p,
        ),
        'crossEntropyBackward',
      );
    },
    random(out, p) {
      store(out, ref.random(out.size, p), 'random');
    },
    dropout(out, x, p) {
      store(out, ref.dropout(use(x, 0, 'dropout'), p), 'dropout');
    },
    dropoutBackward(dx, dy, p) {
      store(dx, ref.dropoutBackward(use(dy, 0, 'dropoutBackward'), p), 'dropoutBackward');
    },
    adamw(param, grad, m, v, p, scalars) {
      const n = param.size;
      const s = scalars ? use(scalars, 4, 'adamw') : null;
      const r = ref.adamw(use(param, n, 'adamw'), use(grad, n, 'adamw'), use(m, n, 'adamw'), use(v, n, 'adamw'), p, s);
      store(param, r.param, 'adamw');
      store(m, r.m, 'adamw');
      store(v, r.v, 'adamw');
    },
  };
  return backend;
}
