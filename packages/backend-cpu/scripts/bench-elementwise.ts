/**
 * Times the elementwise kernels of a training step (ns per element, float32) with the TypeScript
 * loops and with the WebAssembly SIMD kernels, alternating the two round by round in this one
 * process so that load from other processes hits both alike; prints the median and the minimum
 * over the rounds (the minimum is the least disturbed by other processes) and the ratios of the
 * medians, and checks that both give the same bits.
 *
 *   node --conditions=@peft/source --import tsx packages/backend-cpu/scripts/bench-elementwise.ts [--rounds N]
 */
import type { DeviceBuffer } from '@peft/core';
import { createCpuBackend } from '../src/index.js';
import { setElementwiseWasm } from '../src/kernels/elementwise-wasm.js';

const argRounds = process.argv.indexOf('--rounds');
const ROUNDS = argRounds > 0 ? Number(process.argv[argRounds + 1]) : 9;
const be = createCpuBackend({ threads: 1 });

/** Normal(0, 1) values from a fixed seed (Box–Muller on a small LCG). */
function normals(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return out;
}

function upload(values: Float32Array): DeviceBuffer {
  const b = be.alloc('float32', values.length);
  be.write(b, values);
  return b;
}

interface Case {
  name: string;
  elements: number;
  /** Puts the inputs back where the kernel writes in place. */
  reset?: () => void;
  run: () => void;
  out: DeviceBuffer;
}

function cases(M: number, N: number): Case[] {
  const n = M * N;
  const x = upload(normals(n, 1));
  const y = upload(normals(n, 2));
  const g = upload(normals(n, 3));
  const row = upload(normals(N, 4));
  const out = be.alloc('float32', n);
  const out2 = be.alloc('float32', n);
  const inPlace = be.alloc('float32', n);
  const xv = { offset: 0, shape: [M, N], strides: [N, 1] };
  const rowView = { offset: 0, shape: [M, N], strides: [0, 1] };
  const scalarView = { offset: 0, shape: [M, N], strides: [0, 0] };
  const restore = () => be.copy(inPlace, x, { offset: 0, shape: [n], strides: [1] });
  // slice backward of a per-head fused projection [M, H, 3, 64] (headPart): rows of 64, 192 apart
  const heads = N / 64;
  const fused = be.alloc('float32', 3 * n);
  const headView = { offset: 64, shape: [M * heads, 64], strides: [192, 1] };
  // concat / slice of whole rows: [M, N] into the middle third of [M, 3N]
  const rowsView = { offset: N, shape: [M, N], strides: [3 * N, 1] };
  const zero = () => be.fill(fused, 0);
  return [
    { name: 'gelu exact', elements: n, out, run: () => be.gelu(out, x, false) },
    { name: 'gelu tanh', elements: n, out, run: () => be.gelu(out, x, true) },
    { name: 'geluBackward exact', elements: n, out, run: () => be.geluBackward(out, g, x, false) },
    { name: 'geluBackward tanh', elements: n, out, run: () => be.geluBackward(out, g, x, true) },
    { name: 'siluMul', elements: n, out, run: () => be.siluMul(out, x, y) },
    { name: 'siluMulBackward', elements: n, out: out2, run: () => be.siluMulBackward(out, out2, g, x, y) },
    { name: 'add contiguous', elements: n, out, run: () => be.binary('add', out, x, xv, y, xv) },
    { name: 'add row broadcast', elements: n, out, run: () => be.binary('add', out, x, xv, row, rowView) },
    {
      name: 'add row broadcast in place',
      elements: n,
      out: inPlace,
      reset: restore,
      run: () => be.binary('add', inPlace, inPlace, xv, row, rowView),
    },
    { name: 'mul scalar broadcast', elements: n, out, run: () => be.binary('mul', out, x, xv, row, scalarView) },
    { name: 'max contiguous', elements: n, out, run: () => be.binary('max', out, x, xv, y, xv) },
    { name: 'affine', elements: n, out, run: () => be.affine(out, x, 0.125, -1) },
    { name: 'addInto rows of 64', elements: n, out: fused, reset: zero, run: () => be.addInto(fused, x, headView) },
    { name: `addInto rows of ${N}`, elements: n, out: fused, reset: zero, run: () => be.addInto(fused, x, rowsView) },
  ];
}

const median = (a: number[]) => a.slice().sort((p, q) => p - q)[a.length >> 1];

async function bytesOf(b: DeviceBuffer): Promise<Uint8Array> {
  const raw = await be.read(b);
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

console.log(`elementwise kernels, float32, 1 thread, ${ROUNDS} alternating rounds: ns per element, median (min)`);
console.log(`${'kernel'.padEnd(30)} ${'size'.padEnd(10)} ${'js'.padStart(15)} ${'wasm'.padStart(15)} ${'js/wasm'.padStart(8)}`);
for (const [M, N] of [
  [1024, 3072],
  [1024, 768],
]) {
  for (const c of cases(M, N)) {
    const outputs: Uint8Array[] = [];
    const times: number[][] = [[], []];
    for (const wasm of [false, true]) {
      setElementwiseWasm(wasm);
      c.reset?.();
      c.run();
      outputs.push(await bytesOf(c.out));
    }
    const same = outputs[0].every((v, i) => v === outputs[1][i]);
    const reps = Math.max(1, Math.round(3e6 / c.elements));
    for (let r = 0; r < ROUNDS; r++) {
      for (const wasm of [false, true]) {
        setElementwiseWasm(wasm);
        c.reset?.();
        c.run(); // warm
        let ms = 0;
        for (let k = 0; k < reps; k++) {
          c.reset?.();
          const t0 = performance.now();
          c.run();
          ms += performance.now() - t0;
        }
        times[wasm ? 1 : 0].push((ms * 1e6) / reps / c.elements);
      }
    }
    const [js, wasm] = times.map(median);
    const cell = (t: number[]) => `${median(t).toFixed(2)} (${Math.min(...t).toFixed(2)})`.padStart(15);
    console.log(
      `${c.name.padEnd(30)} ${`${M}×${N}`.padEnd(10)} ${cell(times[0])} ${cell(times[1])} ${`${(js / wasm).toFixed(1)}×`.padStart(8)}${same ? '' : '  RESULTS DIFFER'}`,
    );
  }
}
setElementwiseWasm(true);
be.destroy();
