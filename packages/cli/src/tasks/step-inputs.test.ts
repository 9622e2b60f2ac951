// The tasks' fixed-shape step inputs: stepLoss over the tensors of stepInputs gives loss's value
// and gradients, unpadded (the same bits) and padded to buckets (float32 rounding), dropout on.
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, Dropout, exampleStreamKeys, Generator, getPeftModel, loraConfig, type Tensor, tensor } from '@peft/core';
import { documentsToSentences } from '@peft/datasets';
import { readPubTator } from '@peft/datasets/node';
import { SequenceClassifier } from '@peft/heads';
import { loadModel, loadTokenizer } from '@peft/models/node';
import type { LossContext, StepInput, StepShapes } from '@peft/trainer';
import { afterAll, describe, expect, it } from 'vitest';
import { ClassificationTask, type LabelledText } from './classification.js';
import { GenerativeNerTask } from './ner.js';
import { bucket } from './step-inputs.js';
import { classification, ner, run } from './step-inputs.testkit.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const MODELS = join(ROOT, 'fixtures', 'models');
const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const CTX: LossContext = { epoch: 1, step: 5, microStep: 0 };
const EAGER: StepShapes = { fixed: false, microBatchSize: 4 };
const FIXED: StepShapes = { fixed: true, microBatchSize: 4 };

interface Task {
  trainable(): Iterable<readonly [string, Tensor]>;
  stepLoss(inputs: Readonly<Record<string, Tensor>>, ctx?: LossContext): Tensor;
}

/** Input tensors viaStep uploaded: the trainer frees them after backward, which may read them. */
const uploaded: Tensor[] = [];

/** The loss value and each trainable tensor's gradient (zeros where none), gradients and inputs freed after. */
async function lossAndGrads(task: Task, lossOf: () => Tensor): Promise<{ loss: number; grads: Float32Array[] }> {
  try {
    const loss = lossOf();
    expect(loss.requiresGrad).toBe(true);
    // Backward recomputes each checkpointed layer's forward: the dropout keys must still be in place.
    backward(loss);
    const value = await loss.item();
    loss.dispose();
    const grads: Float32Array[] = [];
    for (const [, t] of task.trainable()) {
      grads.push(t.grad ? Float32Array.from(await t.grad.data()) : new Float32Array(t.size));
      t.grad?.dispose();
      t.grad = null;
    }
    return { loss: value, grads };
  } finally {
    for (const t of uploaded.splice(0)) t.dispose();
  }
}

/** stepLoss over the inputs uploaded as the trainer does (one tensor per input). */
function viaStep(task: Task, given: Record<string, StepInput>): () => Tensor {
  return () => {
    const inputs: Record<string, Tensor> = {};
    for (const [name, s] of Object.entries(given)) inputs[name] = tensor(s.data, s.shape, { backend, dtype: s.dtype });
    uploaded.push(...Object.values(inputs));
    try {
      return task.stepLoss(inputs, CTX);
    } catch (e) {
      for (const t of uploaded.splice(0)) t.dispose();
      throw e;
    }
  };
}

type Result = Awaited<ReturnType<typeof lossAndGrads>>;

/** Unpadded: the same bits. Padded: only reductions over masked positions and rows change order. */
function expectSame(want: Result, got: Result, exact: boolean): void {
  let scale = 0;
  let worst = 0;
  want.grads.forEach((w, i) => {
    const g = got.grads[i]!;
    for (let k = 0; k < w.length; k++) {
      scale = Math.max(scale, Math.abs(w[k]!));
      worst = Math.max(worst, Math.abs(w[k]! - g[k]!));
    }
  });
  expect(got.grads).toHaveLength(want.grads.length);
  expect(scale).toBeGreaterThan(0);
  if (exact) {
    expect(got.loss).toBe(want.loss);
    expect(worst).toBe(0);
  } else {
    expect(Math.abs(got.loss - want.loss)).toBeLessThanOrEqual(1e-6 * Math.abs(want.loss));
    expect(worst).toBeLessThanOrEqual(5e-6 * scale);
  }
}

/** LoRA B starts at zero, where dropout before A changes nothing: give it values. */
function loraBValues(peft: { namedParameters(): Iterable<readonly [string, Tensor]> }): void {
  for (const [name, t] of peft.namedParameters())
    if (name.includes('lora_B'))
      backend.write(
        t.buffer(),
        Float32Array.from({ length: t.size }, (_, i) => Math.sin(i) / 4),
      );
}

describe('bucket', () => {
  it('16, 32, 64, then multiples of 64, never above the cap nor below the length', () => {
    expect([1, 16, 17, 33, 64, 65, 130, 200, 449, 512].map((n) => bucket(n, 512))).toEqual([16, 16, 32, 64, 64, 128, 192, 256, 512, 512]);
    expect(bucket(20, 24)).toBe(24);
    expect(bucket(5, 8)).toBe(8);
    expect(bucket(30, 24)).toBe(30);
  });
});

describe('ClassificationTask.stepInputs / stepLoss', () => {
  const TINY = join(MODELS, 'tiny-gpt-neox');
  const texts = ['サッカーの試合で勝利した', '新しいスマートフォンが発売された', '映画の公開初日に行列ができた', '野球'];
  const rows = (labels: number[]): LabelledText[] => labels.map((label, i) => ({ text: texts[i % texts.length]!, label }));
  const data = { train: rows([0, 1, 2, 0]), validation: rows([0]), test: rows([1]) };

  async function task(): Promise<ClassificationTask> {
    const model = await loadModel(TINY, { backend });
    model.gradientCheckpointing = true;
    const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(1) });
    const config = loraConfig({ r: 8, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' });
    const peft = getPeftModel(head, config, { modelType: 'gpt_neox', generator: new Generator(2) });
    loraBValues(peft);
    const tokenizer = await loadTokenizer(TINY);
    return new ClassificationTask({ peft, tokenizer, data, labels: ['a', 'b', 'c'], maxLength: 32, dropoutGenerator: new Generator(2) });
  }

  it('equal loss: value and gradients, with dropout, unpadded and padded to the micro-batch size and a bucket', async () => {
    const t = await task();
    t.setTraining(true);
    // 3 rows of different lengths, micro-batch size 4: one padding row, and padding to a bucket.
    const batch = t.batch([2, 0, 3]);
    const real = batch.attentionMask.map((r) => r.reduce((a, b) => a + b, 0));
    expect(new Set(real).size).toBe(3);
    const length = batch.inputIds[0]!.length;
    const want = await lossAndGrads(t, () => t.loss(batch, CTX));
    const dropout = t.generators().dropout!;
    const offset = dropout.offset;

    const eager = t.stepInputs(batch, EAGER, CTX)!;
    expect(eager.inputIds!.shape).toEqual([3, length]);
    expectSame(want, await lossAndGrads(t, viaStep(t, eager)), true);

    const fixed = t.stepInputs(batch, FIXED, CTX)!;
    expect(bucket(length, 32)).toBeGreaterThan(length);
    const seq = bucket(length, 32);
    expect(fixed.inputIds!.shape).toEqual([4, seq]);
    expect(Array.from(fixed.labels!.data)).toEqual([...batch.labels, -100]);
    // Dropout on: the keys as inputs, a key pair per Dropout (the model's own, p = 0, included: the
    // streams are numbered over all) from the LoRA generator's seed, and each row's (example, position).
    const streams = [...t.peft.namedModules()].filter(([, m]) => m instanceof Dropout).length;
    expect(Array.from(fixed.dropoutStreamKeys!.data)).toEqual(Array.from(exampleStreamKeys(2, CTX.step, streams)));
    expect(fixed.dropoutRowKeys!.shape).toEqual([2 * 4 * seq]);
    expect(Array.from(fixed.dropoutRowKeys!.data).slice(2 * seq - 2, 2 * seq + 2)).toEqual([2, seq - 1, 0, 0]);
    expect(Array.from(fixed.dropoutRowKeys!.data).slice(2 * 3 * seq, 2 * 3 * seq + 4)).toEqual([0, 0, 0, 1]);
    expectSame(want, await lossAndGrads(t, viaStep(t, fixed)), false);
    // The masks are per example (no generator draws) and they matter: eval mode gives another loss.
    expect(dropout.offset).toBe(offset);
    t.setTraining(false);
    expect(Object.keys(t.stepInputs(batch, FIXED, CTX)!).filter((k) => k.startsWith('dropout'))).toEqual([]);
    const off = await lossAndGrads(t, viaStep(t, fixed));
    expect(Math.abs(off.loss - want.loss)).toBeGreaterThan(1e-4);
    t.peft.dispose();
  });

  it('refuses a stepLoss without its stepInputs, or on inputs of another batch size', async () => {
    const t = await task();
    const batch = t.batch([0, 1]);
    const given = t.stepInputs(batch, EAGER, CTX)!;
    const fresh = await task();
    expect(viaStep(fresh, given)).toThrow(
      'ClassificationTask.stepLoss: no micro-batch described: call stepInputs(batch) before stepLoss on its tensors',
    );
    t.stepInputs(t.batch([0, 1, 2]), EAGER, CTX);
    expect(viaStep(t, given)).toThrow(
      'ClassificationTask.stepLoss: inputIds has 2 rows but the latest stepInputs described 3: call stepInputs for each micro-batch right before its stepLoss',
    );
    t.stepInputs(batch, EAGER, { ...CTX, step: 4 });
    expect(viaStep(t, given)).toThrow(
      'ClassificationTask.stepLoss: step 5, but stepInputs was given step 4: pass both the same LossContext',
    );
    t.peft.dispose();
    fresh.peft.dispose();
  });

  it('gives no step inputs (the trainer uses loss) for a model with dynamic rope, whose base depends on the batch', async () => {
    const model = await loadModel(join(MODELS, 'hf-llama-v5-dynamic'), { backend });
    expect(model.config.rope.type).toBe('dynamic');
    const head = new SequenceClassifier(model, { numLabels: 3 });
    const peft = getPeftModel(head, loraConfig({ r: 2, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), { modelType: 'llama' });
    const tokenizer = { encode: (text: string) => Array.from(text, (_, i) => 3 + (i % 5)), padTokenId: 0 };
    const t = new ClassificationTask({ peft, tokenizer, data, labels: ['a', 'b', 'c'], maxLength: 8 });
    expect(t.stepInputs(t.batch([0, 1]), FIXED, CTX)).toBeNull();
    peft.dispose();
  });
});

describe('GenerativeNerTask.stepInputs / stepLoss', () => {
  const TINY = join(MODELS, 'tiny-llama');

  async function task(maxLength: number): Promise<GenerativeNerTask> {
    const model = await loadModel(TINY, { backend });
    model.gradientCheckpointing = true;
    const corpus = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr', 'CDR_TrainingSet.PubTator.txt');
    const sentences = documentsToSentences((await readPubTator(corpus)).documents).sentences.slice(0, 6);
    const generator = new Generator(7);
    // LoRA on lm_head too: its dropout keys the gathered target rows by example and position.
    const config = loraConfig({ r: 4, loraAlpha: 8, loraDropout: 0.3, targetModules: ['q_proj', 'v_proj', 'lm_head'] });
    const peft = getPeftModel(model, config, { generator });
    loraBValues(peft);
    const data = { train: sentences, validation: sentences.slice(0, 1), test: sentences.slice(0, 1) };
    return new GenerativeNerTask({
      peft,
      tokenizer: await loadTokenizer(TINY),
      data,
      method: 'tagging',
      labels: ['Chemical'],
      perLabel: true,
      maxLength,
      generator,
    });
  }

  it('equal loss: value and gradients, with dropout, unpadded and padded on the batch, sequence and target axes', async () => {
    const t = await task(160);
    t.setTraining(true);
    const batch = t.batch([3, 0, 5]);
    const answers = batch.labels.flat().filter((l) => l !== -100).length;
    expect(new Set(batch.attentionMask.map((r) => r.reduce((a, b) => a + b, 0))).size).toBe(3);
    const length = batch.inputIds[0]!.length;
    const want = await lossAndGrads(t, () => t.loss(batch, CTX));

    const eager = t.stepInputs(batch, EAGER, CTX)!;
    expect(eager.inputIds!.shape).toEqual([3, length]);
    expect(eager.targets!.shape).toEqual([answers]);
    expectSame(want, await lossAndGrads(t, viaStep(t, eager)), true);

    const fixed = t.stepInputs(batch, FIXED, CTX)!;
    expect(fixed.inputIds!.shape).toEqual([4, bucket(length, 160)]);
    expect(fixed.targets!.shape).toEqual([bucket(answers, 1e9)]);
    expect(bucket(answers, 1e9)).toBeGreaterThan(answers);
    // The LM head's gathered rows keyed by their example and position (padding targets: row 0, position 0).
    const rows = Array.from(fixed.targetRows!.data);
    const seq = fixed.inputIds!.shape[1]!;
    const gathered = Array.from(fixed.dropoutGatheredRowKeys!.data);
    expect(gathered).toHaveLength(2 * rows.length);
    expect(gathered.slice(0, 2)).toEqual([batch.examples[Math.floor(rows[0]! / seq)], rows[0]! % seq]);
    expect(gathered.slice(-2)).toEqual([3, 0]);
    expectSame(want, await lossAndGrads(t, viaStep(t, fixed)), false);
    // Dropout matters here: eval mode gives another loss.
    t.setTraining(false);
    t.stepInputs(batch, FIXED, CTX);
    expect(Math.abs((await lossAndGrads(t, viaStep(t, fixed))).loss - want.loss)).toBeGreaterThan(1e-4);
    t.peft.unload();
  });

  it('a micro-batch whose answers were all cut off: the zero loss of loss, zero gradients, padded or not', async () => {
    // 12 tokens hold the prompt's start only: no answer token is left.
    const t = await task(12);
    t.setTraining(true);
    const batch = t.batch([1, 2]);
    expect(batch.labels.flat().every((l) => l === -100)).toBe(true);
    const want = await lossAndGrads(t, () => t.loss(batch, CTX));
    expect(want.loss).toBe(0);
    for (const shapes of [EAGER, FIXED]) {
      const given = t.stepInputs(batch, shapes, CTX)!;
      expect(given.targets!.shape).toEqual([shapes.fixed ? 16 : 1]);
      const got = await lossAndGrads(t, viaStep(t, given));
      expect(got.loss).toBe(0);
      expect(got.grads.every((g) => g.every((x) => x === 0))).toBe(true);
    }
    t.peft.unload();
  });
});

describe('train() on the CPU backend goes through the step hooks', () => {
  for (const [name, make] of [
    ['ClassificationTask', classification],
    ['GenerativeNerTask', ner],
  ] as const) {
    it(`${name}: stepLoss for every micro-batch, and the losses and adapter of loss bit for bit, LoRA dropout on`, async () => {
      const viaSteps = await run((b) => make(b, 0.1), backend);
      const viaLoss = await run((b) => make(b, 0.1), backend, { hooks: false });
      expect(viaSteps.counts).toEqual({ stepLoss: 8, loss: 0 });
      expect(viaLoss.counts).toEqual({ stepLoss: 0, loss: 8 });
      expect(viaSteps.losses).toHaveLength(4);
      expect(viaSteps.losses).toEqual(viaLoss.losses);
      expect(viaSteps.weights).toEqual(viaLoss.weights);
      expect(viaSteps.result.graphs).toEqual({ captured: 0, replays: 0, error: null });
    }, 120_000);
  }
});
