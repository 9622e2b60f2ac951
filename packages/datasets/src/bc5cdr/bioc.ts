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

function intAttribute(e: XmlElement, name: string, where: string): number {
  const v = e.attributes[name];
  if (v === undefined || !/^\d+$/.test(v.trim()))
    throw new Error(`BioC ${where}: <${e.name}> needs a non-negative integer "${name}", got ${JSON.stringify(v)}`);
  return Number(v.trim());
}

/**
 * Parses a BioC XML collection (collection / document / passage with infon type, offset, text and
 * annotations with infon type, location offset + length, text). Offsets are document-global, as in
 * the BC5CDR BioC release. A mention with several locations spans from the first start to the last
 * end. Relations are ignored.
 */
export function parseBioC(source: string, options: MentionCheckOptions = {}): ReadResult {
  const root = parseXml(source);
  const collection = childElement(root, 'collection');
  if (!collection) throw new Error('BioC: no <collection> element; is this a BioC XML file?');
  const documents: BiomedicalDocument[] = [];
  const warnings: string[] = [];
  for (const doc of childElements(collection, 'document')) {
    const idElement = childElement(doc, 'id');
    const id = idElement ? textContent(idElement).trim() : '';
    if (id === '') throw new Error(`BioC: document #${documents.length + 1} has no <id>`);
    const passages: Passage[] = [];
    const mentions: Mention[] = [];
    for (const p of childElements(doc, 'passage')) {
      const offsetElement = childElement(p, 'offset');
      if (!offsetElement) throw new Error(`BioC document ${id}: passage #${passages.length + 1} has no <offset>`);
      const textElement = childElement(p, 'text');
      passages.push({
        type: infons(p).get('type') ?? '',
        offset: Number(textContent(offsetElement).trim()),
        text: textElement ? textContent(textElement) : '',
      });
      for (const a of childElements(p, 'annotation')) {
        const info = infons(a);
        const locations = childElements(a, 'location');
        if (locations.length === 0) throw new Error(`BioC document ${id}: annotation ${a.attributes.id ?? '?'} has no <location>`);
        const starts = locations.map((l) => intAttribute(l, 'offset', `document ${id}`));
        const ends = locations.map((l, i) => starts[i]! + intAttribute(l, 'length', `document ${id}`));
        const t = childElement(a, 'text');
        const m: Mention = {
          start: Math.min(...starts),
          end: Math.max(...ends),
          text: t ? textContent(t) : '',
          type: info.get('type') ?? '',
        };
        const conceptId = info.get('MESH') ?? info.get('identifier');
        if (conceptId !== undefined) m.conceptId = conceptId;
        mentions.push(m);
      }
    }
    const text = layoutPassages(id, passages);
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
