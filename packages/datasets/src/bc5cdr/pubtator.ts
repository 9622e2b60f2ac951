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

/**
 * Parses PubTator text: `PMID|t|title`, `PMID|a|abstract`, then tab-separated annotation lines
 * `PMID start end mention type [id [more…]]`; relation lines (`PMID\tCID\t…`) are ignored; a blank
 * line ends a document. Offsets count characters of `title + " " + abstract`; every mention's text
 * is checked against that slice.
 */
export function parsePubTator(source: string, options: MentionCheckOptions = {}): ReadResult {
  const documents: BiomedicalDocument[] = [];
  const warnings: string[] = [];
  let draft: Draft | undefined;

  const finish = () => {
    if (!draft) return;
    const d = draft;
    draft = undefined;
    if (d.title === undefined) throw new Error(`PubTator document ${d.id} (line ${d.line}) has no title line "${d.id}|t|…"`);
    const passages = [{ type: 'title', offset: 0, text: d.title }];
    if (d.abstract !== undefined) passages.push({ type: 'abstract', offset: d.title.length + 1, text: d.abstract });
    const text = layoutPassages(d.id, passages);
    const mentions = [...d.mentions].sort((a, b) => a.start - b.start || a.end - b.end);
    documents.push({ id: d.id, passages, text, mentions: checkMentions(d.id, text, mentions, options, warnings) });
  };

  const lines = source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const lineNo = i + 1;
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
    if (cols.length >= 3 && !/^\d+$/.test(cols[1]!)) continue; // relation line, e.g. PMID CID chemical disease
    if (cols.length < 5)
      throw new Error(
        `PubTator line ${lineNo}: expected "PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id]", got ${JSON.stringify(line)}`,
      );
    const [id, start, end, mention, type, conceptId] = cols as [string, string, string, string, string, string | undefined];
    if (!draft || draft.id !== id) {
      throw new Error(`PubTator line ${lineNo}: annotation for PMID ${id} outside its document (current document: ${draft?.id ?? 'none'})`);
    }
    if (!/^\d+$/.test(end)) throw new Error(`PubTator line ${lineNo}: end offset ${JSON.stringify(end)} is not a number`);
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
