import type { MalformedOptions } from '../text/malformed.js';
import { pySplitLines, pyStrip } from '../text/python-strings.js';

/** One livedoor news article after normalisation (Study A). */
export interface LivedoorArticle {
  /** File stem, `<category>-<id>`, e.g. `dokujo-tsushin-4778030`. */
  id: string;
  category: string;
  /** Line 1, stripped. */
  url: string;
  /** Line 2, stripped. */
  date: string;
  title: string;
  body: string;
}

export interface LivedoorExample extends LivedoorArticle {
  /** Index of `category` in the sorted category names. */
  label: number;
}

export interface LivedoorNormalizeOptions {
  /**
   * How spaces in the title are handled after NFKC.
   * - `'strip'` (default): remove leading and trailing whitespace only. This is what the study's
   *   published preprocessing does (`unicodedata.normalize("NFKC", t).strip("　").strip()` in
   *   hppRC/llm-lora-classification `src/prepare.py`); NFKC has already turned U+3000 into U+0020.
   * - `'remove'`: delete every ASCII space and U+3000 anywhere in the title (a literal reading of
   *   "strip full-width and ASCII spaces"); not the original behaviour.
   */
  titleSpaces?: 'strip' | 'remove';
}

/** Largest article file read (16 MiB; livedoor articles are a few KB). */
export const MAX_LIVEDOOR_ARTICLE_BYTES = 16 * 2 ** 20;

export interface LivedoorReadOptions extends LivedoorNormalizeOptions, MalformedOptions {
  /**
   * Largest article file read, in bytes (default {@link MAX_LIVEDOOR_ARTICLE_BYTES}); a larger one
   * is malformed. An article that is not valid UTF-8, has fewer than 3 lines, is too large, or (in an
   * archive) appears a second time is malformed: an error by default, or with `malformed: 'warn'`
   * skipped (for a repeated entry the later copy replaces the earlier, as extraction would) and
   * reported in `warnings`.
   */
  maxArticleBytes?: number;
}

/** Title rule: NFKC, then full-width and ASCII spaces stripped (see {@link LivedoorNormalizeOptions}). */
export function normalizeLivedoorTitle(line: string, options: LivedoorNormalizeOptions = {}): string {
  const nfkc = pyStrip(line).normalize('NFKC');
  if (options.titleSpaces === 'remove') return pyStrip(nfkc.replace(/[ \u3000]/g, ''));
  return pyStrip(pyStrip(nfkc, '\u3000'));
}

/** Body rule: NFKC each line, strip it, drop empty lines, join with "\n". */
export function normalizeLivedoorBody(lines: readonly string[]): string {
  return lines
    .map((line) => pyStrip(pyStrip(line.normalize('NFKC'), '\u3000')))
    .filter((line) => line !== '')
    .join('\n');
}

/** `<category>-<digits>.txt` inside the folder `<category>`; anything else (LICENSE.txt, README.txt) is not an article. */
export function isLivedoorArticleName(category: string, fileName: string): boolean {
  return fileName.startsWith(`${category}-`) && /^\d+\.txt$/.test(fileName.slice(category.length + 1));
}

/**
 * Parses one article file: line 1 URL, line 2 date, line 3 title, the rest body (lines split as
 * Python's `str.splitlines`). `name` is used in errors only.
 */
export function parseLivedoorArticle(
  text: string,
  category: string,
  fileName: string,
  options: LivedoorNormalizeOptions = {},
  name = `${category}/${fileName}`,
): LivedoorArticle {
  const lines = pySplitLines(text);
  if (lines.length < 3) {
    throw new Error(
      `livedoor article ${name} has ${lines.length} line(s); expected at least 3 (URL, date, title, then the body). Is this file truncated?`,
    );
  }
  return {
    id: fileName.replace(/\.txt$/, ''),
    category,
    url: pyStrip(lines[0]!),
    date: pyStrip(lines[1]!),
    title: normalizeLivedoorTitle(lines[2]!, options),
    body: normalizeLivedoorBody(lines.slice(3)),
  };
}

function numericId(a: LivedoorArticle): number {
  return Number(a.id.slice(a.category.length + 1));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface LivedoorCorpus {
  /** Sorted category names; `labels[example.label] === example.category`. */
  labels: string[];
  /** Ordered by category, then numeric article id. */
  examples: LivedoorExample[];
  /** From `readLivedoor`: one line per article skipped with `malformed: 'warn'`. */
  warnings?: string[];
}

/**
 * Gives every article its label (index in the sorted category names) and puts them in a fixed order
 * (category, then numeric id), so a folder and an archive of the same corpus give identical output
 * and the seeded split does not depend on directory listing order.
 */
export function buildLivedoorCorpus(articles: readonly LivedoorArticle[]): LivedoorCorpus {
  const labels = [...new Set(articles.map((a) => a.category))].sort(compareStrings);
  const index = new Map(labels.map((l, i) => [l, i]));
  const examples = articles
    .map((a) => ({ ...a, label: index.get(a.category)! }))
    .sort((a, b) => compareStrings(a.category, b.category) || numericId(a) - numericId(b) || compareStrings(a.id, b.id));
  return { labels, examples };
}
