// gelu and geluBackward (exact and tanh) on a float32 [1024, 3072] tensor of normal(0, 1) values
// through the CPU backend at one thread, calling the kernels directly; mean ms of 10 calls after 2
// warm-ups each; prints JSON.
//   node --conditions=@peft/source --import tsx benchmarks/gelu-time.ts
// To compare with another checkout (e.g. `git worktree add /tmp/gelu-base HEAD`), run this script
// there and here alternately, or give its root: both trees' backends are then loaded in this one
// process and timed in alternating rounds (default 8; per round and kernel, the mean of 5 calls
// after the warm-ups), which keeps load from other processes from favouring either; prints each
// side's median and minimum and their ratios:
//   node --conditions=@peft/source --import tsx benchmarks/gelu-time.ts --base /tmp/gelu-base [--rounds 8]
import { createCpuBackend } from '@peft/backend-cpu';

type Create = typeof createCpuBackend;

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const [M, N] = [1024, 3072];
const n = M * N;

/** Normal(0, 1) values from a fixed seed (Box–Muller on a small LCG): pre-activations of a LoRA step's MLP. */
function normals(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return out;
}

const xs = normals(n, 1);
const dys = normals(n, 2);

/** The four calls on one backend, its buffers filled. */
function cases(create: Create): { cases: [string, () => void][]; destroy: () => void } {
  const be = create({ threads: 1 });
  const upload = (values: Float32Array) => {
    const b = be.alloc('float32', values.length);
    be.write(b, values);
    return b;
  };
  const x = upload(xs);
  const dy = upload(dys);
  const out = be.alloc('float32', n);
  return {
    cases: [
      ['gelu exact', () => be.gelu(out, x, false)],
      ['gelu tanh', () => be.gelu(out, x, true)],
      ['geluBackward exact', () => be.geluBackward(out, dy, x, false)],
      ['geluBackward tanh', () => be.geluBackward(out, dy, x, true)],
    ],
    destroy: () => be.destroy(),
  };
}

/** Mean ms of `reps` calls. */
function time(run: () => void, reps: number): number {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  return (performance.now() - t0) / reps;
}

const base = arg('--base');
if (base === undefined) {
  const here = cases(createCpuBackend);
  const result: Record<string, number> = {};
  for (const [name, run] of here.cases) {
    time(run, 2);
    result[name] = Number(time(run, 10).toFixed(3));
  }
  here.destroy();
  console.log(JSON.stringify(result));
} else {
  const other = (await import(`${base}/packages/backend-cpu/src/index.ts`)) as { createCpuBackend: Create };
  const sides = { base: cases(other.createCpuBackend), here: cases(createCpuBackend) };
  const rounds = Number(arg('--rounds') ?? 8);
  const times: Record<string, number[]> = {};
  for (const side of Object.values(sides)) for (const [, run] of side.cases) time(run, 2);
  for (let r = 0; r < rounds; r++)
    for (const [side, { cases: list }] of Object.entries(sides))
      for (const [name, run] of list) (times[`${side} ${name}`] ??= []).push(time(run, 5));
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const result: Record<string, Record<string, number>> = {};
  for (const [name] of sides.here.cases) {
    const b = times[`base ${name}`];
    const h = times[`here ${name}`];
    result[name] = {
      baseMedian: Number(median(b).toFixed(3)),
      baseMin: Number(Math.min(...b).toFixed(3)),
      median: Number(median(h).toFixed(3)),
      min: Number(Math.min(...h).toFixed(3)),
      speedupMedian: Number((median(b) / median(h)).toFixed(2)),
      speedupMin: Number((Math.min(...b) / Math.min(...h)).toFixed(2)),
    };
  }
  sides.base.destroy();
  sides.here.destroy();
  console.log(JSON.stringify(result, null, 1));
}
