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

/** Token spans from BIO tags (an `I-` without a matching open entity starts one, as in IOB1). */
export function fromBioTags(tags: readonly string[], defaultType = 'Entity'): TokenSpan[] {
  const spans: TokenSpan[] = [];
  let current: TokenSpan | undefined;
  tags.forEach((tag, i) => {
    const m = /^([BIES])(?:-(.+))?$/.exec(tag);
    if (!m) {
      if (tag !== 'O') throw new Error(`BIO tag ${JSON.stringify(tag)} at token ${i}: expected O, B-<type> or I-<type>`);
      current = undefined;
      return;
    }
    const [, prefix, type = defaultType] = m as unknown as [string, string, string | undefined];
    if (prefix === 'I' && current && current.type === type && current.end === i) current.end = i + 1;
    else {
      current = { type, start: i, end: i + 1 };
      spans.push(current);
    }
  });
  return spans;
}

export interface BioReadOptions {
  /** Type for bare `B` / `I` tags (the per-type releases, e.g. BC5CDR-chem). Default `Entity`. */
  defaultType?: string;
}

/**
 * Reads the tokenised BIO format: one `token<TAB>tag` per line (more columns allowed: the first is the
 * token, the last the tag; space-separated when the line has no tab), a blank line between sentences,
 * `-DOCSTART-` lines skipped. Sentence ids are their index.
 */
export function parseBio(source: string, options: BioReadOptions = {}): Sentence[] {
  const sentences: Sentence[] = [];
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
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line.startsWith('-DOCSTART-')) continue;
    const cols = line.includes('\t') ? line.split('\t') : line.trim().split(/\s+/);
    if (cols.length < 2) throw new Error(`BIO line ${i + 1}: expected "token<TAB>tag", got ${JSON.stringify(line)}`);
    tokens.push(cols[0]!);
    tags.push(cols[cols.length - 1]!.trim());
  }
  flush();
  return sentences;
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
