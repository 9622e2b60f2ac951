import type { Sentence, TokenSpan } from './sentence.js';

/** BC5CDR's entity types, in the order the all-labels extraction format lists them. */
export const BC5CDR_LABELS: readonly string[] = ['Disease', 'Chemical'];

/** What an extraction output says for a label with no entity in the sentence. */
export const NO_ENTITY = 'None';

/** The sentence as the model reads it: tokens joined by single spaces. */
export function sentenceText(sentence: Sentence): string {
  return sentence.tokens.join(' ');
}

function spansOf(sentence: Sentence, label?: string): TokenSpan[] {
  return sentence.spans.filter((s) => label === undefined || s.type === label).sort((a, b) => a.start - b.start);
}

function wrap(sentence: Sentence, spans: readonly TokenSpan[], open: (t: string) => string, close: (t: string) => string): string {
  const tokens = [...sentence.tokens];
  for (const s of spans) {
    tokens[s.start] = open(s.type) + tokens[s.start];
    tokens[s.end - 1] = tokens[s.end - 1] + close(s.type);
  }
  return tokens.join(' ');
}

/** Tagging, one label: `Mesna significantly reduces IFO 's @@genotoxicity##` (label Disease). */
export function tagPerLabel(sentence: Sentence, label: string, markers: readonly [string, string] = ['@@', '##']): string {
  return wrap(
    sentence,
    spansOf(sentence, label),
    () => markers[0],
    () => markers[1],
  );
}

/** Tagging, all labels: `[Chemical]Mesna[/Chemical] significantly reduces …`. */
export function tagAllLabels(sentence: Sentence): string {
  return wrap(
    sentence,
    spansOf(sentence),
    (t) => `[${t}]`,
    (t) => `[/${t}]`,
  );
}

function mentionTexts(sentence: Sentence, label: string): string[] {
  return spansOf(sentence, label).map((s) => sentence.tokens.slice(s.start, s.end).join(' '));
}

/** Extraction, one label: mentions in sentence order joined by `, ` (`Mesna, IFO`); `None` when there are none. */
export function extractPerLabel(sentence: Sentence, label: string): string {
  const texts = mentionTexts(sentence, label);
  return texts.length === 0 ? NO_ENTITY : texts.join(', ');
}

/**
 * Extraction, all labels: `Disease: genotoxicity; Chemical: Mesna, IFO`. Every label of `labels` is
 * listed, in that order (default Disease, Chemical, as in the study's example), with `None` for a
 * label without mentions, so the output always has the same shape.
 */
export function extractAllLabels(sentence: Sentence, labels: readonly string[] = BC5CDR_LABELS): string {
  return labels.map((l) => `${l}: ${extractPerLabel(sentence, l)}`).join('; ');
}

export type NerMethod = 'tagging' | 'extraction';

export interface NerFormatOptions {
  method: NerMethod;
  /** One label (per-label run); omitted: all labels. */
  label?: string;
  /** Label order for extraction over all labels. */
  labels?: readonly string[];
  /**
   * Instruction before `Input:`: `true` uses Study B's tagging instruction for `label` (per-label
   * tagging only), a string is used as it is; omitted or `false`: no instruction (input only).
   */
  instruction?: boolean | string;
}

/** The model output for `sentence` in one of Study B's formats. */
export function nerOutput(sentence: Sentence, options: NerFormatOptions): string {
  const { method, label } = options;
  if (method === 'tagging') return label === undefined ? tagAllLabels(sentence) : tagPerLabel(sentence, label);
  if (method === 'extraction') return label === undefined ? extractAllLabels(sentence, options.labels) : extractPerLabel(sentence, label);
  throw new Error(`unknown NER method ${JSON.stringify(method)}: supported are tagging, extraction`);
}

/** Study B's instruction prompt for tagging one entity type. */
export function nerInstruction(entityType: string): string {
  return `The task is to identify ${entityType} entities in the input. Please rewrite the input text and surround the start and end of ${entityType} entities with @@ and ##, respectively.`;
}

/** A causal-LM training example: the loss covers `answer` only. */
export interface PromptAnswer {
  /** `[instruction\n]Input: {sentence}\nAnswer:` */
  prompt: string;
  /** ` {output}` (leading space). */
  answer: string;
}

/**
 * Splits Study B's training text `Input: {sentence}\nAnswer: {output}` (optionally preceded by the
 * instruction and a newline) into the prompt, ending at `Answer:`, and the answer, starting with the
 * space; `prompt + answer` is the full text.
 */
export function nerExample(sentence: Sentence, options: NerFormatOptions): PromptAnswer {
  let instruction = '';
  if (typeof options.instruction === 'string') instruction = `${options.instruction}\n`;
  else if (options.instruction === true) {
    if (options.method !== 'tagging' || options.label === undefined) {
      throw new Error(
        'the study instruction describes per-label tagging (@@ and ##); for other formats pass the instruction text as a string',
      );
    }
    instruction = `${nerInstruction(options.label)}\n`;
  }
  return { prompt: `${instruction}Input: ${sentenceText(sentence)}\nAnswer:`, answer: ` ${nerOutput(sentence, options)}` };
}

/** `prompt + answer`: the training text. */
export function nerTrainingText(sentence: Sentence, options: NerFormatOptions): string {
  const { prompt, answer } = nerExample(sentence, options);
  return prompt + answer;
}

/**
 * Reads a per-label tagging output back into token spans of `label`: whitespace tokens, `@@` opens
 * and `##` closes an entity. Returns the tokens without markers; unbalanced markers are ignored.
 */
export function parseTagPerLabel(
  output: string,
  label: string,
  markers: readonly [string, string] = ['@@', '##'],
): { tokens: string[]; spans: TokenSpan[] } {
  const tokens: string[] = [];
  const spans: TokenSpan[] = [];
  let open: number | undefined;
  for (let word of output
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '')) {
    let opens = false;
    let closes = false;
    if (word.startsWith(markers[0]) && word.length > markers[0].length) {
      opens = true;
      word = word.slice(markers[0].length);
    }
    if (word.endsWith(markers[1]) && word.length > markers[1].length) {
      closes = true;
      word = word.slice(0, -markers[1].length);
    }
    if (opens) open = tokens.length;
    tokens.push(word);
    if (closes && open !== undefined) {
      spans.push({ type: label, start: open, end: tokens.length });
      open = undefined;
    }
  }
  return { tokens, spans };
}
