import type { Span } from '../span.js';

/** The tagging schemes of `seqeval.scheme`. */
export type Scheme = 'IOB1' | 'IOB2' | 'IOE1' | 'IOE2' | 'IOBES' | 'BILOU';

// Prefixes as bit flags, as seqeval's `Prefix` enum.Flag.
const I = 1;
const O = 2;
const B = 4;
const E = 8;
const S = 16;
const U = 32;
const L = 64;
const ANY = I | O | B | E | S | U | L;
const PREFIX: Record<string, number> = { I, O, B, E, S, U, L };
const PREFIX_NAME: Record<number, string> = { [I]: 'I', [O]: 'O', [B]: 'B', [E]: 'E', [S]: 'S', [U]: 'U', [L]: 'L' };

const SAME = 1;
const DIFF = 2;
const ANY_TAG = SAME | DIFF;

type Pattern = readonly [prev: number, current: number, tag: number];

interface SchemeRules {
  allowed: number;
  start: readonly Pattern[];
  inside: readonly Pattern[];
  end: readonly Pattern[];
}

const RULES: Record<Scheme, SchemeRules> = {
  IOB1: {
    allowed: I | O | B,
    start: [
      [O, I, ANY_TAG],
      [I, I, DIFF],
      [B, I, ANY_TAG],
      [I, B, SAME],
      [B, B, SAME],
    ],
    inside: [
      [B, I, SAME],
      [I, I, SAME],
    ],
    end: [
      [I, I, DIFF],
      [I, O, ANY_TAG],
      [I, B, ANY_TAG],
      [B, O, ANY_TAG],
      [B, I, DIFF],
      [B, B, SAME],
    ],
  },
  IOE1: {
    allowed: I | O | E,
    start: [
      [O, I, ANY_TAG],
      [I, I, DIFF],
      [E, I, ANY_TAG],
      [E, E, SAME],
    ],
    inside: [
      [I, I, SAME],
      [I, E, SAME],
    ],
    end: [
      [I, I, DIFF],
      [I, O, ANY_TAG],
      [I, E, DIFF],
      [E, I, SAME],
      [E, E, SAME],
    ],
  },
  IOB2: {
    allowed: I | O | B,
    start: [[ANY, B, ANY_TAG]],
    inside: [
      [B, I, SAME],
      [I, I, SAME],
    ],
    end: [
      [I, O, ANY_TAG],
      [I, I, DIFF],
      [I, B, ANY_TAG],
      [B, O, ANY_TAG],
      [B, I, DIFF],
      [B, B, ANY_TAG],
    ],
  },
  IOE2: {
    allowed: I | O | E,
    start: [
      [O, I, ANY_TAG],
      [O, E, ANY_TAG],
      [E, I, ANY_TAG],
      [E, E, ANY_TAG],
      [I, I, DIFF],
      [I, E, DIFF],
    ],
    inside: [
      [I, E, SAME],
      [I, I, SAME],
    ],
    end: [[E, ANY, ANY_TAG]],
  },
  IOBES: {
    allowed: I | O | B | E | S,
    start: [
      [ANY, B, ANY_TAG],
      [ANY, S, ANY_TAG],
    ],
    inside: [
      [B, I, SAME],
      [B, E, SAME],
      [I, I, SAME],
      [I, E, SAME],
    ],
    end: [
      [S, ANY, ANY_TAG],
      [E, ANY, ANY_TAG],
    ],
  },
  BILOU: {
    allowed: B | I | L | O | U,
    start: [
      [ANY, B, ANY_TAG],
      [ANY, U, ANY_TAG],
    ],
    inside: [
      [B, I, SAME],
      [B, L, SAME],
      [I, I, SAME],
      [I, L, SAME],
    ],
    end: [
      [U, ANY, ANY_TAG],
      [L, ANY, ANY_TAG],
    ],
  },
};

interface Token {
  text: string;
  prefix: number;
  tag: string;
}

function parseToken(text: string, suffix: boolean): Token {
  const letter = suffix ? text.slice(-1) : text.slice(0, 1);
  const prefix = PREFIX[letter];
  if (prefix === undefined) {
    throw new Error(`Invalid token is found: ${JSON.stringify(text)}: its prefix ${JSON.stringify(letter)} is none of I, O, B, E, S, U, L`);
  }
  const body = suffix ? text.slice(0, -1) : text.slice(1);
  return { text, prefix, tag: body.replace(/^-+|-+$/g, '') || '_' };
}

function matches(patterns: readonly Pattern[], prev: Token, cur: Token): boolean {
  for (const [p, c, t] of patterns) {
    if ((prev.prefix & p) !== prev.prefix || (cur.prefix & c) !== cur.prefix) continue;
    if (t === ANY_TAG || (t === SAME && prev.tag === cur.tag) || (t === DIFF && prev.tag !== cur.tag)) return true;
  }
  return false;
}

function allowedNames(allowed: number): string {
  return Object.keys(PREFIX_NAME)
    .map(Number)
    .filter((bit) => allowed & bit)
    .map((bit) => PREFIX_NAME[bit])
    .join('|');
}

/** `seqeval.scheme.Tokens(tags, scheme).entities` for one sentence; spans end exclusively, as there. */
export function strictEntities(tags: readonly string[], scheme: Scheme, suffix = false): Span[] {
  const rules = RULES[scheme];
  if (rules === undefined) {
    throw new Error(`scheme is ${JSON.stringify(scheme)}: supported are ${Object.keys(RULES).join(', ')}`);
  }
  const outside = parseToken('O', suffix);
  const tokens = tags.map((t) => parseToken(t, suffix));
  for (const t of tokens) {
    if ((t.prefix & rules.allowed) !== t.prefix) {
      throw new Error(`Invalid token is found: ${t.text}. Allowed prefixes of ${scheme} are: ${allowedNames(rules.allowed)}.`);
    }
  }
  const ext = [...tokens, outside];
  const entities: Span[] = [];
  let i = 0;
  let prev = outside;
  while (i < ext.length) {
    const token = ext[i];
    if (matches(rules.start, prev, token)) {
      // Walk forward while the chunk continues.
      let end = ext.length - 1; // the appended 'O' is never inside a chunk
      let inner = token;
      for (let j = i + 1; j < ext.length; j++) {
        if (matches(rules.inside, inner, ext[j])) inner = ext[j];
        else {
          end = j;
          break;
        }
      }
      if (matches(rules.end, ext[end - 1], ext[end])) entities.push({ type: token.tag, start: i, end });
      i = end;
    } else {
      i += 1;
    }
    prev = ext[i - 1];
  }
  return entities;
}
