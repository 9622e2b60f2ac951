import type { Span } from '../span.js';
import { type Scheme, strictEntities } from './scheme.js';

export type EntityMode = 'default' | 'strict';

export interface GetEntitiesOptions {
  /** Required in strict mode; ignored in default mode. */
  scheme?: Scheme;
  /** 'default' (seqeval's conlleval-style chunking, the default) or 'strict' (seqeval.scheme). */
  mode?: EntityMode;
  /** Tags written `PER-B` instead of `B-PER`. */
  suffix?: boolean;
  /** Receives seqeval's "… seems not to be NE tag." warnings (default mode). */
  onWarning?: (message: string) => void;
}

type Seqs = readonly string[] | readonly (readonly string[])[];

function isNested(seq: Seqs): seq is readonly (readonly string[])[] {
  return seq.some((s) => Array.isArray(s));
}

/** seqeval flattens a list of sentences with an 'O' after each. */
export function flattenSentences(seq: Seqs): string[] {
  if (!isNested(seq)) return [...(seq as readonly string[])];
  const out: string[] = [];
  for (const sentence of seq) out.push(...sentence, 'O');
  return out;
}

const KNOWN_PLAIN = new Set(['O', 'B', 'I', 'E', 'S', 'L', 'U']);
const PREFIXES = ['B-', 'I-', 'E-', 'S-', 'L-', 'U-'];
const SUFFIXES = ['-B', '-I', '-E', '-S', '-L', '-U'];

function splitTag(chunk: string, suffix: boolean): [tag: string, type: string] {
  let tag: string;
  let type: string;
  if (suffix) {
    tag = chunk.slice(-1);
    const body = chunk.slice(0, -1);
    const cut = body.lastIndexOf('-');
    type = (cut < 0 ? body : body.slice(0, cut)) || '_';
  } else {
    tag = chunk.slice(0, 1);
    const body = chunk.slice(1);
    const cut = body.indexOf('-');
    type = (cut < 0 ? body : body.slice(cut + 1)) || '_';
  }
  // BILOU's last / unit tags chunk like IOBES's end / single tags.
  if (tag === 'L') tag = 'E';
  else if (tag === 'U') tag = 'S';
  return [tag, type];
}

function endOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (prevTag === 'E' || prevTag === 'S') return true;
  if ((prevTag === 'B' || prevTag === 'I') && (tag === 'B' || tag === 'S' || tag === 'O')) return true;
  return prevTag !== 'O' && prevTag !== '.' && prevType !== type;
}

function startOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (tag === 'B' || tag === 'S') return true;
  if ((prevTag === 'E' || prevTag === 'S' || prevTag === 'O') && (tag === 'E' || tag === 'I')) return true;
  return tag !== 'O' && tag !== '.' && prevType !== type;
}

/**
 * seqeval's `get_entities`: lenient, conlleval-style chunking. Returns spans with an exclusive
 * end (seqeval's tuples end inclusively: `(type, start, end - 1)`). A list of sentences is
 * flattened with an 'O' after each sentence, so offsets index that flat sequence, as in seqeval.
 */
function defaultEntities(seq: Seqs, suffix: boolean, onWarning?: (m: string) => void): Span[] {
  const flat = flattenSentences(seq);
  flat.push('O');
  let prevTag = 'O';
  let prevType = '';
  let begin = 0;
  const chunks: Span[] = [];
  for (let i = 0; i < flat.length; i++) {
    const chunk = flat[i];
    if (onWarning && !KNOWN_PLAIN.has(chunk)) {
      const ok = suffix ? SUFFIXES.some((s) => chunk.endsWith(s)) : PREFIXES.some((p) => chunk.startsWith(p));
      if (!ok) onWarning(`${chunk} seems not to be NE tag.`);
    }
    const [tag, type] = splitTag(chunk, suffix);
    if (endOfChunk(prevTag, tag, prevType, type)) chunks.push({ type: prevType, start: begin, end: i });
    if (startOfChunk(prevTag, tag, prevType, type)) begin = i;
    prevTag = tag;
    prevType = type;
  }
  return chunks;
}

/**
 * The entities of a tag sequence (or of a list of sentences, flattened as seqeval does).
 * Default mode reproduces seqeval's `get_entities`, and also reads BILOU's `L-` / `U-` as `E-` / `S-`
 * (seqeval's own chunker does not know them). Strict mode reproduces `seqeval.scheme`: only
 * well-formed chunks of `scheme` count, and a tag whose prefix the scheme does not allow is an error.
 */
export function getEntities(tags: Seqs, options: GetEntitiesOptions = {}): Span[] {
  const { mode = 'default', suffix = false } = options;
  if (mode === 'default') return defaultEntities(tags, suffix, options.onWarning);
  if (mode !== 'strict') throw new Error(`mode is ${JSON.stringify(mode)}: it must be 'default' or 'strict'`);
  if (options.scheme === undefined) {
    throw new Error("strict mode needs a scheme: pass scheme: 'IOB2' (or IOB1, IOE1, IOE2, IOBES, BILOU)");
  }
  if (!isNested(tags)) return strictEntities(tags as readonly string[], options.scheme, suffix);
  const out: Span[] = [];
  let offset = 0;
  for (const sentence of tags) {
    for (const e of strictEntities(sentence, options.scheme, suffix)) {
      out.push({ type: e.type, start: e.start + offset, end: e.end + offset });
    }
    offset += sentence.length + 1;
  }
  return out;
}
