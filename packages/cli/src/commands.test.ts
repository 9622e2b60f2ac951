import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from './main.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const NEOX = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const LLAMA = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const LIVEDOOR = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const BC5CDR = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');
const tmp = mkdtempSync(join(tmpdir(), 'peft-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

describe('peft train / eval / predict on the bundled tiny models', () => {
  it('livedoor: train, then eval gives the run’s test metrics, then predict labels texts', async () => {
    const out = join(tmp, 'livedoor');
    const common = ['--template', '2', '--max-length', '48'];
    const train = await run([
      'train',
      'livedoor',
      '--model',
      NEOX,
      '--data',
      LIVEDOOR,
      '--out',
      out,
      '--epochs',
      '2',
      '--batch-size',
      '8',
      '--lr',
      '0.01',
      ...common,
    ]);
    expect(train.code).toBe(0);
    expect(train.out).toContain('| model | accuracy | precision | recall | F1 |');
    const adapter = join(out, 'adapter');
    expect(existsSync(join(adapter, 'adapter_config.json'))).toBe(true);
    const testMetrics = JSON.parse(readFileSync(join(out, 'test-metrics.json'), 'utf8'));
    const ev = await run(['eval', 'livedoor', '--model', NEOX, '--adapter', adapter, '--data', LIVEDOOR, ...common]);
    expect(ev.code).toBe(0);
    const pct = (x: number) => (100 * x).toFixed(2);
    const m = testMetrics.metrics ?? testMetrics;
    expect(ev.out).toContain(`| test | ${pct(m.accuracy)} | ${pct(m.precision)} | ${pct(m.recall)} | ${pct(m.f1)} |`);
    const labels: string[] = JSON.parse(readFileSync(join(adapter, 'labels.json'), 'utf8'));
    const pred = await run([
      'predict',
      'classification',
      '--model',
      NEOX,
      '--adapter',
      adapter,
      '--text',
      'スマートフォン新機種\n発売日が決まった。',
      '--text',
      'サッカー日本代表\n試合の結果。',
    ]);
    expect(pred.code).toBe(0);
    const rows = pred.out.split('\n');
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(labels).toContain(row.split('\t')[0]);
  }, 120_000);

  it('bc5cdr: train a per-label tagging adapter, then predict generates an answer', async () => {
    const out = join(tmp, 'bc5cdr');
    const train = await run([
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
    ]);
    expect(train.code).toBe(0);
    expect(train.out).toMatch(/trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+/);
    const adapter = join(out, 'Chemical', 'adapter');
    expect(existsSync(join(adapter, 'adapter_model.safetensors'))).toBe(true);
    const pred = await run([
      'predict',
      'ner',
      '--model',
      LLAMA,
      '--adapter',
      adapter,
      '--text',
      'Mesna significantly reduces IFO genotoxicity .',
      '--max-new-tokens',
      '8',
    ]);
    expect(pred.code).toBe(0);
    expect(pred.out.split('\n')).toHaveLength(1);
  }, 120_000);

  it('refuses a missing data path before training', async () => {
    const r = await run(['train', 'livedoor', '--model', NEOX, '--data', join(tmp, 'nope.tar.gz'), '--out', join(tmp, 'x')]);
    expect(r.code).toBe(1);
  });
});
