import { BINARY_MUTATORS, describeFailures, type FuzzTarget, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { runSettingsFromText, runSettingsText } from './run-settings.js';
import { BC5CDR_SETTINGS, LIVEDOOR_SETTINGS } from './run-settings.test.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('peft_run.json reader fuzz', () => {
  it('accepts a valid file or refuses naming the file and the field', async () => {
    const target: FuzzTarget = {
      reader: 'peft_run.json',
      file: 'run/adapter/peft_run.json',
      seeds: [enc(runSettingsText(LIVEDOOR_SETTINGS)), enc(runSettingsText(BC5CDR_SETTINGS))],
      cases: 1500,
      mutators: [...TEXT_MUTATORS, ...BINARY_MUTATORS],
      extraCases: [
        { name: 'deep nesting', bytes: enc(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) },
        { name: 'decoding a string', bytes: enc(JSON.stringify({ ...BC5CDR_SETTINGS, decoding: 'greedy' })) },
        { name: 'limit a list', bytes: enc(JSON.stringify({ ...BC5CDR_SETTINGS, limit: [1, 2] })) },
        {
          name: 'huge label list',
          bytes: enc(JSON.stringify({ ...LIVEDOOR_SETTINGS, labels: Array.from({ length: 100_000 }, (_, i) => `l${i}`) })),
        },
        { name: 'null', bytes: enc('null') },
      ],
      read: (bytes, file) => runSettingsFromText(new TextDecoder().decode(bytes), file),
    };
    const report = await runFuzz(target);
    expect(report.failures, describeFailures(report)).toEqual([]);
  });
});
