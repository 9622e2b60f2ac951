import { readFileSync } from 'node:fs';

/** Levenshtein distance (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The known name closest to `word` when it is a plausible typo of it (a prefix, or within 2 edits or a third of its length), else null. */
export function closest(word: string, known: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = w.length >= 2 && k.startsWith(w) ? 0 : distance(w, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/** "unknown <what> "x"; did you mean y?" (or the list of known names when nothing is close). */
export function unknownMessage(what: string, word: string, known: readonly string[]): string {
  const near = closest(word, known);
  return near
    ? `unknown ${what} ${JSON.stringify(word)}; did you mean ${near}?`
    : `unknown ${what} ${JSON.stringify(word)} (known: ${known.join(', ')})`;
}

/** This package's version (from its package.json, beside src/ and dist/ alike). */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
