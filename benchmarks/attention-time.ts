// backend.attention / backend.attentionBackward of the CPU backend on the GPT-NeoX-110M training
// shape (batch 8, seq 128, 12 heads, headDim 64, causal), without and with a padding mask, against
// the kernels of another revision (default HEAD), alternately: per round and thread count, each
// variant is timed as the mean of 10 calls after 2 warm-ups, base first, then this tree. Prints
// the rounds and the ratios base / this tree as JSON.
//
//   node --conditions=@peft/source --import tsx benchmarks/attention-time.ts [--base REV] [--rounds N] [--threads 1,2] [--clock wall|cpu]
//
// --clock cpu times the calls by the process's CPU time (process.cpuUsage) instead of the wall
// clock: on a machine shared with other work it leaves out the time the kernel waits for a core.
// It counts every thread of the process, so it suits kernels whose other threads stay idle, as
// these do (their GEMMs are too small for OpenBLAS to split, and they use no worker).
//
// The base kernels are attention.ts, attention-rows.ts and attention-rows.wasm.ts of REV (git
// show), written to a temporary directory with their imports of storage.ts pointed at this tree's,
// and called directly on the same backend (this tree's kernels go through backend.attention, whose
// argument checks cost microseconds). Both get the same buffers; the largest difference of their
// outputs is printed as a sanity check.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createCpuBackend } from '@peft/backend-cpu';
import type { AttentionParams, Backend, DeviceBuffer } from '@peft/core';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
};
const baseRev = opt('base', 'HEAD');
const rounds = Number(opt('rounds', '3'));
const threadList = opt('threads', '1,2').split(',').map(Number);
const clock = opt('clock', 'wall');
if (clock !== 'wall' && clock !== 'cpu') throw new Error(`--clock must be wall or cpu, got ${clock}`);
const now =
  clock === 'wall'
    ? () => performance.now()
    : () => {
        const u = process.cpuUsage();
        return (u.user + u.system) / 1000;
      };
const REPS = 10;
const WARMUPS = 2;

const root = fileURLToPath(new URL('..', import.meta.url));
const kernelDir = 'packages/backend-cpu/src/kernels';

type Kernels = {
  attention(
    ctx: unknown,
    out: DeviceBuffer,
    lse: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void;
  attentionBackward(
    ctx: unknown,
    dq: DeviceBuffer,
    dk: DeviceBuffer,
    dv: DeviceBuffer,
    dOut: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    out: DeviceBuffer,
    lse: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void;
};

/** The attention kernels of `rev`, loaded from a temporary copy. */
async function loadBase(rev: string): Promise<{ kernels: Kernels; commit: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'peft-attention-base-'));
  const show = (file: string) => execFileSync('git', ['show', `${rev}:${kernelDir}/${file}`], { cwd: root, encoding: 'utf8' });
  const storage = pathToFileURL(join(root, 'packages/backend-cpu/src/storage.ts')).href;
  for (const file of ['attention.ts', 'attention-rows.ts', 'attention-rows.wasm.ts']) {
    writeFileSync(join(dir, file), show(file).replaceAll("'../storage.js'", `'${storage}'`));
  }
  const commit = execFileSync('git', ['rev-parse', '--short', rev], { cwd: root, encoding: 'utf8' }).trim();
  const mod = (await import(pathToFileURL(join(dir, 'attention.ts')).href)) as { attentionKernels: Kernels };
  return { kernels: mod.attentionKernels, commit, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const p: AttentionParams = { batch: 8, seqQ: 128, seqK: 128, heads: 12, kvHeads: 12, headDim: 64, scale: 1 / 8, causal: true };
/** Right padding of 0..35 tokens per sequence (a batch of classifier examples of different lengths). */
const paddedMask = Array.from({ length: p.batch * p.seqK }, (_, i) => (i % p.seqK < p.seqK - ((Math.floor(i / p.seqK) * 5) % 36) ? 1 : 0));

function buf(be: Backend, n: number, f: (i: number) => number): DeviceBuffer {
  const b = be.alloc('float32', n);
  be.write(
    b,
    Float32Array.from({ length: n }, (_, i) => f(i)),
  );
  return b;
}

function meanMs(fn: () => void): number {
  for (let i = 0; i < WARMUPS; i++) fn();
  const t0 = now();
  for (let i = 0; i < REPS; i++) fn();
  return (now() - t0) / REPS;
}

const base = await loadBase(baseRev);
const nq = p.batch * p.seqQ * p.heads * p.headDim;
const nk = p.batch * p.seqK * p.kvHeads * p.headDim;
const result: Record<string, unknown> = { base: base.commit, clock, shape: p, reps: REPS, warmups: WARMUPS };
const ratios: Record<string, { forward: number[]; backward: number[] }> = {};
try {
  for (const threads of threadList) {
    const be = createCpuBackend({ threads });
    const q = buf(be, nq, (i) => Math.sin(i * 0.37));
    const k = buf(be, nk, (i) => Math.cos(i * 0.23));
    const v = buf(be, nk, (i) => Math.sin(i * 0.11 + 1));
    const g = buf(be, nq, (i) => Math.cos(i * 0.07) * 0.1);
    const bufs = () => ({
      out: be.alloc('float32', nq),
      lse: be.alloc('float32', p.batch * p.heads * p.seqQ),
      dq: be.alloc('float32', nq),
      dk: be.alloc('float32', nk),
      dv: be.alloc('float32', nk),
    });
    for (const [maskName, maskValues] of [
      ['no mask', null],
      ['padding mask', paddedMask],
    ] as const) {
      let mask: DeviceBuffer | null = null;
      if (maskValues !== null) {
        mask = be.alloc('int32', maskValues.length);
        be.write(mask, Int32Array.from(maskValues));
      }
      const ours = bufs();
      const theirs = bufs();
      const variants = {
        base: {
          fwd: () => base.kernels.attention(be, theirs.out, theirs.lse, q, k, v, mask, p),
          bwd: () => base.kernels.attentionBackward(be, theirs.dq, theirs.dk, theirs.dv, g, q, k, v, theirs.out, theirs.lse, mask, p),
        },
        ours: {
          fwd: () => be.attention(ours.out, ours.lse, q, k, v, mask, p),
          bwd: () => be.attentionBackward(ours.dq, ours.dk, ours.dv, g, q, k, v, ours.out, ours.lse, mask, p),
        },
      };
      const key = `${threads} thread${threads > 1 ? 's' : ''}, ${maskName}`;
      const runs: { round: number; base: { forward: number; backward: number }; ours: { forward: number; backward: number } }[] = [];
      ratios[key] = { forward: [], backward: [] };
      for (let round = 0; round < rounds; round++) {
        const t = { base: { forward: 0, backward: 0 }, ours: { forward: 0, backward: 0 } };
        for (const name of ['base', 'ours'] as const) {
          t[name].forward = meanMs(variants[name].fwd);
          t[name].backward = meanMs(variants[name].bwd);
        }
        runs.push({ round, ...t });
        ratios[key]!.forward.push(t.base.forward / t.ours.forward);
        ratios[key]!.backward.push(t.base.backward / t.ours.backward);
      }
      let maxDiff = 0;
      for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
        const [a, b] = [(await be.read(ours[name])) as Float32Array, (await be.read(theirs[name])) as Float32Array];
        for (let i = 0; i < a!.length; i++) {
          const d = Math.abs(a![i]! - b![i]!);
          if (d > maxDiff || Number.isNaN(d)) maxDiff = a![i] === b![i] ? maxDiff : d; // −∞ = −∞ in lse
        }
      }
      result[key] = { runs, maxAbsDiffVsBase: maxDiff.toExponential(2) };
      for (const b of [...Object.values(ours), ...Object.values(theirs)]) be.free(b);
      if (mask !== null) be.free(mask);
    }
    be.destroy();
  }
} finally {
  base.cleanup();
}
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
result.ratios = Object.fromEntries(
  Object.entries(ratios).map(([key, r]) => [
    key,
    {
      forward: r.forward.map(round3),
      backward: r.backward.map(round3),
      medianForward: median(r.forward),
      medianBackward: median(r.backward),
    },
  ]),
);
console.log(JSON.stringify(result, (_, x) => (typeof x === 'number' ? round3(x) : x), 2));
