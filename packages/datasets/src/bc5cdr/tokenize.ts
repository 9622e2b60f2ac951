/**
 * Sentence splitting and word tokenisation for biomedical abstracts, in the style of the common
 * BC5CDR BIO release: words and numbers are tokens, every other non-space character is its own token,
 * and English clitics are split off (`IFO's` → `IFO`, `'s`).
 */

export interface TokenOffset {
  text: string;
  start: number;
  /** Exclusive. */
  end: number;
}

// Tried in order at each position (sticky, Unicode): clitic after a word, decimal number, word, any other character.
const CLITIC = /'(?:s|S|re|RE|ve|VE|ll|LL|d|D|m|M)(?![\p{L}\p{N}])/uy;
const NUMBER = /\p{N}+(?:[.,]\p{N}+)+/uy;
const WORD = /[\p{L}\p{M}\p{N}]+/uy;
const OTHER = /\S/uy;
const SPACE = /\s+/uy;

function matchAt(re: RegExp, text: string, pos: number): string | undefined {
  re.lastIndex = pos;
  return re.exec(text)?.[0];
}

/**
 * Tokenises `text.slice(from, to)`; `breaks` are extra positions where a token must end (entity
 * boundaries), so that no token crosses them. Offsets refer to `text`.
 */
export function tokenizeWithOffsets(text: string, from = 0, to = text.length, breaks: readonly number[] = []): TokenOffset[] {
  const cuts = [...new Set(breaks.filter((b) => b > from && b < to))].sort((a, b) => a - b);
  const tokens: TokenOffset[] = [];
  let segStart = from;
  for (const segEnd of [...cuts, to]) {
    const segment = text.slice(0, segEnd); // regexes must not look past the segment end
    let pos = segStart;
    while (pos < segEnd) {
      const space = matchAt(SPACE, segment, pos);
      if (space) {
        pos += space.length;
        continue;
      }
      const prev = pos > from ? text[pos - 1]! : '';
      const afterWord = prev !== '' && /[\p{L}\p{N}]/u.test(prev);
      const m =
        (afterWord ? matchAt(CLITIC, segment, pos) : undefined) ??
        matchAt(NUMBER, segment, pos) ??
        matchAt(WORD, segment, pos) ??
        matchAt(OTHER, segment, pos)!;
      tokens.push({ text: m, start: pos, end: pos + m.length });
      pos += m.length;
    }
    segStart = segEnd;
  }
  return tokens;
}

/** Tokens of `text` (no offsets). */
export function tokenize(text: string): string[] {
  return tokenizeWithOffsets(text).map((t) => t.text);
}

/** Words after which a period does not end a sentence. */
const ABBREVIATIONS = new Set([
  'e.g',
  'i.e',
  'vs',
  'al',
  'etc',
  'Dr',
  'Fig',
  'Figs',
  'approx',
  'ca',
  'cf',
  'Mr',
  'Mrs',
  'Ms',
  'No',
  'St',
  'resp',
  'viz',
  'Inc',
  'Ltd',
  'Co',
]);

/**
 * Sentence spans `[start, end)` of `text.slice(from, to)`, trimmed of spaces. A sentence ends after
 * `.`, `!` or `?` (and any closing brackets or quotes) followed by whitespace and then a character
 * that is not a lowercase letter, unless the word before the period is a known abbreviation or the
 * break would fall inside one of `protect` (entity spans).
 */
export function splitSentences(
  text: string,
  from = 0,
  to = text.length,
  protect: readonly { start: number; end: number }[] = [],
): [number, number][] {
  const spans: [number, number][] = [];
  const re = /[.!?][)\]"'’”]*(?=\s+([^\s]))/g;
  re.lastIndex = from;
  let start = from;
  const slice = text.slice(0, to);
  for (let m = re.exec(slice); m; m = re.exec(slice)) {
    const end = m.index + m[0].length;
    const next = m[1]!;
    if (/\p{Ll}/u.test(next)) continue;
    if (text[m.index] === '.') {
      const word = /([A-Za-z.]+)$/.exec(text.slice(start, m.index))?.[1] ?? '';
      if (ABBREVIATIONS.has(word)) continue;
    }
    if (protect.some((p) => p.start < end && p.end > end)) continue;
    spans.push([start, end]);
    start = end;
  }
  spans.push([start, to]);
  return spans
    .map(([s, e]): [number, number] => {
      while (s < e && /\s/.test(text[s]!)) s++;
      while (e > s && /\s/.test(text[e - 1]!)) e--;
      return [s, e];
    })
    .filter(([s, e]) => e > s);
}
