// A seeded, bounded fuzzer for the readers of untrusted files (safetensors, pickles, archives,
// corpora, JSON configs, tokenizers, checkpoints). Each case is a valid seed file with a few
// mutations; the reader must either accept it or throw a clear error, within a time and memory
// bound. "Clear" means: an Error that is not an untranslated engine error (RangeError, TypeError,
// SyntaxError, ...), that names the file it was reading, in at most `maxMessageLength` characters.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashSeed } from './rng.js';

/** A mutation of one input: returns a new array (never changes `bytes`). */
export type Mutator = (bytes: Uint8Array, rng: FuzzRng) => Uint8Array;

/** One fuzz target: a reader and the valid files it starts from. */
export interface FuzzTarget {
  /** Short name of the reader, used in reports ("safetensors", "pubtator", ...). */
  reader: string;
  /** The file name the reader is told it reads: every rejection must name it. */
  file: string;
  /** Valid inputs to mutate (at least one). */
  seeds: readonly Uint8Array[];
  /** Number of mutated cases (hand-made `extraCases` come on top). */
  cases: number;
  /** Runs the reader. Must consume the whole result (e.g. read every tensor) so lazy work runs. */
  read(bytes: Uint8Array, file: string): unknown | Promise<unknown>;
  /** Mutators to draw from; default `BINARY_MUTATORS` (text formats: add `TEXT_MUTATORS`). */
  mutators?: readonly Mutator[];
  /** Hostile inputs made by hand, run before the mutated ones. */
  extraCases?: readonly { name: string; bytes: Uint8Array }[];
  /** Per-case wall time bound, ms (default 2000). */
  timeLimitMs?: number;
  /** Per-case bound on new memory (array buffers + peak RSS growth), bytes (default 256 MiB). */
  memoryLimitBytes?: number;
  /** Longest acceptable error message (default 1000). */
  maxMessageLength?: number;
  /** The text every error must contain; default the base name of `file`. */
  mustName?: string;
  /** Seed of the case stream (default: hash of `reader`). */
  seed?: number;
}

export interface FuzzFailure {
  case: string;
  reason: string;
  /** The input, base64, to reproduce the case. */
  input: string;
}

export interface FuzzReport {
  reader: string;
  cases: number;
  accepted: number;
  rejected: number;
  /** Rejections by error class name. */
  errors: Record<string, number>;
  slowestMs: number;
  largestMemoryBytes: number;
  failures: FuzzFailure[];
}

const ENGINE_ERRORS = new Set(['RangeError', 'TypeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError']);

/** xorshift32 stream: cheap, seeded, enough for choosing mutations. */
export class FuzzRng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x0a, 0x3c, 0x3e, 0x7b, 0x7d, 0x5b, 0x5d];
const INTERESTING_NUMBERS = [
  '-1',
  '0',
  '1.5',
  '1e8',
  '2147483648',
  '4294967296',
  '9007199254740993',
  '1e309',
  '-0',
  'NaN',
  'Infinity',
  '0x10',
  'abc',
  '',
  ' 0',
  '99999999999999999999',
];

function splice(bytes: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length);
  out.set(bytes.subarray(0, at), 0);
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

const encoder = new TextEncoder();

export const flipBit: Mutator = (b, r) => {
  if (b.length === 0) return b.slice();
  const out = b.slice();
  const i = r.below(out.length);
  out[i] = (out[i] as number) ^ (1 << r.below(8));
  return out;
};
export const setByte: Mutator = (b, r) => {
  if (b.length === 0) return b.slice();
  const out = b.slice();
  out[r.below(out.length)] = r.pick(INTERESTING_BYTES);
  return out;
};
/** Overwrites 1, 2, 4 or 8 bytes with an extreme little- or big-endian integer. */
export const setWord: Mutator = (b, r) => {
  const width = r.pick([1, 2, 4, 8]);
  if (b.length < width) return b.slice();
  const out = b.slice();
  const at = r.below(out.length - width + 1);
  const kind = r.below(4);
  for (let k = 0; k < width; k++)
    out[at + k] = kind === 0 ? 0xff : kind === 1 ? 0 : kind === 2 ? (k === width - 1 ? 0x7f : 0xff) : r.below(256);
  return out;
};
export const truncate: Mutator = (b, r) => b.slice(0, r.below(b.length + 1));
export const deleteRange: Mutator = (b, r) => {
  if (b.length === 0) return b.slice();
  const at = r.below(b.length);
  return splice(b, at, 1 + r.below(Math.min(64, b.length - at)), new Uint8Array(0));
};
export const duplicateRange: Mutator = (b, r) => {
  if (b.length === 0) return b.slice();
  const at = r.below(b.length);
  const len = 1 + r.below(Math.min(256, b.length - at));
  const times = 1 + r.below(r.below(4) === 0 ? 64 : 3);
  const chunk = b.subarray(at, at + len);
  const insert = new Uint8Array(len * times);
  for (let k = 0; k < times; k++) insert.set(chunk, k * len);
  return splice(b, at, 0, insert);
};
export const insertRandom: Mutator = (b, r) => {
  const insert = new Uint8Array(1 + r.below(16));
  for (let k = 0; k < insert.length; k++) insert[k] = r.below(256);
  return splice(b, r.below(b.length + 1), 0, insert);
};
/** Replaces a run of ASCII digits (a number in a text or JSON file) with an extreme or malformed one. */
export const replaceNumber: Mutator = (b, r) => {
  const starts: number[] = [];
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number;
    const prev = i > 0 ? (b[i - 1] as number) : -1;
    if (c >= 0x30 && c <= 0x39 && !(prev >= 0x30 && prev <= 0x39)) starts.push(i);
  }
  if (starts.length === 0) return insertRandom(b, r);
  const at = r.pick(starts);
  let end = at;
  while (end < b.length && (b[end] as number) >= 0x30 && (b[end] as number) <= 0x39) end++;
  return splice(b, at, end - at, encoder.encode(r.pick(INTERESTING_NUMBERS)));
};
/** Swaps two lines of a text file, or deletes or repeats one. */
export const shuffleLines: Mutator = (b, r) => {
  const text = new TextDecoder().decode(b);
  const lines = text.split('\n');
  if (lines.length < 2) return b.slice();
  const i = r.below(lines.length);
  const j = r.below(lines.length);
  const op = r.below(3);
  if (op === 0) [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
  else if (op === 1) lines.splice(i, 1);
  else lines.splice(i, 0, lines[j] as string);
  return encoder.encode(lines.join('\n'));
};
/** Inserts a structural token of common text formats (quotes, brackets, tags, tabs, separators). */
export const insertToken: Mutator = (b, r) => {
  const tokens = [
    '"',
    '\\',
    '{',
    '}',
    '[',
    ']',
    ',',
    ':',
    '<',
    '>',
    '</',
    '&#x110000;',
    '&amp',
    '\t',
    '|',
    '\n',
    '\r\n',
    '\u{1f600}',
    '\ufeff',
    'null',
    '[[[[[[[[',
    '{"a":',
  ];
  return splice(b, r.below(b.length + 1), 0, encoder.encode(r.pick(tokens)));
};

export const BINARY_MUTATORS: readonly Mutator[] = [flipBit, setByte, setWord, truncate, deleteRange, duplicateRange, insertRandom];
export const TEXT_MUTATORS: readonly Mutator[] = [
  replaceNumber,
  replaceNumber,
  shuffleLines,
  insertToken,
  insertToken,
  truncate,
  deleteRange,
  duplicateRange,
  setByte,
];

/** Why `error` is not a clear error for a reader of `mustName`, or undefined when it is. */
export function unclearError(error: unknown, mustName: string, maxMessageLength = 1000): string | undefined {
  if (!(error instanceof Error)) return `threw a non-Error: ${String(error).slice(0, 200)}`;
  const name = error.constructor?.name ?? error.name;
  if (ENGINE_ERRORS.has(name) || ENGINE_ERRORS.has(error.name)) return `untranslated engine error ${name}: ${error.message.slice(0, 300)}`;
  if (error.message.length > maxMessageLength)
    return `message of ${error.message.length} characters (at most ${maxMessageLength}): ${error.message.slice(0, 200)}…`;
  if (!error.message.includes(mustName)) return `message does not name ${mustName}: ${error.message.slice(0, 300)}`;
  return undefined;
}

function baseName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts[parts.length - 1] as string;
}

function memoryNow(): number {
  return process.memoryUsage().arrayBuffers;
}
function peakRssNow(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 1 << 16)).toString('base64');
}

/** The cases of a target, in order: hand-made ones, then `cases` mutated seeds. */
export function* fuzzCases(target: FuzzTarget): Generator<{ name: string; bytes: Uint8Array }> {
  for (const c of target.extraCases ?? []) yield c;
  const rng = new FuzzRng(target.seed ?? hashSeed(target.reader));
  const mutators = target.mutators ?? BINARY_MUTATORS;
  // Plain copies: a Node Buffer's slice() is a view, so mutating a Buffer seed would change it.
  const seeds = target.seeds.map((s) => new Uint8Array(s));
  for (let i = 0; i < target.cases; i++) {
    const seedIndex = rng.below(target.seeds.length);
    let bytes = seeds[seedIndex] as Uint8Array;
    const steps = 1 + rng.below(4);
    const names: string[] = [];
    for (let k = 0; k < steps; k++) {
      const m = rng.pick(mutators);
      bytes = m(bytes, rng);
      names.push(m.name || 'mutator');
    }
    yield { name: `#${i} seed ${seedIndex}: ${names.join(', ')}`, bytes };
  }
}

/**
 * Runs every case of `target` and reports the outcomes. A case fails when the reader throws an
 * unclear error, takes longer than the time bound, or grows memory beyond the bound. The report
 * is printed as one line and, when PEFT_FUZZ_REPORT names a folder, written there as JSON.
 */
export async function runFuzz(target: FuzzTarget): Promise<FuzzReport> {
  const timeLimit = target.timeLimitMs ?? 2000;
  const memoryLimit = target.memoryLimitBytes ?? 256 * 2 ** 20;
  const mustName = target.mustName ?? baseName(target.file);
  const report: FuzzReport = {
    reader: target.reader,
    cases: 0,
    accepted: 0,
    rejected: 0,
    errors: {},
    slowestMs: 0,
    largestMemoryBytes: 0,
    failures: [],
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  for (const c of fuzzCases(target)) {
    report.cases++;
    gc?.();
    const buffersBefore = memoryNow();
    const rssBefore = peakRssNow();
    const started = performance.now();
    let reason: string | undefined;
    try {
      await target.read(c.bytes, target.file);
      report.accepted++;
    } catch (error) {
      report.rejected++;
      const name = error instanceof Error ? (error.constructor?.name ?? error.name) : typeof error;
      report.errors[name] = (report.errors[name] ?? 0) + 1;
      reason = unclearError(error, mustName, target.maxMessageLength);
    }
    const ms = performance.now() - started;
    const memory = Math.max(memoryNow() - buffersBefore, peakRssNow() - rssBefore, 0);
    report.slowestMs = Math.max(report.slowestMs, ms);
    report.largestMemoryBytes = Math.max(report.largestMemoryBytes, memory);
    if (reason === undefined && memory > memoryLimit)
      reason = `grew memory by ${(memory / 2 ** 20).toFixed(0)} MiB (bound ${(memoryLimit / 2 ** 20).toFixed(0)} MiB)`;
    if (reason === undefined && ms > timeLimit) reason = `took ${ms.toFixed(0)} ms (bound ${timeLimit} ms)`;
    if (reason !== undefined) report.failures.push({ case: c.name, reason, input: toBase64(c.bytes) });
  }
  const errors = Object.entries(report.errors)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `fuzz ${report.reader}: ${report.cases} cases, ${report.accepted} accepted, ${report.rejected} rejected (${errors || 'none'}), ` +
      `slowest ${report.slowestMs.toFixed(0)} ms, largest memory growth ${(report.largestMemoryBytes / 2 ** 20).toFixed(1)} MiB, ${report.failures.length} failure(s)`,
  );
  const dir = process.env.PEFT_FUZZ_REPORT;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${report.reader}.json`), `${JSON.stringify(report, null, 2)}\n`);
  }
  return report;
}

/** A readable summary of a report's failures, for a test assertion message. */
export function describeFailures(report: FuzzReport, max = 5): string {
  return report.failures
    .slice(0, max)
    .map((f) => `${report.reader} ${f.case}: ${f.reason}`)
    .join('\n');
}
