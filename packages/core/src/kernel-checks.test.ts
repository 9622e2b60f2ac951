import { describe, expect, it } from 'vitest';
import type { AttentionParams, Backend, DeviceBuffer, MatmulParams, NormParams, RotaryParams, View } from './backend.js';
import { composeBackend, type KernelImpls, kernelTable } from './compose.js';
import { DTYPES, type DType, type RawArray } from './dtype.js';
import { checkIdsInRange, checkTargetsInRange, type KernelName, kernelChecks } from './kernel-checks.js';

class TestBuffer implements DeviceBuffer {
  freed = false;
  constructor(
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
  ) {}
}

/** A backend whose kernels only record that they ran: everything else is the composer's checks. */
function recordingBackend(opts: { alive?: (what: string) => void; dtypes?: readonly DType[] } = {}) {
  const owner = {};
  const calls: string[] = [];
  const kernels = Object.fromEntries(
    Object.keys(kernelChecks).map((name) => [name, () => calls.push(name)]),
  ) as unknown as KernelImpls<null>;
  const live = new Set<TestBuffer>();
  const backend = composeBackend({
    name: 'test',
    dtypes: opts.dtypes ?? DTYPES,
    bufferClass: TestBuffer,
    owner,
    context: null,
    ...(opts.alive ? { alive: opts.alive } : {}),
    memory: {
      alloc: (dtype, size) => {
        const b = new TestBuffer(owner, dtype, size);
        live.add(b);
        return b;
      },
      write: () => calls.push('write'),
      read: async (b): Promise<RawArray> => new Float32Array(b.size),
      free: (b) => {
        b.freed = true;
        live.delete(b);
      },
      memory: () => ({ buffers: live.size, bytes: 0, peakBytes: 0, pooledBytes: 0 }),
      resetPeak: () => {},
      sync: async () => {},
      destroy: () => {
        for (const b of live) b.freed = true;
        live.clear();
      },
    },
    kernels,
    extras: { kind: 'recording' },
  });
  return { backend, calls };
}

const f32 = (be: Backend, n: number) => be.alloc('float32', n);
const i32 = (be: Backend, n: number) => be.alloc('int32', n);
const flat = (n: number): View => ({ shape: [n], strides: [1], offset: 0 });

describe('composeBackend', () => {
  it('has every kernel, the extras, and calls a kernel only after its arguments pass', () => {
    const { backend: be, calls } = recordingBackend();
    for (const name of Object.keys(kernelChecks)) expect(typeof be[name as KernelName]).toBe('function');
    expect(be.kind).toBe('recording');
    expect(be.name).toBe('test');
    expect('captureGraph' in be).toBe(false);
    be.affine(f32(be, 3), f32(be, 3), 2, 1);
    expect(calls).toEqual(['affine']);
    expect(() => be.affine(f32(be, 3), f32(be, 2), 2, 1)).toThrow(/affine: x has 2 elements but the parameters need at least 3/);
    expect(calls).toEqual(['affine']);
  });

  it('checks every buffer: class, owner, freed, size, role', () => {
    const { backend: be } = recordingBackend();
    const { backend: other } = recordingBackend();
    const out = f32(be, 4);
    expect(() => be.fill({ dtype: 'float32', size: 4 }, 0)).toThrow(/fill: out is not a buffer of the test backend \(got Object\)/);
    expect(() => be.fill(null as never, 0)).toThrow(/fill: out is not a buffer of the test backend \(got null\)/);
    expect(() => be.fill(f32(other, 4), 0)).toThrow(/fill: out belongs to another test backend instance/);
    const gone = f32(be, 4);
    be.free(gone);
    expect(() => be.unary('exp', out, gone)).toThrow(/unary\(exp\): x was used after free\(\)/);
    expect(() => be.unary('exp', out, f32(be, 5))).toThrow(
      /unary\(exp\): x has 5 elements but the output has 4: elementwise operands must have the same size/,
    );
    expect(() => be.unary('exp', i32(be, 4), out)).toThrow(/unary\(exp\): out has dtype int32 but must be a float dtype/);
    expect(() => be.unary('cube' as never, out, out)).toThrow(/unary: unknown op "cube"/);
  });

  it('checks alloc, write, read, free and destroy', async () => {
    const { backend: be, calls } = recordingBackend({ dtypes: ['float32', 'int32'] });
    expect(() => be.alloc('float64' as never, 2)).toThrow(/alloc: dtype "float64" is not supported: use one of float32, int32/);
    expect(() => be.alloc('float16', 2)).toThrow(/alloc: the test backend does not store dtype float16: use one of float32, int32/);
    expect(() => be.alloc('float32', -1)).toThrow(/alloc: size must be a non-negative integer, got -1/);
    expect(() => be.alloc('float32', 1.5)).toThrow(/got 1.5/);
    const buf = f32(be, 3);
    expect(() => be.write(buf, new Uint16Array(3))).toThrow(/write: a float32 buffer takes a Float32Array of raw bits/);
    expect(() => be.write(i32(be, 2), new Float32Array(2))).toThrow(/int32 buffer takes a Int32Array/);
    expect(() => be.write(buf, new Float32Array(2), 2)).toThrow(/write: 2 elements at offset 2 do not fit in a buffer of 3/);
    expect(() => be.write(buf, new Float32Array(1), -1)).toThrow(/offset -1/);
    be.write(buf, new Float32Array(3));
    expect(calls).toEqual(['write']);
    be.free(buf);
    expect(() => be.free(buf)).toThrow(/free: this buffer was already freed/);
    await expect(be.read(buf)).rejects.toThrow(/read: buf was used after free\(\)/);
    const kept = f32(be, 1);
    be.destroy();
    be.free(kept); // after destroy: nothing to do
    be.destroy();
    expect(() => be.alloc('float32', 1)).toThrow(/alloc: this test backend was destroyed: create a new one/);
  });

  it('asks alive() first, for kernels and memory calls', async () => {
    let dead = false;
    const { backend: be } = recordingBackend({
      alive: (what) => {
        if (dead) throw new Error(`${what}: the device was lost`);
      },
    });
    const a = f32(be, 2);
    dead = true;
    expect(() => be.fill(a, 0)).toThrow(/fill: the device was lost/);
    expect(() => be.alloc('float32', 1)).toThrow(/alloc: the device was lost/);
    await expect(be.read(a)).rejects.toThrow(/read: the device was lost/);
    await expect(be.sync()).rejects.toThrow(/sync: the device was lost/);
  });
});

describe('kernelTable', () => {
  const impl = () => {};
  const all = Object.fromEntries(Object.keys(kernelChecks).map((name) => [name, impl]));
  it('merges the families of a backend into one table', () => {
    const { fill, copy, ...rest } = all;
    const table = kernelTable('test', { copyKernels: { fill, copy }, otherKernels: rest });
    expect(Object.keys(table).sort()).toEqual(Object.keys(kernelChecks).sort());
  });
  it('names the kernels no family implements and those implemented twice', () => {
    const { fill, copy, attention, ...rest } = all;
    expect(() => kernelTable('test', { copyKernels: { fill, copy }, otherKernels: { ...rest, copy } })).toThrow(
      'test backend: no family implements attention; implemented twice: copy (copyKernels and otherKernels)',
    );
  });
});

describe('kernel checks', () => {
  const { backend: be } = recordingBackend();
  const mm = (p: Partial<MatmulParams>): MatmulParams => ({
    batch: 1,
    m: 2,
    n: 3,
    k: 4,
    transA: false,
    transB: false,
    strideA: 8,
    strideB: 12,
    strideOut: 6,
    alpha: 1,
    accumulate: false,
    ...p,
  });
  const norm: NormParams = { rows: 2, dim: 3, eps: 1e-5 };
  const rot: RotaryParams = { batch: 1, seq: 2, heads: 1, headDim: 4, rotaryDim: 4, base: 10000, positionScale: 1 };
  const att: AttentionParams = { batch: 1, seqQ: 2, seqK: 3, heads: 4, kvHeads: 2, headDim: 5, scale: 0.5, causal: true };
  const nq = 2 * 4 * 5;
  const nk = 3 * 2 * 5;

  it('data movement: fill, copy, addInto', () => {
    expect(() => be.fill(i32(be, 2), 0.5)).toThrow(/fill: value 0.5 cannot be stored in an int32 buffer/);
    const x = f32(be, 4);
    expect(() => be.copy(f32(be, 4), x, { shape: [2, 2], strides: [2, 1], offset: 1 })).toThrow(
      /copy: x view \(shape \[2,2\], strides \[2,1\], offset 1\) reaches elements 1..4 of a buffer of 4/,
    );
    expect(() => be.copy(f32(be, 3), x, flat(4))).toThrow(/copy: out has 3 elements but the parameters need at least 4/);
    expect(() => be.copy(f32(be, 4), x, { shape: [4], strides: [-1], offset: 0 })).toThrow(/reaches elements -3..0/);
    expect(() => be.copy(f32(be, 4), x, { shape: [4], strides: [1, 1], offset: 0 })).toThrow(/copy: x view has 2 strides for 1 dimensions/);
    expect(() => be.copy(f32(be, 4), x, { shape: [-1], strides: [1], offset: 0 })).toThrow(
      /copy: view shape \[-1\] has a bad dimension -1/,
    );
    expect(() => be.copy(f32(be, 4), x, { shape: [4], strides: [0.5], offset: 0 })).toThrow(/copy: x view stride 0.5 is not an integer/);
    expect(() => be.copy(f32(be, 4), x, { shape: [4], strides: [1], offset: -1 })).toThrow(
      /copy: x view offset must be a non-negative integer/,
    );
    expect(() => be.copy(x, x, flat(4))).toThrow(/copy: out and x are the same buffer/);
    expect(() => be.addInto(i32(be, 4), x, flat(4))).toThrow(/addInto: dst has dtype int32 but must be a float dtype/);
    expect(() => be.addInto(x, f32(be, 3), flat(4))).toThrow(/addInto: src has 3 elements but the parameters need at least 4/);
    expect(() => be.addInto(x, x, flat(4))).toThrow(/addInto: dst and src are the same buffer/);
  });

  it('elementwise: unary, unaryBackward, affine, binary, reduce, argmax', () => {
    const x = f32(be, 4);
    expect(() => be.unaryBackward('exp', x, x, f32(be, 3), f32(be, 3))).toThrow(/unaryBackward\(exp\): y has 3 elements/);
    expect(() => be.unaryBackward('neg', x, x, f32(be, 3), x)).toThrow(/unaryBackward\(neg\): x has 3 elements/);
    expect(() => be.unaryBackward('nope' as never, x, x, x, x)).toThrow(/unaryBackward: unknown op "nope"/);
    expect(() => be.affine(x, x, Number.NaN, 0)).toThrow(/affine: alpha must be a finite number, got NaN/);
    expect(() => be.affine(x, x, 1, Number.POSITIVE_INFINITY)).toThrow(/affine: beta must be a finite number/);
    expect(() => be.binary('add', x, x, flat(2), x, flat(4))).toThrow(/binary\(add\): b view has shape \[4\] but the op needs \[2\]/);
    expect(() => be.binary('add', f32(be, 3), x, flat(4), x, flat(4))).toThrow(/binary\(add\): out has 3 elements but the parameters need/);
    expect(() => be.binary('pow' as never, x, x, flat(4), x, flat(4))).toThrow(/binary: unknown op "pow"/);
    expect(() => be.reduce('sum', f32(be, 1), f32(be, 3), 1, 4, 1)).toThrow(
      /reduce\(sum\): x has 3 elements but the parameters need at least 4/,
    );
    expect(() => be.reduce('sum', x, x, 1, -2, 1)).toThrow(/reduce\(sum\): reduce must be a non-negative integer, got -2/);
    expect(() => be.reduce('mean' as never, x, x, 1, 1, 1)).toThrow(/reduce: unknown op "mean"/);
    expect(() => be.argmax(f32(be, 3), f32(be, 12), 3, 4)).toThrow(/argmax: out has dtype float32 but must be int32/);
    expect(() => be.argmax(i32(be, 3), f32(be, 12), 3, 0)).toThrow(/argmax: cols is 0, so the rows have no largest element/);
  });

  it('matmul', () => {
    const a = f32(be, 8);
    const b = f32(be, 12);
    expect(() => be.matmul(f32(be, 5), a, b, mm({}))).toThrow(/matmul: out has 5 elements but the parameters need at least 6/);
    expect(() => be.matmul(f32(be, 12), a, b, mm({ batch: 2, strideA: 8, strideB: 0, strideOut: 6 }))).toThrow(
      /matmul: a has 8 elements but the parameters need at least 16/,
    );
    expect(() => be.matmul(f32(be, 6), i32(be, 8), b, mm({}))).toThrow(/matmul: a has dtype int32 but must be a float dtype/);
    expect(() => be.matmul(a, a, b, mm({}))).toThrow(/matmul: out must not be the same buffer as a or b/);
    expect(() => be.matmul(f32(be, 6), a, b, mm({ m: -1 }))).toThrow(/matmul: m must be a non-negative integer, got -1/);
    expect(() => be.matmul(f32(be, 6), a, b, mm({ strideB: 1.5 }))).toThrow(/matmul: strideB must be a non-negative integer/);
    expect(() => be.matmul(f32(be, 6), a, b, mm({ alpha: Number.NaN }))).toThrow(/matmul: alpha must be a finite number/);
  });

  it('embedding and its backward', () => {
    const w = f32(be, 6);
    expect(() => be.embedding(f32(be, 4), w, f32(be, 2), 2, 2)).toThrow(/embedding: ids has dtype float32 but must be int32/);
    expect(() => be.embedding(f32(be, 4), f32(be, 5), i32(be, 2), 2, 2)).toThrow(
      /embedding: the weight buffer has 5 elements, not a multiple of dim 2/,
    );
    expect(() => be.embedding(f32(be, 3), w, i32(be, 2), 2, 2)).toThrow(/embedding: out has 3 elements but the parameters need at least 4/);
    expect(() => be.embeddingBackward(w, f32(be, 3), i32(be, 2), 2, 2)).toThrow(/embeddingBackward: dOut has 3 elements/);
    expect(() => be.embeddingBackward(f32(be, 5), f32(be, 4), i32(be, 2), 2, 2)).toThrow(/embeddingBackward: the weight buffer has 5/);
    expect(() => be.embeddingBackward(w, f32(be, 4), i32(be, 2), 2.5, 2)).toThrow(/embeddingBackward: n must be a non-negative integer/);
  });

  it('norms', () => {
    const x = f32(be, 6);
    const s = f32(be, 2);
    expect(() => be.layerNorm(x, be.alloc('bfloat16', 2), s, x, null, null, norm)).toThrow(
      /layerNorm: mean has dtype bfloat16 but must be float32/,
    );
    expect(() => be.layerNorm(f32(be, 2), s, s, x, null, null, norm)).toThrow(
      /layerNorm: out has 2 elements but the parameters need at least 6/,
    );
    expect(() => be.layerNorm(x, s, s, x, f32(be, 2), null, norm)).toThrow(
      /layerNorm: weight has 2 elements but the parameters need at least 3/,
    );
    expect(() => be.layerNorm(x, s, s, x, null, i32(be, 3), norm)).toThrow(/layerNorm: bias has dtype int32/);
    expect(() => be.layerNorm(x, s, s, x, null, null, { ...norm, eps: -1 })).toThrow(/layerNorm: eps must be non-negative, got -1/);
    expect(() => be.layerNormBackward(x, f32(be, 2), null, x, x, null, s, s, norm)).toThrow(/layerNormBackward: dWeight has 2 elements/);
    expect(() => be.layerNormBackward(x, null, be.alloc('float16', 3), x, x, null, s, s, norm)).toThrow(
      /layerNormBackward: dBias has dtype float16 but must be float32/,
    );
    expect(() => be.layerNormBackward(x, null, null, x, x, null, s, f32(be, 1), norm)).toThrow(/layerNormBackward: rstd has 1 elements/);
    expect(() => be.rmsNorm(x, s, x, null, { ...norm, rows: -1 })).toThrow(/rmsNorm: rows must be a non-negative integer, got -1/);
    expect(() => be.rmsNorm(x, s, f32(be, 5), null, norm)).toThrow(/rmsNorm: x has 5 elements/);
    expect(() => be.rmsNormBackward(x, null, x, x, null, f32(be, 1), norm)).toThrow(/rmsNormBackward: rstd has 1 elements/);
    expect(() => be.rmsNormBackward(x, null, x, x, null, s, { ...norm, eps: Number.NaN })).toThrow(
      /rmsNormBackward: eps must be a finite number/,
    );
  });

  it('rotary and its backward', () => {
    const x = f32(be, 8);
    const pos = i32(be, 2);
    expect(() => be.rotary(x, x, pos, { ...rot, rotaryDim: 3 })).toThrow(/rotary: rotaryDim 3 must be even and at most headDim 4/);
    expect(() => be.rotary(x, x, pos, { ...rot, rotaryDim: 6 })).toThrow(/rotaryDim 6 must be even and at most headDim 4/);
    expect(() => be.rotary(x, x, f32(be, 2), rot)).toThrow(/rotary: positions has dtype float32 but must be int32/);
    expect(() => be.rotary(x, x, pos, { ...rot, base: 0 })).toThrow(/rotary: base \(0\) and positionScale \(1\) must be positive/);
    expect(() => be.rotary(x, x, pos, { ...rot, positionScale: Number.POSITIVE_INFINITY })).toThrow(
      /rotary: positionScale must be a finite number/,
    );
    expect(() => be.rotaryBackward(x, f32(be, 7), pos, rot)).toThrow(
      /rotaryBackward: dy has 7 elements but the parameters need at least 8/,
    );
    expect(() => be.rotaryBackward(x, x, i32(be, 1), rot)).toThrow(/rotaryBackward: positions has 1 elements/);
  });

  it('attention and its backward', () => {
    const q = f32(be, nq);
    const k = f32(be, nk);
    const lse = f32(be, 8);
    expect(() => be.attention(f32(be, nq), lse, q, k, k, null, { ...att, kvHeads: 3 })).toThrow(
      /attention: heads 4 must be a multiple of kvHeads 3/,
    );
    expect(() => be.attention(f32(be, nq), lse, q, f32(be, nk - 1), k, null, att)).toThrow(
      /attention: k has 29 elements but the parameters need at least 30/,
    );
    expect(() => be.attention(f32(be, nq), lse, q, k, k, i32(be, 2), att)).toThrow(
      /attention: mask has 2 elements but the parameters need at least 3/,
    );
    expect(() => be.attention(q, lse, q, k, k, null, att)).toThrow(/attention: out must not be the same buffer as q, k or v/);
    expect(() => be.attention(f32(be, nq), be.alloc('float16', 8), q, k, k, null, att)).toThrow(/attention: lse has dtype float16/);
    expect(() => be.attention(f32(be, nq), lse, q, k, k, null, { ...att, scale: Number.NaN })).toThrow(
      /attention: scale must be a finite number/,
    );
    const g = () => f32(be, nq);
    const gk = () => f32(be, nk);
    expect(() => be.attentionBackward(g(), gk(), gk(), g(), q, k, k, g(), f32(be, 7), null, att)).toThrow(
      /attentionBackward: lse has 7 elements/,
    );
    expect(() => be.attentionBackward(q, gk(), gk(), g(), q, k, k, g(), lse, null, att)).toThrow(
      /attentionBackward: dq must not be the same buffer as an input/,
    );
    expect(() => be.attentionBackward(g(), k, gk(), g(), q, k, k, g(), lse, null, att)).toThrow(
      /attentionBackward: dk must not be the same buffer/,
    );
    expect(() => be.attentionBackward(g(), gk(), gk(), g(), q, k, k, g(), lse, null, { ...att, seqK: -1 })).toThrow(
      /attentionBackward: seqK must be a non-negative integer/,
    );
  });

  it('activations', () => {
    const x = f32(be, 4);
    expect(() => be.gelu(x, f32(be, 3), false)).toThrow(/gelu: x has 3 elements but the parameters need at least 4/);
    expect(() => be.geluBackward(x, f32(be, 5), x, true)).toThrow(/geluBackward: dy has 5 elements but the output has 4/);
    expect(() => be.siluMul(x, x, i32(be, 4))).toThrow(/siluMul: up has dtype int32/);
    expect(() => be.siluMulBackward(x, x, x, x, x)).toThrow(/siluMulBackward: dGate and dUp must be different buffers/);
    expect(() => be.siluMulBackward(x, f32(be, 4), x, f32(be, 3), x)).toThrow(/siluMulBackward: gate has 3 elements/);
  });

  it('loss', () => {
    const p = { rows: 2, classes: 3, ignoreIndex: -100 };
    const logits = f32(be, 6);
    const two = f32(be, 2);
    expect(() => be.crossEntropy(be.alloc('bfloat16', 2), two, logits, i32(be, 2), p)).toThrow(
      /crossEntropy: loss has dtype bfloat16 but must be float32/,
    );
    expect(() => be.crossEntropy(two, two, logits, i32(be, 2), { ...p, ignoreIndex: 0.5 })).toThrow(
      /crossEntropy: ignoreIndex must be an integer, got 0.5/,
    );
    expect(() => be.crossEntropy(two, two, f32(be, 5), i32(be, 2), p)).toThrow(/crossEntropy: logits has 5 elements/);
    expect(() => be.crossEntropyBackward(logits, two, logits, two, two, p)).toThrow(
      /crossEntropyBackward: targets has dtype float32 but must be int32/,
    );
    expect(() => be.crossEntropyBackward(logits, two, logits, i32(be, 2), two, { ...p, classes: -3 })).toThrow(
      /crossEntropyBackward: classes must be a non-negative integer/,
    );
  });

  it('randomness', () => {
    const x = f32(be, 4);
    const r = { seed: 1, offset: 0, distribution: 'uniform' as const, low: 0, high: 1 };
    expect(() => be.random(x, { ...r, seed: -1 })).toThrow(/random: seed must be a non-negative safe integer, got -1/);
    expect(() => be.random(x, { ...r, offset: 0.5 })).toThrow(/random: offset must be a non-negative safe integer, got 0.5/);
    expect(() => be.random(x, { ...r, distribution: 'cauchy' as never })).toThrow(/random: distribution "cauchy" is not supported/);
    expect(() => be.random(x, { ...r, high: Number.NaN })).toThrow(/random: high must be a finite number/);
    expect(() => be.random(i32(be, 4), r)).toThrow(/random: out has dtype int32/);
    expect(() => be.dropout(x, x, { p: 1.5, seed: 1, offset: 0 })).toThrow(/dropout: p must be in \[0, 1\], got 1.5/);
    expect(() => be.dropout(x, f32(be, 5), { p: 0.5, seed: 1, offset: 0 })).toThrow(/dropout: x has 5 elements but the output has 4/);
    expect(() => be.dropoutBackward(x, x, { p: 0.5, seed: 2 ** 60, offset: 0 })).toThrow(/dropoutBackward: seed must be/);
  });

  it('adamw', () => {
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1, gradScale: 1 };
    const p = f32(be, 2);
    const g = f32(be, 2);
    const m = f32(be, 2);
    const v = f32(be, 2);
    expect(() => be.adamw(p, g, be.alloc('bfloat16', 2), v, o)).toThrow(/adamw: m has dtype bfloat16 but must be float32/);
    expect(() => be.adamw(p, g, m, v, { ...o, step: 0 })).toThrow(/adamw: step must be an integer ≥ 1 \(it is 1-based\), got 0/);
    expect(() => be.adamw(p, g, m, v, { ...o, lr: Number.NaN })).toThrow(/adamw: lr must be a finite number/);
    expect(() => be.adamw(p, g, m, m, o)).toThrow(/adamw: param, m and v must be distinct buffers/);
    expect(() => be.adamw(p, g, m, v, o, f32(be, 3))).toThrow(/adamw: scalars has 3 elements but the parameters need at least 4/);
    expect(() => be.adamw(p, g, m, v, o, f32(be, 5))).toThrow(/adamw: scalars has 5 elements but the output has 4/);
    expect(() => be.adamw(p, g, m, v, o, null)).not.toThrow();
  });
});

describe('value checks for backends that read ids and targets on the host', () => {
  it('ids name a row, targets a class or ignoreIndex', () => {
    expect(() => checkIdsInRange('embedding', [0, 2, 3], 3, 3)).toThrow(
      /embedding: ids\[2\] = 3 is outside the weight's rows: valid ids are 0..2/,
    );
    expect(() => checkIdsInRange('embedding', [0, -1], 2, 3)).toThrow(/ids\[1\] = -1/);
    expect(() => checkIdsInRange('embedding', [0, 9], 1, 3)).not.toThrow(); // only the first n
    const p = { rows: 2, classes: 3, ignoreIndex: -100 };
    expect(() => checkTargetsInRange('crossEntropy', [0, 3], p)).toThrow(
      /crossEntropy: targets\[1\] = 3 is not a class: use 0..2 or ignoreIndex -100/,
    );
    expect(() => checkTargetsInRange('crossEntropy', [-100, 2], p)).not.toThrow();
  });
});
