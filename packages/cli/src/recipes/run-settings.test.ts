import { describe, expect, it } from 'vitest';
import { curvesSvg, parseLogCsv } from './curves.js';
import { shownPath, userCwd, userPath } from './paths.js';
import { type RunSettings, RunSettingsError, runSettingsFromText, runSettingsText, settingValue } from './run-settings.js';

export const LIVEDOOR_SETTINGS: RunSettings = {
  format: 1,
  study: 'livedoor',
  task: 'sequence-classification',
  model: '/models/tiny-gpt-neox',
  modelType: 'gpt_neox',
  data: '/data/ldcc.tar.gz',
  dtype: 'float32',
  seed: 42,
  template: 2,
  maxLength: 64,
  evalBatchSize: 8,
  labels: ['a', 'b'],
  pooling: 'last-token',
};

export const BC5CDR_SETTINGS: RunSettings = {
  format: 1,
  study: 'bc5cdr',
  task: 'ner-generation',
  model: '/models/tiny-llama',
  modelType: 'llama',
  data: '/data/bc5cdr',
  dtype: 'bfloat16',
  seed: 7,
  method: 'tagging',
  perLabel: true,
  types: ['Chemical'],
  instruction: false,
  maxLength: 160,
  evalBatchSize: 16,
  limit: { train: 4 },
  decoding: { strategy: 'greedy', stopStrings: ['\n'], maxNewTokensMargin: 8 },
};

describe('peft_run.json', () => {
  it('round-trips both studies', () => {
    for (const s of [LIVEDOOR_SETTINGS, BC5CDR_SETTINGS]) expect(runSettingsFromText(runSettingsText(s), 'x/peft_run.json')).toEqual(s);
    // lora_dropout is recorded since it became a flag; files without it still read.
    const withDropout = { ...LIVEDOOR_SETTINGS, loraDropout: 0.05 };
    expect(runSettingsFromText(runSettingsText(withDropout), 'x/peft_run.json')).toEqual(withDropout);
  });

  it('names the file and the field of a bad value', () => {
    const bad =
      (edit: Record<string, unknown>, base: RunSettings = LIVEDOOR_SETTINGS) =>
      () =>
        runSettingsFromText(JSON.stringify({ ...base, ...edit }), 'run/adapter/peft_run.json');
    expect(bad({ maxLength: 0 })).toThrow('run/adapter/peft_run.json: field "maxLength" must be a positive integer, got 0');
    expect(bad({ loraDropout: 1 })).toThrow('run/adapter/peft_run.json: field "loraDropout" must be a probability in [0, 1), got 1');
    expect(bad({ loraDropout: '0.1' }, BC5CDR_SETTINGS)).toThrow('field "loraDropout" must be a probability in [0, 1), got "0.1"');
    expect(bad({ template: 3 })).toThrow('field "template" must be 0, 1 or 2, got 3');
    expect(bad({ labels: [] })).toThrow('field "labels" must be a non-empty list of class names');
    expect(bad({ format: 2 })).toThrow('field "format" must be 1');
    expect(bad({ study: 'imdb' })).toThrow('field "study" must be "livedoor" or "bc5cdr", got "imdb"');
    expect(bad({ decoding: null }, BC5CDR_SETTINGS)).toThrow('field "decoding" must be an object, got null');
    expect(bad({ limit: { dev: 3 } }, BC5CDR_SETTINGS)).toThrow('field "limit.dev" must be one of limit.train');
    expect(bad({ decoding: { ...BC5CDR_SETTINGS.decoding, maxNewTokensMargin: -1 } }, BC5CDR_SETTINGS)).toThrow(
      'field "decoding.maxNewTokensMargin" must be a non-negative integer, got -1',
    );
    expect(() => runSettingsFromText('{"format": 1,', 'p/peft_run.json')).toThrow(RunSettingsError);
    expect(() => runSettingsFromText('[]', 'p/peft_run.json')).toThrow(
      'p/peft_run.json: field "(top level)" must be an object, got a list of 0',
    );
    const long = bad({ model: 'x'.repeat(5000), modelType: 5 });
    expect(long).toThrow(/got 5$/);
  });

  it('a flag equal to the run value is silent; a different one warns once with both values; absent takes the run value, then the default', () => {
    const lines: string[] = [];
    const warn = (l: string) => lines.push(l);
    const name = { flag: 'max-length', what: 'max length' };
    expect(settingValue(name, undefined, 64, 512, warn)).toBe(64);
    expect(settingValue(name, undefined, undefined, 512, warn)).toBe(512);
    expect(settingValue(name, 64, 64, 512, warn)).toBe(64);
    expect(lines).toEqual([]);
    expect(settingValue(name, 512, 64, 512, warn)).toBe(512);
    expect(lines).toEqual([
      "warning: --max-length 512 overrides the run's max length 64 (peft_run.json); the scores may differ from the run's",
    ]);
  });
});

describe('user paths', () => {
  it('are relative to INIT_CWD only under a package script', () => {
    expect(userCwd({ INIT_CWD: '/home/me/work', npm_lifecycle_event: 'peft' }, '/repo')).toBe('/home/me/work');
    expect(userCwd({ INIT_CWD: '/home/me/work' }, '/repo')).toBe('/repo');
    expect(userCwd({ INIT_CWD: 'relative', npm_lifecycle_event: 'peft' }, '/repo')).toBe('/repo');
    expect(userPath('runs/x/adapter', { INIT_CWD: '/home/me', npm_lifecycle_event: 'peft' }, '/repo')).toBe('/home/me/runs/x/adapter');
    expect(userPath('/abs/adapter', { INIT_CWD: '/home/me', npm_lifecycle_event: 'peft' }, '/repo')).toBe('/abs/adapter');
    expect(shownPath('a', {}, '/repo')).toBe('a (looked for at /repo/a)');
    expect(shownPath('/abs', {}, '/repo')).toBe('/abs');
  });
});

describe('curves.svg', () => {
  const csv = [
    'epoch,step,lr,loss,val_score,tokens_per_s,elapsed_s',
    '0,0,0,,0.1,,0.5',
    '1,10,0.01,2.3,,3000.0,1.0',
    '1,14,0.009,2.2,0.2,3100.0,1.2',
    '2,20,0.008,4.9,,3000.0,1.5',
    '2,28,0.006,3.1,0.35,3000.0,1.9',
    'garbage line',
    '',
  ].join('\n');

  it('reads log.csv rows (training windows and epochs) and skips what does not parse', () => {
    const rows = parseLogCsv(csv);
    expect(rows).toHaveLength(5);
    expect(rows[0]).toEqual({ epoch: 0, step: 0, lr: 0, loss: null, valScore: 0.1, tokensPerSecond: null, elapsedSeconds: 0.5 });
    expect(rows[3]!.loss).toBe(4.9);
    expect(parseLogCsv('not,a,log\n1,2,3')).toEqual([]);
  });

  it('draws the loss per window and per epoch against the step, and the validation score against the epoch, all inside their plots', () => {
    const svg = curvesSvg(parseLogCsv(csv), { scoreLabel: 'macro-F1', title: 'tiny' });
    const panels = [...svg.matchAll(/<svg x="0" y="(\d+)"[^>]*>([\s\S]*?)<\/svg>/g)];
    expect(panels.map((p) => Number(p[1]))).toEqual([0, 360]);
    const series = (body: string) => [...body.matchAll(/<g data-series="([^"]*)">([\s\S]*?)<\/g>/g)];
    const [top, bottom] = panels.map((p) => p[2]!);
    expect(series(top!).map((s) => s[1])).toEqual(['loss, mean per logging window', 'loss, mean per epoch']);
    expect(series(bottom!).map((s) => s[1])).toEqual(['validation macro-F1', 'selected: epoch 2']);
    for (const body of [top!, bottom!]) {
      const frame = /<rect data-role="plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(body)!.slice(1).map(Number);
      const [x0, y0, w, h] = frame as [number, number, number, number];
      const strokes = new Set<string>();
      for (const s of series(body)) {
        const line =
          /<polyline points="([^"]*)"[^>]*stroke="([^"]*)"/.exec(s[2]!) ??
          /<circle cx="([^"]*)" cy="[^"]*" r="[^"]*" fill="([^"]*)"/.exec(s[2]!)!;
        if (!line[1]!.includes(',')) {
          // A one-point series: its marker.
          const c = /<circle cx="([^"]*)" cy="([^"]*)"/.exec(s[2]!)!;
          line[1] = `${c[1]},${c[2]}`;
        }
        strokes.add(line[2]!);
        for (const pt of line[1]!.split(' ')) {
          const [x, y] = pt.split(',').map(Number) as [number, number];
          expect(x).toBeGreaterThanOrEqual(x0);
          expect(x).toBeLessThanOrEqual(x0 + w);
          expect(y).toBeGreaterThanOrEqual(y0);
          expect(y).toBeLessThanOrEqual(y0 + h);
        }
      }
      expect(strokes.size).toBe(series(body).length);
    }
    // The rise to 4.9 after 2.3 stays inside: the top tick is at least 4.9.
    const ticks = [...top!.matchAll(/text-anchor="end">([^<]*)</g)].map((m) => Number(m[1]));
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(4.9);
    expect(svg).toContain('>tiny: training loss</text>');
    expect(svg).toContain('>macro-F1 (%)</text>');
  });
});
