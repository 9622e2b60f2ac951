// Times LoRA training steps of the tiny GPT-NeoX classifier (batch 8 × 64 tokens, r 32, the CLI's
// tiny livedoor settings) on the WebGPU backend (or `cpu` as argv[2]) and counts per step the GPU
// objects and calls the step makes. Run: npx tsx --conditions=@peft/source <this file> [webgpu|cpu] [steps]
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { adamwStep, type Backend, backward, Generator, getPeftModel, loraConfig, noGrad, type Tensor, zeros } from '@peft/core';
import { SequenceClassifier } from '@peft/heads';
import { loadModel } from '@peft/models/node';
import { findGpu } from '../device.js';
import { createWebGpuBackend } from '../index.js';
import type { GpuRuntime, Launch } from '../runtime.js';

const TINY = join(import.meta.dirname, '..', '..', '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');
const which = process.argv[2] ?? 'webgpu';
const steps = Number(process.argv[3] ?? 6);
const checkpointing = process.argv[4] !== 'nockpt';

const counts: Record<string, number> = {};
function count(proto: object | undefined, method: string, key = method): void {
  if (!proto) return;
  const p = proto as Record<string, (...a: unknown[]) => unknown>;
  const orig = p[method];
  if (typeof orig !== 'function') return;
  p[method] = function (this: unknown, ...args: unknown[]) {
    counts[key] = (counts[key] ?? 0) + 1;
    return orig.apply(this, args);
  };
}

let backend: Backend;
if (which === 'cpu') backend = createCpuBackend();
else {
  await findGpu();
  const g = globalThis as unknown as Record<string, { prototype: object } | undefined>;
  count(g.GPUDevice?.prototype, 'createComputePipeline');
  count(g.GPUDevice?.prototype, 'createShaderModule');
  count(g.GPUDevice?.prototype, 'createBindGroup');
  count(g.GPUDevice?.prototype, 'createBuffer');
  count(g.GPUDevice?.prototype, 'createCommandEncoder');
  count(g.GPUQueue?.prototype, 'submit');
  count(g.GPUQueue?.prototype, 'writeBuffer');
  count(g.GPUQueue?.prototype, 'onSubmittedWorkDone');
  count(g.GPUBuffer?.prototype, 'mapAsync');
  count(g.GPUComputePassEncoder?.prototype, 'dispatchWorkgroups');
  count(g.GPUCommandEncoder?.prototype, 'copyBufferToBuffer');
  backend = await createWebGpuBackend(process.env.ATTENTION ? { attention: process.env.ATTENTION as 'tiled' | 'rows' } : {});
}

function batch() {
  let s = 12345;
  const rows = 8;
  const width = 64;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const n = 40 + ((r * 7) % 25);
    const ids: number[] = [];
    for (let i = 0; i < width; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      ids.push(i < n ? 60 + (s % 500) : 0);
    }
    inputIds.push(ids);
    attentionMask.push(ids.map((_, i) => (i < n ? 1 : 0)));
  }
  return { inputIds, attentionMask, labels: Array.from({ length: rows }, (_, i) => i % 9) };
}

const causal = await loadModel(TINY, { backend, dtype: 'float32' });
causal.gradientCheckpointing = checkpointing;
const head = new SequenceClassifier(causal, { numLabels: 9, generator: new Generator(1) });
const peft = getPeftModel(head, loraConfig({ r: 32, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), {
  modelType: causal.config.modelType,
  generator: new Generator(2),
});
peft.train();
const params = [...peft.namedParameters()].filter(([, t]) => t.requiresGrad).map(([, t]) => t);
const moments = params.map((p) => [zeros(p.shape, { backend }), zeros(p.shape, { backend })] as const);
const b = batch();
for (let step = 1; step <= steps; step++) {
  for (const k of Object.keys(counts)) counts[k] = 0;
  const t0 = performance.now();
  const loss = peft.model.loss(b, b.labels);
  const t1 = performance.now();
  backward(loss);
  const t2 = performance.now();
  noGrad(() => {
    params.forEach((p, i) => {
      const [m, v] = moments[i]!;
      adamwStep(p, p.grad as Tensor, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 1 });
      p.grad?.dispose();
      p.grad = null;
    });
  });
  const t3 = performance.now();
  const value = await loss.item();
  loss.dispose();
  const t4 = performance.now();
  console.log(
    `${which} step ${step}: ${(t4 - t0).toFixed(0)} ms (record fwd ${(t1 - t0).toFixed(0)}, bwd ${(t2 - t1).toFixed(0)}, adamw ${(t3 - t2).toFixed(0)}, wait ${(t4 - t3).toFixed(0)}) loss ${value.toFixed(5)} ${JSON.stringify(counts)}`,
  );
}
if (which !== 'cpu' && process.env.PER_KERNEL) {
  // Capture one step's launches, then replay each alone (buffers stay valid in the pool) and time it.
  const rt = (backend as unknown as { rt: GpuRuntime }).rt;
  const captured: Launch[] = [];
  const orig = rt.launch.bind(rt);
  rt.launch = (l: Launch) => {
    captured.push(l);
    orig(l);
  };
  const loss = peft.model.loss(b, b.labels);
  backward(loss);
  await loss.item();
  loss.dispose();
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
  rt.launch = orig;
  const byKernel = new Map<string, { ms: number; n: number; grids: Set<string> }>();
  let total = 0;
  for (const l of captured) {
    await rt.sync();
    const t0 = performance.now();
    rt.launch(l);
    await rt.sync();
    const ms = performance.now() - t0;
    total += ms;
    const key =
      process.env.PER_KERNEL === 'detail'
        ? `${l.kernel} ${JSON.stringify(l.groups)} ${(l.params ?? []).map(([k, , v]) => `${k}=${v}`).join(' ')} ${/P.m \+ gr|stepA|ia \+ vec4<u32>\(P.m\)/.test(l.code) ? 'tA' : ''}${/ia \+ vec4<u32>\(P.m\)/.test(l.code) ? 'A^T' : ''}${/ib \+ vec4<u32>\(1u\)/.test(l.code) ? 'B^T' : ''}`
        : l.kernel;
    const e = byKernel.get(key) ?? { ms: 0, n: 0, grids: new Set<string>() };
    e.ms += ms;
    e.n++;
    const params = (l.params ?? []).map(([k, , v]) => `${k}=${v}`).join(' ');
    e.grids.add(`${JSON.stringify(l.groups)}x${l.workgroupSize ?? 256} ${params}`);
    byKernel.set(key, e);
  }
  console.log(`replayed ${captured.length} launches one by one: ${total.toFixed(0)} ms`);
  for (const [k, e] of [...byKernel].sort((x, y) => y[1].ms - x[1].ms)) {
    console.log(`${k.padEnd(24)} ${e.ms.toFixed(0).padStart(7)} ms  ${e.n} launches  ${[...e.grids].slice(0, 4).join(' | ')}`);
  }
}
process.exit(0);
