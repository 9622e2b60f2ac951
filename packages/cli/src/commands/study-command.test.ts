import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bc5cdrHelp, parseBc5cdrCommandLine } from './bc5cdr.js';
import { livedoorHelp, parseLivedoorCommandLine } from './livedoor.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const NEOX = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const LLAMA = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const LIVEDOOR = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const BC5CDR = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');

describe('--lora-dropout', () => {
  it('livedoor: sets lora.dropout; absent, the recipe keeps its default', () => {
    const given = parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR, '--lora-dropout', '0.2'], { usage: '' });
    expect(given.lora).toEqual({ dropout: 0.2 });
    expect(parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR], { usage: '' }).lora).toBeUndefined();
    expect(() => parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR, '--lora-dropout', 'high'], { usage: '' })).toThrow(
      '--lora-dropout "high" is not a number',
    );
  });

  it('bc5cdr: sets dropout; --dropout is its older name, and the two may not disagree', () => {
    const argv = ['--model', LLAMA, '--data', BC5CDR];
    expect(parseBc5cdrCommandLine([...argv, '--lora-dropout', '0'], { usage: '' }).dropout).toBe(0);
    expect(parseBc5cdrCommandLine([...argv, '--dropout', '0.3'], { usage: '' }).dropout).toBe(0.3);
    expect(parseBc5cdrCommandLine([...argv, '--dropout', '0.3', '--lora-dropout', '0.3'], { usage: '' }).dropout).toBe(0.3);
    expect(parseBc5cdrCommandLine(argv, { usage: '' }).dropout).toBeUndefined();
    expect(() => parseBc5cdrCommandLine([...argv, '--dropout', '0.3', '--lora-dropout', '0.1'], { usage: '' })).toThrow(
      '--lora-dropout 0.1 and --dropout 0.3 disagree: --dropout is the older name of --lora-dropout, give one',
    );
  });

  it('both helps list it with its default', () => {
    expect(livedoorHelp({ usage: 'u' })).toMatch(/--lora-dropout <p> +lora_dropout, in \[0, 1\) \(default 0\.1\)/);
    expect(bc5cdrHelp({ usage: 'u' })).toMatch(/--lora-dropout <p> +lora_dropout, in \[0, 1\) \(default 0\.05;/);
  });
});
