// Parsing JSON read from untrusted files (safetensors headers, index files, config.json): nesting
// and size are bounded before JSON.parse runs, and a syntax error is reported by position only,
// never with the engine's message, which quotes the text (the text may be any file a link leads to).

import { shortValue } from '../short-value.js';

export interface UntrustedJsonOptions {
  /** Deepest nesting of arrays and objects allowed (the top level is depth 1). */
  maxDepth: number;
  /** Longest text allowed, in characters. */
  maxLength?: number;
  /** What the text is, for messages: "header", "the index", ... (default "the file"). */
  what?: string;
}

/** The deepest nesting of `[` and `{` outside strings, and where it first goes beyond `limit`. */
export function jsonNesting(text: string, limit: number): { depth: number; tooDeepAt: number | null } {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string; an unterminated one ends the scan (JSON.parse reports it).
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
      if (depth > max) max = depth;
      if (depth > limit) return { depth, tooDeepAt: i };
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return { depth: max, tooDeepAt: null };
}

/**
 * Where JSON.parse failed, as words that quote nothing from the text: "at character 17 of 80", or
 * "(the text ends early, after 80 characters)".
 */
export function jsonSyntaxWhere(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : '';
  const given = /position (\d+)/.exec(message);
  const at = given ? Number(given[1]) : firstJsonErrorAt(text);
  if (at !== null && at < text.length) return `at character ${at} of ${text.length}`;
  if (text.trim() === '') return '(the text is empty)';
  if (at !== null || /end of (JSON|data)/i.test(message)) return `(the text ends early, after ${text.length} characters)`;
  return `(${text.length} characters)`;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The offset of the first character that makes `text` invalid JSON (text.length when it ends
 * early), or null when it finds none. Iterative, so any nesting is safe to scan.
 */
export function firstJsonErrorAt(text: string): number | null {
  // Each open container: '{' expecting a key, ':' after a key, 'v' a value, ',' after a value; '[' likewise.
  const stack: Array<{ obj: boolean; state: 'first' | 'key' | 'colon' | 'value' | 'comma' }> = [];
  let i = 0;
  let done = false;
  const n = text.length;
  const skip = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  const scanString = (): boolean => {
    i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return false;
      } else i++;
    }
    return false;
  };
  const scanScalar = (): boolean => {
    const rest = text.slice(i, i + 5);
    for (const word of ['true', 'false', 'null']) {
      if (rest.startsWith(word)) {
        i += word.length;
        return true;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') return false;
    i += m[0].length;
    return true;
  };
  // A value has been read: advance the state of the container holding it.
  const valueDone = () => {
    const top = stack[stack.length - 1];
    if (top) top.state = 'comma';
    else done = true;
  };
  for (;;) {
    skip();
    if (done) return i < n ? i : null;
    if (i >= n) return n;
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (top && (top.state === 'comma' || top.state === 'first') && (c === '}' || c === ']')) {
      if ((c === '}') !== top.obj) return i;
      i++;
      stack.pop();
      valueDone();
      continue;
    }
    if (top?.state === 'comma') {
      if (c !== ',') return i;
      i++;
      top.state = top.obj ? 'key' : 'value';
      continue;
    }
    if (top?.obj && (top.state === 'first' || top.state === 'key')) {
      if (c !== '"' || !scanString()) return i;
      top.state = 'colon';
      continue;
    }
    if (top?.state === 'colon') {
      if (c !== ':') return i;
      i++;
      top.state = 'value';
      continue;
    }
    // A value.
    if (c === '{' || c === '[') {
      stack.push({ obj: c === '{', state: 'first' });
      i++;
      // The parent stays in 'value' until this container closes (valueDone then moves it on).
      continue;
    }
    const start = i;
    if (c === '"' ? !scanString() : !scanScalar()) return i > start && i >= n ? n : start;
    valueDone();
  }
}

/**
 * `JSON.parse` for text read from a file: refuses text longer than `maxLength` or nested deeper
 * than `maxDepth` before parsing, and reports syntax errors without quoting the text.
 */
export function parseUntrustedJson(text: string, fileName: string, options: UntrustedJsonOptions): unknown {
  const what = options.what ?? 'the file';
  if (options.maxLength !== undefined && text.length > options.maxLength) {
    throw new Error(`${fileName}: ${what} is ${text.length} characters long, more than the ${options.maxLength} allowed`);
  }
  const nesting = jsonNesting(text, options.maxDepth);
  if (nesting.tooDeepAt !== null) {
    throw new Error(
      `${fileName}: ${what} nests arrays or objects more than ${options.maxDepth} levels deep (at character ${nesting.tooDeepAt}), deeper than this kind of file ever nests`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${fileName}: ${what} is not valid JSON ${jsonSyntaxWhere(error, text)}`);
  }
}

/**
 * A short, safe description of a value from parsed JSON for an error message: the type, and for
 * numbers, booleans and short strings the value (strings only by length with `quoteStrings:
 * false`); never the contents of arrays or objects.
 */
export function describeJsonValue(value: unknown, options: { quoteStrings?: boolean } = {}): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) {
    if (value.length <= 8 && value.every((v) => typeof v === 'number')) return `an array ${JSON.stringify(value)}`;
    return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  }
  if (typeof value === 'object') {
    const n = Object.keys(value).length;
    return `an object with ${n} key${n === 1 ? '' : 's'}`;
  }
  if (typeof value === 'string') {
    // A file read through a link may be anything: where asked, a string is described, not shown.
    if (options.quoteStrings === false && value !== '') return `a string of ${value.length} character${value.length === 1 ? '' : 's'}`;
    return `the string ${quoteName(value, 40)}`;
  }
  return `${typeof value} ${String(value)}`;
}

/** A name from a file, quoted as JSON and cut to `max` characters, for error messages. */
export function quoteName(name: string, max = 120): string {
  return shortValue(name, { as: 'string', max, markOutside: true, count: true });
}
