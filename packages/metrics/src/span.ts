/** An entity mention: tokens [start, end) of one sentence, with its type. */
export interface Span {
  type: string;
  start: number;
  /** Exclusive. */
  end: number;
}

export function compareSpans(a: Span, b: Span): number {
  return a.start - b.start || a.end - b.end || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0);
}

/** Sorted by (start, end, type), duplicates removed. */
export function sortUniqueSpans(spans: readonly Span[]): Span[] {
  const seen = new Set<string>();
  const out: Span[] = [];
  for (const s of [...spans].sort(compareSpans)) {
    const key = `${s.start}\u0000${s.end}\u0000${s.type}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ type: s.type, start: s.start, end: s.end });
  }
  return out;
}
