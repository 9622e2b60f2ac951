import { describe, expect, it } from 'vitest';
import { toBioTags } from './bio.js';
import {
  extractAllLabels,
  extractPerLabel,
  nerExample,
  nerInstruction,
  nerOutput,
  nerTrainingText,
  parseTagPerLabel,
  sentenceText,
  tagAllLabels,
  tagPerLabel,
} from './formats.js';
import { parsePubTator } from './pubtator.js';
import { documentsToSentences, mergeSpansByPriority, type Sentence } from './sentence.js';

// The study's example sentence, as PubTator text with character offsets (IFO's is one word).
const STUDY_EXAMPLE = [
  "1|t|Mesna significantly reduces IFO's genotoxicity",
  '1|a|',
  '1\t0\t5\tMesna\tChemical\tC1',
  '1\t28\t31\tIFO\tChemical\tC2',
  '1\t34\t46\tgenotoxicity\tDisease\tD1',
  '',
].join('\n');

function studySentence(): Sentence {
  const { sentences, warnings } = documentsToSentences(parsePubTator(STUDY_EXAMPLE).documents);
  expect(warnings).toEqual([]);
  return sentences[0]!;
}

describe("Study B's input / output formats", () => {
  const s = studySentence();

  it('tokenises the sentence as in the study', () => {
    expect(s).toEqual({
      id: '1-0',
      tokens: ['Mesna', 'significantly', 'reduces', 'IFO', "'s", 'genotoxicity'],
      spans: [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Chemical', start: 3, end: 4 },
        { type: 'Disease', start: 5, end: 6 },
      ],
    });
    expect(sentenceText(s)).toBe("Mesna significantly reduces IFO 's genotoxicity");
  });

  it('writes every row of the study table exactly', () => {
    expect(tagPerLabel(s, 'Disease')).toBe("Mesna significantly reduces IFO 's @@genotoxicity##");
    expect(tagPerLabel(s, 'Chemical')).toBe("@@Mesna## significantly reduces @@IFO## 's genotoxicity");
    expect(tagAllLabels(s)).toBe(
      "[Chemical]Mesna[/Chemical] significantly reduces [Chemical]IFO[/Chemical] 's [Disease]genotoxicity[/Disease]",
    );
    expect(extractPerLabel(s, 'Disease')).toBe('genotoxicity');
    expect(extractPerLabel(s, 'Chemical')).toBe('Mesna, IFO');
    expect(extractAllLabels(s)).toBe('Disease: genotoxicity; Chemical: Mesna, IFO');
    expect(nerOutput(s, { method: 'tagging', label: 'Disease' })).toBe("Mesna significantly reduces IFO 's @@genotoxicity##");
    expect(nerOutput(s, { method: 'extraction' })).toBe('Disease: genotoxicity; Chemical: Mesna, IFO');
  });

  it('writes the training text with and without the instruction', () => {
    expect(nerTrainingText(s, { method: 'extraction', label: 'Chemical' })).toBe(
      "Input: Mesna significantly reduces IFO 's genotoxicity\nAnswer: Mesna, IFO",
    );
    expect(nerExample(s, { method: 'tagging', label: 'Disease', instruction: true })).toEqual({
      prompt:
        'The task is to identify Disease entities in the input. Please rewrite the input text and surround the start and end of Disease entities with @@ and ##, respectively.\n' +
        "Input: Mesna significantly reduces IFO 's genotoxicity\nAnswer:",
      answer: " Mesna significantly reduces IFO 's @@genotoxicity##",
    });
    expect(nerInstruction('Chemical')).toBe(
      'The task is to identify Chemical entities in the input. Please rewrite the input text and surround the start and end of Chemical entities with @@ and ##, respectively.',
    );
    expect(() => nerExample(s, { method: 'extraction', instruction: true })).toThrow('pass the instruction text as a string');
  });

  it('gives BIO tags', () => {
    expect(toBioTags(s)).toEqual(['B-Chemical', 'O', 'O', 'B-Chemical', 'O', 'B-Disease']);
  });

  it('reads a tagging output back into spans', () => {
    expect(parseTagPerLabel(tagPerLabel(s, 'Chemical'), 'Chemical')).toEqual({
      tokens: s.tokens,
      spans: [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Chemical', start: 3, end: 4 },
      ],
    });
    expect(parseTagPerLabel('@@a b## c @@d e', 'X').spans).toEqual([{ type: 'X', start: 0, end: 2 }]);
  });
});

describe('formats of a sentence without entities and with multi-token entities', () => {
  const s: Sentence = { id: 'x', tokens: ['No', 'effect', 'of', 'valproic', 'acid', '.'], spans: [{ type: 'Chemical', start: 3, end: 5 }] };

  it('extraction says None for labels without mentions; tagging leaves the sentence as it is', () => {
    expect(extractPerLabel(s, 'Disease')).toBe('None');
    expect(extractAllLabels(s)).toBe('Disease: None; Chemical: valproic acid');
    expect(extractAllLabels({ ...s, spans: [] })).toBe('Disease: None; Chemical: None');
    expect(tagPerLabel(s, 'Disease')).toBe('No effect of valproic acid .');
    expect(tagPerLabel(s, 'Chemical')).toBe('No effect of @@valproic acid## .');
    expect(tagAllLabels(s)).toBe('No effect of [Chemical]valproic acid[/Chemical] .');
  });
});

describe('mergeSpansByPriority', () => {
  it('keeps Disease over an overlapping Chemical', () => {
    const merged = mergeSpansByPriority(
      [
        { type: 'Chemical', start: 0, end: 2 },
        { type: 'Disease', start: 1, end: 3 },
        { type: 'Chemical', start: 4, end: 5 },
      ],
      ['Disease', 'Chemical'],
    );
    expect(merged).toEqual([
      { type: 'Disease', start: 1, end: 3 },
      { type: 'Chemical', start: 4, end: 5 },
    ]);
  });
});

describe('documentsToSentences', () => {
  it('reports overlapping mentions and keeps the earlier, longer one', () => {
    const src = '5|t|valproic acid toxicity\n5\t0\t13\tvalproic acid\tChemical\tC\n5\t9\t22\tacid toxicity\tDisease\tD\n\n';
    const { sentences, warnings } = documentsToSentences(parsePubTator(src).documents);
    expect(sentences[0]!.spans).toEqual([{ type: 'Chemical', start: 0, end: 2 }]);
    expect(warnings).toEqual(['document 5: Disease "acid toxicity" at 9-22 overlaps Chemical "valproic acid" at 0-13; dropped']);
  });
});
