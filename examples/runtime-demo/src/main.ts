// A small training demo of the @peft runtime on the CPU backend: a one-block causal transformer
// classifies synthetic token sequences by their last real token (the pooling of the livedoor
// study), trained with AdamW. It prints the loss, held-out accuracy and live memory.
import { createCpuBackend } from '@peft/backend-cpu';
import {
  adamwStep,
  add,
  attention,
  backward,
  crossEntropy,
  Embedding,
  Generator,
  gatherRows,
  LayerNorm,
  Linear,
  Module,
  memoryInfo,
  noGrad,
  philoxUniform,
  reshape,
  rotary,
  slice,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '@peft/core';

const VOCAB = 32;
const HIDDEN = 32;
const HEADS = 4;
const SEQ = 12;
const CLASSES = 3;

const backend = createCpuBackend();
const gen = new Generator(42);

class TinyClassifier extends Module {
  readonly embed = this.registerModule('embed', new Embedding(VOCAB, HIDDEN, { backend, generator: gen }));
  readonly qkv = this.registerModule('qkv', new Linear(HIDDEN, 3 * HIDDEN, { backend, generator: gen }));
  readonly out = this.registerModule('out', new Linear(HIDDEN, HIDDEN, { backend, generator: gen }));
  readonly norm = this.registerModule('norm', new LayerNorm(HIDDEN, { backend }));
  readonly score = this.registerModule('score', new Linear(HIDDEN, CLASSES, { backend, bias: false, generator: gen }));

  /** Logits [batch, classes] from ids/mask [batch, seq] (right padding). */
  forward(ids: Tensor, mask: Tensor, positions: Tensor, lastIndex: Tensor): Tensor {
    const [batch, seq] = ids.shape as [number, number];
    const h = this.embed.forward(ids);
    const qkv = reshape(this.qkv.forward(h), [batch, seq, HEADS, 3, HIDDEN / HEADS]);
    const [q, k, v] = [0, 1, 2].map((i) => {
      const part = sliceHead(qkv, i);
      return i < 2 ? rotary(part, positions) : part;
    }) as [Tensor, Tensor, Tensor];
    const a = reshape(attention(q, k, v, mask, { causal: true }), [batch, seq, HIDDEN]);
    const x = this.norm.forward(add(h, this.out.forward(a)));
    const pooled = gatherRows(reshape(x, [batch * seq, HIDDEN]), lastIndex);
    return this.score.forward(pooled);
  }
}

/** Part i (0 = q, 1 = k, 2 = v) of the fused projection [batch, seq, heads, 3, headDim]. */
function sliceHead(qkv: Tensor, i: number): Tensor {
  const [b, s, heads, , d] = qkv.shape as number[];
  return reshape(slice(qkv, 3, i, i + 1), [b!, s!, heads!, d!]);
}

interface Example {
  ids: number[];
  label: number;
}

/** Label c ∈ {0,1,2} ⇔ keyword token c+1 appears once among noise tokens 4..31. */
function makeData(n: number, seed: number): Example[] {
  const u = philoxUniform(seed, 0, n * (SEQ + 3));
  let p = 0;
  const out: Example[] = [];
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(u[p++]! * (SEQ - 3));
    const label = Math.floor(u[p++]! * CLASSES);
    const ids = Array.from({ length: len }, () => 4 + Math.floor(u[p++]! * (VOCAB - 4)));
    ids[Math.floor(u[p++]! * len)] = label + 1;
    p = (i + 1) * (SEQ + 3);
    out.push({ ids, label });
  }
  return out;
}

function batchTensors(batch: Example[]) {
  const ids: number[] = [];
  const mask: number[] = [];
  const pos: number[] = [];
  const last: number[] = [];
  batch.forEach((ex, b) => {
    for (let t = 0; t < SEQ; t++) {
      ids.push(t < ex.ids.length ? ex.ids[t]! : 0);
      mask.push(t < ex.ids.length ? 1 : 0);
      pos.push(t);
    }
    last.push(b * SEQ + ex.ids.length - 1);
  });
  const opts = { backend, dtype: 'int32' as const };
  return {
    ids: tensor(ids, [batch.length, SEQ], opts),
    mask: tensor(mask, [batch.length, SEQ], opts),
    positions: tensor(pos, [batch.length, SEQ], opts),
    last: tensor(last, [batch.length], opts),
    labels: batch.map((e) => e.label),
  };
}

async function accuracy(model: TinyClassifier, data: Example[]): Promise<number> {
  const t = batchTensors(data);
  const logits = noGrad(() => tidy(() => model.forward(t.ids, t.mask, t.positions, t.last)));
  const values = await logits.data();
  let correct = 0;
  data.forEach((ex, i) => {
    const row = Array.from(values.subarray(i * CLASSES, (i + 1) * CLASSES));
    if (row.indexOf(Math.max(...row)) === ex.label) correct++;
  });
  for (const x of [logits, t.ids, t.mask, t.positions, t.last]) x.dispose();
  return correct / data.length;
}

async function main(): Promise<void> {
  const started = performance.now();
  const model = new TinyClassifier();
  const params = model.parameters();
  const moments = params.map((p) => [zeros(p.shape, { backend }), zeros(p.shape, { backend })] as const);
  const train = makeData(512, 1);
  const test = makeData(256, 2);
  const batchSize = 16;
  const steps = 160;
  console.log(
    `runtime demo: ${params.reduce((n, p) => n + p.size, 0)} parameters, backend ${backend.name}, ${train.length} train / ${test.length} test sequences`,
  );
  console.log(`step 0: held-out accuracy ${(100 * (await accuracy(model, test))).toFixed(1)}%`);
  let memoryAtStep10 = memoryInfo(backend);
  for (let step = 1; step <= steps; step++) {
    const start = ((step - 1) * batchSize) % train.length;
    const t = batchTensors(train.slice(start, start + batchSize));
    const loss = tidy(() => crossEntropy(model.forward(t.ids, t.mask, t.positions, t.last), t.labels));
    backward(loss);
    params.forEach((p, i) => {
      adamwStep(p, p.grad!, moments[i]![0], moments[i]![1], {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0.01,
        step,
        gradScale: 1,
      });
      p.grad!.dispose();
      p.grad = null;
    });
    if (step % 20 === 0) console.log(`step ${step}: loss ${(await loss.item()).toFixed(4)}`);
    for (const x of [loss, t.ids, t.mask, t.positions, t.last]) x.dispose();
    if (step === 10) memoryAtStep10 = memoryInfo(backend);
  }
  const acc = await accuracy(model, test);
  const mem = memoryInfo(backend);
  console.log(`step ${steps}: held-out accuracy ${(100 * acc).toFixed(1)}%`);
  console.log(
    `live tensors: ${mem.tensors} (${mem.bytes} bytes), the same as at step 10: ${mem.tensors === memoryAtStep10.tensors && mem.bytes === memoryAtStep10.bytes}`,
  );
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  model.dispose();
  for (const [m, v] of moments) {
    m.dispose();
    v.dispose();
  }
  backend.destroy();
  if (acc < 0.9) {
    console.error(`held-out accuracy ${acc} is below 0.9: training did not learn`);
    process.exitCode = 1;
  }
}

await main();
