/**
 * A value for an error message, cut short: one rule for the readers and settings checks of every
 * package, each naming how much it keeps and how the cut is marked.
 */
export interface ShortValueOptions {
  /** Characters kept before the cut (of the JSON text, the text, or the string inside the quotes). */
  max: number;
  /**
   * 'json' (default): the value's JSON (String(value) where JSON has none: undefined, a function,
   * a BigInt, a cycle). 'text': String(value) as it is. 'string': a string quoted as JSON, cut
   * inside the quotes (`"abc…"`).
   */
  as?: 'json' | 'text' | 'string';
  /** What marks a cut: '…' (default) or '...'. */
  ellipsis?: '…' | '...';
  /** 'string' only: the mark after the closing quote (`"abc"…`) instead of inside. */
  markOutside?: boolean;
  /** After the mark, " (N characters)" with the whole length. */
  count?: boolean;
}

/**
 * `value` as an error message shows it, never longer than `max` characters plus the cut's mark:
 * `shortValue({ a: 1 }, { max: 120 })` is `{"a":1}`; `shortValue('x'.repeat(50), { as: 'string',
 * max: 40, markOutside: true, count: true })` is `"xxx…x"… (50 characters)`.
 */
export function shortValue(value: unknown, options: ShortValueOptions): string {
  const { max, as = 'json', ellipsis = '…', markOutside = false, count = false } = options;
  const text = as === 'json' ? jsonText(value) : String(value);
  if (text.length <= max) return as === 'string' ? JSON.stringify(text) : text;
  const tail = count ? ` (${text.length} characters)` : '';
  const kept = text.slice(0, max);
  if (as !== 'string') return `${kept}${ellipsis}${tail}`;
  return markOutside ? `${JSON.stringify(kept)}${ellipsis}${tail}` : `${JSON.stringify(kept + ellipsis)}${tail}`;
}

function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
