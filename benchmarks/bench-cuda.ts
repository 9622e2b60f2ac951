/**
 * The CUDA section of `pnpm bench` as a program of its own: what
 * packages/backend-cuda/scripts/bundle-device.mjs bundles into .device/peft.tar.xz
 * (peft/dist/bench-cuda.mjs) for a GPU machine without Node's tooling, where the GPU window's
 * llama and neox stages run it (scripts/gpu-window.sh; packages/backend-cuda/GPU.md). Run from the
 * repository checkout (or set PEFT_REPO): it reads fixtures/configs and runs
 * benchmarks/python/peft_step.py.
 *
 *   node /tmp/peft-gpu-window/peft/dist/bench-cuda.mjs [--only llama|neox] [--warmup N] [--steps N] [--batch N]
 *        [--seq N] [--layers N] [--python PATH] [--no-python] [--no-graph] [--short] [--out NAME]
 *
 * From source: node --conditions=@peft/source --import tsx benchmarks/bench-cuda.ts …
 */
import { parseArgs } from 'node:util';
import { runCudaSuite } from './src/cuda-suite.js';

const USAGE =
  'usage: bench-cuda [--only llama|neox] [--warmup N] [--steps N] [--batch N] [--seq N] [--layers N] [--python PATH] [--no-python] [--no-graph] [--short] [--out NAME]';

function count(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag} needs a non-negative integer, got ${v}\n${USAGE}`);
  return n;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    only: { type: 'string', multiple: true },
    warmup: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    layers: { type: 'string' },
    python: { type: 'string' },
    'no-python': { type: 'boolean' },
    'no-graph': { type: 'boolean' },
    short: { type: 'boolean' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(USAGE);
} else {
  await runCudaSuite({
    only: values.only?.flatMap((o) => o.split(',')),
    warmup: count('warmup', values.warmup),
    steps: count('steps', values.steps),
    batch: count('batch', values.batch),
    seq: count('seq', values.seq),
    layers: count('layers', values.layers),
    python: values.python,
    noPython: values['no-python'],
    noGraph: values['no-graph'],
    short: values.short,
    out: values.out,
  });
}
