// The from_pretrained-style loaders of @peft/heads/node, and a classifier's round trip: save the
// adapter, reload it in one call, merge it into a folder that transformers loads as
// GPTNeoXForSequenceClassification / LlamaForSequenceClassification. The transformers side runs
// when a Python with torch, transformers and peft is found ($PEFT_BENCH_PYTHON, the CI's cached
// bench venv, or .venv-bench); otherwise the logits are checked against the golden it wrote.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { assignInPlace, Generator, getPeftModel, noGrad, openSafetensors, type PeftModel, scale } from '@peft/core';
import { fileSource, saveAdapter, saveMerged } from '@peft/core/node';
import { loadModel } from '@peft/models/node';
import { afterAll, describe, expect, it } from 'vitest';
import { AutoModelForSequenceClassification, AutoPeftModelForSequenceClassification, AutoTokenizer } from './node/index.js';
import type { SequenceClassifier } from './sequence-classifier.js';
import { FIXTURES, maxAbsDiff, pad, TINY_MODELS, tokenRows } from './test-models.js';

const backend = createCpuBackend();
const work = mkdtempSync(join(tmpdir(), 'peft-heads-pretrained-'));
afterAll(() => {
  backend.destroy();
  rmSync(work, { recursive: true, force: true });
});

const GOLDEN = join(import.meta.dirname, 'fixtures', 'transformers-classifier.golden.json');
const LABELS = ['negative', 'neutral', 'positive'];
const ARCH = { 'tiny-gpt-neox': 'GPTNeoXForSequenceClassification', 'tiny-llama': 'LlamaForSequenceClassification' } as const;

/**
 * A Python that has torch, transformers and peft, or null. Asks importlib where they are instead
 * of importing them (as benchmarks/src/python-env.ts does): importing them takes about 9 s of
 * CPU, which the test itself spends once more; a Python whose packages are there but do not
 * import then fails the test instead of skipping it.
 */
function findPython(): string | null {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const candidates = [
    process.env.PEFT_BENCH_PYTHON,
    join(process.env.PEFT_BENCH_VENV ?? join(cache, 'peft', 'bench-venv'), 'bin', 'python'),
    join(import.meta.dirname, '..', '..', '..', '.venv-bench', 'bin', 'python'),
  ];
  for (const python of candidates) {
    if (!python || (python.includes('/') && !existsSync(python))) continue;
    const probe =
      "import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in ('torch', 'transformers', 'peft')) else 1)";
    if (spawnSync(python, ['-c', probe], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}
const python = findPython();

async function logitsOf(model: SequenceClassifier | PeftModel<SequenceClassifier>, batch: object): Promise<number[]> {
  const { logits } = noGrad(() => (model as SequenceClassifier).forward(batch as never));
  const out = Array.from(await logits.data());
  logits.dispose();
  return out;
}

describe('AutoModelForSequenceClassification.fromPretrained', () => {
  for (const name of TINY_MODELS) {
    it(`${name}: a causal LM folder becomes a classifier: decoder weights, a new head, labels, the pad id, the model type for getPeftModel`, async () => {
      const dir = join(FIXTURES, name);
      const classifier = await AutoModelForSequenceClassification.fromPretrained(dir, { backend, generator: new Generator(3) });
      // transformers' defaults: 2 classes named LABEL_i.
      expect(classifier.numLabels).toBe(2);
      expect(classifier.id2label).toEqual(['LABEL_0', 'LABEL_1']);
      expect(classifier.nameOrPath).toBe(dir);
      // The decoder's weights are the folder's, frozen; the head is new and trainable.
      const plain = await loadModel(dir, { backend });
      const ours = new Map(classifier.namedParameters());
      for (const [n, t] of plain.namedParameters()) {
        if (n.startsWith(plain.headName)) continue;
        expect(maxAbsDiff(await ours.get(n)!.data(), await t.data()), n).toBe(0);
        expect(ours.get(n)!.requiresGrad).toBe(false);
      }
      plain.dispose();
      expect(classifier.trainableParameters()).toEqual([classifier.score.weight]);
      // transformers' init of a new score: N(0, initializer_range²).
      const w = Array.from(await classifier.score.weight.data());
      const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
      expect(std).toBeGreaterThan(0.015);
      expect(std).toBeLessThan(0.025);
      // No LM head is kept.
      expect(classifier.model.lmHead.weight.isDisposed).toBe(true);
      // The pad id transformers will need: the tokenizer's pad token, else its EOS.
      const tokenizer = await AutoTokenizer.fromPretrained(dir);
      expect(classifier.padTokenId).toBe(tokenizer.padTokenId ?? tokenizer.eosTokenId);
      expect(classifier.config.raw.architectures).toEqual([ARCH[name]]);
      // getPeftModel finds the model type through the head: PEFT's default targets.
      const peft = getPeftModel(classifier, { taskType: 'SEQ_CLS', r: 2 });
      expect(peft.targetedModules().every((m) => /query_key_value|q_proj|v_proj/.test(m))).toBe(true);
      expect(peft.targetedModules().length).toBe(name === 'tiny-gpt-neox' ? 2 : 4);
      expect([...peft.adapterParameters().keys()]).toContain('base_model.model.score.modules_to_save.default.weight');
      peft.dispose();
    });
  }

  it('class names and counts as transformers takes them; wrong sizes are errors', async () => {
    const dir = join(FIXTURES, 'tiny-gpt-neox');
    const named = await AutoModelForSequenceClassification.fromPretrained(dir, { backend, id2label: { 0: 'no', 1: 'yes', 2: 'maybe' } });
    expect(named.numLabels).toBe(3);
    expect(named.id2label).toEqual(['no', 'yes', 'maybe']);
    expect(named.label2id).toEqual({ no: 0, yes: 1, maybe: 2 });
    expect(named.config.raw.id2label).toEqual({ 0: 'no', 1: 'yes', 2: 'maybe' });
    named.dispose();
    const counted = await AutoModelForSequenceClassification.fromPretrained(dir, { backend, numLabels: 5, padTokenId: 7 });
    expect(counted.id2label).toEqual(['LABEL_0', 'LABEL_1', 'LABEL_2', 'LABEL_3', 'LABEL_4']);
    expect(counted.config.raw.pad_token_id).toBe(7);
    counted.dispose();
    await expect(
      AutoModelForSequenceClassification.fromPretrained(dir, { backend, numLabels: 2, id2label: ['a', 'b', 'c'] }),
    ).rejects.toThrow('numLabels 2 but id2label names 3 classes');
    await expect(AutoModelForSequenceClassification.fromPretrained(dir, { backend, id2label: { 0: 'a', 2: 'b' } })).rejects.toThrow(
      'id2label has key "2": keys must be the ids 0…1',
    );
  });

  it('a config.json that does not fit its checkpoint is refused from the headers, before the model is allocated', async () => {
    const dir = join(work, 'huge-config');
    mkdirSync(dir, { recursive: true });
    for (const f of ['model.safetensors']) copyFileSync(join(FIXTURES, 'tiny-gpt-neox', f), join(dir, f));
    const config = JSON.parse(readFileSync(join(FIXTURES, 'tiny-gpt-neox', 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 5000 }));
    const before = process.memoryUsage().arrayBuffers;
    const started = performance.now();
    await expect(AutoModelForSequenceClassification.fromPretrained(dir, { backend, numLabels: 2 })).rejects.toThrow(
      /model\.safetensors is missing \d+ of the model's \d+ tensors/,
    );
    expect(performance.now() - started).toBeLessThan(2000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 2 ** 20);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "gpt_neox", "secret text');
    const error = await AutoModelForSequenceClassification.fromPretrained(dir, { backend, numLabels: 2 }).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/config\.json/);
    expect((error as Error).message).not.toContain('secret');
  });
});

interface Job {
  name: (typeof TINY_MODELS)[number];
  merged: string;
  base: string;
  adapter: string;
  padTokenId: number;
  inputIds: number[][];
  attentionMask: number[][];
  /** Our logits of the adapted classifier (what the merged folder must give). */
  ours: number[];
}
const jobs: Job[] = [];

describe('a classifier adapter: save, reload in one call, merge', () => {
  for (const name of TINY_MODELS) {
    it(`${name}: the labels travel with the adapter; the merged folder is a ${ARCH[name]} with its labels and head`, async () => {
      const dir = join(FIXTURES, name);
      const tokenizer = await AutoTokenizer.fromPretrained(dir);
      const classifier = await AutoModelForSequenceClassification.fromPretrained(dir, {
        backend,
        id2label: LABELS,
        generator: new Generator(5),
      });
      // Non-zero LoRA (initLoraWeights false draws B too) and a changed score copy, all from fixed seeds.
      const peft = getPeftModel(
        classifier,
        { taskType: 'SEQ_CLS', r: 4, loraAlpha: 8, initLoraWeights: false },
        { generator: new Generator(6) },
      );
      const score = peft.adapterParameters().get('base_model.model.score.modules_to_save.default.weight')!;
      const changed = noGrad(() => scale(score, -3));
      assignInPlace(score, changed);
      changed.dispose();
      peft.eval();
      const padTokenId = classifier.padTokenId!;
      expect(padTokenId).toBe(tokenizer.padTokenId ?? tokenizer.eosTokenId);
      // Fixed ids (≥ 4, so never the pad id), right-padded with it: the golden does not depend on the tokenizer.
      const batch = pad(tokenRows([5, 9, 3], classifier.model.config.vocabSize, 7), 'right', padTokenId);
      const ours = await logitsOf(peft, batch);
      expect(ours.length).toBe(9);
      // The adapter changes the logits (the comparisons below are not vacuous).
      const plain = await peft.withAdaptersDisabled(() => logitsOf(classifier, batch));
      expect(maxAbsDiff(plain, ours)).toBeGreaterThan(1e-2);

      const adapter = join(work, name, 'adapter');
      await saveAdapter(peft, adapter);
      const saved = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
      expect(saved.id2label).toEqual({ 0: 'negative', 1: 'neutral', 2: 'positive' });
      expect(saved.label2id).toEqual({ negative: 0, neutral: 1, positive: 2 });
      expect(saved.base_model_name_or_path).toBe(dir);
      expect(saved.task_type).toBe('SEQ_CLS');

      // One call: base folder from adapter_config.json, labels and head from the adapter folder.
      const reloaded = await AutoPeftModelForSequenceClassification.fromPretrained(adapter, { backend });
      expect(reloaded.model.id2label).toEqual(LABELS);
      expect(reloaded.model.padTokenId).toBe(padTokenId);
      expect(reloaded.training).toBe(false);
      expect(maxAbsDiff(await logitsOf(reloaded, batch), ours)).toBeLessThan(1e-5);
      expect(await reloaded.model.predictLabels(batch)).toEqual(await classifier.predictLabels(batch));
      reloaded.dispose();

      const merged = join(work, name, 'merged');
      await saveMerged(peft, merged);
      const config = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8'));
      expect(config.architectures).toEqual([ARCH[name]]);
      expect(config.id2label).toEqual({ 0: 'negative', 1: 'neutral', 2: 'positive' });
      expect(config.label2id).toEqual({ negative: 0, neutral: 1, positive: 2 });
      expect(config.pad_token_id).toBe(padTokenId);
      const file = await openSafetensors(await fileSource(join(merged, 'model.safetensors')));
      expect(file.names()).toContain('score.weight');
      expect(file.info('score.weight').shape).toEqual([3, classifier.model.config.hiddenSize]);
      expect(file.names().some((n) => n.startsWith('embed_out') || n.startsWith('lm_head') || n.includes('lora'))).toBe(false);
      await file.close();
      // Our own loader reads the merged folder back as the same classifier, labels included.
      const back = await AutoModelForSequenceClassification.fromPretrained(merged, { backend });
      expect(back.id2label).toEqual(LABELS);
      expect(back.padTokenId).toBe(padTokenId);
      expect(maxAbsDiff(await logitsOf(back, batch), ours)).toBeLessThan(1e-5);
      await expect(AutoModelForSequenceClassification.fromPretrained(merged, { backend, numLabels: 2 })).rejects.toThrow(
        'score.weight has 3 rows (classes) but the classifier asks for 2',
      );
      back.dispose();
      peft.dispose();
      jobs.push({ name, merged, base: dir, adapter, padTokenId, ...batch, ours });
    });
  }

  it('a Python PEFT adapter without labels loads with as many classes as its score head has rows', async () => {
    const job = jobs[0]!;
    const bare = join(work, 'bare-adapter');
    const config = JSON.parse(readFileSync(join(job.adapter, 'adapter_config.json'), 'utf8'));
    delete config.id2label;
    delete config.label2id;
    mkdirSync(bare, { recursive: true });
    writeFileSync(join(bare, 'adapter_config.json'), JSON.stringify(config));
    copyFileSync(join(job.adapter, 'adapter_model.safetensors'), join(bare, 'adapter_model.safetensors'));
    const peft = await AutoPeftModelForSequenceClassification.fromPretrained(bare, { backend, baseModelNameOrPath: job.base });
    expect(peft.model.id2label).toEqual(['LABEL_0', 'LABEL_1', 'LABEL_2']);
    expect(maxAbsDiff(await logitsOf(peft, job), job.ours)).toBeLessThan(1e-5);
    peft.dispose();
  });
});

describe('transformers reads what we write', () => {
  it.skipIf(!python)(
    `transformers loads the merged folders (and PEFT the adapters) with our labels and logits within 1e-4${python ? '' : ' (skipped: no Python with torch, transformers and peft; set PEFT_BENCH_PYTHON)'}`,
    { timeout: 180_000 },
    async () => {
      const list = jobs.flatMap((j) => [
        { merged: j.merged, inputIds: j.inputIds, attentionMask: j.attentionMask },
        { base: j.base, adapter: j.adapter, padTokenId: j.padTokenId, inputIds: j.inputIds, attentionMask: j.attentionMask },
      ]);
      const file = join(work, 'jobs.json');
      writeFileSync(file, JSON.stringify(list));
      const script = join(import.meta.dirname, '..', 'scripts', 'transformers-classifier.py');
      const run = spawnSync(python!, [script, file], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const results = JSON.parse(run.stdout) as {
        class: string;
        num_labels: number;
        id2label: object;
        label2id: object;
        pad_token_id: number;
        logits: number[][];
      }[];
      const golden: Record<string, unknown> = {};
      jobs.forEach((j, i) => {
        const [merged, adapted] = [results[2 * i]!, results[2 * i + 1]!];
        expect(merged.class).toBe(ARCH[j.name]);
        expect(merged.num_labels).toBe(3);
        expect(merged.id2label).toEqual({ 0: 'negative', 1: 'neutral', 2: 'positive' });
        expect(merged.label2id).toEqual({ negative: 0, neutral: 1, positive: 2 });
        expect(merged.pad_token_id).toBe(j.padTokenId);
        expect(maxAbsDiff(merged.logits.flat(), j.ours)).toBeLessThan(1e-4);
        expect(adapted.class).toBe(ARCH[j.name]);
        expect(maxAbsDiff(adapted.logits.flat(), j.ours)).toBeLessThan(1e-4);
        golden[j.name] = { inputIds: j.inputIds, attentionMask: j.attentionMask, merged: merged.logits, adapter: adapted.logits };
      });
      // The golden that the test without Python compares with: written when missing (or with
      // PEFT_UPDATE_GOLDENS=1), otherwise it must still agree with transformers.
      if (!existsSync(GOLDEN) || process.env.PEFT_UPDATE_GOLDENS === '1') {
        mkdirSync(dirname(GOLDEN), { recursive: true });
        writeFileSync(GOLDEN, `${JSON.stringify(golden, null, 1)}\n`);
      }
      const kept = JSON.parse(readFileSync(GOLDEN, 'utf8')) as typeof golden;
      for (const [name, g] of Object.entries(golden) as [string, { merged: number[][]; adapter: number[][] }][]) {
        const k = kept[name] as typeof g;
        expect(maxAbsDiff(k.merged.flat(), g.merged.flat()), `${GOLDEN} is stale: rerun with PEFT_UPDATE_GOLDENS=1`).toBeLessThan(1e-5);
        expect(maxAbsDiff(k.adapter.flat(), g.adapter.flat())).toBeLessThan(1e-5);
      }
    },
  );

  it('our logits equal the golden logits transformers computed from the same folders (within 1e-4)', () => {
    expect(existsSync(GOLDEN), `${GOLDEN} is missing: run this test once with a Python that has transformers`).toBe(true);
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Record<
      string,
      { inputIds: number[][]; merged: number[][]; adapter: number[][] }
    >;
    expect(jobs.length).toBe(TINY_MODELS.length);
    for (const j of jobs) {
      const g = golden[j.name]!;
      expect(g.inputIds).toEqual(j.inputIds);
      expect(maxAbsDiff(g.merged.flat(), j.ours)).toBeLessThan(1e-4);
      expect(maxAbsDiff(g.adapter.flat(), j.ours)).toBeLessThan(1e-4);
    }
  });
});
