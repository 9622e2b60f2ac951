import { type Span, sortUniqueSpans } from '../span.js';
import { alignText } from './align.js';
import type { ParseResult } from './parse-result.js';

/** Per-label tagging: `@@Mesna## significantly reduces @@IFO## 's genotoxicity`. */
export interface MarkerFormat {
  format: 'markers';
  /** Default '@@'. */
  open?: string;
  /** Default '##'. */
  close?: string;
  /** The entity type every marked span gets. */
  label: string;
}

/** All-label tagging: `[Chemical]Mesna[/Chemical] … [Disease]genotoxicity[/Disease]`. */
export interface XmlFormat {
  format: 'xml';
  /**
   * Known entity types (matched case-insensitively). Tags with other names are recognised when
   * closed, removed from the text and their entities dropped with a warning. Without `labels`,
   * any `[Name]…[/Name]` pair is an entity of type Name.
   */
  labels?: readonly string[];
}

export type TaggedFormat = MarkerFormat | XmlFormat;

interface Marker {
  kind: 'open' | 'close';
  /** Canonical label, or null for an unknown one. */
  label: string | null;
  name: string;
  /** Offset in the de-marked text. */
  at: number;
  /** Offset in the raw output. */
  raw: number;
  /** The marker as written. */
  shown: string;
}

interface Demarked {
  text: string;
  markers: Marker[];
}

function demarkMarkers(output: string, open: string, close: string): Demarked {
  const markers: Marker[] = [];
  let text = '';
  let depth = 0;
  let i = 0;
  while (i < output.length) {
    const isOpen = output.startsWith(open, i);
    const isClose = output.startsWith(close, i);
    if (isOpen || isClose) {
      let kind: 'open' | 'close';
      if (isOpen && isClose) {
        // Same string, or one a prefix of the other: the longer wins; equal ones toggle.
        kind = open.length !== close.length ? (open.length > close.length ? 'open' : 'close') : depth > 0 ? 'close' : 'open';
      } else {
        kind = isOpen ? 'open' : 'close';
      }
      depth += kind === 'open' ? 1 : depth > 0 ? -1 : 0;
      const shown = kind === 'open' ? open : close;
      markers.push({ kind, label: '', name: shown, at: text.length, raw: i, shown });
      i += kind === 'open' ? open.length : close.length;
      continue;
    }
    text += output[i];
    i++;
  }
  return { text, markers };
}

const TAG = /\[\s*(\/?)\s*([^[\]/\n]{1,64}?)\s*\]/g;
const NAME = /^[\p{L}_][\p{L}\p{N}_ .-]*$/u;

function demarkXml(output: string, labels: readonly string[] | undefined): Demarked {
  const canonical = new Map<string, string>();
  for (const l of labels ?? []) canonical.set(l.toLowerCase(), l);
  const found = [...output.matchAll(TAG)].filter((m) => NAME.test(m[2]));
  const closesAfter = (name: string, pos: number) =>
    found.some((m) => m[1] === '/' && (m.index as number) > pos && m[2].toLowerCase() === name);
  const markers: Marker[] = [];
  let text = '';
  let last = 0;
  for (const m of found) {
    const pos = m.index as number;
    const isClose = m[1] === '/';
    const name = m[2];
    const key = name.toLowerCase();
    const known = labels === undefined ? null : (canonical.get(key) ?? null);
    let label: string | null = known;
    if (!isClose && known === null) {
      // An opening tag that is not a known label is a tag only if something closes it; else it is text ("[Ca]").
      if (!closesAfter(key, pos)) continue;
      label = labels === undefined ? name : null;
    } else if (isClose && known === null && labels === undefined) {
      label = name;
    }
    text += output.slice(last, pos);
    last = pos + m[0].length;
    markers.push({ kind: isClose ? 'close' : 'open', label, name: key, at: text.length, raw: pos, shown: m[0] });
  }
  text += output.slice(last);
  return { text, markers };
}

/**
 * Parses a tagging-style generation into spans on `inputTokens`. The de-marked text is aligned
 * to the input (see `alignText`); an entity is kept only when its first and last characters
 * land exactly on the first character of an input token and the last character of one.
 * Never throws on any output string.
 */
export function parseTagged(output: string, inputTokens: readonly string[], format: TaggedFormat): ParseResult {
  const warnings: string[] = [];
  let unaligned = 0;
  const raw = typeof output === 'string' ? output : String(output ?? '');
  let demarked: Demarked;
  if (format.format === 'markers') {
    const open = format.open ?? '@@';
    const close = format.close ?? '##';
    if (open === '' || close === '') throw new Error('parseTagged: markers must be non-empty strings');
    if (typeof format.label !== 'string') throw new Error('parseTagged: the markers format needs a label');
    demarked = demarkMarkers(raw, open, close);
    for (const m of demarked.markers) m.label = format.label;
  } else if (format.format === 'xml') {
    demarked = demarkXml(raw, format.labels);
  } else {
    throw new Error(`parseTagged: format is ${JSON.stringify((format as { format: unknown }).format)}: it must be 'markers' or 'xml'`);
  }

  // Pair markers into entities on the de-marked text.
  const entities: { label: string | null; from: number; to: number; raw: number; shown: string }[] = [];
  const stack: Marker[] = [];
  for (const m of demarked.markers) {
    if (m.kind === 'open') {
      if (stack.length > 0 && format.format === 'markers') warnings.push(`nested marker at offset ${m.raw}`);
      stack.push(m);
      continue;
    }
    let k = stack.length - 1;
    if (format.format === 'xml') while (k >= 0 && stack[k].name !== m.name) k--;
    if (k < 0) {
      warnings.push(`stray closing marker ${m.shown} at offset ${m.raw}`);
      continue;
    }
    const o = stack.splice(k, 1)[0];
    entities.push({ label: o.label, from: o.at, to: m.at, raw: o.raw, shown: o.shown });
  }
  for (const o of stack) {
    if (format.format === 'markers' || o.label !== null) {
      warnings.push(`unclosed marker ${o.shown} at offset ${o.raw}`);
      unaligned++;
    }
  }

  const aligner = alignText(demarked.text, inputTokens);
  if (aligner.failed) warnings.push('output too long to align with the input: no entity kept');
  else if (aligner.coarse) warnings.push('output long: aligned by whole words');
  const spans: Span[] = [];
  for (const e of entities) {
    if (e.label === null) {
      warnings.push(`unknown label ${e.shown} at offset ${e.raw}: entity dropped`);
      continue;
    }
    if (!/\S/.test(demarked.text.slice(e.from, e.to))) {
      warnings.push(`empty entity at offset ${e.raw}`);
      continue;
    }
    const span = aligner.span(e.from, e.to);
    if (span === null) {
      unaligned++;
      warnings.push(`entity ${JSON.stringify(demarked.text.slice(e.from, e.to).trim())} does not align with the input tokens`);
      continue;
    }
    spans.push({ type: e.label, ...span });
  }
  return { spans: sortUniqueSpans(spans), unaligned, warnings };
}
