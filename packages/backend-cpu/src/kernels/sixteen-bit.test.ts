// Kernels read 16-bit storage through float32 scratch (chunks, rows or ranges) and round once on
// store: with inputs that bfloat16 holds exactly, a bfloat16 kernel call must give bit for bit the
// float32 call's result rounded to bfloat16, also for sizes of several chunks and in place.
import { type DeviceBuffer, type DType, decode, encode, type UnaryOp, type View } from '@peft/core';
import { describe, expect, it } from 'vitest';
import type { CpuBackend } from '../backend.js';
import { backend, download, randomValues, upload } from '../test-helpers.js';

const N = 2 * 4096 + 123; // more than two chunks, ragged

/** `n` values that bfloat16 stores exactly. */
function exact(n: number, seed: number, scale = 3): number[] {
  return Array.from(decode(encode(randomValues(n, seed, scale), 'bfloat16'), 'bfloat16'));
}

/** The float32 contents of `buf` rounded to bfloat16 bits. */
async function asBf16(be: CpuBackend, buf: DeviceBuffer): Promise<Uint16Array> {
  return encode(await download(be, buf), 'bfloat16') as Uint16Array;
}

/** Runs `call` once on float32 buffers and once on bfloat16 ones (same values) and compares the `out` buffers. */
async function same16(
  be: CpuBackend,
  name: string,
  inputs: Record<string, number[]>,
  outSize: number,
  call: (out: DeviceBuffer, b: Record<string, DeviceBuffer>) => void,
  inPlace?: string,
): Promise<void> {
  const make = (dtype: DType) => Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, upload(be, v, dtype)]));
  const o32 = be.alloc('float32', outSize);
  call(o32, make('float32'));
  const want = await asBf16(be, o32);
  const o16 = be.alloc('bfloat16', outSize);
  call(o16, make('bfloat16'));
  expect(await be.read(o16), name).toEqual(want);
  if (inPlace !== undefined) {
    const b = make('bfloat16');
    call(b[inPlace], b);
    expect(await be.read(b[inPlace]), `${name} in place`).toEqual(want);
  }
}

describe('16-bit storage through float32 scratch', () => {
  it('unary, unaryBackward and affine', async () => {
    const be = backend();
    const x = exact(N, 1);
    const pos = Array.from(
      decode(
        encode(
          x.map((v) => Math.abs(v) + 0.125),
          'bfloat16',
        ),
        'bfloat16',
      ),
    );
    const ops: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'abs', 'silu', 'sigmoid', 'tanh', 'relu'];
    for (const op of ops) {
      const xv = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? pos : x;
      await same16(be, `unary ${op}`, { x: xv }, N, (o, b) => be.unary(op, o, b.x), 'x');
      await same16(
        be,
        `unaryBackward ${op}`,
        { dy: exact(N, 2), x: xv, y: exact(N, 3) },
        N,
        (o, b) => be.unaryBackward(op, o, b.dy, b.x, b.y),
        'dy',
      );
    }
    await same16(be, 'affine', { x }, N, (o, b) => be.affine(o, b.x, -0.75, 2), 'x');
    be.destroy();
  });

  it('binary: contiguous runs at offsets, broadcasts, transposes and shifted aliasing', async () => {
    const be = backend();
    const [R, C] = [97, 131]; // 12707 elements
    const a = exact(R * C + 5, 4);
    const b = exact(R * C + 3, 5);
    const flat = (offset: number): View => ({ shape: [R, C], strides: [C, 1], offset });
    for (const op of ['add', 'sub', 'mul', 'div', 'max', 'min'] as const) {
      await same16(be, `${op} contiguous`, { a, b }, R * C, (o, x) => be.binary(op, o, x.a, flat(5), x.b, flat(3)));
      await same16(be, `${op} row broadcast`, { a, b }, R * C, (o, x) =>
        be.binary(op, o, x.a, flat(0), x.b, { shape: [R, C], strides: [0, 1], offset: 2 }),
      );
      await same16(be, `${op} transposed`, { a, b }, R * C, (o, x) =>
        be.binary(op, o, x.a, { shape: [R, C], strides: [1, R], offset: 0 }, x.b, { shape: [R, C], strides: [1, 0], offset: 0 }),
      );
    }
    // out = a, but reading a one element ahead: must not see its own writes.
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const n = 10_000;
      const v = exact(n + 1, 6);
      const buf = upload(be, v, dtype);
      be.binary('add', buf, buf, { shape: [n], strides: [1], offset: 1 }, upload(be, [1], dtype), { shape: [n], strides: [0], offset: 0 });
      const got = await download(be, buf);
      const want = v.slice(1).map((x) => x + 1);
      expect(Array.from(decode(encode(got.slice(0, n), dtype), dtype)), dtype).toEqual(Array.from(decode(encode(want, dtype), dtype)));
      expect(got[n], `${dtype}: the element past the view is untouched`).toBe(v[n]);
    }
    be.destroy();
  });

  it('copy (casts, strided) and addInto into 16-bit and float32 destinations', async () => {
    const be = backend();
    const [R, C] = [64, 200];
    const x = exact(R * C, 7);
    const t: View = { shape: [C, R], strides: [1, C], offset: 0 };
    const sub: View = { shape: [R, 150], strides: [C, 1], offset: 10 };
    for (const view of [t, sub]) {
      const count = view.shape[0] * view.shape[1];
      const src16 = upload(be, x, 'bfloat16');
      const to32 = be.alloc('float32', count);
      be.copy(to32, src16, view);
      const ref = be.alloc('float32', count);
      be.copy(ref, upload(be, x), view);
      expect(await download(be, to32)).toEqual(await download(be, ref));
      const to16 = be.alloc('bfloat16', count);
      be.copy(to16, upload(be, x), view);
      expect(await be.read(to16)).toEqual(await asBf16(be, ref));
      const toF16 = be.alloc('float16', count);
      be.copy(toF16, src16, view);
      expect(await be.read(toF16)).toEqual(encode(await download(be, ref), 'float16'));
      // addInto: dst[view] += src, 16-bit dst and 16-bit src
      const g = exact(count, 8);
      const d32 = upload(be, x);
      be.addInto(d32, upload(be, g), view);
      const d16 = upload(be, x, 'bfloat16');
      be.addInto(d16, upload(be, g, 'bfloat16'), view);
      expect(await be.read(d16)).toEqual(await asBf16(be, d32));
      const d32from16 = upload(be, x);
      be.addInto(d32from16, upload(be, g, 'bfloat16'), view);
      expect(await download(be, d32from16)).toEqual(await download(be, d32));
    }
    be.destroy();
  });

  it('copy between equal dtypes moves raw bits, NaN payloads included, also through strided views', async () => {
    const be = backend();
    const bits = new Uint32Array([0x7fa00001, 0xffc00123, 0x3f800000, 0x7f800001, 1, 0x80000000]);
    const x = be.alloc('float32', 6);
    be.write(x, new Float32Array(bits.buffer));
    const out = be.alloc('float32', 6);
    be.copy(out, x, { shape: [3, 2], strides: [1, 3], offset: 0 });
    const got = new Uint32Array(((await be.read(out)) as Float32Array).buffer);
    expect(Array.from(got)).toEqual([bits[0], bits[3], bits[1], bits[4], bits[2], bits[5]]);
    be.destroy();
  });

  it('norms, rotary and reductions by rows', async () => {
    const be = backend();
    const [rows, dim] = [5, 4099]; // rows longer than a chunk
    const x = exact(rows * dim, 9);
    const dy = exact(rows * dim, 10);
    const w = exact(dim, 11);
    const bias = exact(dim, 12);
    const p = { rows, dim, eps: 1e-5 };
    const stats = (n: number) => [be.alloc('float32', n), be.alloc('float32', n)];
    const [m32, r32] = stats(rows);
    be.layerNorm(be.alloc('float32', rows * dim), m32, r32, upload(be, x), upload(be, w), upload(be, bias), p);
    for (const weight of [true, false]) {
      await same16(
        be,
        `layerNorm weight ${weight}`,
        { x, w, bias },
        rows * dim,
        (o, b) => {
          const [m, r] = stats(rows);
          be.layerNorm(o, m, r, b.x, weight ? b.w : null, weight ? b.bias : null, p);
        },
        'x',
      );
      await same16(
        be,
        `layerNormBackward weight ${weight}`,
        { dy, x, w },
        rows * dim,
        (o, b) => be.layerNormBackward(o, be.alloc('float32', dim), null, b.dy, b.x, weight ? b.w : null, m32, r32, p),
        'dy',
      );
      await same16(
        be,
        `rmsNorm weight ${weight}`,
        { x, w },
        rows * dim,
        (o, b) => be.rmsNorm(o, be.alloc('float32', rows), b.x, weight ? b.w : null, p),
        'x',
      );
      await same16(
        be,
        `rmsNormBackward weight ${weight}`,
        { dy, x, w },
        rows * dim,
        (o, b) => be.rmsNormBackward(o, be.alloc('float32', dim), b.dy, b.x, weight ? b.w : null, r32, p),
        'x',
      );
    }
    const rp = { batch: 2, seq: 3, heads: 4, headDim: 96, rotaryDim: 64, base: 10000, positionScale: 1 };
    const n = 2 * 3 * 4 * 96;
    const pos = upload(be, [0, 7, 3, 100000, 5, 2], 'int32'); // wide range: one table row per token
    await same16(be, 'rotary', { x: exact(n, 13) }, n, (o, b) => be.rotary(o, b.x, pos, rp), 'x');
    await same16(be, 'rotaryBackward', { x: exact(n, 14) }, n, (o, b) => be.rotaryBackward(o, b.x, pos, rp), 'x');
    await same16(be, 'reduce sum, inner 1', { x }, rows, (o, b) => be.reduce('sum', o, b.x, rows, dim, 1));
    await same16(be, 'reduce max, inner 1', { x }, rows, (o, b) => be.reduce('max', o, b.x, rows, dim, 1));
    await same16(be, 'reduce sum over rows', { x }, dim, (o, b) => be.reduce('sum', o, b.x, 1, rows, dim));
    await same16(be, 'reduce max, middle axis', { x }, 5 * 4099, (o, b) => be.reduce('max', o, b.x, 5, 1, 4099), 'x');
    const am32 = be.alloc('int32', rows);
    const am16 = be.alloc('int32', rows);
    be.argmax(am32, upload(be, x), rows, dim);
    be.argmax(am16, upload(be, x, 'bfloat16'), rows, dim);
    expect(await download(be, am16)).toEqual(await download(be, am32));
    be.destroy();
  });

  it('rotary tables by position and by token agree', async () => {
    const be = backend();
    const rp = { batch: 2, seq: 4, heads: 2, headDim: 8, rotaryDim: 8, base: 10000, positionScale: 1 };
    const x = randomValues(2 * 4 * 2 * 8, 15);
    const close = upload(be, [0, 1, 2, 3, 0, 1, 2, 3], 'int32'); // range 4 ≤ 8 tokens: by position
    const wide = upload(be, [0, 1, 2, 3, 0, 1, 2, 1 << 20], 'int32'); // by token
    const a = be.alloc('float32', x.length);
    const b = be.alloc('float32', x.length);
    be.rotary(a, upload(be, x), close, rp);
    be.rotary(b, upload(be, x), wide, rp);
    expect((await download(be, b)).slice(0, 7 * 16)).toEqual((await download(be, a)).slice(0, 7 * 16));
    be.destroy();
  });

  it('cross-entropy rows longer than a chunk, embedding and its scatter-add, adamw', async () => {
    const be = backend();
    const [rows, classes] = [3, 5000];
    const logits = exact(rows * classes, 16, 8);
    const tg = upload(be, [4999, -100, 17], 'int32');
    const cp = { rows, classes, ignoreIndex: -100 };
    const loss32 = be.alloc('float32', rows);
    const lse32 = be.alloc('float32', rows);
    be.crossEntropy(loss32, lse32, upload(be, logits), tg, cp);
    const loss16 = be.alloc('float32', rows);
    const lse16 = be.alloc('float32', rows);
    be.crossEntropy(loss16, lse16, upload(be, logits, 'bfloat16'), tg, cp);
    expect(await download(be, lse16)).toEqual(await download(be, lse32));
    expect(await download(be, loss16)).toEqual(await download(be, loss32));
    const dl = upload(be, [0.5, 2, -1]);
    await same16(
      be,
      'crossEntropyBackward',
      { logits },
      rows * classes,
      (o, b) => be.crossEntropyBackward(o, dl, b.logits, tg, lse32, cp),
      'logits',
    );

    const [vocab, dim, n] = [50, 70, 40];
    const table = exact(vocab * dim, 17);
    const ids = upload(
      be,
      Array.from({ length: n }, (_, i) => (i * 7) % 13),
      'int32',
    ); // repeated ids
    await same16(be, 'embedding', { table }, n * dim, (o, b) => be.embedding(o, b.table, ids, n, dim));
    const dOut = exact(n * dim, 18);
    await same16(be, 'embeddingBackward', { dOut }, vocab * dim, (o, b) => be.embeddingBackward(o, b.dOut, ids, n, dim));

    const params = exact(N, 19, 1);
    const grads = exact(N, 20, 1);
    const ap = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 2, gradScale: 0.5 };
    const run = (dtype: DType) => {
      const p = upload(be, params, dtype);
      const m = upload(be, exact(N, 21, 0.1));
      const v = upload(be, exact(N, 22, 0.1).map(Math.abs));
      be.adamw(p, upload(be, grads, dtype), m, v, ap);
      return { p, m, v };
    };
    const a32 = run('float32');
    const a16 = run('bfloat16');
    expect(await be.read(a16.p)).toEqual(await asBf16(be, a32.p));
    expect(await download(be, a16.m)).toEqual(await download(be, a32.m));
    expect(await download(be, a16.v)).toEqual(await download(be, a32.v));
    be.destroy();
  });
});
