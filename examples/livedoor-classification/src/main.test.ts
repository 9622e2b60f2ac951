import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { type LivedoorResult, runLivedoor } from '@peft/cli';
import { loadAdapter } from '@peft/core/node';
import { collate, formatLivedoor, splitLivedoor } from '@peft/datasets';
import { readLivedoor } from '@peft/datasets/node';
import { SequenceClassifier } from '@peft/heads';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { TrainingAbortedError } from '@peft/trainer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_DATA, main, parseCommandLine, TINY_MODEL, UsageError } from './main.js';

// The default run with 3 epochs instead of 10 (CI time); everything else is the default's.
const ARGS = ['--epochs', '3', '--threads', '1'];
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'livedoor-example-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let result: LivedoorResult;
let printed: string[];

beforeAll(async () => {
  printed = [];
  result = (await main([...ARGS, '--out', tmp()], { log: (l) => printed.push(l), progress: false }))!;
});

describe('livedoor-classification example (Study A) on its default', () => {
  it('prints the study table with the metrics, all in [0, 1], and says where the run is', () => {
    const text = printed.join('\n');
    expect(text).toContain('| model | accuracy | precision | recall | F1 |');
    expect(text).toContain('| tiny-gpt-neox (template 2, lr 0.01) |');
    expect(text).toContain('| rinna/japanese-gpt-neox-3.6b (published) | 97.55 | 97.24 | 97.39 | 97.30 |');
    expect(text).toContain(`adapter (PEFT format, score head in modules_to_save, labels.json): ${result.adapterDir}`);
    for (const k of ['accuracy', 'precision', 'recall', 'f1'] as const) {
      expect(result.test[k], k).toBeGreaterThanOrEqual(0);
      expect(result.test[k], k).toBeLessThanOrEqual(1);
    }
    const row = text.split('\n').find((l) => l.startsWith('| tiny-gpt-neox'))!;
    const cells = row
      .split('|')
      .slice(2, 6)
      .map((c) => Number(c.trim()));
    expect(cells).toEqual(
      [result.test.accuracy, result.test.precision, result.test.recall, result.test.f1].map((x) => Number((x * 100).toFixed(2))),
    );
    const onDisk = JSON.parse(readFileSync(join(result.runDir!, 'test-metrics.json'), 'utf8'));
    expect(onDisk).toMatchObject({ epoch: result.best.epoch, score: result.test.f1, metrics: { accuracy: result.test.accuracy } });
    expect(result.splitSizes).toEqual({ train: 109, validation: 13, test: 13 });
  });

  it('training improves validation macro-F1 over the untrained state', () => {
    expect(result.untrained.epoch).toBe(0);
    expect(result.validation.map((v) => v.epoch)).toEqual([0, 1, 2, 3]);
    expect(result.best.epoch).toBeGreaterThan(0);
    // Untrained: about one class in 9 right; after 3 epochs well above it.
    expect(result.untrained.score).toBeLessThan(0.2);
    expect(result.best.score).toBeGreaterThan(result.untrained.score + 0.2);
  });

  it('the adapter folder loads back onto a fresh model + head and predicts the same labels', async () => {
    const backend = createCpuBackend({ threads: 1 });
    const labels: string[] = JSON.parse(readFileSync(join(result.adapterDir!, 'labels.json'), 'utf8'));
    expect(labels).toEqual(result.labels);
    const head = new SequenceClassifier(await loadModel(TINY_MODEL, { backend }), { numLabels: labels.length });
    const peft = await loadAdapter(head, result.adapterDir!);
    const tokenizer = await loadTokenizer(TINY_MODEL);
    const corpus = await readLivedoor(FIXTURE_DATA);
    const { test } = splitLivedoor(corpus.examples, { seed: 42 });
    const batch = collate(
      test.map((e) => ({ text: formatLivedoor(e, 2), label: e.label })),
      {
        tokenizer: {
          encode: (t) => tokenizer.encode(t),
          padTokenId: tokenizer.padTokenId ?? 0,
          eosTokenId: tokenizer.eosTokenId ?? undefined,
        },
        maxLength: 64,
      },
    );
    expect(await peft.model.predict(batch)).toEqual(result.testPredictions);
    expect(result.testPredictions).toHaveLength(13);
    peft.dispose();
    backend.destroy();
  });

  it('an interrupted run, resumed (twice), ends with the uninterrupted run’s metrics and adapter', async () => {
    const { help: _h, out: _o, ...options } = parseCommandLine(ARGS);
    const out = tmp();
    // Stopped by a signal in the middle of epoch 1: a checkpoint is written at that step.
    const stop = new AbortController();
    await expect(
      runLivedoor({ ...options, out, progress: false, signal: stop.signal, onStep: (s) => (s.step === 9 ? stop.abort() : undefined) }),
    ).rejects.toThrow(TrainingAbortedError);
    // Resumed, then crashed in epoch 2 (no checkpoint at the crash: the next start goes back to the end of epoch 1).
    await expect(
      runLivedoor({
        ...options,
        out,
        progress: false,
        resume: true,
        onStep: (s) => {
          if (s.step === 20) throw new Error('crash');
        },
      }),
    ).rejects.toThrow('crash');
    const resumed = await runLivedoor({ ...options, out, progress: false, resume: true });
    expect(resumed.train!.resumedFrom).toBe(`${out}/checkpoints/step-00000014`);
    expect(resumed.validation).toEqual(result.validation);
    expect(resumed.best).toEqual(result.best);
    expect(resumed.test).toEqual(result.test);
    expect(resumed.testPredictions).toEqual(result.testPredictions);
    const weights = (dir: string) => readFileSync(join(dir, 'adapter', 'adapter_model.safetensors'));
    expect(weights(out).equals(weights(result.runDir!))).toBe(true);
  });

  it('bad input is a clear error before any training starts', async () => {
    const quiet = { log: () => {}, progress: false as const };
    await expect(main(['--data', '/nonexistent/ldcc-20140209.tar.gz', '--out', tmp()], quiet)).rejects.toThrow(
      'data path /nonexistent/ldcc-20140209.tar.gz does not exist',
    );
    const bert = tmp();
    writeFileSync(join(bert, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    await expect(main(['--model', bert, '--data', FIXTURE_DATA, '--out', tmp()], quiet)).rejects.toThrow(
      'config.json has model_type "bert": supported are gpt_neox, llama',
    );
    const stop = () => expect.unreachable('a training step ran');
    await expect(
      runLivedoor({ modelDir: TINY_MODEL, data: FIXTURE_DATA, labels: ['smax', 'peachy'], progress: false, onStep: stop }),
    ).rejects.toThrow(
      /the data in .* has categories "dokujo-tsushin", "it-life-hack", .* that the classifier's labels \[smax, peachy\] do not have/,
    );
    expect(() => parseCommandLine(['--model', TINY_MODEL])).toThrow(UsageError);
    expect(() => parseCommandLine(['--template', '3'])).toThrow('--template 3 is not one of 0, 1, 2');
    expect(() => parseCommandLine(['--epochs', 'ten'])).toThrow('--epochs "ten" is not a number');
    expect(() => parseCommandLine(['--bogus'])).toThrow(UsageError);
    expect(parseCommandLine(['--', '--sweep', '--lr', '3e-4'])).toMatchObject({
      sweep: true,
      lr: 3e-4,
      modelDir: TINY_MODEL,
      data: FIXTURE_DATA,
    });
  });
});
