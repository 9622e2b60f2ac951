import { describe, expect, it } from 'vitest';
import type { Span } from '../span.js';
import { formatExtraction, formatTagged } from './format.js';
import { mergeByPriority } from './merge-by-priority.js';
import { parseExtraction } from './parse-extraction.js';
import { parseTagged } from './parse-tagged.js';

// The example sentence of the study's format table (STUDIES.md, Study B).
const tokens = ['Mesna', 'significantly', 'reduces', 'IFO', "'s", 'genotoxicity'];
const chemical: Span[] = [
  { type: 'Chemical', start: 0, end: 1 },
  { type: 'Chemical', start: 3, end: 4 },
];
const disease: Span[] = [{ type: 'Disease', start: 5, end: 6 }];
const all = [...chemical, ...disease];

describe("the study's format table round-trips", () => {
  it('tagging, Disease only', () => {
    const out = formatTagged(tokens, all, { format: 'markers', label: 'Disease' });
    expect(out).toBe("Mesna significantly reduces IFO 's @@genotoxicity##");
    expect(parseTagged(out, tokens, { format: 'markers', label: 'Disease' })).toEqual({ spans: disease, unaligned: 0, warnings: [] });
  });

  it('tagging, Chemical only', () => {
    const out = formatTagged(tokens, all, { format: 'markers', open: '@@', close: '##', label: 'Chemical' });
    expect(out).toBe("@@Mesna## significantly reduces @@IFO## 's genotoxicity");
    expect(parseTagged(out, tokens, { format: 'markers', label: 'Chemical' })).toEqual({ spans: chemical, unaligned: 0, warnings: [] });
  });

  it('tagging, all labels', () => {
    const out = formatTagged(tokens, all, { format: 'xml' });
    expect(out).toBe("[Chemical]Mesna[/Chemical] significantly reduces [Chemical]IFO[/Chemical] 's [Disease]genotoxicity[/Disease]");
    expect(parseTagged(out, tokens, { format: 'xml', labels: ['Chemical', 'Disease'] }).spans).toEqual(all);
    expect(parseTagged(out, tokens, { format: 'xml' }).spans).toEqual(all);
  });

  it('extraction, Disease only and Chemical only', () => {
    expect(formatExtraction(tokens, all, { label: 'Disease' })).toBe('genotoxicity');
    expect(formatExtraction(tokens, all, { label: 'Chemical' })).toBe('Mesna, IFO');
    expect(parseExtraction('genotoxicity', tokens, { label: 'Disease' })).toEqual({ spans: disease, unaligned: 0, warnings: [] });
    expect(parseExtraction('Mesna, IFO', tokens, { label: 'Chemical' })).toEqual({ spans: chemical, unaligned: 0, warnings: [] });
  });

  it('extraction, all labels', () => {
    const out = formatExtraction(tokens, all, { allLabels: true, labels: ['Disease', 'Chemical'] });
    expect(out).toBe('Disease: genotoxicity; Chemical: Mesna, IFO');
    expect(parseExtraction(out, tokens, { allLabels: true, labels: ['Disease', 'Chemical'] })).toEqual({
      spans: all,
      unaligned: 0,
      warnings: [],
    });
  });

  it('per-label runs merge with priority Disease > Chemical', () => {
    const chem = parseTagged("@@Mesna## significantly reduces @@IFO 's genotoxicity##", tokens, { format: 'markers', label: 'Chemical' });
    const dis = parseTagged("Mesna significantly reduces IFO 's @@genotoxicity##", tokens, { format: 'markers', label: 'Disease' });
    expect(mergeByPriority({ Disease: dis.spans, Chemical: chem.spans }, ['Disease', 'Chemical'])).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Disease', start: 5, end: 6 },
    ]);
  });
});

describe('parseTagged tolerates what models emit', () => {
  const chem = { format: 'markers', label: 'Chemical' } as const;

  it('spaces inside markers, markers glued to punctuation, case changes', () => {
    expect(parseTagged("@@ Mesna ## significantly reduces @@ifo##'s genotoxicity.", tokens, chem)).toEqual({
      spans: chemical,
      unaligned: 0,
      warnings: [],
    });
  });

  it('inserted and dropped words: entities are kept when their tokens align', () => {
    const r = parseTagged('Indeed @@Mesna## reduces strongly the @@IFO## genotoxicity', tokens, chem);
    expect(r.spans).toEqual(chemical);
    expect(r.unaligned).toBe(0);
  });

  it('an entity on text that is not in the input is counted as unaligned', () => {
    const r = parseTagged("@@Mesna## significantly reduces @@cyclophosphamide## 's genotoxicity", tokens, chem);
    expect(r.spans).toEqual([chemical[0]]);
    expect(r.unaligned).toBe(1);
  });

  it('an entity cutting a token in the middle is unaligned', () => {
    const r = parseTagged("Mes@@na## significantly reduces IFO 's genotoxicity", tokens, chem);
    expect(r.spans).toEqual([]);
    expect(r.unaligned).toBe(1);
  });

  it('unclosed, stray and nested markers', () => {
    const unclosed = parseTagged("@@Mesna## significantly reduces @@IFO 's genotoxicity", tokens, chem);
    expect(unclosed.spans).toEqual([chemical[0]]);
    expect(unclosed.unaligned).toBe(1);
    expect(unclosed.warnings).toEqual(['unclosed marker @@ at offset 32']);
    const stray = parseTagged("Mesna## significantly reduces @@IFO## 's genotoxicity", tokens, chem);
    expect(stray.spans).toEqual([chemical[1]]);
    expect(stray.warnings).toEqual(['stray closing marker ## at offset 5']);
    const nested = parseTagged("@@Mesna @@significantly## reduces## IFO 's genotoxicity", tokens, chem);
    expect(nested.spans).toEqual([
      { type: 'Chemical', start: 0, end: 3 },
      { type: 'Chemical', start: 1, end: 2 },
    ]);
  });

  it('xml: unknown labels are dropped, literal brackets stay text, crossing tags pair by name', () => {
    const t = ['[', '3H', ']', 'thymidine', 'and', 'Ca', 'uptake'];
    const r = parseTagged('[ 3H ] [Chemical]thymidine[/Chemical] and [Gene]Ca[/Gene] uptake', t, {
      format: 'xml',
      labels: ['Chemical', 'Disease'],
    });
    expect(r.spans).toEqual([{ type: 'Chemical', start: 3, end: 4 }]);
    expect(r.warnings).toEqual(['unknown label [Gene] at offset 42: entity dropped']);
    const crossing = parseTagged('[chemical]Mesna significantly [Disease]reduces[/CHEMICAL] IFO[/Disease]', tokens, {
      format: 'xml',
      labels: ['Chemical', 'Disease'],
    });
    expect(crossing.spans).toEqual([
      { type: 'Chemical', start: 0, end: 3 },
      { type: 'Disease', start: 2, end: 4 },
    ]);
  });

  it('empty output, or output unrelated to the input', () => {
    expect(parseTagged('', tokens, chem)).toEqual({ spans: [], unaligned: 0, warnings: [] });
    expect(parseTagged('@@##', tokens, chem).spans).toEqual([]);
    expect(parseTagged('@@zzz## @@qqq##', tokens, chem)).toMatchObject({ spans: [], unaligned: 2 });
  });
});

describe('parseExtraction', () => {
  it('marks every occurrence of a mention', () => {
    const t = ['IFO', 'and', 'ifo', 'plus', 'IFO'];
    expect(parseExtraction('IFO', t, { label: 'Chemical' }).spans).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Chemical', start: 4, end: 5 },
    ]);
    // No exact-case hit: falls back to case-insensitive.
    expect(parseExtraction('Plus', t, { label: 'Chemical' }).spans).toEqual([{ type: 'Chemical', start: 3, end: 4 }]);
  });

  it('matches across spacing drift and keeps commas inside names', () => {
    const t = ['1,2-dichloroethane', 'and', 'IFO', "'s", 'toxicity'];
    expect(parseExtraction("1,2-dichloroethane, IFO's", t, { label: 'Chemical' }).spans).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Chemical', start: 2, end: 4 },
    ]);
    // A model's "1, 2-dichloroethane" is one mention when neither piece is a token by itself...
    const glued = ['1,2-dichloroethane', 'and', 'IFO'];
    expect(parseExtraction('1, 2-dichloroethane, IFO', glued, { label: 'Chemical' }).spans).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Chemical', start: 2, end: 3 },
    ]);
    // ...and two when both pieces are (then every occurrence of each is marked).
    const split = ['1', ',', '2-dichloroethane', 'and', 'IFO'];
    expect(parseExtraction('1, 2-dichloroethane', split, { label: 'Chemical' }).spans).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Chemical', start: 2, end: 3 },
    ]);
  });

  it('counts mentions not in the input, ignores "none", strips a repeated label', () => {
    expect(parseExtraction('None', tokens, { label: 'Disease' })).toEqual({ spans: [], unaligned: 0, warnings: [] });
    expect(parseExtraction('Chemical: Mesna, aspirin.', tokens, { label: 'Chemical' })).toMatchObject({
      spans: [chemical[0]],
      unaligned: 1,
    });
  });

  it('all labels: unknown labels, unlabelled text, newlines', () => {
    const r = parseExtraction('Gene: IFO; genotoxicity\nchemical: Mesna', tokens, { allLabels: true, labels: ['Disease', 'Chemical'] });
    expect(r.spans).toEqual([chemical[0]]);
    expect(r.unaligned).toBe(0);
    expect(r.warnings).toEqual(['unknown label "Gene": its mentions are dropped']);
    const r2 = parseExtraction('genotoxicity; Disease: genotoxicity', tokens, { allLabels: true });
    expect(r2.spans).toEqual(disease);
    expect(r2.unaligned).toBe(1);
  });
});

describe('formatters', () => {
  it('multi-token and nested spans, and rejects crossing ones', () => {
    const t = ['a', 'b', 'c', 'd'];
    expect(
      formatTagged(
        t,
        [
          { type: 'X', start: 0, end: 3 },
          { type: 'X', start: 1, end: 2 },
        ],
        { format: 'markers', label: 'X' },
      ),
    ).toBe('@@a @@b## c## d');
    expect(() =>
      formatTagged(
        t,
        [
          { type: 'X', start: 0, end: 2 },
          { type: 'Y', start: 1, end: 3 },
        ],
        { format: 'xml' },
      ),
    ).toThrow(/cross/);
    expect(() => formatTagged(t, [{ type: 'X', start: 2, end: 9 }], { format: 'xml' })).toThrow(/not a non-empty token range/);
    expect(formatExtraction(t, [], { allLabels: true, labels: ['X'] })).toBe('');
  });
});

describe('mergeByPriority', () => {
  it('gives each token one label: priority first, then left to right, longer first', () => {
    const merged = mergeByPriority(
      [
        { type: 'Chemical', start: 0, end: 2 },
        { type: 'Disease', start: 1, end: 3 },
        { type: 'Chemical', start: 3, end: 4 },
        { type: 'Chemical', start: 3, end: 5 },
        { type: 'Other', start: 5, end: 6 },
      ],
      ['Disease', 'Chemical'],
    );
    expect(merged).toEqual([
      { type: 'Disease', start: 1, end: 3 },
      { type: 'Chemical', start: 3, end: 5 },
      { type: 'Other', start: 5, end: 6 },
    ]);
  });
});

// --- fuzz -----------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fuzz: malformed outputs never throw and spans stay in bounds', () => {
  const rand = mulberry32(12345);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
  const words = ['Mesna', 'IFO', "'s", 'genotoxicity', 'the', 'of', ',', '.', '(', ')', '[', ']', 'α-tocopherol', 'İstanbul', 'ǅ', '😀'];
  const junk = [
    '@@',
    '##',
    '@',
    '#',
    '[Chemical]',
    '[/Chemical]',
    '[Disease]',
    '[/Disease]',
    '[',
    ']',
    '[/',
    ':',
    ';',
    ',',
    '\n',
    ' ',
    '  ',
    '\t',
    'Disease:',
    'Chemical:',
    '\u0000',
    '\uD800',
    '\uDC00',
    '\u200B',
    'ﬃ',
  ];
  const randomUnicode = () => {
    let s = '';
    const n = Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rand() * 0xffff));
    return s;
  };

  function mutate(clean: string): string {
    let s = clean;
    const ops = 1 + Math.floor(rand() * 6);
    for (let k = 0; k < ops; k++) {
      const at = Math.floor(rand() * (s.length + 1));
      const r = rand();
      if (r < 0.35) s = s.slice(0, at) + pick(junk) + s.slice(at);
      else if (r < 0.55) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rand() * 4));
      else if (r < 0.65) s = s.slice(0, at);
      else if (r < 0.8) s = s.slice(0, at) + randomUnicode() + s.slice(at);
      else if (r < 0.9) s = s.slice(0, at) + pick(words) + s.slice(at);
      else s = rand() < 0.5 ? s.toUpperCase() : s.replace(/ /g, '');
    }
    return s;
  }

  function check(r: { spans: Span[]; unaligned: number; warnings: string[] }, n: number): void {
    for (const s of r.spans) {
      expect(Number.isInteger(s.start) && Number.isInteger(s.end)).toBe(true);
      expect(s.start >= 0 && s.start < s.end && s.end <= n).toBe(true);
      expect(typeof s.type).toBe('string');
    }
    expect(Number.isInteger(r.unaligned) && r.unaligned >= 0).toBe(true);
    expect(Array.isArray(r.warnings)).toBe(true);
  }

  it('5000 random malformed outputs across every format', () => {
    for (let iter = 0; iter < 5000; iter++) {
      const n = Math.floor(rand() * 12);
      const toks = Array.from({ length: n }, () => pick(words));
      const spans: Span[] = [];
      for (let i = 0; i < n; i++) {
        if (rand() < 0.3) {
          const end = Math.min(n, i + 1 + Math.floor(rand() * 2));
          spans.push({ type: rand() < 0.5 ? 'Chemical' : 'Disease', start: i, end });
          i = end;
        }
      }
      const which = iter % 4;
      const clean =
        which === 0
          ? formatTagged(toks, spans, { format: 'markers', label: 'Chemical' })
          : which === 1
            ? formatTagged(toks, spans, { format: 'xml' })
            : which === 2
              ? formatExtraction(toks, spans, { label: 'Disease' })
              : formatExtraction(toks, spans, { allLabels: true, labels: ['Disease', 'Chemical'] });
      const out = rand() < 0.1 ? randomUnicode() : mutate(clean);
      check(parseTagged(out, toks, { format: 'markers', label: 'Chemical' }), n);
      check(parseTagged(out, toks, { format: 'markers', open: '<<', close: '<<', label: 'X' }), n);
      check(parseTagged(out, toks, { format: 'xml', labels: ['Chemical', 'Disease'] }), n);
      check(parseTagged(out, toks, { format: 'xml' }), n);
      check(parseExtraction(out, toks, { label: 'Disease' }), n);
      check(parseExtraction(out, toks, { allLabels: true, labels: ['Disease', 'Chemical'] }), n);
      check(parseExtraction(out, toks, { allLabels: true }), n);
    }
  });

  it('clean outputs of random sentences round-trip exactly', () => {
    for (let iter = 0; iter < 1000; iter++) {
      const n = 1 + Math.floor(rand() * 10);
      // Distinct words, so that extraction's "every occurrence" equals the gold spans.
      const toks = Array.from({ length: n }, (_, i) => `${pick(words)}${i}`);
      const spans: Span[] = [];
      for (let i = 0; i < n; i++) {
        if (rand() < 0.3) {
          const end = Math.min(n, i + 1 + Math.floor(rand() * 3));
          spans.push({ type: rand() < 0.5 ? 'Chemical' : 'Disease', start: i, end });
          i = end;
        }
      }
      const chem = spans.filter((s) => s.type === 'Chemical');
      const tagged = formatTagged(toks, spans, { format: 'markers', label: 'Chemical' });
      expect(parseTagged(tagged, toks, { format: 'markers', label: 'Chemical' }).spans).toEqual(chem);
      expect(parseTagged(formatTagged(toks, spans, { format: 'xml' }), toks, { format: 'xml' }).spans).toEqual(spans);
      expect(parseExtraction(formatExtraction(toks, spans, { label: 'Chemical' }), toks, { label: 'Chemical' }).spans).toEqual(chem);
      const ex = formatExtraction(toks, spans, { allLabels: true, labels: ['Disease', 'Chemical'] });
      expect(parseExtraction(ex, toks, { allLabels: true, labels: ['Disease', 'Chemical'] }).spans).toEqual(spans);
    }
  });
});
