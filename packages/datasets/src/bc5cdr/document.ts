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

export interface MentionCheckOptions {
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
    if (p.offset < text.length) {
      throw new Error(
        `document ${id}: passage "${p.type}" starts at offset ${p.offset}, inside the previous passage (which ends at ${text.length})`,
      );
    }
    text += ' '.repeat(p.offset - text.length) + p.text;
  }
  return text;
}

/** Keeps the mentions whose text equals `text.slice(start, end)`; handles the others per `options.mismatch`. */
export function checkMentions(
  id: string,
  text: string,
  mentions: readonly Mention[],
  options: MentionCheckOptions,
  warnings: string[],
): Mention[] {
  const kept: Mention[] = [];
  for (const m of mentions) {
    const found = text.slice(m.start, m.end);
    let problem: string | undefined;
    if (!(Number.isInteger(m.start) && Number.isInteger(m.end) && m.start >= 0 && m.end > m.start && m.end <= text.length)) {
      problem = `document ${id}: mention ${m.type} at ${m.start}-${m.end} is outside the text (length ${text.length})`;
    } else if (found !== m.text) {
      problem = `document ${id}: mention ${m.type} at ${m.start}-${m.end}: expected ${JSON.stringify(m.text)}, found ${JSON.stringify(found)} in the text`;
    }
    if (problem === undefined) kept.push(m);
    else if (options.mismatch === 'warn') warnings.push(problem);
    else throw new Error(`${problem}; the annotation offsets do not match this text (pass { mismatch: 'warn' } to skip such mentions)`);
  }
  return kept;
}
