import type { BiomedicalDocument, Mention } from './document.js';
import { splitSentences, tokenizeWithOffsets } from './tokenize.js';

/** An entity over tokens `[start, end)` of a sentence. */
export interface TokenSpan {
  type: string;
  start: number;
  /** Exclusive. */
  end: number;
}

/** A tokenised sentence with its entities. */
export interface Sentence {
  id: string;
  tokens: string[];
  spans: TokenSpan[];
}

export interface SentencesResult {
  sentences: Sentence[];
  /** One line per mention that could not be kept (overlapping another, or crossing a sentence break). */
  warnings: string[];
}

/**
 * Splits each passage of each document into sentences, tokenises them with token boundaries forced
 * at every entity start and end (so `IFO's` with the entity `IFO` becomes `IFO`, `'s`), and maps the
 * character spans to token spans. Overlapping mentions keep the earlier-starting (then longer) one;
 * the other is reported in `warnings`. Sentence ids are `<PMID>-<n>`, n counting from 0 over the
 * document.
 */
export function documentsToSentences(documents: readonly BiomedicalDocument[]): SentencesResult {
  const sentences: Sentence[] = [];
  const warnings: string[] = [];
  for (const doc of documents) {
    const ordered = [...doc.mentions].sort((a, b) => a.start - b.start || b.end - a.end);
    const kept: Mention[] = [];
    for (const m of ordered) {
      const last = kept[kept.length - 1];
      if (last && m.start < last.end) {
        warnings.push(
          `document ${doc.id}: ${m.type} ${JSON.stringify(m.text)} at ${m.start}-${m.end} overlaps ${last.type} ${JSON.stringify(last.text)} at ${last.start}-${last.end}; dropped`,
        );
      } else kept.push(m);
    }
    let n = 0;
    for (const p of doc.passages) {
      const pEnd = p.offset + p.text.length;
      const inPassage = kept.filter((m) => m.start >= p.offset && m.end <= pEnd);
      for (const [s, e] of splitSentences(doc.text, p.offset, pEnd, inPassage)) {
        const inside = inPassage.filter((m) => m.start < e && m.end > s);
        const mentions = inside.filter((m) => m.start >= s && m.end <= e);
        for (const m of inside) {
          if (!mentions.includes(m))
            warnings.push(
              `document ${doc.id}: ${m.type} ${JSON.stringify(m.text)} at ${m.start}-${m.end} crosses a sentence break at ${e}; dropped`,
            );
        }
        const tokens = tokenizeWithOffsets(
          doc.text,
          s,
          e,
          mentions.flatMap((m) => [m.start, m.end]),
        );
        const spans: TokenSpan[] = [];
        for (const m of mentions) {
          const start = tokens.findIndex((t) => t.start >= m.start);
          let end = start;
          while (end < tokens.length && tokens[end]!.end <= m.end) end++;
          if (start < 0 || end === start) {
            warnings.push(`document ${doc.id}: ${m.type} ${JSON.stringify(m.text)} at ${m.start}-${m.end} covers no token; dropped`);
            continue;
          }
          spans.push({ type: m.type, start, end });
        }
        sentences.push({ id: `${doc.id}-${n++}`, tokens: tokens.map((t) => t.text), spans });
      }
    }
  }
  return { sentences, warnings };
}

/**
 * Merges span lists (one per label run) into one: spans are taken list by list in `priority` order
 * of their types (e.g. `['Disease', 'Chemical']`), and a span overlapping a span already taken is
 * dropped, so each token has one label (Study B: priority Disease > Chemical).
 */
export function mergeSpansByPriority(spans: readonly TokenSpan[], priority: readonly string[]): TokenSpan[] {
  const rank = (t: string) => {
    const r = priority.indexOf(t);
    return r < 0 ? priority.length : r;
  };
  const ordered = [...spans].sort((a, b) => rank(a.type) - rank(b.type) || a.start - b.start || b.end - a.end);
  const taken: TokenSpan[] = [];
  for (const s of ordered) {
    if (!taken.some((t) => s.start < t.end && t.start < s.end)) taken.push(s);
  }
  return taken.sort((a, b) => a.start - b.start);
}
