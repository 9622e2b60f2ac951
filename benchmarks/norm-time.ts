// The CPU backend's norm kernels (layerNorm, layerNormBackward, rmsNorm, rmsNormBackward) on
// float32 [1024, 768] (a GPT-NeoX-110M step's rows), through createCpuBackend({ threads: 1 }) and
// { threads: 2 }: mean ms of 20 calls after 3 warm-ups. Given the root of another checkout (e.g.
// `git worktree add /tmp/norm-base <commit>` with node_modules symlinked), its norms.ts runs
// alternately with this tree's, 3 rounds (or as many as the second argument says), and the ratios
// (other / this) are printed per round and as their median:
//   node --conditions=@peft/source --import tsx benchmarks/norm-time.ts [/tmp/norm-base [rounds]]
// With `wasm` in place of the other root, this tree's JavaScript rows ('js': the WebAssembly
// kernels turned off, so at threads=2 the rows split across the two threads) run alternately with
// its float32 WebAssembly kernels ('wasm', on the calling thread), and the ratios are js / wasm:
//   node --conditions=@peft/source --import tsx benchmarks/norm-time.ts wasm [rounds]
// Both trees' kernels get the same backend and buffers (the backend is their context), so only
// the kernel code differs. Backward calls without dWeight / dBias are what a LoRA step runs
// (frozen norm weights); the "+dW" rows request them.
import { createCpuBackend } from '@peft/backend-cpu';
import type { DeviceBuffer } from '@peft/core';

type Norms = Record<string, (...args: unknown[]) => void>;
const load = async (root: string): Promise<Norms> =>
  ((await import(`${root}/packages/backend-cpu/src/kernels/norms.ts`)) as { normKernels: Norms }).normKernels;

const here = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const baseRoot = process.argv[2];
const wasmMode = baseRoot === 'wasm';
const { setNormsWasm } = (await import(`${here}/packages/backend-cpu/src/kernels/norms-wasm.ts`)) as {
  setNormsWasm: (on: boolean) => boolean;
};
const own = await load(here);
/** [name, kernels, whether the WebAssembly kernels are on for them]; the first is the base of the ratios. */
const trees: [string, Norms, boolean][] = wasmMode
  ? [
      ['js', own, false],
      ['wasm', own, true],
    ]
  : [['this', own, true]];
if (baseRoot !== undefined && !wasmMode) trees.unshift(['base', await load(baseRoot), true]);
const [baseName, thisName] = [trees[0]![0], trees.at(-1)![0]];

const rows = 1024;
const dim = 768;
const p = { rows, dim, eps: 1e-5 };
const reps = 20;
const rounds = baseRoot === undefined ? 1 : Number(process.argv[3] ?? 3);

function time(call: () => void): number {
  for (let i = 0; i < 3; i++) call();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) call();
  return (performance.now() - t0) / reps;
}

const results: Record<string, Record<string, number[]>> = {};
for (const threads of [1, 2]) {
  const be = createCpuBackend({ threads });
  const buf = (n: number, f: (i: number) => number): DeviceBuffer => {
    const b = be.alloc('float32', n);
    be.write(
      b,
      Float32Array.from({ length: n }, (_, i) => f(i)),
    );
    return b;
  };
  const x = buf(rows * dim, (i) => 3 + Math.sin(i * 0.37) * 1.5);
  const dy = buf(rows * dim, (i) => Math.cos(i * 0.11));
  const w = buf(dim, (i) => 1 + 0.1 * Math.sin(i));
  const bias = buf(dim, (i) => 0.05 * Math.cos(i));
  const out = be.alloc('float32', rows * dim);
  const mean = be.alloc('float32', rows);
  const rstd = be.alloc('float32', rows);
  const dW = be.alloc('float32', dim);
  const dB = be.alloc('float32', dim);
  const cases: [string, (k: Norms) => void][] = [
    ['layerNorm', (k) => k.layerNorm!(be, out, mean, rstd, x, w, bias, p)],
    ['layerNormBackward', (k) => k.layerNormBackward!(be, out, null, null, dy, x, w, mean, rstd, p)],
    ['layerNormBackward+dW', (k) => k.layerNormBackward!(be, out, dW, dB, dy, x, w, mean, rstd, p)],
    ['rmsNorm', (k) => k.rmsNorm!(be, out, rstd, x, w, p)],
    ['rmsNormBackward', (k) => k.rmsNormBackward!(be, out, null, dy, x, w, rstd, p)],
    ['rmsNormBackward+dW', (k) => k.rmsNormBackward!(be, out, dW, dy, x, w, rstd, p)],
  ];
  for (let round = 0; round < rounds; round++) {
    for (const [name, call] of cases) {
      for (const [tree, kernels, wasm] of trees) {
        const key = `${name} threads=${threads}`;
        results[key] ??= {};
        setNormsWasm(wasm);
        (results[key][tree] ??= []).push(time(() => call(kernels)));
      }
    }
  }
  be.destroy();
}

const fmt = (v: number[]) => v.map((t) => t.toFixed(3)).join(' ');
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
for (const [key, byTree] of Object.entries(results)) {
  const mine = byTree[thisName]!;
  const line = [`${key.padEnd(32)} ${thisName} ms ${fmt(mine)}`];
  const base = byTree[baseName]!;
  if (trees.length > 1) {
    const ratios = base.map((b, i) => b / mine[i]!);
    line.push(
      `${baseName} ms ${fmt(base)}`,
      `${baseName}/${thisName} ${ratios.map((r) => r.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)})`,
    );
  }
  console.log(line.join(' | '));
}
