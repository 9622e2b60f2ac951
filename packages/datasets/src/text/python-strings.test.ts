import { describe, expect, it } from 'vitest';
import { pySplitLines, pyStrip } from './python-strings.js';

describe('pyStrip', () => {
  it('strips Python whitespace, including U+3000 and \\x1c, but not U+FEFF', () => {
    expect(pyStrip('\u3000 \t abc \u3000\n')).toBe('abc');
    expect(pyStrip('\x1cabc\x85')).toBe('abc');
    expect(pyStrip('\ufeffabc ')).toBe('\ufeffabc');
  });

  it('strips only the given characters when passed some', () => {
    expect(pyStrip('\u3000 a \u3000', '\u3000')).toBe(' a ');
  });
});

describe('pySplitLines', () => {
  it('splits like str.splitlines', () => {
    expect(pySplitLines('a\r\nb\rc\nd\u2028e\n')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(pySplitLines('a\n\n')).toEqual(['a', '']);
    expect(pySplitLines('')).toEqual([]);
  });
});
