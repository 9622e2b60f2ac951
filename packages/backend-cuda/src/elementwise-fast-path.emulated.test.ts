// The elementwise kernels' contiguous fast path (kernels/common.cuh: 16-byte vector loads and
// stores of VEC = 8 elements, a scalar tail) on the host emulator, through the whole backend:
// lengths with and without a tail (1, 3, 8, 1023, 4097), views starting at misaligned offsets, and
// the same data through strided views (the scalar path) give the same bits. The helpers
// themselves are checked bit for bit against ld/st in test/emu/selftest.cc. Needs a C++17
// compiler; skips visibly without one.
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend, DeviceBuffer, DType, View } from '@peft/core';
import { encode } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();
const LENGTHS = [1, 3, 8, 1023, 4097];
const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];

/** Deterministic values in about [-3, 3], with a few exact zeros and ties. */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? 0 : Math.sin(seed * 12.9898 + i * 78.233) * 3));
}

const flat = (n: number, offset = 0): View => ({ shape: [n], strides: [1], offset });
/** Element i at 2i + 1: not contiguous, so the kernels take the scalar strided path. */
const strided = (n: number): View => ({ shape: [n], strides: [2], offset: 1 });

describe.skipIf(!emu)('the elementwise kernels: contiguous fast path against the strided path, bit for bit', async () => {
  const { createCudaBackend } = await import('./index.js');
  const b = createCudaBackend({ cublas: false });
  const bits = async (buf: DeviceBuffer) => {
    const raw = await b.read(buf);
    return [...new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)];
  };
  /** A buffer of `dtype` and `size` elements holding v[i] at view(i) (rank-1 views) and 0 elsewhere, written from the host. */
  const place = (dtype: DType, v: Float32Array, view: View, size: number): DeviceBuffer => {
    const host = new Float32Array(size);
    for (let i = 0; i < v.length; i++) host[view.offset + i * view.strides[0]!] = v[i]!;
    const out = b.alloc(dtype, size);
    b.write(out, encode(host, dtype));
    return out;
  };

  for (const n of LENGTHS) {
    for (const dt of DTYPES) {
      it(`binary add/mul/div, n ${n}, ${dt}: views at offsets 0, 1 and 3 equal the strided path`, async () => {
        const x = values(n, 1);
        const y = values(n, 2).map((v) => v + 4); // no division by zero
        for (const op of ['add', 'mul', 'div'] as const) {
          const viaStrided = b.alloc('float32', n);
          b.binary(op, viaStrided, place(dt, x, strided(n), 2 * n + 1), strided(n), place(dt, y, strided(n), 2 * n + 1), strided(n));
          const want = await bits(viaStrided);
          for (const offset of [0, 1, 3]) {
            const out = b.alloc('float32', n);
            b.binary(op, out, place(dt, x, flat(n, offset), n + offset), flat(n, offset), place(dt, y, flat(n, 3), n + 3), flat(n, 3));
            expect(await bits(out), `${op} offset ${offset}`).toEqual(want);
          }
        }
      });

      it(`copy (cast to every other float dtype) and addInto, n ${n}, from ${dt}: offsets 0, 1, 5 equal the strided path`, async () => {
        const x = values(n, 3);
        const src = place(dt, x, strided(n), 2 * n + 1);
        for (const to of DTYPES.filter((d) => d !== dt)) {
          const viaStrided = b.alloc(to, n);
          b.copy(viaStrided, src, strided(n));
          const want = await bits(viaStrided);
          for (const offset of [0, 1, 5]) {
            const out = b.alloc(to, n);
            b.copy(out, place(dt, x, flat(n, offset), n + offset), flat(n, offset));
            expect(await bits(out), `to ${to} offset ${offset}`).toEqual(want);
          }
        }
        // addInto: dst[view(i)] += src[i]; dst through a flat view at an offset against a strided one.
        const addend = b.alloc('float32', n);
        b.write(addend, values(n, 4));
        const dstStrided = place(dt, x, strided(n), 2 * n + 1);
        b.addInto(dstStrided, addend, strided(n));
        const gathered = b.alloc(dt, n);
        b.copy(gathered, dstStrided, strided(n));
        const dstFlat = place(dt, x, flat(n, 1), n + 1);
        b.addInto(dstFlat, addend, flat(n, 1));
        const flatGathered = b.alloc(dt, n);
        b.copy(flatGathered, dstFlat, flat(n, 1));
        expect(await bits(flatGathered)).toEqual(await bits(gathered));
      });
    }
  }
});

describe.skipIf(!emu)(
  'the elementwise kernels without views: vector groups and the scalar tail agree, and match the CPU backend',
  async () => {
    const { createCudaBackend } = await import('./index.js');
    const b = createCudaBackend({ cublas: false });
    const cpu = createCpuBackend();
    const f32 = async (be: Backend, buf: DeviceBuffer) => Float32Array.from((await be.read(buf)) as ArrayLike<number>);
    const upload = (be: Backend, dtype: DType, v: Float32Array): DeviceBuffer => {
      const t = be.alloc('float32', v.length);
      be.write(t, v);
      const out = be.alloc(dtype, v.length);
      be.copy(out, t, flat(v.length));
      be.free(t);
      return out;
    };
    type Op = (be: Backend, out: DeviceBuffer, ins: DeviceBuffer[]) => void;
    const ops: Record<string, { inputs: number; run: Op; out2?: boolean }> = {
      'unary exp': { inputs: 1, run: (be, o, [x]) => be.unary('exp', o, x!) },
      'unary silu': { inputs: 1, run: (be, o, [x]) => be.unary('silu', o, x!) },
      'unary tanh': { inputs: 1, run: (be, o, [x]) => be.unary('tanh', o, x!) },
      'unaryBackward sigmoid': { inputs: 2, run: (be, o, [dy, y]) => be.unaryBackward('sigmoid', o, dy!, y!, y!) },
      affine: { inputs: 1, run: (be, o, [x]) => be.affine(o, x!, 0.75, -0.5) },
      'gelu exact': { inputs: 1, run: (be, o, [x]) => be.gelu(o, x!, false) },
      'gelu tanh': { inputs: 1, run: (be, o, [x]) => be.gelu(o, x!, true) },
      'geluBackward exact': { inputs: 2, run: (be, o, [dy, x]) => be.geluBackward(o, dy!, x!, false) },
      siluMul: { inputs: 2, run: (be, o, [g, u]) => be.siluMul(o, g!, u!) },
      'siluMulBackward dGate': {
        inputs: 3,
        run: (be, o, [dy, g, u]) => {
          const dUp = be.alloc('float32', o.size);
          be.siluMulBackward(o, dUp, dy!, g!, u!);
          be.free(dUp);
        },
      },
    };
    for (const [name, op] of Object.entries(ops)) {
      for (const dt of ['float32', 'bfloat16'] as const) {
        it(`${name}, ${dt}: lengths ${LENGTHS.join(', ')}`, async () => {
          for (const n of LENGTHS) {
            // Inputs whose last n % 8 elements (the scalar tail) repeat the first ones (a vector group).
            const tail = n % 8;
            const ins = Array.from({ length: op.inputs }, (_, k) => {
              const v = values(n, 5 + k);
              for (let j = 0; j < tail && n > 8; j++) v[n - tail + j] = v[j]!;
              return v;
            });
            const out = b.alloc(dt, n);
            op.run(
              b,
              out,
              ins.map((v) => upload(b, dt, v)),
            );
            const got = (await b.read(out)) as ArrayLike<number>;
            for (let j = 0; j < tail && n > 8; j++) expect(Object.is(got[n - tail + j], got[j]), `${n}: tail ${j}`).toBe(true);
            const ref = cpu.alloc(dt, n);
            op.run(
              cpu,
              ref,
              ins.map((v) => upload(cpu, dt, v)),
            );
            const [g, r] = [await f32(b, out), await f32(cpu, ref)];
            const tol = dt === 'float32' ? 1e-5 : 1e-2;
            for (let e = 0; e < n; e++)
              expect(Math.abs(g[e]! - r[e]!), `${name} n ${n} element ${e}`).toBeLessThanOrEqual(tol * (1 + Math.abs(r[e]!)));
          }
        });
      }
    }
  },
);
