// Times the GEMM shapes of a tiny-model LoRA step on the default GEMM kernel.
// Run: npx tsx --conditions=@peft/source <this file>
import { createWebGpuBackend } from '../index.js';

const backend = await createWebGpuBackend();
const shapes: [number, number, number, boolean, boolean][] = [
  [512, 64, 256, false, true],
  [512, 256, 64, false, true],
  [512, 192, 64, false, true],
  [512, 64, 256, false, false],
  [192, 32, 512, true, false],
  [512, 32, 64, false, true],
];
let all = 0;
for (const [m, n, k, transA, transB] of shapes) {
  const a = backend.alloc('float32', m * k);
  const b = backend.alloc('float32', k * n);
  const out = backend.alloc('float32', m * n);
  backend.write(
    a,
    Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)),
  );
  backend.write(
    b,
    Float32Array.from({ length: k * n }, (_, i) => Math.cos(i)),
  );
  const p = { batch: 1, m, n, k, strideA: 0, strideB: 0, strideOut: 0, alpha: 1, accumulate: false, transA, transB };
  backend.matmul(out, a, b, p);
  await backend.sync();
  const reps = 10;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) backend.matmul(out, a, b, p);
  await backend.sync();
  const ms = (performance.now() - t0) / reps;
  all += ms;
  console.log(
    `m ${m} n ${n} k ${k}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}: ${ms.toFixed(1)} ms (${((2 * m * n * k) / ms / 1e6).toFixed(2)} GFLOP/s)`,
  );
}
console.log(`sum ${all.toFixed(1)} ms`);
backend.destroy();
process.exit(0);
