/**
 * Aligns what a model wrote back to the input tokens. Both sides are compared as sequences of
 * non-space characters, lower-cased, so spacing drift (`IFO's` for `IFO 's`) and case changes
 * cost nothing, and inserted or dropped words only shift the alignment. The alignment is a
 * longest common subsequence (greedy towards early matches); when the table would be too
 * large it falls back to whole words, and past that gives up (everything unaligned).
 */

const MAX_CELLS = 8_000_000;

/** Lower-cases one UTF-16 unit when that keeps the length (so offsets stay valid). */
function foldUnit(c: string): string {
  const l = c.toLowerCase();
  return l.length === 1 ? l : c;
}

export function fold(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) out += foldUnit(s[i]);
  return out;
}

const isSpace = (c: string) => /\s/.test(c);

/** For each a[i], the index of the b item it is matched to, or -1. */
export function lcsMatch(a: ArrayLike<number>, b: ArrayLike<number>): Int32Array | null {
  const n = a.length;
  const m = b.length;
  const match = new Int32Array(n).fill(-1);
  if (n === 0 || m === 0) return match;
  if ((n + 1) * (m + 1) > MAX_CELLS) return null;
  const w = m + 1;
  const big = Math.min(n, m) >= 65535;
  // L[i][j] = LCS length of a[i:] and b[j:].
  const L = big ? new Int32Array((n + 1) * w) : new Uint16Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    const row = i * w;
    const next = row + w;
    const ai = a[i];
    for (let j = m - 1; j >= 0; j--) {
      if (ai === b[j]) L[row + j] = L[next + j + 1] + 1;
      else {
        L[row + j] = Math.max(L[next + j], L[row + j + 1]);
      }
    }
  }
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j] && L[i * w + j] === L[(i + 1) * w + j + 1] + 1) {
      match[i] = j;
      i++;
      j++;
    } else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) {
      i++;
    } else {
      j++;
    }
  }
  return match;
}

/** Maps ranges of the model's text to input token spans. */
export interface TextAligner {
  /** Token span [start, end) whose boundaries the model's characters [from, to) hit exactly, or null. */
  span(from: number, to: number): { start: number; end: number } | null;
  /** Whether the alignment had to give up. */
  failed: boolean;
  /** Whether it fell back from characters to whole words. */
  coarse: boolean;
}

export function alignText(text: string, tokens: readonly string[]): TextAligner {
  // Input side: non-space characters of the tokens, with their token index.
  const tChars: number[] = [];
  const tokOf: number[] = [];
  const tokFirst = new Int32Array(tokens.length).fill(-1);
  const tokLast = new Int32Array(tokens.length).fill(-1);
  tokens.forEach((tok, t) => {
    const s = String(tok);
    for (let k = 0; k < s.length; k++) {
      if (isSpace(s[k])) continue;
      if (tokFirst[t] < 0) tokFirst[t] = tChars.length;
      tokLast[t] = tChars.length;
      tChars.push(foldUnit(s[k]).charCodeAt(0));
      tokOf.push(t);
    }
  });
  // Model side: positions of its non-space characters.
  const mPos: number[] = [];
  const mChars: number[] = [];
  for (let k = 0; k < text.length; k++) {
    if (isSpace(text[k])) continue;
    mPos.push(k);
    mChars.push(foldUnit(text[k]).charCodeAt(0));
  }
  const firstAtOrAfter = (pos: number) => {
    let lo = 0;
    let hi = mPos.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (mPos[mid] < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const charMatch = lcsMatch(mChars, tChars);
  if (charMatch) {
    return {
      failed: false,
      coarse: false,
      span(from, to) {
        const i0 = firstAtOrAfter(from);
        const i1 = firstAtOrAfter(to) - 1;
        if (i0 > i1) return null;
        const k0 = charMatch[i0];
        const k1 = charMatch[i1];
        if (k0 < 0 || k1 < 0) return null;
        const t0 = tokOf[k0];
        const t1 = tokOf[k1];
        if (tokFirst[t0] !== k0 || tokLast[t1] !== k1 || t0 > t1) return null;
        return { start: t0, end: t1 + 1 };
      },
    };
  }

  // Fallback: whole whitespace-separated words against whole tokens.
  const words: { from: number; to: number; text: string }[] = [];
  for (const m of text.matchAll(/\S+/g)) {
    words.push({ from: m.index as number, to: (m.index as number) + m[0].length, text: fold(m[0]) });
  }
  const ids = new Map<string, number>();
  const id = (s: string) => {
    let v = ids.get(s);
    if (v === undefined) ids.set(s, (v = ids.size));
    return v;
  };
  const wordMatch = lcsMatch(
    words.map((w) => id(w.text)),
    tokens.map((t) => id(fold(String(t)))),
  );
  if (!wordMatch) {
    return { failed: true, coarse: true, span: () => null };
  }
  return {
    failed: false,
    coarse: true,
    span(from, to) {
      const i0 = words.findIndex((w) => w.to > from);
      let i1 = -1;
      for (let i = words.length - 1; i >= 0; i--) {
        if (words[i].from < to) {
          i1 = i;
          break;
        }
      }
      if (i0 < 0 || i1 < i0) return null;
      if (words[i0].from < from || words[i1].to > to) return null;
      const t0 = wordMatch[i0];
      const t1 = wordMatch[i1];
      if (t0 < 0 || t1 < 0 || t0 > t1) return null;
      return { start: t0, end: t1 + 1 };
    },
  };
}
