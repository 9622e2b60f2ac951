// The page's training code, run in Node on the CPU backend with the same files the page fetches:
// checks what the end-to-end test cannot see from outside, in a second, without a browser.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { bytesReader, bytesSource, openSafetensors } from '@peft/core';
import { expect, it } from 'vitest';
import { parseLabelledText } from './data.js';
import { ClassifierSession, finetune, softmax, TINY_MODEL_FILES } from './finetune.js';

const MODEL = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');
const HEADLINES = join(import.meta.dirname, '..', 'public', 'headlines.tsv');

it('fine-tunes the bundled tiny model on the bundled headlines and writes a PEFT adapter', async () => {
  const backend = createCpuBackend();
  const opener = bytesReader(new Map(TINY_MODEL_FILES.map((f) => [f, new Uint8Array(readFileSync(join(MODEL, f)))])), 'tiny-gpt-neox');
  const data = parseLabelledText(readFileSync(HEADLINES, 'utf8'), 'headlines.tsv');
  expect(data.labels).toEqual(['スポーツ', '経済', 'IT']);
  expect(data.examples).toHaveLength(48);
  const steps: number[] = [];
  const left: number[] = [];
  const result = await finetune(
    backend,
    opener,
    data,
    { steps: 24 },
    {
      onStep: (s) => {
        steps.push(s.step);
        left.push(s.secondsLeft);
      },
    },
  );
  expect(steps).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  expect(result.stopped).toBe(false);
  // The time left falls to 0 at the last step and is positive before it.
  expect(left.at(-1)).toBe(0);
  expect(left.slice(0, -1).every((s) => s > 0)).toBe(true);
  expect(result.trainSize).toBe(36);
  expect(result.testSize).toBe(12);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  expect(mean(result.losses.slice(-6))).toBeLessThan(mean(result.losses.slice(0, 6)) * 0.8);
  expect(result.trainable).toBe(2 * (8 * 64 + 192 * 8) + 3 * 64);
  const config = JSON.parse(new TextDecoder().decode(result.files.get('adapter_config.json')));
  expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'SEQ_CLS', r: 8, base_model_name_or_path: 'tiny-gpt-neox' });
  const weights = await openSafetensors(bytesSource(result.files.get('adapter_model.safetensors')!));
  expect(weights.names().sort()).toEqual([
    'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight',
    'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_B.weight',
    'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_A.weight',
    'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_B.weight',
    'base_model.model.score.weight',
  ]);
  expect(JSON.parse(new TextDecoder().decode(result.files.get('labels.json')))).toEqual(data.labels);
  backend.destroy();
});

function tiny() {
  const opener = bytesReader(new Map(TINY_MODEL_FILES.map((f) => [f, new Uint8Array(readFileSync(join(MODEL, f)))])), 'tiny-gpt-neox');
  const data = parseLabelledText(readFileSync(HEADLINES, 'utf8'), 'headlines.tsv');
  return { opener, data };
}

it('describes the classifier before training: architecture, sizes, parameters and the adapter', async () => {
  const backend = createCpuBackend();
  const { opener, data } = tiny();
  const session = await ClassifierSession.create(backend, opener, data, { r: 4, loraAlpha: 8 });
  expect(session.summary).toMatchObject({
    architecture: 'GPTNeoXForCausalLM',
    modelType: 'gpt_neox',
    layers: 2,
    hiddenSize: 64,
    r: 4,
    loraAlpha: 8,
    loraDropout: 0.05,
    targets: ['gpt_neox.layers.0.attention.query_key_value', 'gpt_neox.layers.1.attention.query_key_value'],
    modulesToSave: ['score'],
    labels: ['スポーツ', '経済', 'IT'],
    trainSize: 36,
    testSize: 12,
    backend: 'cpu',
  });
  expect(session.summary.trainable).toBe(2 * (4 * 64 + 192 * 4) + 3 * 64);
  expect(session.summary.total).toBeGreaterThan(session.summary.trainable);
  // Timing a step trains nothing: the losses afterwards are those of a session never timed.
  const seconds = await session.measureStep();
  expect(seconds).toBeGreaterThan(0);
  const timed = await session.trainSteps({}, { steps: 4 });
  const fresh = await ClassifierSession.create(backend, opener, data, { r: 4, loraAlpha: 8 });
  const untimed = await fresh.trainSteps({}, { steps: 4 });
  expect(timed.losses).toEqual(untimed.losses);
  await expect(session.trainSteps()).rejects.toThrow('train: this classifier has trained already: build a new one to train again');
  session.dispose();
  fresh.dispose();
  backend.destroy();
});

it('stops between steps when the signal fires, keeps what trained, and classifies a sentence into every class', async () => {
  const backend = createCpuBackend();
  const { opener, data } = tiny();
  const session = await ClassifierSession.create(backend, opener, data, { steps: 500 });
  const stop = new AbortController();
  const outcome = await session.trainSteps({
    signal: stop.signal,
    onStep: ({ step }) => {
      if (step === 3) stop.abort(); // the loop looks at the signal before each step
    },
  });
  expect(outcome.stopped).toBe(true);
  expect(outcome.losses).toHaveLength(3);
  const files = await session.files();
  const weights = await openSafetensors(bytesSource(files.get('adapter_model.safetensors')!));
  expect(weights.names()).toContain('base_model.model.score.weight');
  const classes = await session.classify('新型スマートフォンを発表');
  expect(classes.map((c) => c.label).sort()).toEqual([...data.labels].sort());
  expect(classes.reduce((a, c) => a + c.probability, 0)).toBeCloseTo(1, 6);
  for (let i = 1; i < classes.length; i++) expect(classes[i - 1]!.probability).toBeGreaterThanOrEqual(classes[i]!.probability);
  await expect(session.classify('   ')).rejects.toThrow('classify: the text is empty: type a sentence first');
  session.dispose();
  await expect(session.classify('x')).rejects.toThrow('classify: this classifier was disposed: build a new one');
  backend.destroy();
});

it('softmax: probabilities that sum to 1, also for large logits', () => {
  const p = softmax([1000, 1001, 999]);
  expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  expect(p[1]).toBeCloseTo(Math.exp(1) / (1 + Math.exp(1) + Math.exp(-1)), 12);
});

it('refuses a labelled text file that is not label<TAB>text', () => {
  expect(() => parseLabelledText('sports\tgood\nno tab here\n', 'x.tsv')).toThrow(
    'x.tsv, line 2: expected "label<TAB>text", got "no tab here"',
  );
  expect(() => parseLabelledText('a\tone\na\ttwo\n', 'y.tsv')).toThrow('y.tsv: found 1 label(s) (a); a classifier needs at least 2');
});
