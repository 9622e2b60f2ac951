// peft eval / predict / merge on the tiny livedoor and bc5cdr runs: the run's settings travel with
// the adapter (peft_run.json), eval reproduces the run's test metrics with no flags, overrides and
// mismatches are explained, and every run draws curves.svg.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const NEOX = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const LLAMA = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const LIVEDOOR = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const BC5CDR = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');
const tmp = mkdtempSync(join(tmpdir(), 'peft-run-settings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI; stdout lines and stderr text are kept apart. */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  });
  try {
    const code = await main(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n'), err };
  } finally {
    spy.mockRestore();
  }
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const warnings = (err: string) => err.split('\n').filter((l) => l.startsWith('warning:'));

function withEnv<T>(env: Record<string, string | undefined>, f: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  return f().finally(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

function checkCurves(path: string, scoreLabel: string) {
  const svg = readFileSync(path, 'utf8');
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.match(/<rect data-role="plot"/g)).toHaveLength(2);
  expect(svg).toContain('>optimizer step</text>');
  expect(svg).toContain(`>validation ${scoreLabel}</text>`);
  expect(svg).toContain('data-series="loss, mean per epoch"');
}

describe('the tiny livedoor run (max length 64, not the 512 default)', () => {
  const out = join(tmp, 'livedoor');
  const adapter = join(out, 'adapter');
  let test: { score: number; metrics: Record<string, number> };
  beforeAll(async () => {
    const r = await run([
      'train',
      'livedoor',
      '--model',
      NEOX,
      '--data',
      LIVEDOOR,
      '--out',
      out,
      '--epochs',
      '3',
      '--batch-size',
      '8',
      '--lr',
      '0.01',
      '--max-length',
      '64',
      '--template',
      '1',
      '--threads',
      '1',
    ]);
    expect(r.code, r.err).toBe(0);
    test = json(join(out, 'test-metrics.json'));
  }, 120_000);
  afterEach(() => vi.restoreAllMocks());

  it('writes peft_run.json beside the adapter and curves.svg in the run folder', () => {
    const s = json(join(adapter, 'peft_run.json'));
    expect(s).toMatchObject({
      format: 1,
      study: 'livedoor',
      model: NEOX,
      data: LIVEDOOR,
      template: 1,
      maxLength: 64,
      seed: 42,
      evalBatchSize: 8,
      dtype: 'float32',
      pooling: 'last-token',
    });
    expect(s.labels).toEqual(json(join(adapter, 'labels.json')));
    checkCurves(join(out, 'curves.svg'), 'macro-F1');
  });

  it('peft eval --adapter alone reproduces the run’s test metrics, warns about nothing and writes eval-test-<time>.json', async () => {
    const before = readFileSync(join(out, 'test-metrics.json'), 'utf8');
    const r = await run(['eval', '--adapter', adapter]);
    expect(r.code, r.err).toBe(0);
    expect(warnings(r.err)).toEqual([]);
    const pct = (x: number) => (100 * x).toFixed(2);
    const m = test.metrics;
    expect(r.out).toContain(`| test | ${pct(m.accuracy!)} | ${pct(m.precision!)} | ${pct(m.recall!)} | ${pct(m.f1!)} |`);
    expect(r.out).toContain("the run's test score (test-metrics.json)");
    const files = readdirSync(out).filter((f) => /^eval-test-.*\.json$/.test(f));
    expect(files).toHaveLength(1);
    const report = json(join(out, files[0]!));
    expect(report.metrics).toEqual(test.metrics);
    expect(report.settings).toMatchObject({ template: 1, maxLength: 64, seed: 42 });
    expect(readFileSync(join(out, 'test-metrics.json'), 'utf8')).toBe(before);
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 60_000);

  it('--json prints the metrics as JSON; a flag that differs from the run warns once, naming the setting and both values', async () => {
    const r = await run(['eval', 'livedoor', '--adapter', adapter, '--json', '--max-length', '512', '--template', '1']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.study).toBe('livedoor');
    expect(report.settings.maxLength).toBe(512);
    expect(typeof report.metrics.f1).toBe('number');
    expect(warnings(r.err)).toEqual([
      "warning: --max-length 512 overrides the run's max length 64 (peft_run.json); the scores may differ from the run's",
    ]);
  }, 60_000);

  it('predict prints the label, its probability and the top classes; --json gives every class probability', async () => {
    const texts = ['スマートフォン新機種\n発売日が決まった。', 'サッカー日本代表\n試合の結果。'];
    const r = await run(['predict', '--adapter', adapter, '--text', texts[0]!, '--text', texts[1]!, '--json']);
    expect(r.code, r.err).toBe(0);
    const rows = JSON.parse(r.out) as {
      text: string;
      label: string;
      score: number;
      scores: Record<string, number>;
      top: { label: string; score: number }[];
    }[];
    expect(rows.map((x) => x.text)).toEqual(texts);
    const labels = json(join(adapter, 'labels.json')) as string[];
    for (const row of rows) {
      expect(Object.keys(row.scores)).toEqual(labels);
      expect(Object.values(row.scores).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      const best = Math.max(...Object.values(row.scores));
      expect(row.score).toBe(best);
      expect(row.scores[row.label]).toBe(best);
      expect(row.top).toHaveLength(3);
      expect(row.top[0]!.label).toBe(row.label);
      expect(row.top[0]!.score).toBeGreaterThanOrEqual(row.top[1]!.score);
    }
    const plain = await run(['predict', 'classification', '--adapter', adapter, '--text', texts[0]!, '--text', texts[1]!]);
    const lines = plain.out.split('\n');
    expect(lines).toHaveLength(2);
    lines.forEach((line, i) => {
      const [label, p, top] = line.split('\t');
      expect(label).toBe(rows[i]!.label);
      expect(p).toBe(rows[i]!.score.toFixed(4));
      expect(top).toBe(rows[i]!.top.map((t) => `${t.label} ${t.score.toFixed(4)}`).join(', '));
    });
  }, 60_000);

  it('an adapter for another base model: a warning when only the name differs, an error naming both when shapes differ', async () => {
    const renamed = join(tmp, 'renamed-neox');
    cpSync(NEOX, renamed, { recursive: true });
    const same = await run(['eval', '--adapter', adapter, '--model', renamed]);
    expect(same.code, same.err).toBe(0);
    expect(warnings(same.err).join('\n')).toContain(`names base model ${NEOX}, not ${renamed}; the shapes fit`);
    const other = await run(['eval', '--adapter', adapter, '--model', LLAMA]);
    expect(other.code).toBe(1);
    expect(other.err).toContain(`was trained on base model ${NEOX} and does not fit ${LLAMA} (llama`);
    expect(other.err).toContain('gpt_neox.layers.0.attention.query_key_value');
    expect(other.err.length).toBeLessThan(1200);
  }, 60_000);

  it('an adapter of another task type is named as such, also without peft_run.json', async () => {
    const bare = join(tmp, 'bare-adapter');
    cpSync(adapter, bare, { recursive: true });
    rmSync(join(bare, 'peft_run.json'));
    const r = await run(['eval', 'bc5cdr', '--adapter', bare, '--model', LLAMA, '--data', BC5CDR]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('has task_type SEQ_CLS, a sequence-classification adapter');
    expect(r.err).toContain('peft eval bc5cdr needs task_type CAUSAL_LM');
    const p = await run(['predict', 'ner', '--adapter', adapter, '--text', 'x']);
    expect(p.code).toBe(2);
    expect(p.err).toContain("is a livedoor run's adapter (peft_run.json): use `peft predict classification`");
    // Without the settings file the old flags still work, with a warning that the defaults are used.
    const old = await run([
      'eval',
      'livedoor',
      '--adapter',
      bare,
      '--model',
      NEOX,
      '--data',
      LIVEDOOR,
      '--max-length',
      '64',
      '--template',
      '1',
    ]);
    expect(old.code, old.err).toBe(0);
    expect(warnings(old.err)).toHaveLength(1);
    expect(old.err).toContain('has no peft_run.json');
  }, 60_000);

  it('relative paths are read from the user’s folder (INIT_CWD under pnpm), and errors say where they looked', async () => {
    await withEnv({ INIT_CWD: out, npm_lifecycle_event: 'peft' }, async () => {
      const r = await run(['merge', '--model', NEOX, '--adapter', 'adapter', '--out', 'merged']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`wrote ${join(out, 'merged')} (GPTNeoXForSequenceClassification, 9 labels`);
      expect(existsSync(join(out, 'merged', 'config.json'))).toBe(true);
      const missing = await run(['merge', '--model', NEOX, '--adapter', 'nope', '--out', 'm2']);
      expect(missing.code).toBe(2);
      expect(missing.err).toContain(`adapter folder nope (looked for at ${join(out, 'nope')}) does not exist`);
      const ev = await run(['eval', '--adapter', 'adapter', '--json']);
      expect(ev.code, ev.err).toBe(0);
      expect(JSON.parse(ev.out).metrics).toEqual(test.metrics);
    });
    const wrong = await run(['merge', '--model', LLAMA, '--adapter', adapter, '--out', join(tmp, 'm3')]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain(`does not fit ${LLAMA}`);
    expect(existsSync(join(tmp, 'm3'))).toBe(false);
  }, 60_000);
});

describe('the tiny bc5cdr run (one Chemical adapter, 4 sentences per split)', () => {
  const out = join(tmp, 'bc5cdr');
  const adapter = join(out, 'Chemical', 'adapter');
  beforeAll(async () => {
    const r = await run([
      'train',
      'bc5cdr',
      '--model',
      LLAMA,
      '--data',
      BC5CDR,
      '--out',
      out,
      '--epochs',
      '1',
      '--limit',
      '4',
      '--r',
      '4',
      '--types',
      'Chemical',
      '--max-length',
      '96',
      '--threads',
      '1',
    ]);
    expect(r.code, r.err).toBe(0);
  }, 120_000);

  it('writes peft_run.json with the decoding settings and curves.svg', () => {
    expect(json(join(adapter, 'peft_run.json'))).toMatchObject({
      study: 'bc5cdr',
      task: 'ner-generation',
      model: LLAMA,
      method: 'tagging',
      perLabel: true,
      types: ['Chemical'],
      instruction: false,
      limit: { train: 4, validation: 4, test: 4 },
      decoding: { strategy: 'greedy', stopStrings: ['\n'], maxNewTokensMargin: 8 },
    });
    checkCurves(join(out, 'Chemical', 'curves.svg'), 'entity F1');
  });

  it('peft eval --adapter alone gives the run’s test metrics, generated outputs included', async () => {
    const r = await run(['eval', '--adapter', adapter, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(warnings(r.err)).toEqual([]);
    const report = JSON.parse(r.out);
    expect(report.study).toBe('bc5cdr');
    expect(report.metrics).toEqual(json(join(out, 'Chemical', 'test-metrics.json')).metrics);
    expect(report.metrics.samples.length).toBeGreaterThan(0);
  }, 60_000);

  it('given the run folder instead of an adapter folder, eval names the adapter folders inside it', async () => {
    const r = await run(['eval', '--adapter', out]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${out} has no adapter_config.json, so it is not an adapter folder; the adapter folder inside it: ${adapter}`);
  });

  it('predict needs no kind and prints the answer and the parsed entities on one line', async () => {
    const r = await run([
      'predict',
      '--adapter',
      adapter,
      '--text',
      'Mesna significantly reduces IFO genotoxicity .',
      '--max-new-tokens',
      '8',
    ]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\t')).toHaveLength(2);
    const j = await run([
      'predict',
      '--adapter',
      adapter,
      '--text',
      'Mesna significantly reduces IFO genotoxicity .',
      '--max-new-tokens',
      '8',
      '--json',
    ]);
    const rows = JSON.parse(j.out);
    expect(Object.keys(rows[0].outputs)).toEqual(['Chemical']);
    expect(Array.isArray(rows[0].entities)).toBe(true);
  }, 60_000);
});
