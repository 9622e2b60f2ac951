/**
 * Regular expressions over module names (target_modules, exclude_modules, modules_to_save,
 * layers_pattern, rank_pattern / alpha_pattern keys), matched in time linear in the name:
 * the pattern is compiled to a Thompson automaton and every state is advanced in lockstep, so
 * no pattern read from a file can make matching backtrack for ever (`(.+)+Z` takes as long
 * as `.+Z`).
 *
 * The supported subset is Python `re`'s regular part, which is what PEFT patterns use:
 * literals and escapes (`\.`, `\n`, `\t`, `\xhh`, `\uhhhh`), `.`, classes (`[a-z_]`, `[^.]`,
 * `\d \w \s \D \W \S`), groups (`(...)`, `(?:...)`, `(?P<name>...)`), alternation `|`,
 * quantifiers `* + ? {m} {m,} {,n} {m,n}` (greedy or lazy, which match the same names), and
 * the anchors `^ $ \A \Z \b \B`. Not supported, and rejected with an error that names the
 * pattern: backreferences (`\1`, `(?P=name)`), lookarounds (`(?=` `(?!` `(?<=` `(?<!`),
 * inline flags (`(?i)`), atomic groups and possessive quantifiers, conditionals. Patterns are
 * at most 1,000 characters and 4,000 automaton states (counted repetitions included).
 */

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 1000;
/** Most automaton states a pattern may compile to (`a{1000}` is 1,000). */
const MAX_STATES = 4000;
/**
 * The matchers wrap a checked pattern in a few more states and characters (`(?:.*\.)?(?:…)` for
 * rank_pattern keys), so compiling allows this much beyond the limits that checking enforces.
 */
const WRAPPER_ALLOWANCE = 64;
/** Largest bound of a counted repetition. */
const MAX_REPEAT = 1000;

/** A pattern outside the supported subset, or not a valid regular expression. */
export class ModulePatternError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`${JSON.stringify(pattern.length > 120 ? `${pattern.slice(0, 120)}…` : pattern)} ${reason}`);
    this.name = 'ModulePatternError';
  }
}

type CharTest = (c: number) => boolean;

type Node =
  | { k: 'char'; test: CharTest }
  | { k: 'seq'; items: Node[] }
  | { k: 'alt'; items: Node[] }
  | { k: 'rep'; node: Node; min: number; max: number }
  | { k: 'assert'; test: (prev: number, next: number) => boolean };

const NONE = -1;
/** A counted repetition as Python reads one: {m}, {m,}, {,n}, {m,n}. */
const REPEAT = /^\{(\d*)(?:(,)(\d*))?\}/;
const isDigit: CharTest = (c) => (c >= 0x30 && c <= 0x39) || (c > 0x7f && /\p{Nd}/u.test(String.fromCodePoint(c)));
const isWord: CharTest = (c) =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x5f ||
  (c > 0x7f && /[\p{L}\p{N}_]/u.test(String.fromCodePoint(c)));
const isSpace: CharTest = (c) => (c >= 0x09 && c <= 0x0d) || c === 0x20 || (c > 0x7f && /\s/u.test(String.fromCodePoint(c)));
const wordAt = (c: number) => c !== NONE && isWord(c);

const CLASS_ESCAPES: Record<string, CharTest> = {
  d: isDigit,
  D: (c) => !isDigit(c),
  w: isWord,
  W: (c) => !isWord(c),
  s: isSpace,
  S: (c) => !isSpace(c),
};
const CHAR_ESCAPES: Record<string, number> = { n: 0x0a, t: 0x09, r: 0x0d, f: 0x0c, v: 0x0b, a: 0x07 };

class Parser {
  private i = 0;
  private readonly cps: number[];
  constructor(private readonly pattern: string) {
    this.cps = Array.from(pattern, (ch) => ch.codePointAt(0) as number);
  }

  fail(reason: string): never {
    throw new ModulePatternError(this.pattern, reason);
  }

  private peek(): string | undefined {
    const c = this.cps[this.i];
    return c === undefined ? undefined : String.fromCodePoint(c);
  }

  private startsWith(s: string): boolean {
    for (let k = 0; k < s.length; k++) if (this.cps[this.i + k] !== s.charCodeAt(k)) return false;
    return true;
  }

  parse(): Node {
    const node = this.alternation(0);
    if (this.i < this.cps.length) this.fail(`has an unbalanced ")" at character ${this.i + 1}`);
    return node;
  }

  private alternation(depth: number): Node {
    if (depth > 100) this.fail('nests groups more than 100 deep');
    const items = [this.sequence(depth)];
    while (this.peek() === '|') {
      this.i++;
      items.push(this.sequence(depth));
    }
    return items.length === 1 ? (items[0] as Node) : { k: 'alt', items };
  }

  private sequence(depth: number): Node {
    const items: Node[] = [];
    for (;;) {
      const ch = this.peek();
      if (ch === undefined || ch === '|' || ch === ')') break;
      let atom = this.atom(depth);
      atom = this.quantified(atom);
      items.push(atom);
    }
    return items.length === 1 ? (items[0] as Node) : { k: 'seq', items };
  }

  /** The quantifier after `atom`, if any (one: Python rejects `a**` and `a{2}{3}` as a multiple repeat). */
  private quantified(atom: Node): Node {
    const at = this.i;
    const ch = this.peek();
    let min: number;
    let max: number;
    if (ch === '*') [min, max] = [0, Number.POSITIVE_INFINITY];
    else if (ch === '+') [min, max] = [1, Number.POSITIVE_INFINITY];
    else if (ch === '?') [min, max] = [0, 1];
    else if (ch === '{') {
      const m = REPEAT.exec(this.ahead(24));
      // Python: a "{" that does not open a valid repetition ("{}", "{x}") is a literal.
      if (!m || m[0] === '{}') return atom;
      min = m[1] === '' ? 0 : Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Number.POSITIVE_INFINITY && max > MAX_REPEAT))
        this.fail(`repeats more than ${MAX_REPEAT} times at character ${at + 1}`);
      if (max < min) this.fail(`has a repetition {${min},${max}} whose maximum is below its minimum`);
      this.i += m[0].length - 1;
    } else return atom;
    this.i++;
    if (atom.k === 'assert') this.fail(`repeats an anchor at character ${at + 1}`);
    const next = this.peek();
    if (next === '+') this.fail(`uses a possessive quantifier at character ${at + 1}: not supported`);
    if (next === '?') this.i++;
    return { k: 'rep', node: atom, min, max };
  }

  private ahead(n: number): string {
    return String.fromCodePoint(...this.cps.slice(this.i, this.i + n));
  }

  private atom(depth: number): Node {
    const at = this.i;
    const ch = this.peek() as string;
    this.i++;
    switch (ch) {
      case '.':
        return { k: 'char', test: (c) => c !== 0x0a };
      case '^':
        return { k: 'assert', test: (prev) => prev === NONE };
      case '$':
        return { k: 'assert', test: (_, next) => next === NONE };
      case '*':
      case '+':
      case '?':
        return this.fail(`has nothing to repeat at character ${at + 1}`);
      case '{':
        this.i--;
        if (REPEAT.test(this.ahead(24)) && !this.ahead(2).startsWith('{}')) this.fail(`has nothing to repeat at character ${at + 1}`);
        this.i++;
        return literal(0x7b);
      case '[':
        return this.charClass(at);
      case '(':
        return this.group(at, depth);
      case ')':
        return this.fail(`has an unbalanced ")" at character ${at + 1}`);
      case '\\':
        return this.escape(at, false) as Node;
      default:
        return literal(ch.codePointAt(0) as number);
    }
  }

  private group(at: number, depth: number): Node {
    if (this.peek() === '?') {
      if (this.startsWith('?:')) this.i += 2;
      else if (this.startsWith('?P<') || this.startsWith('?<')) {
        if (this.startsWith('?<=') || this.startsWith('?<!'))
          this.fail(`uses a lookbehind at character ${at + 1}: lookarounds are not supported`);
        const m = /^\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(this.ahead(120));
        if (!m) this.fail(`has a malformed group name at character ${at + 1}`);
        this.i += m[0].length;
      } else if (this.startsWith('?=') || this.startsWith('?!')) {
        this.fail(`uses a lookahead at character ${at + 1}: lookarounds are not supported`);
      } else if (this.startsWith('?P=')) {
        this.fail(`uses a backreference at character ${at + 1}: backreferences are not supported`);
      } else if (this.startsWith('?>')) {
        this.fail(`uses an atomic group at character ${at + 1}: not supported`);
      } else if (this.startsWith('?(')) {
        this.fail(`uses a conditional group at character ${at + 1}: not supported`);
      } else if (this.startsWith('?#')) {
        while (this.i < this.cps.length && this.peek() !== ')') this.i++;
        if (this.i >= this.cps.length) this.fail(`has an unterminated comment at character ${at + 1}`);
        this.i++;
        return { k: 'seq', items: [] };
      } else this.fail(`uses inline flags or an unknown group "(?" at character ${at + 1}: not supported`);
    }
    const inner = this.alternation(depth + 1);
    if (this.peek() !== ')') this.fail(`has an unclosed "(" at character ${at + 1}`);
    this.i++;
    return inner;
  }

  /** One escape; inside a class only code points and class escapes are allowed. */
  private escape(at: number, inClass: boolean): Node | number | CharTest {
    const ch = this.peek();
    if (ch === undefined) this.fail('ends with a lone backslash');
    this.i++;
    const klass = CLASS_ESCAPES[ch];
    if (klass) return inClass ? klass : { k: 'char', test: klass };
    if (ch in CHAR_ESCAPES) return this.code(CHAR_ESCAPES[ch] as number, inClass);
    if (ch === 'x' || ch === 'u' || ch === 'U') {
      const n = ch === 'x' ? 2 : ch === 'u' ? 4 : 8;
      const hex = this.ahead(n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(`has an incomplete \\${ch} escape at character ${at + 1}`);
      const code = Number.parseInt(hex, 16);
      if (code > 0x10ffff) this.fail(`has an escape beyond Unicode at character ${at + 1}`);
      this.i += n;
      return this.code(code, inClass);
    }
    if (ch === '0') {
      let code = 0;
      for (let k = 0; k < 2 && /[0-7]/.test(this.peek() ?? ''); k++) code = code * 8 + Number(this.cps[this.i++]! - 0x30);
      return this.code(code, inClass);
    }
    if (/[1-9]/.test(ch)) {
      if (inClass) this.fail(`has an octal or backreference escape in a class at character ${at + 1}: not supported`);
      this.fail(`uses a backreference at character ${at + 1}: backreferences are not supported`);
    }
    if (!inClass && (ch === 'b' || ch === 'B')) {
      const neg = ch === 'B';
      return { k: 'assert', test: (prev, next) => (wordAt(prev) !== wordAt(next)) !== neg };
    }
    if (ch === 'b') return this.code(0x08, inClass);
    if (!inClass && ch === 'A') return { k: 'assert', test: (prev) => prev === NONE };
    if (!inClass && ch === 'Z') return { k: 'assert', test: (_, next) => next === NONE };
    if (/[A-Za-z]/.test(ch)) this.fail(`has an unknown escape \\${ch} at character ${at + 1}`);
    return this.code(ch.codePointAt(0) as number, inClass);
  }

  private code(c: number, inClass: boolean): Node | number {
    return inClass ? c : literal(c);
  }

  private charClass(at: number): Node {
    let negate = false;
    if (this.peek() === '^') {
      negate = true;
      this.i++;
    }
    const ranges: [number, number][] = [];
    const tests: CharTest[] = [];
    let first = true;
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) this.fail(`has an unterminated character class at character ${at + 1}`);
      if (ch === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      const lo = this.classAtom();
      if (typeof lo !== 'number') {
        tests.push(lo);
        continue;
      }
      if (this.peek() === '-' && this.cps[this.i + 1] !== undefined && this.cps[this.i + 1] !== 0x5d) {
        this.i++;
        const hi = this.classAtom();
        if (typeof hi !== 'number') this.fail(`has a bad range in a character class at character ${at + 1}`);
        if (hi < lo) this.fail(`has a reversed range in a character class at character ${at + 1}`);
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    const test: CharTest = (c) => ranges.some(([a, b]) => c >= a && c <= b) || tests.some((t) => t(c));
    return { k: 'char', test: negate ? (c) => !test(c) : test };
  }

  private classAtom(): number | CharTest {
    const at = this.i;
    const c = this.cps[this.i++] as number;
    if (c === 0x5c) return this.escape(at, true) as number | CharTest;
    return c;
  }
}

function literal(code: number): Node {
  return { k: 'char', test: (c) => c === code };
}

/** Automaton states: a character step, an epsilon split, an assertion, or the accepting state. */
type State =
  | { k: 'char'; test: CharTest; out: number }
  | { k: 'split'; a: number; b: number }
  | { k: 'assert'; test: (prev: number, next: number) => boolean; out: number }
  | { k: 'match' };

class Builder {
  readonly states: State[] = [];
  constructor(private readonly pattern: string) {}

  private add(s: State): number {
    if (this.states.length >= MAX_STATES + WRAPPER_ALLOWANCE) throw tooComplex(this.pattern);
    this.states.push(s);
    return this.states.length - 1;
  }

  /** Compiles `node` so that it continues at `next`; returns its entry state. */
  build(node: Node, next: number): number {
    switch (node.k) {
      case 'char':
        return this.add({ k: 'char', test: node.test, out: next });
      case 'assert':
        return this.add({ k: 'assert', test: node.test, out: next });
      case 'seq': {
        let entry = next;
        for (let i = node.items.length - 1; i >= 0; i--) entry = this.build(node.items[i] as Node, entry);
        return entry;
      }
      case 'alt': {
        const entries = node.items.map((item) => this.build(item, next));
        let entry = entries[entries.length - 1] as number;
        for (let i = entries.length - 2; i >= 0; i--) entry = this.add({ k: 'split', a: entries[i] as number, b: entry });
        return entry;
      }
      case 'rep': {
        let entry = next;
        if (node.max === Number.POSITIVE_INFINITY) {
          // x*: a split that loops through x back to itself.
          const split = this.add({ k: 'split', a: NONE, b: next });
          const body = this.build(node.node, split);
          (this.states[split] as { a: number }).a = body;
          entry = split;
        } else {
          for (let i = node.min; i < node.max; i++) {
            const body = this.build(node.node, entry);
            entry = this.add({ k: 'split', a: body, b: next });
          }
        }
        for (let i = 0; i < node.min; i++) entry = this.build(node.node, entry);
        return entry;
      }
    }
  }
}

/** A compiled pattern: `fullMatch` is Python's re.fullmatch, `prefixMatch` is re.match. */
export class ModulePattern {
  private readonly states: State[];
  private readonly start: number;
  private readonly mark: Int32Array;
  private generation = 0;

  constructor(readonly source: string) {
    if (source.length > MAX_PATTERN_LENGTH + WRAPPER_ALLOWANCE) throw tooLong(source);
    const ast = new Parser(source).parse();
    const builder = new Builder(source);
    const accept = builder.states.push({ k: 'match' }) - 1;
    this.start = builder.build(ast, accept);
    this.states = builder.states;
    this.mark = new Int32Array(this.states.length);
  }

  /** Number of automaton states. */
  get size(): number {
    return this.states.length;
  }

  fullMatch(text: string): boolean {
    return this.run(text, true);
  }

  prefixMatch(text: string): boolean {
    return this.run(text, false);
  }

  private run(text: string, whole: boolean): boolean {
    const cps = Array.from(text, (ch) => ch.codePointAt(0) as number);
    let current: number[] = [];
    let next: number[] = [];
    let matched = false;
    const add = (list: number[], s: number, prev: number, nextCp: number): void => {
      const stack = [s];
      while (stack.length > 0) {
        const id = stack.pop() as number;
        if (this.mark[id] === this.generation) continue;
        this.mark[id] = this.generation;
        const st = this.states[id] as State;
        if (st.k === 'split') {
          stack.push(st.b, st.a);
        } else if (st.k === 'assert') {
          if (st.test(prev, nextCp)) stack.push(st.out);
        } else list.push(id);
      }
    };
    this.generation++;
    add(current, this.start, NONE, cps.length > 0 ? (cps[0] as number) : NONE);
    for (let i = 0; ; i++) {
      if (current.some((id) => this.states[id]?.k === 'match')) {
        if (!whole || i === cps.length) matched = true;
        if (!whole) return true;
      }
      if (i === cps.length || current.length === 0) break;
      const c = cps[i] as number;
      const after = i + 1 < cps.length ? (cps[i + 1] as number) : NONE;
      this.generation++;
      next = [];
      for (const id of current) {
        const st = this.states[id] as State;
        if (st.k === 'char' && st.test(c)) add(next, st.out, c, after);
      }
      [current, next] = [next, current];
    }
    return matched;
  }
}

const cache = new Map<string, ModulePattern>();

/** The compiled pattern (cached); throws ModulePatternError for a pattern outside the subset. */
function tooComplex(source: string): ModulePatternError {
  return new ModulePatternError(source, `is too complex: more than ${MAX_STATES} automaton states (counted repetitions included)`);
}

function tooLong(source: string): ModulePatternError {
  return new ModulePatternError(source, `is ${source.length} characters long: at most ${MAX_PATTERN_LENGTH} are supported`);
}

/**
 * Checks a pattern read from a config: the supported syntax, at most MAX_PATTERN_LENGTH
 * characters and 4,000 automaton states. Throws a ModulePatternError naming it.
 */
export function checkModulePattern(source: string): void {
  if (source.length > MAX_PATTERN_LENGTH) throw tooLong(source);
  if (compileModulePattern(source).size > MAX_STATES) throw tooComplex(source);
}

export function compileModulePattern(source: string): ModulePattern {
  let p = cache.get(source);
  if (!p) {
    p = new ModulePattern(source);
    if (cache.size >= 256) cache.delete(cache.keys().next().value as string);
    cache.set(source, p);
  }
  return p;
}
