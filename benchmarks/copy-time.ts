// The CPU backend's data-movement and rotary kernels on the shapes of a GPT-NeoX-110M LoRA step
// (batch 8, seq 128, 12 heads, headDim 64, rotary on 16 features): copy of one part of a fused
// q/k/v projection (headPart), bias rows broadcast over [1024, n], addInto, rotary and its
// backward. Mean ms of 20 calls after 3 warm-ups, at 1 and 2 threads; prints JSON.
//
// With BASE=<another checkout> it times that checkout's backend alternately with this one, 3
// rounds (ROUNDS=n for more), and prints base / this ratios per round and their median (above 1:
// this one is faster); ONLY=<text> times only the cases whose name contains it:
//   git worktree add --detach /tmp/copy-base HEAD   (then symlink node_modules into it)
//   BASE=/tmp/copy-base node --conditions=@peft/source --import tsx benchmarks/copy-time.ts
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend, DeviceBuffer, RotaryParams, View } from '@peft/core';

type Make = typeof createCpuBackend;
type Case = { name: string; setup: (be: Backend) => () => void };

const [B, S, H, D] = [8, 128, 12, 64];
const tokens = B * S;
const rope: RotaryParams = { batch: B, seq: S, heads: H, headDim: D, rotaryDim: 16, base: 10000, positionScale: 1 };

function filled(be: Backend, n: number, seed: number): DeviceBuffer {
  const buf = be.alloc('float32', n);
  be.write(
    buf,
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed)),
  );
  return buf;
}

/** One of q/k/v of a fused projection [B, S, H·3·D]: shape [B, S, H, 1, D]. */
const headPart: View = { shape: [B, S, H, 1, D], strides: [S * H * 3 * D, H * 3 * D, 3 * D, D, 1], offset: D };

const cases: Case[] = [
  {
    name: 'copy headPart [8,128,12,1,64]',
    setup: (be) => {
      const x = filled(be, tokens * H * 3 * D, 1);
      const out = be.alloc('float32', tokens * H * D);
      return () => be.copy(out, x, headPart);
    },
  },
  ...[768, 2304, 3072].map(
    (n): Case => ({
      name: `copy bias [${n}] -> [1024,${n}]`,
      setup: (be) => {
        const x = filled(be, n, 2);
        const out = be.alloc('float32', tokens * n);
        return () => be.copy(out, x, { shape: [tokens, n], strides: [0, 1], offset: 0 });
      },
    }),
  ),
  {
    name: 'addInto [1024,768]',
    setup: (be) => {
      const dst = filled(be, tokens * 768, 3);
      const src = filled(be, tokens * 768, 4);
      return () => be.addInto(dst, src, { shape: [tokens, 768], strides: [768, 1], offset: 0 });
    },
  },
  {
    name: 'addInto headPart',
    setup: (be) => {
      const dst = filled(be, tokens * H * 3 * D, 5);
      const src = filled(be, tokens * H * D, 6);
      return () => be.addInto(dst, src, headPart);
    },
  },
  ...(['rotary', 'rotaryBackward'] as const).map(
    (k): Case => ({
      name: `${k} [8,128,12,64]`,
      setup: (be) => {
        const x = filled(be, tokens * H * D, 7);
        const out = be.alloc('float32', tokens * H * D);
        const pos = be.alloc('int32', tokens);
        be.write(
          pos,
          Int32Array.from({ length: tokens }, (_, t) => t % S),
        );
        return () => be[k](out, x, pos, rope);
      },
    }),
  ),
];

async function time(be: Backend, call: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) call();
  await be.sync();
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) call();
  return (performance.now() - t0) / 20;
}

const base = process.env.BASE;
const impls: [string, Make][] = [['this', createCpuBackend]];
if (base !== undefined) {
  const mod = (await import(`${base}/packages/backend-cpu/src/index.ts`)) as { createCpuBackend: Make };
  impls.unshift(['base', mod.createCpuBackend]);
}
const rounds = Number(process.env.ROUNDS ?? (base === undefined ? 1 : 3));
const ms: Record<string, number[]> = {};
for (const threads of [1, 2]) {
  const backends = impls.map(([label, make]) => [label, make({ threads })] as const);
  for (const c of cases.filter((c) => c.name.includes(process.env.ONLY ?? ''))) {
    const calls = new Map(backends.map(([label, be]) => [label, c.setup(be)]));
    // Each round times every implementation back to back on the same case, the order alternating.
    for (let round = 0; round < rounds; round++) {
      for (const [label, be] of round % 2 === 0 ? backends : [...backends].reverse()) {
        (ms[`${c.name} t${threads} ${label}`] ??= []).push(await time(be, calls.get(label)!));
      }
    }
  }
  for (const [, be] of backends) be.destroy();
}
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
const report: Record<string, unknown> = {};
for (const c of cases.filter((c) => `${c.name} t1 this` in ms)) {
  for (const threads of [1, 2]) {
    const mine = ms[`${c.name} t${threads} this`];
    const row: Record<string, unknown> = { ms: +mean(mine).toFixed(3) };
    if (base !== undefined) {
      const old = ms[`${c.name} t${threads} base`];
      row.baseMs = +mean(old).toFixed(3);
      const ratios = old.map((o, i) => o / mine[i]);
      row.ratios = ratios.map((r) => +r.toFixed(2));
      row.median = +[...ratios].sort((a, b) => a - b)[ratios.length >> 1].toFixed(2);
    }
    report[`${c.name} t${threads}`] = row;
  }
}
console.log(
  `{\n${Object.entries(report)
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
    .join(',\n')}\n}`,
);
