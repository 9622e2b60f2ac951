import { clip, type MalformedOptions, quoteSnippet } from '../text/malformed.js';

/** Largest document text laid out from passage offsets (16 Mi characters; an abstract has a few thousand). */
export const MAX_DOCUMENT_LENGTH = 2 ** 24;

/** An entity mention with character offsets into {@link BiomedicalDocument.text}. */
export interface Mention {
  start: number;
  /** Exclusive. */
  end: number;
  text: string;
  /** `Disease`, `Chemical`, … */
  type: string;
  /** Concept identifier (MeSH id for BC5CDR; `-1` when unmapped), when the source gives one. */
  conceptId?: string;
}

export interface Passage {
  /** `title`, `abstract`, … */
  type: string;
  /** Offset of the passage's first character in the document text. */
  offset: number;
  text: string;
}

/** One annotated abstract (PubTator or BioC). */
export interface BiomedicalDocument {
  /** PMID. */
  id: string;
  passages: Passage[];
  /**
   * The passages laid out at their offsets, gaps filled with spaces: for PubTator and BC5CDR BioC
   * this is `title + " " + abstract`, the text the mention offsets refer to.
   */
  text: string;
  mentions: Mention[];
}

/** Result of a reader: the documents and, in `mismatch: 'warn'` mode, one line per dropped mention. */
export interface ReadResult {
  documents: BiomedicalDocument[];
  warnings: string[];
}

export interface MentionCheckOptions extends MalformedOptions {
  /**
   * What to do when a mention's text differs from the document text at its offsets: `'error'`
   * (default) throws; `'warn'` drops the mention and adds a line to `warnings`.
   */
  mismatch?: 'error' | 'warn';
}

/** Lays passages out at their offsets; errors when two passages overlap. */
export function layoutPassages(id: string, passages: readonly Passage[]): string {
  let text = '';
  for (const p of [...passages].sort((a, b) => a.offset - b.offset)) {
    if (p.offset + p.text.length > MAX_DOCUMENT_LENGTH) {
      throw new Error(
        `document ${clip(id)}: passage "${clip(p.type)}" at offset ${p.offset} ends beyond ${MAX_DOCUMENT_LENGTH} characters, the largest document text supported`,
      );
    }
    if (p.offset < text.length) {
      throw new Error(
        `document ${clip(id)}: passage "${clip(p.type)}" starts at offset ${p.offset}, inside the previous passage (which ends at ${text.length})`,
      );
    }
    text += ' '.repeat(p.offset - text.length) + p.text;
  }
  return text;
}

/** UTF-16 index of every code-point index of `text` (and of its end). */
function codePointToUtf16(text: string): number[] {
  const out: number[] = [];
  let i = 0;
  for (const ch of text) {
    out.push(i);
    i += ch.length;
  }
  out.push(i);
  return out;
}

function inText(start: number, end: number, length: number): boolean {
  return Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && end <= length;
}

/**
 * Keeps the mentions whose text equals `text.slice(start, end)`; handles the others per
 * `options.mismatch`. Offsets count UTF-16 code units, as JavaScript strings do. A mention whose
 * offsets do not fit in UTF-16 units but do when read as code points (as Python's `str` counts, so
 * a file written by Python tools after a character outside the BMP such as 𝛼) is kept with its
 * offsets converted to UTF-16 units.
 */
export function checkMentions(
  id: string,
  text: string,
  mentions: readonly Mention[],
  options: MentionCheckOptions,
  warnings: string[],
): Mention[] {
  const kept: Mention[] = [];
  let codePoints: number[] | undefined;
  for (const m0 of mentions) {
    let m = m0;
    let problem: string | undefined;
    if (!(inText(m.start, m.end, text.length) && text.slice(m.start, m.end) === m.text)) {
      codePoints ??= codePointToUtf16(text);
      const start = codePoints[m.start];
      const end = codePoints[m.end];
      if (inText(m.start, m.end, codePoints.length - 1) && start !== undefined && end !== undefined && text.slice(start, end) === m.text) {
        m = { ...m, start, end };
      } else if (!inText(m.start, m.end, text.length)) {
        problem = `document ${clip(id)}: mention ${clip(m.type)} at ${m.start}-${m.end} is outside the text (length ${text.length})`;
      } else {
        const found = text.slice(m.start, m.end);
        problem = `document ${clip(id)}: mention ${clip(m.type)} at ${m.start}-${m.end}: expected ${quoteSnippet(m.text)}, found ${quoteSnippet(found)} in the text`;
      }
    }
    if (problem === undefined) kept.push(m);
    else if (options.mismatch === 'warn') warnings.push(problem);
    else throw new Error(`${problem}; the annotation offsets do not match this text (pass { mismatch: 'warn' } to skip such mentions)`);
  }
  return kept.sort((a, b) => a.start - b.start || a.end - b.end);
}
