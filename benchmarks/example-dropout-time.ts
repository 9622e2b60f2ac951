// exampleDropout forward + backward on the CPU backend, mean ms of 20 calls after 3 warm-ups, for three shapes;
// prints JSON. Copy it into another checkout to compare two trees alternately:
//   node --conditions=@peft/source --import tsx benchmarks/example-dropout-time.ts
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, exampleDropout, sum, tensor } from '@peft/core';

const be = createCpuBackend();
const cases: [string, number[], { keys: number[]; positions?: number[] }][] = [
  ['[8,128,768]', [8, 128, 768], { keys: [0, 1, 2, 3, 4, 5, 6, 7] }],
  [
    '200 gathered rows x 768',
    [200, 768],
    { keys: Array.from({ length: 200 }, (_, i) => i % 8), positions: Array.from({ length: 200 }, (_, i) => (i * 7) % 128) },
  ],
  ['[8,128,6]', [8, 128, 6], { keys: [0, 1, 2, 3, 4, 5, 6, 7] }],
];
const out: Record<string, number> = {};
for (const [name, shape, k] of cases) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = tensor(
    Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
    shape,
    { backend: be, requiresGrad: true },
  );
  const run = async () => {
    const y = exampleDropout(x, 0.1, { seed: 7, step: 3, stream: 1, ...k });
    const s = sum(y);
    backward(s);
    await s.data();
    s.dispose();
    y.dispose();
    x.grad?.dispose();
    x.grad = null;
  };
  for (let i = 0; i < 3; i++) await run();
  const t0 = performance.now();
  const reps = 20;
  for (let i = 0; i < reps; i++) await run();
  out[name] = (performance.now() - t0) / reps;
}
console.log(JSON.stringify(out));
