/**
 * Checks a parsed tokenizer.json before it reaches @huggingface/tokenizers, which trusts its
 * input: an id of 2^31 sizes an array by it, a null added token or merge list crashes deep
 * inside, a Sequence nested 100,000 deep overflows the stack. Every rejection names the file and
 * the field (`model.vocab["abc"]`, `added_tokens[3].id`, `pre_tokenizer.pretokenizers[0]`).
 */

import { shortValue } from '@peft/core';

/** Component types the library builds, per field; `children` names the list of a Sequence. */
const COMPONENTS = {
  normalizer: {
    children: 'normalizers',
    types: [
      'BertNormalizer',
      'Precompiled',
      'Sequence',
      'Replace',
      'NFC',
      'NFD',
      'NFKC',
      'NFKD',
      'Strip',
      'StripAccents',
      'Lowercase',
      'Prepend',
    ],
  },
  pre_tokenizer: {
    children: 'pretokenizers',
    types: [
      'BertPreTokenizer',
      'Sequence',
      'Whitespace',
      'WhitespaceSplit',
      'Metaspace',
      'ByteLevel',
      'Split',
      'Punctuation',
      'Digits',
      'Replace',
      'FixedLength',
    ],
  },
  post_processor: {
    children: 'processors',
    types: ['TemplateProcessing', 'ByteLevel', 'BertProcessing', 'RobertaProcessing', 'Sequence'],
  },
  decoder: {
    children: 'decoders',
    types: ['ByteLevel', 'WordPiece', 'Metaspace', 'BPEDecoder', 'CTC', 'Sequence', 'Replace', 'Fuse', 'Strip', 'ByteFallback'],
  },
} as const;

const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'] as const;
/** Deepest Sequence nesting accepted (real files nest one or two). */
export const MAX_COMPONENT_DEPTH = 16;
/** Most components in one field (all Sequence levels together). */
const MAX_COMPONENTS = 1000;
/** Ids may leave gaps, but at most this many beyond twice the number of tokens. */
const ID_SLACK = 65536;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A value from tokenizer.json for a message: its JSON, cut to 80 characters. */
const shown = (v: unknown) => shortValue(v, { max: 80 });

class Checker {
  constructor(private readonly file: string) {}

  fail(field: string, why: string): never {
    throw new Error(`${this.file}: ${field} ${why}`);
  }

  /** `field` is `value`: expected … */
  bad(field: string, value: unknown, expected: string): never {
    this.fail(field, value === undefined ? `is missing: expected ${expected}` : `is ${shown(value)}: expected ${expected}`);
  }

  component(field: keyof typeof COMPONENTS, value: unknown): void {
    if (value === null || value === undefined) return;
    const spec = COMPONENTS[field];
    let count = 0;
    // Iterative walk: the depth bound is checked before anything recurses.
    const stack: { node: unknown; path: string; depth: number }[] = [{ node: value, path: field, depth: 0 }];
    while (stack.length > 0) {
      const { node, path, depth } = stack.pop() as { node: unknown; path: string; depth: number };
      if (++count > MAX_COMPONENTS) this.fail(field, `has more than ${MAX_COMPONENTS} components`);
      if (!isObject(node)) this.bad(path, node, `an object with a "type" (one of ${spec.types.join(', ')})`);
      const type = node.type;
      if (typeof type !== 'string' || !(spec.types as readonly string[]).includes(type)) {
        this.bad(`${path}.type`, type, `one of ${spec.types.join(', ')}`);
      }
      if (type === 'Sequence') {
        if (depth >= MAX_COMPONENT_DEPTH) this.fail(path, `nests Sequences more than ${MAX_COMPONENT_DEPTH} deep`);
        const children = node[spec.children];
        if (!Array.isArray(children)) this.bad(`${path}.${spec.children}`, children, 'a list');
        children.forEach((c, i) => {
          stack.push({ node: c, path: `${path}.${spec.children}[${i}]`, depth: depth + 1 });
        });
        continue;
      }
      if (type === 'Split' || type === 'Replace') this.pattern(`${path}.pattern`, node.pattern);
      if (field === 'post_processor') this.postProcessor(path, type as string, node);
    }
  }

  private pattern(field: string, p: unknown): void {
    if (!isObject(p)) this.bad(field, p, '{"String": text} or {"Regex": pattern}');
    if (typeof p.String === 'string') return;
    if (typeof p.Regex !== 'string') this.bad(field, p, '{"String": text} or {"Regex": pattern}');
    if (p.Regex.length > 10_000) this.fail(field, `is a regex of ${p.Regex.length} characters: at most 10000`);
    const at = nestedRepeat(p.Regex);
    if (at >= 0) {
      this.fail(
        `${field}.Regex`,
        `${shown(p.Regex)} repeats a group that itself repeats (the quantifier at character ${at + 1}): such a regex can take exponential time on some texts; write it without nested repetition`,
      );
    }
  }

  private postProcessor(path: string, type: string, node: Json): void {
    if (type === 'TemplateProcessing') {
      for (const key of ['single', 'pair']) {
        const list = node[key];
        if (list === undefined) continue;
        if (!Array.isArray(list)) this.bad(`${path}.${key}`, list, 'a list of {"SpecialToken": …} or {"Sequence": …} items');
        list.forEach((item, i) => {
          const inner = isObject(item) ? (item.SpecialToken ?? item.Sequence) : undefined;
          if (!isObject(inner) || typeof inner.id !== 'string' || !Number.isInteger(inner.type_id ?? 0)) {
            this.bad(
              `${path}.${key}[${i}]`,
              item,
              '{"SpecialToken": {"id": text, "type_id": n}} or {"Sequence": {"id": "A"|"B", "type_id": n}}',
            );
          }
        });
      }
      const special = node.special_tokens;
      if (special !== undefined && special !== null) {
        if (!isObject(special)) this.bad(`${path}.special_tokens`, special, 'an object');
        for (const [name, entry] of Object.entries(special)) {
          const ok =
            isObject(entry) &&
            typeof entry.id === 'string' &&
            Array.isArray(entry.ids) &&
            entry.ids.every((x) => Number.isInteger(x) && x >= 0) &&
            Array.isArray(entry.tokens) &&
            entry.tokens.every((t) => typeof t === 'string');
          if (!ok) this.bad(`${path}.special_tokens[${shown(name)}]`, entry, '{"id": text, "ids": [ids], "tokens": [texts]}');
        }
      }
    } else if (type === 'BertProcessing' || type === 'RobertaProcessing') {
      for (const key of ['sep', 'cls']) {
        const v = node[key];
        if (!(Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && Number.isInteger(v[1]) && v[1] >= 0)) {
          this.bad(`${path}.${key}`, v, '[token, id]');
        }
      }
    }
  }
}

/**
 * Validates the fields of tokenizer.json the tokenizer uses; returns nothing, throws an Error
 * naming `file` and the field for the first problem found.
 */
export function checkTokenizerJson(tok: Json, file = 'tokenizer.json'): void {
  const c: Checker = new Checker(file);
  const model = tok.model;
  if (!isObject(model)) c.bad('model', model, 'an object with "type" and "vocab"');
  const type = model.type;
  if (type === undefined) c.fail('model.type', `is missing: expected one of ${MODEL_TYPES.join(', ')}`);
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type))
    c.bad('model.type', type, `one of ${MODEL_TYPES.join(', ')}`);

  const added = tok.added_tokens ?? [];
  if (!Array.isArray(added)) c.bad('added_tokens', added, 'a list');

  // token → id of the model's vocabulary
  const vocab = new Map<string, number>();
  const byId = new Map<number, string>();
  let count: number;
  if (type === 'Unigram') {
    const list = model.vocab;
    if (!Array.isArray(list)) c.bad('model.vocab', list, 'a list of [token, score] pairs (Unigram)');
    count = list.length;
    list.forEach((entry, i) => {
      if (
        !(
          Array.isArray(entry) &&
          entry.length === 2 &&
          typeof entry[0] === 'string' &&
          typeof entry[1] === 'number' &&
          Number.isFinite(entry[1])
        )
      ) {
        c.bad(`model.vocab[${i}]`, entry, '[token, finite score]');
      }
      const token = entry[0] as string;
      if (vocab.has(token)) c.fail(`model.vocab[${i}]`, `repeats the token ${shown(token)} of model.vocab[${vocab.get(token)}]`);
      vocab.set(token, i);
      byId.set(i, token);
    });
    const unk = model.unk_id;
    if (unk !== undefined && unk !== null && !(Number.isInteger(unk) && (unk as number) >= 0 && (unk as number) < count)) {
      c.bad('model.unk_id', unk, `null or an id below the vocabulary size ${count}`);
    }
  } else {
    const obj = model.vocab;
    if (!isObject(obj)) c.bad('model.vocab', obj, `an object mapping tokens to ids (${type})`);
    const entries = Object.entries(obj);
    count = entries.length;
    const limit = 2 * (count + added.length) + ID_SLACK;
    for (const [token, id] of entries) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit) {
        c.bad(`model.vocab[${shown(token)}]`, id, `a non-negative integer id below ${limit} (twice the number of tokens plus ${ID_SLACK})`);
      }
      const other = byId.get(id);
      if (other !== undefined) c.fail(`model.vocab[${shown(token)}]`, `has id ${id}, which model.vocab[${shown(other)}] has too`);
      vocab.set(token, id);
      byId.set(id, token);
    }
    if (type === 'BPE') checkMerges(c, model.merges, vocab);
    for (const key of ['unk_token', 'continuing_subword_prefix', 'end_of_word_suffix']) {
      const v = model[key];
      if (v !== undefined && v !== null && typeof v !== 'string') c.bad(`model.${key}`, v, 'a string or null');
    }
  }

  const limit = 2 * (count + added.length) + ID_SLACK;
  const addedById = new Map<number, string>();
  added.forEach((t, i) => {
    const field = `added_tokens[${i}]`;
    if (!isObject(t)) c.bad(field, t, 'an object with "id" and "content"');
    if (typeof t.id !== 'number' || !Number.isInteger(t.id) || t.id < 0 || t.id >= limit) {
      c.bad(`${field}.id`, t.id, `a non-negative integer id below ${limit}`);
    }
    if (typeof t.content !== 'string' || t.content === '') c.bad(`${field}.content`, t.content, 'a non-empty string');
    for (const flag of ['special', 'single_word', 'lstrip', 'rstrip', 'normalized']) {
      if (t[flag] !== undefined && typeof t[flag] !== 'boolean') c.bad(`${field}.${flag}`, t[flag], 'true or false');
    }
    const id = t.id as number;
    const content = t.content as string;
    const twin = addedById.get(id);
    if (twin !== undefined && twin !== content) c.fail(`${field}.id`, `is ${id}, which added token ${shown(twin)} has too`);
    const inVocab = byId.get(id);
    if (inVocab !== undefined && inVocab !== content) {
      c.fail(`${field}.id`, `is ${id}, which the vocabulary gives to ${shown(inVocab)}, not to ${shown(content)}`);
    }
    addedById.set(id, content);
  });

  c.component('normalizer', tok.normalizer);
  c.component('pre_tokenizer', tok.pre_tokenizer);
  c.component('post_processor', tok.post_processor);
  c.component('decoder', tok.decoder);
}

/**
 * Where a regex repeats (`*`, `+`, `{m,}`, `{m,n}` with n > 1) a group that contains a repetition
 * itself, as in `(a+)+` or `(\\w*,)*`: the shape that makes a backtracking engine take exponential
 * time. Returns the index of the outer quantifier, or -1. Character classes and escapes are skipped.
 */
export function nestedRepeat(regex: string): number {
  // For each open group: does it contain a quantifier?
  const open: boolean[] = [];
  let lastGroupRepeats = false;
  for (let i = 0; i < regex.length; i++) {
    const ch = regex[i];
    if (ch === '\\') {
      i++;
      lastGroupRepeats = false;
      continue;
    }
    if (ch === '[') {
      // skip the class: a "]" right after "[" or "[^" is literal
      let j = i + 1;
      if (regex[j] === '^') j++;
      if (regex[j] === ']') j++;
      while (j < regex.length && regex[j] !== ']') j += regex[j] === '\\' ? 2 : 1;
      i = j;
      lastGroupRepeats = false;
      continue;
    }
    if (ch === '(') {
      open.push(false);
      lastGroupRepeats = false;
      continue;
    }
    if (ch === ')') {
      lastGroupRepeats = open.pop() ?? false;
      if (lastGroupRepeats && open.length > 0) open[open.length - 1] = true;
      continue;
    }
    let repeats = ch === '*' || ch === '+';
    if (ch === '{') {
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(regex.slice(i, i + 24));
      if (m) repeats = m[2] === ',' ? m[3] === '' || Number(m[3]) > 1 : Number(m[1]) > 1;
    }
    if (repeats) {
      if (lastGroupRepeats && regex[i - 1] === ')') return i;
      if (open.length > 0) open[open.length - 1] = true;
    }
    lastGroupRepeats = false;
  }
  return -1;
}

function checkMerges(c: Checker, merges: unknown, vocab: ReadonlyMap<string, number>): void {
  if (!Array.isArray(merges)) c.bad('model.merges', merges, 'a list of merges ("a b" or ["a", "b"])');
  merges.forEach((m, i) => {
    let pair: unknown[];
    if (typeof m === 'string') pair = m.split(' ');
    else if (Array.isArray(m)) pair = m;
    else c.bad(`model.merges[${i}]`, m, '"a b" or ["a", "b"]');
    if (pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
      c.bad(`model.merges[${i}]`, m, 'two tokens ("a b" or ["a", "b"])');
    for (const part of pair as string[]) {
      if (!vocab.has(part)) c.fail(`model.merges[${i}]`, `merges ${shown(part)}, which is not in model.vocab`);
    }
  });
}
