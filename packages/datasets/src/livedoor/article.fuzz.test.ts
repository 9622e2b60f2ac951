import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { readLivedoor } from '../node/livedoor.js';

// A mutated article file in a one-article corpus folder, read by readLivedoor (strict UTF-8, size
// limit, Python line splitting, NFKC): accepted, or refused with an error naming the file, within
// 2 s and 256 MiB. With malformed: 'warn' every case must be accepted or give "no articles".

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'livedoor', 'text');
const scratch = mkdtempSync(join(tmpdir(), `peft-livedoor-fuzz-${process.pid}-`));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const encoder = new TextEncoder();

describe('livedoor article fuzz', () => {
  it('each mutated article is read or refused naming the file, in bounded time and memory', async () => {
    mkdirSync(join(scratch, 'text', 'smax'), { recursive: true });
    const warnModeErrors: string[] = [];
    const report = await runFuzz({
      reader: 'livedoor article',
      file: 'smax-1.txt',
      seeds: [
        new Uint8Array(readFileSync(join(FIXTURES, 'smax', 'smax-6147514.txt'))),
        new Uint8Array(readFileSync(join(FIXTURES, 'peachy', 'peachy-6140208.txt'))),
        encoder.encode('http://x/\r\n2012-01-01\r\n　ＳＭＡＸ\u3000\r\n本文\u2028二行目\u0085\r\n'),
      ],
      cases: 800,
      mutators: TEXT_MUTATORS,
      extraCases: [
        { name: 'invalid UTF-8', bytes: new Uint8Array([0x75, 0x0a, 0x64, 0x0a, 0xc3, 0x28, 0x0a]) },
        { name: 'two lines', bytes: encoder.encode('u\nd\n') },
        { name: 'BOM only', bytes: new Uint8Array([0xef, 0xbb, 0xbf]) },
        { name: '200,000 empty lines', bytes: encoder.encode(`u\nd\nt\n${'\n'.repeat(200_000)}`) },
        { name: 'line of 4 MB', bytes: encoder.encode(`u\nd\nt\n${'ｱ'.repeat(2 ** 22 / 3)}`) },
      ],
      async read(bytes, file) {
        writeFileSync(join(scratch, 'text', 'smax', file), bytes);
        try {
          await readLivedoor(scratch, { malformed: 'warn' });
        } catch (e) {
          const message = (e as Error).message;
          if (!message.startsWith('no livedoor articles')) warnModeErrors.push(message.slice(0, 200));
        }
        return readLivedoor(scratch);
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(warnModeErrors).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });
});
