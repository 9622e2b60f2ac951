import { type Span, sortUniqueSpans } from '../span.js';
import { MentionLocator } from './locate.js';
import type { ParseResult } from './parse-result.js';

/** Per-label extraction (`Mesna, IFO`) or all-label extraction (`Disease: genotoxicity; Chemical: Mesna, IFO`). */
export type ExtractionFormat =
  | { label: string; allLabels?: false }
  | {
      allLabels: true;
      /** Known entity types (case-insensitive); others are dropped with a warning. Default: any. */
      labels?: readonly string[];
    };

const NONE = new Set(['', 'none', 'n/a', 'na', 'null', 'nil', '-', '—', 'no entities', 'nothing']);

function cleanMention(s: string): string {
  const t = s.trim();
  // Quotes around the whole mention ("Mesna", 'IFO'); a lone leading apostrophe is text ('s).
  const quoted = /^(["'“‘`])(.+)(["'”’`])$/su.exec(t);
  return quoted ? quoted[2].trim() : t;
}

/**
 * Splits `a, b, c` into mentions. Commas also occur inside names (`1,2-dichloroethane`), so
 * neighbouring pieces are joined back when the joined text is found in the input and the
 * pieces alone are not (a small dynamic programme over the pieces).
 */
function splitMentions(list: string, locator: MentionLocator): string[] {
  const parts = list.split(/([,\n])/);
  const pieces: string[] = [];
  const seps: string[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    pieces.push(parts[i]);
    if (i + 1 < parts.length) seps.push(parts[i + 1]);
  }
  const n = pieces.length;
  const MAX_JOIN = 4;
  const group = (i: number, j: number) => {
    let s = pieces[i];
    for (let k = i + 1; k < j; k++) s += seps[k - 1] + pieces[k];
    return cleanMention(s);
  };
  const score = (m: string) => (NONE.has(m.toLowerCase()) ? 0 : locator.locate(m).length > 0 ? 2 : -1);
  const best = new Array<number>(n + 1).fill(Number.NEGATIVE_INFINITY);
  const from = new Array<number>(n + 1).fill(0);
  best[0] = 0;
  for (let j = 1; j <= n; j++) {
    for (let i = Math.max(0, j - MAX_JOIN); i < j; i++) {
      // Prefer more, shorter mentions on ties (i closer to j is visited last: use >=).
      const v = best[i] + score(group(i, j));
      if (v >= best[j]) {
        best[j] = v;
        from[j] = i;
      }
    }
  }
  const out: string[] = [];
  for (let j = n; j > 0; j = from[j]) out.push(group(from[j], j));
  return out.reverse().filter((m) => !NONE.has(m.toLowerCase()));
}

/**
 * Parses an extraction-style generation into spans on `inputTokens`. Each mention is searched
 * in the input and **every occurrence** is marked (the output does not say which one was meant);
 * a mention found nowhere counts as unaligned. Never throws on any output string.
 */
export function parseExtraction(output: string, inputTokens: readonly string[], format: ExtractionFormat): ParseResult {
  const raw = typeof output === 'string' ? output : String(output ?? '');
  const warnings: string[] = [];
  let unaligned = 0;
  const locator = new MentionLocator(inputTokens);
  const spans: Span[] = [];
  const place = (type: string, list: string) => {
    for (const mention of splitMentions(list, locator)) {
      let hits = locator.locate(mention);
      const trimmed = mention.replace(/[.;:!?]+$/, '');
      if (hits.length === 0 && trimmed !== mention) hits = locator.locate(trimmed);
      if (hits.length === 0) {
        unaligned++;
        warnings.push(`mention ${JSON.stringify(mention)} (${type}) is not in the input`);
      }
      for (const h of hits) spans.push({ type, ...h });
    }
  };

  if (format.allLabels !== true) {
    if (typeof format.label !== 'string') throw new Error('parseExtraction: pass { label } or { allLabels: true }');
    let body = raw;
    const prefixed = new RegExp(`^\\s*${format.label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*:`, 'i');
    if (prefixed.test(body)) body = body.replace(prefixed, '');
    place(format.label, body.replace(/;/g, ','));
    return { spans: sortUniqueSpans(spans), unaligned, warnings };
  }

  const canonical = new Map<string, string>();
  for (const l of format.labels ?? []) canonical.set(l.toLowerCase(), l);
  // After an unknown label, unlabelled continuation segments are dropped with it.
  let current: string | null = null;
  let state: 'none' | 'known' | 'unknown' = 'none';
  for (const segment of raw.split(/[;\n]/)) {
    if (segment.trim() === '') continue;
    const m = /^\s*([^:,]{1,40}?)\s*:(.*)$/s.exec(segment);
    if (m) {
      const name = m[1].trim();
      const known = format.labels === undefined ? name : canonical.get(name.toLowerCase());
      if (known === undefined) {
        warnings.push(`unknown label ${JSON.stringify(name)}: its mentions are dropped`);
        state = 'unknown';
        continue;
      }
      current = known;
      state = 'known';
      place(current, m[2]);
    } else if (state === 'known' && current !== null) {
      place(current, segment);
    } else if (state === 'none') {
      const lost = splitMentions(segment, locator).length;
      if (lost > 0) {
        unaligned += lost;
        warnings.push(`${JSON.stringify(segment.trim())} has no label in front of it`);
      }
    }
  }
  return { spans: sortUniqueSpans(spans), unaligned, warnings };
}
