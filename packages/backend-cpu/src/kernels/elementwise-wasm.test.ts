/**
 * The WebAssembly SIMD elementwise kernels against the TypeScript loops they replace (the
 * meaning): the same bits for every float32 result and every 16-bit rounding, over edge values,
 * chunk boundaries, ragged lengths, broadcasts and in-place calls. The activations' accuracy
 * against double precision is activations.test.ts's, which runs on whichever path is active.
 */
import { type BinaryOp, type DeviceBuffer, type DType, decode, encode, type View } from '@peft/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CpuBackend } from '../backend.js';
import { backend, randomValues, upload } from '../test-helpers.js';
import { CHUNK, elementwiseWasm, MIN_ROW, setElementwiseWasm } from './elementwise-wasm.js';
import { GELU_ROWS, GELU_TABLE_COUNT, geluTables } from './math.js';

afterEach(() => {
  setElementwiseWasm(true);
});

/** Float32 values that stress the kernels: signed zeros, infinities, NaN, subnormals, extremes and the branch points. */
const EDGES = [
  0,
  -0,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  1e-45,
  -1e-45,
  1e-40,
  -1.17e-38,
  1.18e-38,
  3.4028234663852886e38,
  -3.4028234663852886e38,
  1,
  -1,
  0.5,
  -0.75,
  2.2 * Math.SQRT2,
  -2.2 * Math.SQRT2,
  3.11126,
  -3.11127,
  5,
  -5,
  9.5,
  -9.5,
  9.9,
  -9.9,
  10,
  -10,
  13,
  -13,
  14,
  -14,
  20,
  -20,
  26.5,
  -26.5,
  37.6,
  -37.6,
  37.7,
  -37.7,
  40,
  -40,
  100,
  -100,
  707.9,
  -707.9,
  708,
  -708,
  708.1,
  -708.1,
  709.8,
  -709.8,
  800,
  -800,
  1e10,
  -1e10,
].map(Math.fround);

/** EDGES, every float32 of [-40, 40] on a 1/64 grid, normals at several scales, and the float32 neighbours of the branch points. */
function values(n: number, seed: number): number[] {
  const out: number[] = [...EDGES];
  for (let i = 0; i <= 80 * 64; i++) out.push(-40 + i / 64);
  const f = new Float32Array(1);
  const bits = new Int32Array(f.buffer);
  for (const b of [2.2 * Math.SQRT2, Math.sqrt(2 * 708), 708]) {
    for (const s of [1, -1]) {
      f[0] = s * b;
      const at = bits[0];
      for (let k = -3; k <= 3; k++) {
        bits[0] = at + k;
        out.push(f[0]);
      }
    }
  }
  for (const scale of [1, 3, 12]) out.push(...randomValues(2000, seed + scale, scale));
  const all = Float32Array.from(out);
  return Array.from({ length: n }, (_, i) => all[i % all.length]);
}

/** The bits of every output of `run`, with the TypeScript loops and with the WebAssembly kernels. */
async function both(
  be: CpuBackend,
  outputs: () => DeviceBuffer[],
  run: (outs: DeviceBuffer[]) => void,
): Promise<[Uint8Array[], Uint8Array[]]> {
  const result: Uint8Array[][] = [];
  for (const wasm of [false, true]) {
    setElementwiseWasm(wasm);
    const outs = outputs();
    run(outs);
    const bytes: Uint8Array[] = [];
    for (const o of outs) {
      const raw = await be.read(o);
      bytes.push(new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
    }
    result.push(bytes);
  }
  setElementwiseWasm(true);
  return result as [Uint8Array[], Uint8Array[]];
}

/** Equal bits, except that a NaN may be any NaN (its payload and sign are not specified). */
function expectSameBits(js: Uint8Array, wasm: Uint8Array, dtype: DType, what: string): void {
  const ja = dtype === 'float32' ? new Uint32Array(js.buffer) : new Uint16Array(js.buffer);
  const wb = dtype === 'float32' ? new Uint32Array(wasm.buffer) : new Uint16Array(wasm.buffer);
  const a = dtype === 'float32' ? new Float32Array(js.buffer) : decode(new Uint16Array(js.buffer), dtype);
  const b = dtype === 'float32' ? new Float32Array(wasm.buffer) : decode(new Uint16Array(wasm.buffer), dtype);
  expect(wb.length, what).toBe(ja.length);
  for (let i = 0; i < ja.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    if (ja[i] !== wb[i])
      throw new Error(`${what}: element ${i}: TypeScript ${a[i]} (0x${ja[i].toString(16)}), wasm ${b[i]} (0x${wb[i].toString(16)})`);
  }
}

const LENGTHS = [1, 3, 5, 7, 64, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3];
const DTYPES: [DType, DType, DType][] = [
  ['float32', 'float32', 'float32'],
  ['bfloat16', 'bfloat16', 'bfloat16'],
  ['float16', 'float32', 'bfloat16'],
];

describe('elementwise wasm module', () => {
  it('loads where WebAssembly SIMD is (Node), and can be turned off and on', () => {
    expect(elementwiseWasm()).not.toBeNull();
    expect(setElementwiseWasm(false)).toBe(true);
    expect(elementwiseWasm()).toBeNull();
    expect(setElementwiseWasm(true)).toBe(false);
    expect(elementwiseWasm()).not.toBeNull();
  });

  it('compiles in the background where a synchronous compile is refused (browsers, over 4 KiB), the loops running meanwhile', async () => {
    vi.resetModules();
    const Module = WebAssembly.Module;
    const refuse = function (this: unknown) {
      throw new RangeError('WebAssembly.Module(): Buffer size is over the synchronous limit');
    };
    (WebAssembly as { Module: unknown }).Module = refuse;
    try {
      const fresh = await import('./elementwise-wasm.js');
      expect(fresh.elementwiseWasm()).toBeNull();
      await fresh.elementwiseWasmCompiled();
      expect(fresh.elementwiseWasm()).not.toBeNull();
    } finally {
      (WebAssembly as { Module: unknown }).Module = Module;
      vi.resetModules();
    }
  });
});

describe('activations: wasm and TypeScript give the same bits', () => {
  const kernels: [string, (be: CpuBackend, o: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer) => void][] = [
    ['gelu exact', (be, o, x) => be.gelu(o, x, false)],
    ['gelu tanh', (be, o, x) => be.gelu(o, x, true)],
    ['geluBackward exact', (be, o, x, y) => be.geluBackward(o, y, x, false)],
    ['geluBackward tanh', (be, o, x, y) => be.geluBackward(o, y, x, true)],
    ['siluMul', (be, o, x, y) => be.siluMul(o, x, y)],
  ];

  for (const [name, call] of kernels) {
    it(`${name}: edge values, every length class, 16-bit storage`, async () => {
      const be = backend();
      for (const n of LENGTHS) {
        for (const [dx, dy, dout] of DTYPES) {
          const xs = values(n, 1);
          const ys = values(n, 2).reverse();
          const x = upload(be, xs, dx);
          const y = upload(be, ys, dy);
          const [js, wasm] = await both(
            be,
            () => [be.alloc(dout, n)],
            ([o]) => call(be, o, x, y),
          );
          expectSameBits(js[0], wasm[0], dout, `${name} n=${n} ${dx},${dy}→${dout}`);
        }
      }
      be.destroy();
    });
  }

  it('gelu and geluBackward on a dense sweep of float32: every 4099th bit pattern (NaNs, ±∞, subnormals included) and every table cell', async () => {
    const be = backend();
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    const xs: number[] = [];
    for (let b = 0; b < 2 ** 32; b += 4099) {
      bits[0] = b;
      xs.push(f[0]);
    }
    for (const sign of [0, 0x80000000])
      for (let e = -10; e <= 2; e++)
        for (let c = 0; c < 128; c++)
          for (const low of [0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff]) {
            bits[0] = (sign | ((127 + e) << 23) | (c << 16) | low) >>> 0;
            xs.push(f[0]);
          }
    const n = xs.length;
    const x = upload(be, xs);
    const dy = upload(be, randomValues(n, 21, 3));
    for (const [name, call] of kernels.slice(0, 4)) {
      const [js, wasm] = await both(
        be,
        () => [be.alloc('float32', n)],
        ([o]) => call(be, o, x, dy),
      );
      expectSameBits(js[0], wasm[0], 'float32', `${name}, dense sweep`);
    }
    be.destroy();
  });

  it('the module builds the same GELU tables as math.ts, bit for bit', () => {
    const w = elementwiseWasm();
    expect(w).not.toBeNull();
    const mem = new Uint32Array(w!.fns.memory.buffer);
    const want = new Uint32Array(geluTables().buffer);
    for (let t = 0; t < GELU_TABLE_COUNT; t++) {
      for (let row = 0; row < GELU_ROWS; row++) {
        const at = w!.fns.geluRowAddress(t, row) / 4;
        for (let j = 0; j < 4; j++) {
          const i = 4 * (t * GELU_ROWS + row) + j;
          if (mem[at + j] !== want[i])
            throw new Error(`table ${t}, row ${row}, c${j}: module 0x${mem[at + j].toString(16)}, math.ts 0x${want[i].toString(16)}`);
        }
      }
    }
  });

  it('in place: the output is an input', async () => {
    const be = backend();
    const n = 2 * CHUNK + 5;
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const xs = values(n, 3);
      const ys = values(n, 4);
      for (const [name, call] of kernels) {
        for (const into of ['x', 'y'] as const) {
          const [js, wasm] = await both(
            be,
            () => [upload(be, xs, dtype), upload(be, ys, dtype)],
            ([x, y]) => call(be, into === 'x' ? x : y, x, y),
          );
          expectSameBits(js[0], wasm[0], dtype, `${name} into ${into} (${dtype})`);
          expectSameBits(js[1], wasm[1], dtype, `${name} into ${into} (${dtype})`);
        }
      }
    }
    be.destroy();
  });

  it('siluMulBackward, its outputs separate or over its inputs', async () => {
    const be = backend();
    for (const n of LENGTHS) {
      for (const [d1, d2, d3] of DTYPES) {
        const g = values(n, 5);
        const gate = values(n, 6).reverse();
        const up = randomValues(n, 7, 3);
        const [js, wasm] = await both(
          be,
          () => [be.alloc(d3, n), be.alloc(d3, n)],
          ([dGate, dUp]) => be.siluMulBackward(dGate, dUp, upload(be, g, d1), upload(be, gate, d2), upload(be, up, d1)),
        );
        expectSameBits(js[0], wasm[0], d3, `dGate n=${n}`);
        expectSameBits(js[1], wasm[1], d3, `dUp n=${n}`);
      }
    }
    const n = CHUNK + 9;
    const [g, gate, up] = [values(n, 8), values(n, 9), values(n, 10)];
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const [js, wasm] = await both(
        be,
        () => [upload(be, g, dtype), upload(be, gate, dtype), upload(be, up, dtype)],
        ([dy, gt, u]) => be.siluMulBackward(gt, dy, dy, gt, u),
      );
      for (let k = 0; k < 3; k++) expectSameBits(js[k], wasm[k], dtype, `in place (${dtype}) buffer ${k}`);
    }
    be.destroy();
  });
});

describe('affine: wasm and TypeScript give the same bits', () => {
  it('edge values, scales, lengths, 16-bit storage, in place', async () => {
    const be = backend();
    for (const [alpha, beta] of [
      [1, 0],
      [-1, 0],
      [0.1, -3.7],
      [1 / 3, 1e-30],
      [1e30, 1],
      [0, 0],
    ]) {
      for (const n of LENGTHS) {
        for (const [dx, , dout] of DTYPES) {
          const x = upload(be, values(n, 11), dx);
          const [js, wasm] = await both(
            be,
            () => [be.alloc(dout, n)],
            ([o]) => be.affine(o, x, alpha, beta),
          );
          expectSameBits(js[0], wasm[0], dout, `affine ${alpha}, ${beta} n=${n} ${dx}→${dout}`);
        }
      }
    }
    const n = CHUNK + 1;
    const xs = values(n, 12);
    const [js, wasm] = await both(
      be,
      () => [upload(be, xs, 'bfloat16')],
      ([x]) => be.affine(x, x, -0.5, 2),
    );
    expectSameBits(js[0], wasm[0], 'bfloat16', 'affine in place');
    be.destroy();
  });
});

describe('binary: wasm and TypeScript give the same bits', () => {
  const OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min'];
  const contiguous = (shape: number[], offset = 0): View => {
    const strides = shape.map((_, d) => shape.slice(d + 1).reduce((p, q) => p * q, 1));
    return { shape, strides, offset };
  };

  /** [a view, b view, a size, b size] for an output of `shape` [R, C]. */
  function layouts(R: number, C: number): [string, View, View, number, number][] {
    const n = R * C;
    const full = contiguous([R, C]);
    return [
      ['contiguous', full, contiguous([R, C], 3), n, n + 3],
      ['b a row', full, { shape: [R, C], strides: [0, 1], offset: 2 }, n, C + 2],
      ['a a row', { shape: [R, C], strides: [0, 1], offset: 0 }, full, C, n],
      ['b a scalar', full, { shape: [R, C], strides: [0, 0], offset: 1 }, n, 2],
      ['a a scalar', { shape: [R, C], strides: [0, 0], offset: 0 }, full, 1, n],
      ['both rows', { shape: [R, C], strides: [0, 1], offset: 0 }, { shape: [R, C], strides: [0, 1], offset: 1 }, C, C + 1],
      ['row and scalar', { shape: [R, C], strides: [0, 1], offset: 0 }, { shape: [R, C], strides: [0, 0], offset: 0 }, C, 1],
      ['both scalars', { shape: [R, C], strides: [0, 0], offset: 0 }, { shape: [R, C], strides: [0, 0], offset: 0 }, 1, 1],
      ['b a column', full, { shape: [R, C], strides: [1, 0], offset: 0 }, n, R],
      ['b rows apart', full, { shape: [R, C], strides: [C + 7, 1], offset: 5 }, n, R * (C + 7) + 5],
      ['b transposed', full, { shape: [R, C], strides: [1, R], offset: 0 }, n, n],
    ];
  }

  const edges = (n: number, seed: number) => {
    const out = values(n, seed);
    // pairs of edge values against each other: every EDGES[i] op EDGES[j] appears
    for (let i = 0; i < EDGES.length && i * EDGES.length < n; i++) {
      for (let j = 0; j < EDGES.length && i * EDGES.length + j < n; j++) out[i * EDGES.length + j] = seed === 1 ? EDGES[i] : EDGES[j];
    }
    return out;
  };

  for (const [R, C] of [
    [1, 1],
    [3, 5],
    [33, MIN_ROW + 3],
    [5, 2 * CHUNK + 1],
    [2, 3 * CHUNK + 7],
  ]) {
    it(`every op and layout, ${R}×${C}`, async () => {
      const be = backend();
      for (const [layout, av, bv, na, nb] of layouts(R, C)) {
        for (const [da, db, dout] of DTYPES) {
          const a = upload(be, edges(na, 1), da);
          const b = upload(be, edges(nb, 2), db);
          for (const op of OPS) {
            const [js, wasm] = await both(
              be,
              () => [be.alloc(dout, R * C)],
              ([o]) => be.binary(op, o, a, av, b, bv),
            );
            expectSameBits(js[0], wasm[0], dout, `${op} ${layout} ${R}×${C} ${da},${db}→${dout}`);
          }
        }
      }
      be.destroy();
    });
  }

  it('max and min propagate NaN and order -0 < +0 like torch.maximum / torch.minimum', async () => {
    const be = backend();
    const a = [Number.NaN, 1, -0, 0, -0, Number.NEGATIVE_INFINITY, 2];
    const b = [1, Number.NaN, 0, -0, -0, Number.NaN, Number.POSITIVE_INFINITY];
    const view = contiguous([a.length]);
    for (const [op, want] of [
      ['max', [Number.NaN, Number.NaN, 0, 0, -0, Number.NaN, Number.POSITIVE_INFINITY]],
      ['min', [Number.NaN, Number.NaN, -0, -0, -0, Number.NaN, 2]],
    ] as const) {
      const o = be.alloc('float32', a.length);
      be.binary(op, o, upload(be, a), view, upload(be, b), view);
      expect(Array.from(decode(await be.read(o), 'float32')), op).toEqual(want);
    }
    be.destroy();
  });

  it('in place: out is a (also read one element ahead) or the broadcast operand, without a detour', async () => {
    const be = backend();
    const [R, C] = [7, CHUNK / 2 + 3];
    const n = R * C;
    const full = contiguous([R, C]);
    const rowView: View = { shape: [R, C], strides: [0, 1], offset: 0 };
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const xs = edges(n + 1, 1);
      const row = edges(C, 2);
      for (const op of OPS) {
        // out = a, b a row broadcast over it (a bias added in place)
        let [js, wasm] = await both(
          be,
          () => [upload(be, xs, dtype)],
          ([x]) => be.binary(op, x, x, full, upload(be, row, dtype), rowView),
        );
        expectSameBits(js[0], wasm[0], dtype, `${op}: out = a (${dtype})`);
        // out = a, read one element ahead
        [js, wasm] = await both(
          be,
          () => [upload(be, xs, dtype)],
          ([x]) => be.binary(op, x, x, contiguous([n], 1), upload(be, row.slice(0, 1), dtype), { shape: [n], strides: [0], offset: 0 }),
        );
        expectSameBits(js[0], wasm[0], dtype, `${op}: out = a one ahead (${dtype})`);
        // out = b, b a row of out: it is read whole before out is written
        [js, wasm] = await both(
          be,
          () => [upload(be, xs.slice(0, n), dtype), upload(be, xs.slice(0, n), dtype)],
          ([x, y]) => be.binary(op, y, x, full, y, rowView),
        );
        expectSameBits(js[1], wasm[1], dtype, `${op}: out = b, b broadcast (${dtype})`);
        // out = a and b, a transposed view of itself: the TypeScript loops with scratch
        [js, wasm] = await both(
          be,
          () => [upload(be, xs.slice(0, 64 * 64), dtype)],
          ([x]) => be.binary(op, x, x, contiguous([64, 64]), x, { shape: [64, 64], strides: [1, 64], offset: 0 }),
        );
        expectSameBits(js[0], wasm[0], dtype, `${op}: out = a = b transposed (${dtype})`);
      }
    }
    be.destroy();
  });
});

describe('addInto: wasm and TypeScript give the same bits', () => {
  it('rows of a larger destination, 16-bit destinations and sources', async () => {
    const be = backend();
    for (const [R, C, stride, offset] of [
      [3, MIN_ROW, MIN_ROW * 3, MIN_ROW],
      [40, 1000, 3000, 1000],
      [2, 3 * CHUNK + 5, 3 * CHUNK + 9, 4],
      [1, 2 * CHUNK + 1, 0, 7],
      [30, 64, 192, 64],
    ]) {
      const view: View = { shape: [R, C], strides: [stride, 1], offset };
      const size = offset + (R - 1) * stride + C + 3;
      for (const [ds, , dd] of DTYPES) {
        const dst = values(size, 13);
        const src = upload(be, values(R * C, 14).reverse(), ds);
        const [js, wasm] = await both(
          be,
          () => [upload(be, dst, dd)],
          ([d]) => be.addInto(d, src, view),
        );
        expectSameBits(js[0], wasm[0], dd, `addInto ${R}×${C} by ${stride} ${ds}→${dd}`);
      }
    }
    be.destroy();
  });

  it('16-bit sums are the float32 sums rounded once', async () => {
    const be = backend();
    const n = CHUNK + 200;
    const dst = randomValues(n, 15, 4);
    const src = randomValues(n, 16, 1e-2);
    const view: View = { shape: [n], strides: [1], offset: 0 };
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const d = upload(be, dst, dtype);
      be.addInto(d, upload(be, src), view);
      const base = decode(encode(dst, dtype), dtype);
      const want = encode(
        Float32Array.from(base, (v, i) => v + Math.fround(src[i])),
        dtype,
      );
      expect(new Uint16Array((await be.read(d)).buffer)).toEqual(new Uint16Array(want.buffer));
    }
    be.destroy();
  });
});
