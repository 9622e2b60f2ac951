import { clip, type MalformedOptions, quoteSnippet, reportMalformed } from '../text/malformed.js';
import {
  type BiomedicalDocument,
  checkMentions,
  layoutPassages,
  type Mention,
  type MentionCheckOptions,
  type Passage,
  type ReadResult,
} from './document.js';
import { childElement, childElements, parseXml, textContent, type XmlElement } from './xml.js';

function infons(e: XmlElement): Map<string, string> {
  return new Map(childElements(e, 'infon').map((i) => [i.attributes.key ?? '', textContent(i)]));
}

/** A non-negative decimal integer below 2^53 (surrounding whitespace allowed), or undefined. */
function decimal(value: string | undefined): number | undefined {
  const v = value?.trim();
  if (v === undefined || !/^\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

const DECIMAL = 'a non-negative decimal integer';

/**
 * Parses a BioC XML collection (collection / document / passage with infon type, offset, text and
 * annotations with infon type, location offset + length, text). Offsets are document-global, as in
 * the BC5CDR BioC release. A mention with several locations spans from the first start to the last
 * end. Relations are ignored. Passage offsets and location offsets and lengths must be non-negative
 * decimal integers. A document without `<id>`, a passage without a valid `<offset>` (with its
 * annotations) or an annotation without valid locations is malformed: an error, or with
 * `malformed: 'warn'` skipped and reported in `warnings` (see {@link MalformedOptions}).
 */
export function parseBioC(source: string, options: MentionCheckOptions = {}): ReadResult {
  const root = parseXml(source);
  const collection = childElement(root, 'collection');
  if (!collection) throw new Error('BioC: no <collection> element; is this a BioC XML file?');
  const documents: BiomedicalDocument[] = [];
  const warnings: string[] = [];
  const malformed = (message: string) => reportMalformed(options, warnings, message);
  let docNumber = 0;
  for (const doc of childElements(collection, 'document')) {
    docNumber++;
    const idElement = childElement(doc, 'id');
    const id = idElement ? textContent(idElement).trim() : '';
    if (id === '') {
      malformed(`BioC: document #${docNumber} has no <id>`);
      continue;
    }
    const where = `BioC document ${clip(id)}`;
    const passages: Passage[] = [];
    const mentions: Mention[] = [];
    let passageNumber = 0;
    for (const p of childElements(doc, 'passage')) {
      passageNumber++;
      const offsetElement = childElement(p, 'offset');
      if (!offsetElement) {
        malformed(`${where}: passage #${passageNumber} has no <offset>`);
        continue;
      }
      const offsetText = textContent(offsetElement);
      const offset = decimal(offsetText);
      if (offset === undefined) {
        malformed(`${where}: passage #${passageNumber} has <offset> ${quoteSnippet(offsetText.trim(), 20)}, expected ${DECIMAL}`);
        continue;
      }
      const textElement = childElement(p, 'text');
      passages.push({ type: infons(p).get('type') ?? '', offset, text: textElement ? textContent(textElement) : '' });
      let annotationNumber = 0;
      for (const a of childElements(p, 'annotation')) {
        annotationNumber++;
        const annotation = `${where}: annotation ${quoteSnippet(a.attributes.id ?? `#${annotationNumber}`, 20)} in passage #${passageNumber}`;
        const locations = childElements(a, 'location');
        if (locations.length === 0) {
          malformed(`${annotation} has no <location>`);
          continue;
        }
        // A loop, not Math.min(...starts): a spread of 200,000 locations overflows the call stack.
        let start = Number.POSITIVE_INFINITY;
        let end = 0;
        let bad: string | undefined;
        for (let i = 0; i < locations.length && bad === undefined; i++) {
          const l = locations[i]!;
          const o = decimal(l.attributes.offset);
          const n = decimal(l.attributes.length);
          if (o === undefined || n === undefined) {
            const [attr, value] = o === undefined ? ['offset', l.attributes.offset] : ['length', l.attributes.length];
            bad = `${annotation}: <location> #${i + 1} has ${attr} ${value === undefined ? '(missing)' : quoteSnippet(value, 20)}, expected ${DECIMAL}`;
          } else {
            start = Math.min(start, o);
            end = Math.max(end, o + n);
          }
        }
        if (bad !== undefined) {
          malformed(bad);
          continue;
        }
        const info = infons(a);
        const t = childElement(a, 'text');
        const m: Mention = { start, end, text: t ? textContent(t) : '', type: info.get('type') ?? '' };
        const conceptId = info.get('MESH') ?? info.get('identifier');
        if (conceptId !== undefined) m.conceptId = conceptId;
        mentions.push(m);
      }
    }
    let text: string;
    try {
      text = layoutPassages(id, passages);
    } catch (e) {
      malformed(`BioC: ${(e as Error).message}`);
      continue;
    }
    mentions.sort((a, b) => a.start - b.start || a.end - b.end);
    documents.push({ id, passages, text, mentions: checkMentions(id, text, mentions, options, warnings) });
  }
  return { documents, warnings };
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Writes documents as a BioC XML collection in the BC5CDR layout. */
export function formatBioC(documents: readonly BiomedicalDocument[], source = 'PubTator'): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE collection SYSTEM "BioC.dtd">', '<collection>'];
  lines.push(`<source>${escapeXml(source)}</source>`, '<date></date>', '<key>collection.key</key>');
  let annotationId = 0;
  for (const d of documents) {
    lines.push('<document>', `<id>${escapeXml(d.id)}</id>`);
    for (const p of d.passages) {
      lines.push(
        '<passage>',
        `<infon key="type">${escapeXml(p.type)}</infon>`,
        `<offset>${p.offset}</offset>`,
        `<text>${escapeXml(p.text)}</text>`,
      );
      const end = p.offset + p.text.length;
      for (const m of d.mentions.filter((x) => x.start >= p.offset && x.end <= end)) {
        lines.push(`<annotation id="${annotationId++}">`);
        if (m.conceptId !== undefined) lines.push(`<infon key="MESH">${escapeXml(m.conceptId)}</infon>`);
        lines.push(`<infon key="type">${escapeXml(m.type)}</infon>`);
        lines.push(
          `<location offset="${m.start}" length="${m.end - m.start}"></location>`,
          `<text>${escapeXml(m.text)}</text>`,
          '</annotation>',
        );
      }
      lines.push('</passage>');
    }
    lines.push('</document>');
  }
  lines.push('</collection>', '');
  return lines.join('\n');
}
