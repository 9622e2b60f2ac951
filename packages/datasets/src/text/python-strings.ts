/**
 * Python's `str.strip()` / `str.splitlines()` semantics, so that text normalised here matches the
 * Python preprocessing of the original studies character for character (JavaScript's `trim` and
 * `split(/\r?\n/)` use different character sets).
 */

/** Characters for which Python's `str.isspace()` is true. */
const PY_WHITESPACE = new Set([
  '\t',
  '\n',
  '\v',
  '\f',
  '\r',
  '\x1c',
  '\x1d',
  '\x1e',
  '\x1f',
  ' ',
  '\x85',
  '\xa0',
  '\u1680',
  '\u2000',
  '\u2001',
  '\u2002',
  '\u2003',
  '\u2004',
  '\u2005',
  '\u2006',
  '\u2007',
  '\u2008',
  '\u2009',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
]);

/** Python `s.strip()` (no argument: Unicode whitespace) or `s.strip(chars)`. */
export function pyStrip(s: string, chars?: string): string {
  const drop = chars === undefined ? (c: string) => PY_WHITESPACE.has(c) : (c: string) => chars.includes(c);
  let start = 0;
  let end = s.length;
  while (start < end && drop(s[start]!)) start++;
  while (end > start && drop(s[end - 1]!)) end--;
  return s.slice(start, end);
}

/** Python `s.splitlines()`: splits on \n, \r, \r\n, \v, \f, \x1c, \x1d, \x1e, \x85, U+2028, U+2029; no trailing empty line. */
export function pySplitLines(s: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: \x1c-\x1e are line boundaries for Python
  const lines = s.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
