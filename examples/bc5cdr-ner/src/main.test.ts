import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { GenerativeNerTask, readBc5cdrCorpus } from '@peft/cli';
import { loadAdapter } from '@peft/core/node';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_DATA, HELP, main, parseCommandLine, TINY_DEFAULTS, TINY_MODEL, UsageError } from './main.js';

const tmp = mkdtempSync(join(tmpdir(), 'bc5cdr-example-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The default run, on the first 12 sentences of each fixture split to stay well inside the test budget. */
const LIMIT = 12;

/** Mean training loss of each epoch, from a run folder's log.csv (the evaluation rows). */
function epochLosses(runDir: string): number[] {
  const [header, ...rows] = readFileSync(join(runDir, 'log.csv'), 'utf8').trim().split('\n');
  const cols = header!.split(',');
  return rows
    .map((r) => r.split(','))
    .filter((c) => c[cols.indexOf('val_score')] !== '')
    .map((c) => Number(c[cols.indexOf('loss')]));
}

describe('examples/bc5cdr-ner', () => {
  it('runs the default (tiny Llama, fixture abstracts): metrics in range, loss falls, adapters load back and generate the same', async () => {
    const out = join(tmp, 'default');
    const lines: string[] = [];
    const result = (await main(['--out', out, '--limit', String(LIMIT)], { log: (l) => lines.push(l), progress: false }))!;

    // What it printed: the trainable-parameter lines (PEFT's format), the table, the run folder.
    const printed = lines.join('\n');
    expect(printed).toMatch(/\[Disease\] trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}/);
    expect(printed).toMatch(
      /\| overall \(micro\) \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| dev 88\.6/,
    );
    expect(printed).toContain(`run folder: ${out}`);

    // Metrics present and within [0, 1], overall and per type, on dev and test.
    for (const scores of [result.validation, result.test]) {
      expect(scores.sentences).toBe(LIMIT);
      for (const row of [scores, scores.perType.Disease!, scores.perType.Chemical!]) {
        for (const k of ['precision', 'recall', 'f1'] as const) {
          expect(row[k]).toBeGreaterThanOrEqual(0);
          expect(row[k]).toBeLessThanOrEqual(1);
        }
      }
      expect(scores.support).toBeGreaterThan(0);
    }
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(saved.test.f1).toBe(result.test.f1);
    expect(saved.settings).toMatchObject({ method: 'tagging', labels: 'per-label', prompt: false, layers: 'all', r: TINY_DEFAULTS.r });

    // What a tiny random model really does in seconds: the training loss falls from epoch to epoch.
    expect(result.runs.map((r) => r.name)).toEqual(['Disease', 'Chemical']);
    for (const run of result.runs) {
      const losses = epochLosses(run.dir);
      expect(losses).toHaveLength(TINY_DEFAULTS.epochs);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    }

    // Each adapter folder loads onto a fresh copy of the model and generates what the run generated.
    const backend = createCpuBackend();
    const model = await loadModel(TINY_MODEL, { backend });
    try {
      const tokenizer = await loadTokenizer(TINY_MODEL);
      const { sentences } = await readBc5cdrCorpus(FIXTURE_DATA);
      const data = {
        train: sentences.train.slice(0, LIMIT),
        validation: sentences.validation.slice(0, LIMIT),
        test: sentences.test.slice(0, LIMIT),
      };
      for (const run of result.runs) {
        const peft = await loadAdapter(model, run.adapterDir);
        try {
          const task = new GenerativeNerTask({
            peft,
            tokenizer,
            data,
            method: 'tagging',
            labels: [run.name],
            perLabel: true,
            maxLength: TINY_DEFAULTS.maxLength,
          });
          const again = await task.predict('validation');
          const before = JSON.parse(readFileSync(join(run.dir, 'predictions', 'validation.json'), 'utf8')) as {
            outputs: Record<string, string>;
          }[];
          expect(again.map((p) => p.outputs)).toEqual(before.map((p) => p.outputs));
          expect(again.some((p) => p.outputs[run.name]!.length > 0)).toBe(true);
        } finally {
          peft.unload();
        }
      }
    } finally {
      model.dispose();
      backend.destroy();
    }
  });

  it('stops on bad input with a clear error before any training starts', async () => {
    const quiet = { log: () => {}, progress: false as const };
    const out = join(tmp, 'bad');
    await expect(main(['--data', join(tmp, 'no-corpus-here'), '--out', out], quiet)).rejects.toThrow(
      /BC5CDR data folder .*no-corpus-here does not exist: pass --data <folder with CDR_TrainingSet.PubTator.txt, …>/,
    );
    const bert = join(tmp, 'bert');
    mkdirSync(bert);
    writeFileSync(join(bert, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: 16 }));
    await expect(main(['--model', bert, '--data', FIXTURE_DATA, '--out', out], quiet)).rejects.toThrow(
      /config.json has model_type "bert": supported are gpt_neox, llama/,
    );
    expect(() => readFileSync(join(out, 'results.json'))).toThrow();
    await expect(main(['--model', bert], quiet)).rejects.toThrow(UsageError);
    await expect(main(['--model', bert], quiet)).rejects.toThrow(/--model needs --data/);
    await expect(main(['--method', 'spans'], quiet)).rejects.toThrow(/--method "spans" is not one of tagging, extraction/);
    await expect(main(['--r', 'eight'], quiet)).rejects.toThrow(/--r "eight" is not a number/);
    await expect(main(['--bogus'], quiet)).rejects.toThrow(/Unknown option '--bogus'.*--help/);
  });

  it("maps the study's switches onto the recipe", () => {
    const tiny = parseCommandLine([]);
    expect(tiny).toMatchObject({ modelDir: TINY_MODEL, data: FIXTURE_DATA, ...TINY_DEFAULTS, prompt: false });
    const real = parseCommandLine([
      '--model',
      '/models/Llama-2-7b-hf',
      '--data',
      '/data/CDR_Data/CDR.Corpus.v010516',
      '--method',
      'extraction',
      '--labels',
      'all',
      '--prompt',
      '--types',
      'Chemical',
      '--layers',
      'q_proj,v_proj',
      '--r',
      '64',
      '--limit',
      '100',
    ]);
    expect(real).toMatchObject({
      method: 'extraction',
      labels: 'all',
      types: ['Chemical'],
      prompt: true,
      layers: ['q_proj', 'v_proj'],
      r: 64,
      limit: 100,
    });
    // A real model takes the recipe's (the study's) defaults, not the tiny run's.
    expect(real.lr).toBeUndefined();
    expect(real.gradientCheckpointing).toBeUndefined();
    expect(parseCommandLine(['--layers', 'qkvo']).layers).toBe('qkvo');
    expect(parseCommandLine(['--no-gradient-checkpointing', '--model', 'm', '--data', 'd']).gradientCheckpointing).toBe(false);
  });

  it('prints its help', async () => {
    const lines: string[] = [];
    expect(await main(['--help'], { log: (l) => lines.push(l) })).toBeNull();
    expect(lines).toEqual([HELP]);
  });
});
