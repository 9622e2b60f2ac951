import { type Span, sortUniqueSpans } from '../span.js';

function checkSpans(tokens: readonly string[], spans: readonly Span[], what: string): Span[] {
  for (const s of spans) {
    if (!Number.isInteger(s.start) || !Number.isInteger(s.end) || s.start < 0 || s.end > tokens.length || s.start >= s.end) {
      throw new Error(`${what}: span ${JSON.stringify(s)} is not a non-empty token range of the ${tokens.length} tokens`);
    }
  }
  return sortUniqueSpans(spans);
}

function checkNesting(spans: readonly Span[], what: string): void {
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length && spans[j].start < spans[i].end; j++) {
      if (spans[j].end > spans[i].end) {
        throw new Error(`${what}: spans ${JSON.stringify(spans[i])} and ${JSON.stringify(spans[j])} cross; markers can only nest`);
      }
    }
  }
}

export type TagFormatOptions = { format: 'markers'; open?: string; close?: string; label: string } | { format: 'xml' };

/**
 * Writes the tokens back as a tagging target, tokens joined by single spaces:
 * markers: `@@Mesna## significantly reduces @@IFO## 's genotoxicity` (only spans of `label`);
 * xml: `[Chemical]Mesna[/Chemical] significantly reduces …` (every span).
 */
export function formatTagged(tokens: readonly string[], spans: readonly Span[], options: TagFormatOptions): string {
  const what = 'formatTagged';
  const chosen = checkSpans(tokens, options.format === 'markers' ? spans.filter((s) => s.type === options.label) : spans, what);
  checkNesting(chosen, what);
  const openOf = (s: Span) => (options.format === 'markers' ? (options.open ?? '@@') : `[${s.type}]`);
  const closeOf = (s: Span) => (options.format === 'markers' ? (options.close ?? '##') : `[/${s.type}]`);
  return tokens
    .map((tok, i) => {
      const opening = chosen.filter((s) => s.start === i).sort((a, b) => b.end - a.end);
      const closing = chosen.filter((s) => s.end === i + 1).sort((a, b) => b.start - a.start);
      return opening.map(openOf).join('') + tok + closing.map(closeOf).join('');
    })
    .join(' ');
}

export type ExtractionFormatOptions =
  | { label: string; allLabels?: false }
  | {
      allLabels: true;
      /** Order of the label groups, e.g. ['Disease', 'Chemical']; labels without mentions are left out. */
      labels: readonly string[];
    };

function mentions(tokens: readonly string[], spans: readonly Span[]): string[] {
  const out: string[] = [];
  for (const s of spans) {
    const text = tokens.slice(s.start, s.end).join(' ');
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

/**
 * Writes the entities as an extraction target: `Mesna, IFO` for one label, or
 * `Disease: genotoxicity; Chemical: Mesna, IFO` for all. Mentions are listed in order of first
 * appearance, each distinct text once; no mention gives ''.
 */
export function formatExtraction(tokens: readonly string[], spans: readonly Span[], options: ExtractionFormatOptions): string {
  const what = 'formatExtraction';
  const all = checkSpans(tokens, spans, what);
  if (options.allLabels !== true) {
    return mentions(
      tokens,
      all.filter((s) => s.type === options.label),
    ).join(', ');
  }
  const unknown = [...new Set(all.map((s) => s.type))].filter((t) => !options.labels.includes(t));
  if (unknown.length > 0) {
    throw new Error(`${what}: span types ${JSON.stringify(unknown)} are not in labels ${JSON.stringify(options.labels)}`);
  }
  return options.labels
    .map(
      (label) =>
        [
          label,
          mentions(
            tokens,
            all.filter((s) => s.type === label),
          ),
        ] as const,
    )
    .filter(([, m]) => m.length > 0)
    .map(([label, m]) => `${label}: ${m.join(', ')}`)
    .join('; ');
}
