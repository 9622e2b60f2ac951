import { type MalformedOptions, quoteSnippet, reportMalformed } from '../text/malformed.js';
import type { Sentence, TokenSpan } from './sentence.js';

/** BIO tags of a sentence: `B-<type>`, `I-<type>`, `O`. Spans must not overlap. */
export function toBioTags(sentence: Sentence): string[] {
  const tags = sentence.tokens.map(() => 'O');
  for (const s of [...sentence.spans].sort((a, b) => a.start - b.start)) {
    for (let i = s.start; i < s.end; i++) {
      if (tags[i] !== 'O')
        throw new Error(
          `sentence ${sentence.id}: spans overlap at token ${i} (${JSON.stringify(sentence.tokens[i])}); merge them first (mergeSpansByPriority)`,
        );
      tags[i] = `${i === s.start ? 'B' : 'I'}-${s.type}`;
    }
  }
  return tags;
}

/** A tag this reader understands: `O`, or `B`/`I` (also `E`/`S` of IOBES) with an optional `-<type>`. */
const TAG = /^([BIES])(?:-(\S+))?$/;

/**
 * Token spans from BIO tags (an `I-` without a matching open entity starts one, as in IOB1; IOBES
 * `E-` continues and closes an entity, `S-` is a one-token entity).
 */
export function fromBioTags(tags: readonly string[], defaultType = 'Entity'): TokenSpan[] {
  const spans: TokenSpan[] = [];
  let current: TokenSpan | undefined;
  tags.forEach((tag, i) => {
    const m = TAG.exec(tag);
    if (!m) {
      if (tag !== 'O') throw new Error(`BIO tag ${quoteSnippet(tag, 40)} at token ${i}: expected O, B-<type> or I-<type>`);
      current = undefined;
      return;
    }
    const [, prefix, type = defaultType] = m as unknown as [string, string, string | undefined];
    const continues = (prefix === 'I' || prefix === 'E') && current && current.type === type && current.end === i;
    if (continues) current!.end = i + 1;
    else {
      current = { type, start: i, end: i + 1 };
      spans.push(current);
    }
    if (prefix === 'E' || prefix === 'S') current = undefined;
  });
  return spans;
}

export interface BioReadOptions extends MalformedOptions {
  /** Type for bare `B` / `I` tags (the per-type releases, e.g. BC5CDR-chem). Default `Entity`. */
  defaultType?: string;
}

export interface BioReadResult {
  sentences: Sentence[];
  /** With `malformed: 'warn'`: one line per skipped line. */
  warnings: string[];
}

/**
 * Reads the tokenised BIO format: one `token<TAB>tag` per line (more columns allowed: the first is the
 * token, the last the tag; space-separated when the line has no tab), a blank line between sentences,
 * `-DOCSTART-` lines skipped. Sentence ids are their index. A line with fewer than two columns, an
 * empty token or a tag other than `O`, `B[-type]`, `I[-type]` (`E`, `S` of IOBES) is malformed: an
 * error naming the line, or with `malformed: 'warn'` the line is skipped and reported in `warnings`.
 */
export function parseBioSentences(source: string, options: BioReadOptions = {}): BioReadResult {
  const sentences: Sentence[] = [];
  const warnings: string[] = [];
  let tokens: string[] = [];
  let tags: string[] = [];
  const flush = () => {
    if (tokens.length > 0) sentences.push({ id: String(sentences.length), tokens, spans: fromBioTags(tags, options.defaultType) });
    tokens = [];
    tags = [];
  };
  const lines = source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const malformed = (message: string) => reportMalformed(options, warnings, `BIO line ${i + 1}: ${message}`);
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line.startsWith('-DOCSTART-')) continue;
    const cols = line.includes('\t') ? line.split('\t') : line.trim().split(/\s+/);
    if (cols.length < 2) {
      malformed(`expected "token<TAB>tag", got ${cols.length} column(s)`);
      continue;
    }
    const token = cols[0]!;
    const tag = cols[cols.length - 1]!.trim();
    if (token.trim() === '') {
      malformed('the token (first column) is empty');
      continue;
    }
    if (tag !== 'O' && !TAG.test(tag)) {
      malformed(`tag ${quoteSnippet(tag, 40)} is not O, B-<type> or I-<type>`);
      continue;
    }
    tokens.push(token);
    tags.push(tag);
  }
  flush();
  return { sentences, warnings };
}

/** {@link parseBioSentences} without the warnings (use it to see what `malformed: 'warn'` skipped). */
export function parseBio(source: string, options: BioReadOptions = {}): Sentence[] {
  return parseBioSentences(source, options).sentences;
}

/** Writes sentences in the BIO format (`token<TAB>tag`, blank line after each sentence). */
export function formatBio(sentences: readonly Sentence[]): string {
  return sentences
    .map((s) => {
      const tags = toBioTags(s);
      return `${s.tokens.map((t, i) => `${t}\t${tags[i]}`).join('\n')}\n`;
    })
    .join('\n');
}
