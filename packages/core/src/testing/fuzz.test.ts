import { describe, expect, it } from 'vitest';
import { fuzzCases, runFuzz, TEXT_MUTATORS, unclearError } from './fuzz.js';

const seed = new TextEncoder().encode('{"a": 12, "b": [1, 2, 3]}\nline two 45\n');

describe('fuzz harness', () => {
  it('draws the same cases for the same seed, and different ones for another', () => {
    const target = { reader: 'x', file: 'x.json', seeds: [seed], cases: 20, read: () => {}, mutators: TEXT_MUTATORS };
    const a = [...fuzzCases(target)].map((c) => Buffer.from(c.bytes).toString('hex'));
    const b = [...fuzzCases(target)].map((c) => Buffer.from(c.bytes).toString('hex'));
    const c = [...fuzzCases({ ...target, seed: 7 })].map((x) => Buffer.from(x.bytes).toString('hex'));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(new Set(a).size).toBeGreaterThan(10);
  });

  it('accepts clear errors and flags engine errors, unnamed files and long messages', () => {
    expect(unclearError(new Error('x.json: field "a" must be a number, got "q"'), 'x.json')).toBeUndefined();
    expect(unclearError(new TypeError('Cannot read properties of null'), 'x.json')).toMatch(/engine error TypeError/);
    expect(unclearError(new RangeError('Invalid typed array length: -5'), 'x.json')).toMatch(/RangeError/);
    expect(unclearError(new Error('bad field'), 'x.json')).toMatch(/does not name x\.json/);
    expect(unclearError(new Error(`x.json: ${'a'.repeat(2000)}`), 'x.json')).toMatch(/2008 characters/);
    expect(unclearError('a string', 'x.json')).toMatch(/non-Error/);
  });

  it('reports accepted and rejected cases and records failures with their input', async () => {
    const report = await runFuzz({
      reader: 'json-test',
      file: '/some/dir/x.json',
      seeds: [seed],
      cases: 60,
      mutators: TEXT_MUTATORS,
      read: (bytes, file) => {
        const text = new TextDecoder().decode(bytes);
        if (text.includes('NaN')) throw new TypeError('engine');
        if (!text.startsWith('{')) throw new Error(`${file}: expected an object`);
      },
    });
    expect(report.cases).toBe(60);
    expect(report.accepted + report.rejected).toBe(60);
    for (const f of report.failures) {
      expect(f.reason).toMatch(/TypeError/);
      expect(Buffer.from(f.input, 'base64').toString()).toContain('NaN');
    }
  });

  it('flags a case that grows memory beyond the bound or runs too long', async () => {
    const keep: Uint8Array[] = [];
    const report = await runFuzz({
      reader: 'bounds-test',
      file: 'y.bin',
      seeds: [new Uint8Array(8)],
      cases: 2,
      memoryLimitBytes: 32 * 2 ** 20,
      timeLimitMs: 100,
      read: async (_bytes, _file) => {
        if (keep.length === 0) keep.push(new Uint8Array(64 * 2 ** 20).fill(1));
        else await new Promise((r) => setTimeout(r, 250));
      },
    });
    expect(report.failures.map((f) => f.reason)).toEqual([expect.stringMatching(/grew memory by/), expect.stringMatching(/took \d+ ms/)]);
  });

  it('never changes a seed, also when it is a Node Buffer', () => {
    const buffer = Buffer.from('{"a": 12, "b": [1, 2, 3]}');
    const before = buffer.toString('hex');
    const target = { reader: 'b', file: 'b.json', seeds: [buffer], cases: 50, read: () => {}, mutators: TEXT_MUTATORS };
    expect([...fuzzCases(target)].length).toBe(50);
    expect(buffer.toString('hex')).toBe(before);
  });
});
