import { compareSpans, type Span } from '../span.js';

/**
 * Merges entity spans so that each token has at most one label: spans are taken type by type in
 * `priority` order (types not listed come after, alphabetically), and within a type from left to
 * right, longer first; a span touching a token already taken is dropped. With a record, each key
 * is the type of its spans (per-label runs: `{ Disease: [...], Chemical: [...] }`).
 */
export function mergeByPriority(spans: readonly Span[] | Readonly<Record<string, readonly Span[]>>, priority: readonly string[]): Span[] {
  const all: Span[] = Array.isArray(spans)
    ? (spans as readonly Span[]).map((s) => ({ ...s }))
    : Object.entries(spans as Record<string, readonly Span[]>).flatMap(([type, list]) =>
        list.map((s) => ({ type, start: s.start, end: s.end })),
      );
  const rank = (t: string) => {
    const r = priority.indexOf(t);
    return r < 0 ? priority.length : r;
  };
  all.sort((a, b) => rank(a.type) - rank(b.type) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0) || a.start - b.start || b.end - a.end);
  const taken = new Set<number>();
  const kept: Span[] = [];
  for (const s of all) {
    let free = true;
    for (let t = s.start; t < s.end && free; t++) free = !taken.has(t);
    if (!free) continue;
    for (let t = s.start; t < s.end; t++) taken.add(t);
    kept.push(s);
  }
  return kept.sort(compareSpans);
}
