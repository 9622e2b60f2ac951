import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBc5cdrCommandLine } from './bc5cdr.js';
import { parseLivedoorCommandLine } from './livedoor.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const NEOX = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const LLAMA = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const LIVEDOOR = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const BC5CDR = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');

describe('--graph', () => {
  const parsers = [
    ['livedoor', (a: string[]) => parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR, ...a], { usage: '' })],
    ['bc5cdr', (a: string[]) => parseBc5cdrCommandLine(['--model', LLAMA, '--data', BC5CDR, ...a], { usage: '' })],
  ] as const;
  for (const [name, parse] of parsers) {
    it(`${name}: auto, on (cuda only), off become TrainOptions.graph; absent leaves the default; another value is a usage error`, () => {
      expect(parse([]).graph).toBeUndefined();
      expect(parse(['--graph', 'auto']).graph).toBe('auto');
      expect(parse(['--graph', 'on', '--backend', 'cuda']).graph).toBe(true);
      expect(() => parse(['--graph', 'on'])).toThrow(
        '--graph on: the cpu backend cannot capture graphs (only --backend cuda can); use --graph auto or off',
      );
      expect(parse(['--graph', 'off']).graph).toBe(false);
      expect(() => parse(['--graph', 'yes'])).toThrow('--graph "yes" is not one of auto, on, off');
    });
  }
});
