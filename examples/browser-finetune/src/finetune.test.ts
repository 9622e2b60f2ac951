// The page's training code, run in Node on the CPU backend with the same files the page fetches:
// checks what the end-to-end test cannot see from outside, in a second, without a browser.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { bytesReader, bytesSource, openSafetensors } from '@peft/core';
import { expect, it } from 'vitest';
import { parseLabelledText } from './data.js';
import { finetune, TINY_MODEL_FILES } from './finetune.js';

const MODEL = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');
const HEADLINES = join(import.meta.dirname, '..', 'public', 'headlines.tsv');

it('fine-tunes the bundled tiny model on the bundled headlines and writes a PEFT adapter', async () => {
  const backend = createCpuBackend();
  const opener = bytesReader(new Map(TINY_MODEL_FILES.map((f) => [f, new Uint8Array(readFileSync(join(MODEL, f)))])), 'tiny-gpt-neox');
  const data = parseLabelledText(readFileSync(HEADLINES, 'utf8'), 'headlines.tsv');
  expect(data.labels).toEqual(['スポーツ', '経済', 'IT']);
  expect(data.examples).toHaveLength(48);
  const steps: number[] = [];
  const result = await finetune(backend, opener, data, { steps: 24 }, { onStep: (s) => steps.push(s.step) });
  expect(steps).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
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

it('refuses a labelled text file that is not label<TAB>text', () => {
  expect(() => parseLabelledText('sports\tgood\nno tab here\n', 'x.tsv')).toThrow(
    'x.tsv, line 2: expected "label<TAB>text", got "no tab here"',
  );
  expect(() => parseLabelledText('a\tone\na\ttwo\n', 'y.tsv')).toThrow('y.tsv: found 1 label(s) (a); a classifier needs at least 2');
});
