import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import {
  backward,
  bytesReader,
  Dropout,
  Generator,
  getPeftModel,
  loadAdapterFrom,
  loraConfig,
  memorySink,
  type PeftModel,
} from '@peft/core';
import { SequenceClassifier } from '@peft/heads';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { inProcessRanks } from '../ranks.testkit.js';
import { ClassificationTask, classificationMetrics, type LabelledText } from './classification.js';

const TINY = join(import.meta.dirname, '..', '..', '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');
const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const LABELS = ['sports', 'tech', 'movies'];
const rows = (texts: string[], labels: number[]): LabelledText[] => texts.map((text, i) => ({ text, label: labels[i]! }));
const DATA = {
  train: rows(
    ['サッカーの試合で勝利した', '新しいスマートフォンが発売された', '映画の公開初日に行列ができた', '野球の選手が記録を更新した'],
    [0, 1, 2, 0],
  ),
  validation: rows(['テニスの大会が始まった', 'パソコンの新機種が出た'], [0, 1]),
  test: rows(['監督の新作映画が話題だ', 'サッカー日本代表が勝った', 'アプリの更新が配信された'], [2, 0, 1]),
};

async function studyA(numLabels = LABELS.length): Promise<PeftModel<SequenceClassifier>> {
  const model = await loadModel(TINY, { backend });
  model.gradientCheckpointing = true;
  const head = new SequenceClassifier(model, { numLabels, generator: new Generator(1) });
  return getPeftModel(head, loraConfig({ r: 8, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), {
    modelType: 'gpt_neox',
    generator: new Generator(2),
  });
}

describe('classificationMetrics (scikit-learn semantics, macro over every label, zero_division 0)', () => {
  it('averages over labels that never occur as 0 and reports per-label rows and the confusion matrix', () => {
    // label 0: P 1, R 1; label 1: no prediction → P 0, R 0; label 2: P 2/3, R 1; label 3: absent → 0, 0.
    const m = classificationMetrics([0, 1, 2, 2], [0, 2, 2, 2], ['a', 'b', 'c', 'd']);
    expect(m.accuracy).toBe(0.75);
    expect(m.precision).toBeCloseTo((1 + 0 + 2 / 3 + 0) / 4, 12);
    expect(m.recall).toBeCloseTo((1 + 0 + 1 + 0) / 4, 12);
    expect(m.f1).toBeCloseTo((1 + 0 + 0.8 + 0) / 4, 12);
    expect(m.confusion).toEqual([
      [1, 0, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 0],
    ]);
    expect(m.report.c).toEqual({ precision: 2 / 3, recall: 1, 'f1-score': 0.8, support: 2 });
    expect(m.report.d).toEqual({ precision: 0, recall: 0, 'f1-score': 0, support: 0 });
    expect(m.labels).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('ClassificationTask (Study A as a TrainTask)', () => {
  it('builds right-padded, truncated batches and trains only LoRA and the score copy', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const task = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 8, dropoutGenerator: new Generator(2) });
    expect(task.trainSize).toBe(4);
    const b = task.batch([1, 0]);
    const full = [tokenizer.encode(DATA.train[1]!.text), tokenizer.encode(DATA.train[0]!.text)];
    expect(b.labels).toEqual([1, 0]);
    for (let r = 0; r < 2; r++) {
      const ids = full[r]!;
      // Truncation keeps the start and the final EOS the tokenizer appends (as Hugging Face does).
      const kept = ids.length > 8 ? [...ids.slice(0, 7), ids.at(-1)!] : ids;
      expect(b.inputIds[r]!.slice(0, kept.length)).toEqual(kept);
      expect(b.attentionMask[r]).toEqual([...kept.map(() => 1), ...new Array(b.inputIds[r]!.length - kept.length).fill(0)]);
    }
    expect(task.tokens(b)).toBe(b.attentionMask.flat().reduce((a, x) => a + x, 0));
    const names = [...task.trainable()].map(([n]) => n);
    expect(names).toEqual([
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.default.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_B.default.weight',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_A.default.weight',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_B.default.weight',
      'base_model.model.score.modules_to_save.default.weight',
    ]);
    const loss = task.loss(b);
    expect(loss.requiresGrad).toBe(true);
    expect(await loss.item()).toBeGreaterThan(0);
    loss.dispose();
    expect(Object.keys(task.generators())).toEqual(['dropout']);
    expect(task.describe()).toMatchObject({ task: 'sequence-classification', labels: LABELS, maxLength: 8 });
    peft.dispose();
  });

  it('draws LoRA dropout per example: a batch of 4 gives the mean of two batches of 2 padded otherwise, in any order', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const task = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 32, dropoutGenerator: new Generator(2) });
    // LoRA B starts at zero, where dropout before A changes nothing: give it values.
    for (const [name, t] of peft.namedParameters())
      if (name.includes('lora_B'))
        backend.write(
          t.buffer(),
          Float32Array.from({ length: t.size }, (_, i) => Math.sin(i) / 4),
        );
    task.setTraining(true);
    const loss = async (indices: number[], step: number) => {
      const b = task.batch(indices);
      expect(b.examples).toEqual(indices);
      const t = task.loss(b, { epoch: 1, step, microStep: 0 });
      // Backward recomputes each checkpointed layer's forward: the keys must still be in place.
      if (t.requiresGrad) backward(t);
      const v = await t.item();
      t.dispose();
      return { v, length: b.inputIds[0]!.length };
    };
    const dropouts = [...peft.namedModules()]
      .filter(([n, m]) => n.includes('lora_dropout') && m instanceof Dropout)
      .map(([, m]) => m as Dropout);
    expect(dropouts).toHaveLength(2);
    const drawn = dropouts[0]!.generator.offset;
    const four = await loss([0, 1, 2, 3], 5);
    const a = await loss([3, 0], 5);
    const b = await loss([2, 1], 5);
    // The two halves are padded to other lengths than the whole batch, and to each other's.
    expect(new Set([four.length, a.length, b.length]).size).toBeGreaterThan(1);
    expect(Math.abs((a.v + b.v) / 2 - four.v)).toBeLessThan(1e-5 * four.v);
    // The masks are on (another step draws others) and the generator's stream is left alone.
    expect((await loss([0, 1, 2, 3], 6)).v).not.toBeCloseTo(four.v, 6);
    expect(dropouts[0]!.generator.offset).toBe(drawn);
    task.setTraining(false);
    expect((await loss([0, 1, 2, 3], 5)).v).not.toBeCloseTo(four.v, 6);
    peft.dispose();
  });

  it('evaluates with macro metrics over all labels and saves a PEFT folder that predicts the same labels', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const task = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 32, evalBatchSize: 2 });
    const ev = await task.evaluate('test');
    const predicted = task.lastPredictions.get('test')!;
    expect(predicted).toHaveLength(3);
    expect(ev.metrics).toEqual(classificationMetrics([2, 0, 1], predicted, LABELS));
    expect(ev.score).toBe((ev.metrics as { f1: number }).f1);
    // Predictions do not depend on how rows are batched (batches are sorted by length, then put back in order).
    const one = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 32, evalBatchSize: 1 });
    expect(await one.predict('test')).toEqual(predicted);

    const sink = memorySink('adapter');
    await task.saveArtifacts(sink);
    expect([...sink.files.keys()].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(sink.files.get('adapter_config.json')));
    expect(config).toMatchObject({ r: 8, lora_alpha: 16, target_modules: ['query_key_value'], task_type: 'SEQ_CLS' });
    const fresh = new SequenceClassifier(await loadModel(TINY, { backend }), { numLabels: 3 });
    const loaded = await loadAdapterFrom(fresh, bytesReader(sink.files, 'adapter'));
    const again = new ClassificationTask({ peft: loaded, tokenizer, data: DATA, labels: LABELS, maxLength: 32 });
    expect(await again.predict('test')).toEqual(predicted);
    expect(await again.predict('validation')).toEqual(await task.predict('validation'));
    loaded.dispose();
    peft.dispose();
  });

  it('over 2 ranks each predicts every other example and both return the evaluation of the whole split', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const task = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 32, evalBatchSize: 2 });
    const whole = await task.evaluate('test');
    const predicted = vi.spyOn(task, 'predictTexts');
    const [r0, r1] = await Promise.all(inProcessRanks(2).map((communicator) => task.evaluate('test', { communicator })));
    expect(r0).toEqual(whole);
    expect(r1).toEqual(whole);
    // Rank 0 the test split's examples 0 and 2, rank 1 example 1.
    expect(predicted.mock.calls.map((c) => c[0])).toEqual([[DATA.test[0]!.text, DATA.test[2]!.text], [DATA.test[1]!.text]]);
    peft.dispose();
  });

  it('stops an evaluation before its next batch once the signal is aborted, throwing the reason', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const task = new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 32, evalBatchSize: 1 });
    const controller = new AbortController();
    const reason = new Error('ctrl-c');
    const head = peft.model;
    const original = head.predict.bind(head);
    // Ctrl-C while the first of the test split's three batches runs.
    const predict = vi.spyOn(head, 'predict').mockImplementation((batch) => {
      controller.abort(reason);
      return original(batch);
    });
    await expect(task.evaluate('test', { signal: controller.signal })).rejects.toBe(reason);
    expect(predict).toHaveBeenCalledTimes(1);
    expect(task.lastPredictions.has('test')).toBe(false);
    predict.mockRestore();
    // Without a signal (or before an abort) it runs to the end.
    expect((await task.evaluate('test', { signal: new AbortController().signal })).metrics).toMatchObject({ examples: 3 });
    peft.dispose();
  });

  it('refuses labels outside the head, a head of another size and empty splits', async () => {
    const peft = await studyA();
    const tokenizer = await loadTokenizer(TINY);
    const bad = { ...DATA, validation: rows(['x'], [3]) };
    expect(() => new ClassificationTask({ peft, tokenizer, data: bad, labels: LABELS, maxLength: 8 })).toThrow(
      'ClassificationTask: validation example 0 has label 3, but the head has 3 labels (0…2: sports, tech, movies)',
    );
    expect(() => new ClassificationTask({ peft, tokenizer, data: DATA, labels: ['a', 'b'], maxLength: 8 })).toThrow(
      'ClassificationTask: 2 label names (a, b) for a head with numLabels 3',
    );
    expect(() => new ClassificationTask({ peft, tokenizer, data: { ...DATA, test: [] }, labels: LABELS, maxLength: 8 })).toThrow(
      'the test split is empty',
    );
    expect(() => new ClassificationTask({ peft, tokenizer, data: DATA, labels: LABELS, maxLength: 0 })).toThrow(
      'maxLength must be a positive integer, got 0',
    );
    peft.dispose();
  });
});
