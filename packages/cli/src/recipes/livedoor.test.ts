import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import {
  formatStudyTable,
  LIVEDOOR_PUBLISHED,
  type LivedoorOptions,
  livedoorDtype,
  loadLivedoorClassifier,
  runLivedoor,
} from './livedoor.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const TINY = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const TEXT = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'text');
const ARCHIVE = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'livedoor-recipe-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A short run: the study's model setup, small numbers. */
const quick = (o: Partial<LivedoorOptions> = {}): LivedoorOptions => ({
  modelDir: TINY,
  data: ARCHIVE,
  threads: 1,
  epochs: 1,
  batchSize: 16,
  maxLength: 32,
  lr: 1e-2,
  progress: false,
  ...o,
});

describe('formatStudyTable', () => {
  it("prints the study's layout in percent with 2 decimals, with the published rows when asked", () => {
    const row = { model: 'tiny', accuracy: 0.5, precision: 1 / 3, recall: 0.25, f1: 0.2857142857 };
    expect(formatStudyTable([row])).toBe(
      ['| model | accuracy | precision | recall | F1 |', '|---|---|---|---|---|', '| tiny | 50.00 | 33.33 | 25.00 | 28.57 |', ''].join(
        '\n',
      ),
    );
    const lines = formatStudyTable([row], { published: true }).trimEnd().split('\n');
    expect(lines).toHaveLength(3 + 7);
    expect(lines[3]).toBe('| rinna/japanese-gpt-neox-3.6b-instruction-sft-v2 (published) | 97.96 | 97.77 | 97.76 | 97.75 |');
    expect(lines[9]).toBe('| cyberagent/open-calm-1b (published) | 94.43 | 94.24 | 93.80 | 93.98 |');
    expect(LIVEDOOR_PUBLISHED.map((r) => r.model)).toContain('rinna/japanese-gpt-neox-3.6b');
  });
});

describe('livedoorDtype', () => {
  it('keeps a float32 checkpoint in float32 and puts a 16-bit one in bfloat16 where the backend stores it', () => {
    const backend = createCpuBackend({ threads: 1 });
    const config = (torchDtype: 'float32' | 'float16' | null) => ({ torchDtype }) as Parameters<typeof livedoorDtype>[0];
    expect(livedoorDtype(config('float32'), backend)).toBe('float32');
    expect(livedoorDtype(config(null), backend)).toBe('float32');
    expect(livedoorDtype(config('float16'), backend)).toBe('bfloat16');
    expect(livedoorDtype(config('float32'), backend, 'bfloat16')).toBe('bfloat16');
    backend.destroy();
  });
});

describe('runLivedoor: bad input fails before any training starts', () => {
  const neverTrains = { onStep: () => expect.unreachable('a training step ran') };

  it('a data path that does not exist', async () => {
    const out = join(tmp(), 'run');
    await expect(runLivedoor(quick({ data: '/nonexistent/ldcc-20140209.tar.gz', out, ...neverTrains }))).rejects.toThrow(
      'livedoor: data path /nonexistent/ldcc-20140209.tar.gz does not exist: pass ldcc-20140209.tar.gz, the extracted text/ folder, or its parent',
    );
    expect(() => readFileSync(join(out, 'config.json'))).toThrow(); // nothing written
  });

  it('a model folder that does not exist, or of an unsupported model type', async () => {
    await expect(runLivedoor(quick({ modelDir: '/nonexistent/model', ...neverTrains }))).rejects.toThrow(
      'livedoor: model folder /nonexistent/model does not exist: pass a local Hugging Face model folder',
    );
    const bert = tmp();
    writeFileSync(join(bert, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: 64, vocab_size: 100 }));
    await expect(runLivedoor(quick({ modelDir: bert, ...neverTrains }))).rejects.toThrow(
      'config.json has model_type "bert": supported are gpt_neox, llama',
    );
  });

  it('a category in the data that the classifier labels do not have', async () => {
    const labels = [
      'dokujo-tsushin',
      'it-life-hack',
      'kaden-channel',
      'livedoor-homme',
      'movie-enter',
      'peachy',
      'sports-watch',
      'topic-news',
    ];
    await expect(runLivedoor(quick({ data: TEXT, labels, ...neverTrains }))).rejects.toThrow(
      `livedoor: the data in ${TEXT} has category "smax" that the classifier's labels [${labels.join(', ')}] do not have: add it to labels`,
    );
  });

  it('options out of range', async () => {
    await expect(runLivedoor(quick({ template: 3 as 0, ...neverTrains }))).rejects.toThrow('livedoor: template must be 0, 1 or 2, got 3');
    await expect(runLivedoor(quick({ lr: -1, ...neverTrains }))).rejects.toThrow('livedoor: lr must be a number > 0, got -1');
    await expect(runLivedoor(quick({ lora: { dropout: 1 }, ...neverTrains }))).rejects.toThrow(
      'livedoor: lora.dropout must be in [0, 1), got 1',
    );
    await expect(runLivedoor(quick({ batchSize: 8, microBatchSize: 16, ...neverTrains }))).rejects.toThrow(
      'livedoor: microBatchSize 16 is larger than batchSize 8',
    );
    await expect(runLivedoor(quick({ backend: 'tpu', ...neverTrains }))).rejects.toThrow('--backend "tpu" is not one of cpu, webgpu, cuda');
  });
});

describe('runLivedoor sweep', () => {
  it('runs the grid, selects by validation macro-F1, writes the sweep folder, and a resumed sweep reuses finished runs', async () => {
    const out = tmp();
    const lines: string[] = [];
    const options = quick({ out, sweep: { lr: [1e-2], template: [0, 2] }, log: (l) => lines.push(l) });
    const result = await runLivedoor(options);
    expect(result.sweep!.runs.map((r) => r.name)).toEqual(['lr=0.01,template=0', 'lr=0.01,template=2']);
    const scores = result.sweep!.runs.map((r) => r.result.best.score);
    expect(result.best.score).toBe(Math.max(...scores));
    expect(result.sweep!.best.config).toEqual({ lr: result.lr, template: result.template });
    expect(result.adapterDir).toBe(join(out, result.sweep!.best.name, 'adapter'));
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(summary.split('\n')[0]).toBe('| lr | template | epoch | val F1 | accuracy | precision | recall | F1 |');
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain(`| tiny-gpt-neox (template ${result.template}, lr 0.01) |`);
    for (const name of ['lr=0.01,template=0', 'lr=0.01,template=2']) {
      expect(JSON.parse(readFileSync(join(out, name, 'adapter', 'labels.json'), 'utf8'))).toHaveLength(9);
      expect(JSON.parse(readFileSync(join(out, name, 'adapter', 'peft_run.json'), 'utf8'))).toMatchObject({ loraDropout: 0.1 });
    }

    const backend = createCpuBackend({ threads: 1 });
    const loaded = await loadLivedoorClassifier(TINY, result.adapterDir!, { backend });
    expect(loaded.labels).toEqual(result.labels);
    expect(loaded.peft.model.numLabels).toBe(9);
    expect(loaded.peft.targetedModules()).toEqual([
      'gpt_neox.layers.0.attention.query_key_value',
      'gpt_neox.layers.1.attention.query_key_value',
    ]);
    loaded.peft.dispose();
    await expect(loadLivedoorClassifier(TINY, out, { backend })).rejects.toThrow(`livedoor: ${join(out, 'labels.json')} cannot be read`);
    backend.destroy();

    const again = await runLivedoor({ ...options, resume: true, onStep: () => expect.unreachable('a finished run was trained again') });
    expect(again.sweep!.runs.every((r) => r.reused)).toBe(true);
    expect(again.test).toEqual(result.test);
    expect(again.table).toBe(result.table);
  });

  it('reads the extracted text/ folder and the archive alike', async () => {
    const a = await runLivedoor(quick({ data: TEXT, epochs: 1 }));
    const b = await runLivedoor(quick({ data: ARCHIVE, epochs: 1 }));
    expect(b.splitSizes).toEqual({ train: 109, validation: 13, test: 13 });
    expect(b.validation).toEqual(a.validation);
    expect(b.test).toEqual(a.test);
  });
});
