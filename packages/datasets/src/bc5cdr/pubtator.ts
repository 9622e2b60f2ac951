import { clip, quoteSnippet, reportMalformed } from '../text/malformed.js';
import {
  type BiomedicalDocument,
  checkMentions,
  layoutPassages,
  type Mention,
  type MentionCheckOptions,
  type ReadResult,
} from './document.js';

interface Draft {
  id: string;
  title?: string;
  abstract?: string;
  mentions: Mention[];
  line: number;
}

const ANNOTATION_FORMAT = '"PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id]"';
/** A non-negative decimal integer below 2^53, nothing else (no sign, point, exponent or spaces). */
const OFFSET = /^\d{1,15}$/;
/** A relation line's second column: a relation type such as CID. */
const RELATION = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Parses PubTator text: `PMID|t|title`, `PMID|a|abstract`, then tab-separated annotation lines
 * `PMID start end mention type [id [more…]]`; relation lines (`PMID<TAB>CID<TAB>…`: a word in the
 * second column and no offset in the third) are ignored; a blank line ends a document. Offsets
 * count characters of `title + " " + abstract` (UTF-16 code units, or code points as Python counts:
 * see `checkMentions`) and must be non-negative decimal integers; every mention's text is checked
 * against that slice. A line that is none of these, or an annotation with a bad offset, is
 * malformed: an error naming the line, or with `malformed: 'warn'` skipped and reported in `warnings`.
 */
export function parsePubTator(source: string, options: MentionCheckOptions = {}): ReadResult {
  const documents: BiomedicalDocument[] = [];
  const warnings: string[] = [];
  let draft: Draft | undefined;

  const finish = () => {
    if (!draft) return;
    const d = draft;
    draft = undefined;
    if (d.title === undefined) {
      reportMalformed(options, warnings, `PubTator document ${clip(d.id)} (line ${d.line}) has no title line "${clip(d.id)}|t|…"`);
      return;
    }
    const passages = [{ type: 'title', offset: 0, text: d.title }];
    if (d.abstract !== undefined) passages.push({ type: 'abstract', offset: d.title.length + 1, text: d.abstract });
    let text: string;
    try {
      text = layoutPassages(d.id, passages);
    } catch (e) {
      reportMalformed(options, warnings, `PubTator ${(e as Error).message}`);
      return;
    }
    const mentions = [...d.mentions].sort((a, b) => a.start - b.start || a.end - b.end);
    documents.push({ id: d.id, passages, text, mentions: checkMentions(d.id, text, mentions, options, warnings) });
  };

  const lines = source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const lineNo = i + 1;
    const malformed = (message: string) => reportMalformed(options, warnings, `PubTator line ${lineNo}: ${message}`);
    if (line.trim() === '') {
      finish();
      continue;
    }
    const textLine = /^([^|\t]+)\|([ta])\|(.*)$/.exec(line);
    if (textLine) {
      const [, id, kind, content] = textLine as unknown as [string, string, string, string];
      if (draft && (draft.id !== id || (kind === 't' && draft.title !== undefined))) finish();
      draft ??= { id, mentions: [], line: lineNo };
      if (kind === 't') draft.title = content;
      else draft.abstract = content;
      continue;
    }
    const cols = line.split('\t');
    if (cols.length >= 3 && RELATION.test(cols[1]!) && !OFFSET.test(cols[2]!)) continue; // relation line, e.g. PMID CID chemical disease
    if (cols.length < 5) {
      malformed(`expected ${ANNOTATION_FORMAT}, a relation "PMID<TAB>CID<TAB>…" or "PMID|t|…", got ${cols.length} tab-separated column(s)`);
      continue;
    }
    const [id, start, end, mention, type, conceptId] = cols as [string, string, string, string, string, string | undefined];
    if (!draft || draft.id !== id) {
      malformed(`annotation for PMID ${clip(id)} outside its document (current document: ${draft ? clip(draft.id) : 'none'})`);
      continue;
    }
    if (!OFFSET.test(start) || !OFFSET.test(end)) {
      const [what, value] = OFFSET.test(start) ? ['end', end] : ['start', start];
      malformed(`${what} offset ${quoteSnippet(value, 20)} is not a non-negative decimal integer`);
      continue;
    }
    const m: Mention = { start: Number(start), end: Number(end), text: mention, type };
    if (conceptId !== undefined && conceptId !== '') m.conceptId = conceptId;
    draft.mentions.push(m);
  }
  finish();
  return { documents, warnings };
}

/** Writes documents back as PubTator text (title, abstract, annotations, blank line). */
export function formatPubTator(documents: readonly BiomedicalDocument[]): string {
  let out = '';
  for (const d of documents) {
    const title = d.passages.find((p) => p.type === 'title')?.text ?? '';
    const abstract = d.passages.find((p) => p.type === 'abstract')?.text ?? '';
    out += `${d.id}|t|${title}\n${d.id}|a|${abstract}\n`;
    for (const m of d.mentions) out += `${d.id}\t${m.start}\t${m.end}\t${m.text}\t${m.type}\t${m.conceptId ?? '-1'}\n`;
    out += '\n';
  }
  return out;
}
