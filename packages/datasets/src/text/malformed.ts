/**
 * How a reader treats a malformed record (a line, element, article or archive entry it cannot use).
 * Every corpus reader (PubTator, BioC, BIO, livedoor) takes the same option with the same meaning:
 * - `'error'` (default, strict): the first malformed record is an error naming the file, the
 *   line / element / entry and what was expected;
 * - `'warn'`: the record is skipped and one line per skipped record is added to the result's
 *   `warnings`, so the caller can count and show them.
 * Problems that make the rest of the file unreadable (broken XML, a corrupt or unsafe archive) are
 * errors in both settings.
 */
export interface MalformedOptions {
  malformed?: 'error' | 'warn';
}

/** Throws `message` in the strict setting, or records it as a warning. */
export function reportMalformed(options: MalformedOptions, warnings: string[], message: string): void {
  if (options.malformed === 'warn') warnings.push(message);
  else throw new Error(message);
}

/** A piece of input for an error message: quoted, at most 80 characters. */
export function quoteSnippet(text: string, max = 80): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** A name or id for an error message, cut to `max` characters. */
export function clip(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
