import { describe, expect, it } from 'vitest';
import { shortValue } from './short-value.js';

describe('shortValue', () => {
  const long = 'a'.repeat(50);

  it('shows a value as JSON, cut at max with the mark and, if asked, the whole length', () => {
    expect(shortValue({ a: [1, 2] }, { max: 120 })).toBe('{"a":[1,2]}');
    expect(shortValue(long, { max: 10 })).toBe(`"${'a'.repeat(9)}…`);
    expect(shortValue([long], { max: 10, count: true })).toBe(`["${'a'.repeat(8)}… (54 characters)`);
    expect(shortValue(long, { max: 52 })).toBe(JSON.stringify(long));
  });

  it('falls back to String() where JSON has no text (undefined, BigInt, a cycle)', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(shortValue(undefined, { max: 10 })).toBe('undefined');
    expect(shortValue(12n, { max: 10 })).toBe('12');
    expect(shortValue(cycle, { max: 10 })).toBe('[object Ob…');
  });

  it('cuts text as it is, with either mark', () => {
    expect(shortValue(long, { as: 'text', max: 4, ellipsis: '...' })).toBe('aaaa...');
    expect(shortValue(long, { as: 'text', max: 4, count: true })).toBe('aaaa… (50 characters)');
    expect(shortValue('short', { as: 'text', max: 5 })).toBe('short');
  });

  it('quotes a string, the cut inside the quotes or the mark after them', () => {
    expect(shortValue(long, { as: 'string', max: 3, ellipsis: '...' })).toBe('"aaa..."');
    expect(shortValue(long, { as: 'string', max: 3, markOutside: true, count: true })).toBe('"aaa"… (50 characters)');
    expect(shortValue('a"b', { as: 'string', max: 3 })).toBe('"a\\"b"');
  });
});
