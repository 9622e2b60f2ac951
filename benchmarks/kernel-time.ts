// Per-kernel timings of the CPU backend on the GPT-NeoX-110M bench shapes (8 × 128 tokens, hidden 768,
// 12 heads): mean ms of N calls after warm-ups, at the thread counts given. Prints JSON.
//   node --conditions=@peft/source --import tsx benchmarks/kernel-time.ts [threads...]
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend, DeviceBuffer } from '@peft/core';

const B = 8;
const T = 128;
const H = 12;
const D = 64;
const C = H * D;
const rows = B * T;

function buf(be: Backend, n: number, f: (i: number) => number = (i) => Math.sin(i * 0.37)): DeviceBuffer {
  const b = be.alloc('float32', n);
  be.write(
    b,
    Float32Array.from({ length: n }, (_, i) => f(i)),
  );
  return b;
}

function time(fn: () => void, reps = 10): number {
  for (let i = 0; i < 2; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

const threadList = process.argv.slice(2).map(Number);
const out: Record<string, Record<string, number>> = {};
for (const threads of threadList.length ? threadList : [1, 2]) {
  const be = createCpuBackend({ threads });
  const r: Record<string, number> = {};
  const x = buf(be, rows * C);
  const y = be.alloc('float32', rows * C);
  const dy = buf(be, rows * C, (i) => Math.cos(i * 0.11));
  const mean = be.alloc('float32', rows);
  const rstd = be.alloc('float32', rows);
  const w = buf(be, C, (i) => 1 + 0.01 * i);
  const bias = buf(be, C, (i) => 0.001 * i);
  const p = { rows, dim: C, eps: 1e-5 };
  r.layerNorm = time(() => be.layerNorm(y, mean, rstd, x, w, bias, p));
  r.layerNormBackward = time(() => be.layerNormBackward(y, null, null, dy, x, w, mean, rstd, p));
  const pos = be.alloc('int32', rows);
  be.write(
    pos,
    Int32Array.from({ length: rows }, (_, i) => i % T),
  );
  const rp = { batch: B, seq: T, heads: H, headDim: D, rotaryDim: 16, base: 10000, positionScale: 1 };
  r.rotary = time(() => be.rotary(y, x, pos, rp));
  r.rotaryBackward = time(() => be.rotaryBackward(y, dy, pos, rp));
  // headPart: part 1 of fused [B, T, H, 3, D]
  const fused = buf(be, rows * 3 * C);
  r['copy headPart'] = time(() =>
    be.copy(y, fused, { shape: [B, T, H, 1, D], strides: [T * H * 3 * D, H * 3 * D, 3 * D, D, 1], offset: D }),
  );
  const big = be.alloc('float32', rows * 4 * C);
  const b4 = buf(be, 4 * C);
  r['copy bias 1024x3072'] = time(() => be.copy(big, b4, { shape: [rows, 4 * C], strides: [0, 1], offset: 0 }));
  r.addInto = time(() => be.addInto(y, dy, { shape: [rows, C], strides: [C, 1], offset: 0 }));
  const flat = { shape: [rows, C], strides: [C, 1], offset: 0 };
  r['binary add'] = time(() => be.binary('add', y, x, flat, dy, flat));
  const ap = { batch: B, seqQ: T, seqK: T, heads: H, kvHeads: H, headDim: D, causal: true, scale: 0.125 };
  const lse = be.alloc('float32', B * H * T);
  const q = buf(be, rows * C, (i) => Math.sin(i * 0.013));
  const k = buf(be, rows * C, (i) => Math.cos(i * 0.017));
  const v = buf(be, rows * C, (i) => Math.sin(i * 0.019));
  r.attention = time(() => be.attention(y, lse, q, k, v, null, ap));
  const dq = be.alloc('float32', rows * C);
  const dk = be.alloc('float32', rows * C);
  const dv = be.alloc('float32', rows * C);
  r.attentionBackward = time(() => be.attentionBackward(dq, dk, dv, dy, q, k, v, y, lse, null, ap));
  const x4 = buf(be, rows * 4 * C);
  r.gelu = time(() => be.gelu(big, x4, false));
  r.geluBackward = time(() => be.geluBackward(big, big, x4, false));
  r.dropout = time(() => be.dropout(y, x, { p: 0.1, seed: 1, offset: 0 }));
  for (const [k2, v2] of Object.entries(r)) r[k2] = Math.round(v2 * 100) / 100;
  out[`x${threads}`] = r;
  be.destroy();
}
console.log(JSON.stringify(out, null, 1));
