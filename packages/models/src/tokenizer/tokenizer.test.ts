import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOKENIZER_FIXTURE_FILES, TOKENIZER_FIXTURES, tokenizerFixturePath } from './fixtures.js';
import { loadTokenizer, readTokenizerFiles } from './node.js';
import { createTokenizer } from './tokenizer.js';

// Reference ids (sentencepiece 0.1.97, sp-goldens.json) of the strings used below.
const UNIGRAM_HELLO = [289, 279, 314]; // sp-unigram "hello"
const UNIGRAM_HELLO_WORLD = [289, 279, 314, 308, 279, 274]; // sp-unigram "hello world"
const BPE_HELLO = [322, 259, 331, 331, 329]; // sp-bpe "hello"
const BPE_A = [260]; // sp-bpe "a"

const read = (file: string) => readFileSync(tokenizerFixturePath(file), 'utf8');

function tempDir(files: Record<string, string | Uint8Array>): string {
  const dir = mkdtempSync(join(tmpdir(), 'peft-tokenizer-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

describe('fixture folders', () => {
  it.each(TOKENIZER_FIXTURES)('%s loads with loadTokenizer and round-trips Japanese and English', async (name) => {
    const tok = await loadTokenizer(tokenizerFixturePath(name));
    const files = await readTokenizerFiles(tokenizerFixturePath(name));
    expect(Object.keys(files).sort()).toEqual([...TOKENIZER_FIXTURE_FILES[name]].sort());
    const text = '大規模言語モデルを微調整します。 LoRA fine-tuning';
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
  });
});

describe('special tokens from the configs', () => {
  it('rinna style (T5Tokenizer, spiece.model): appends </s>, pad [PAD], no bos added', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    expect(tok.source).toBe('spiece.model');
    expect([tok.padTokenId, tok.unkTokenId, tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2, 3]);
    expect(tok.vocabSize).toBe(600);
    expect(tok.addBosToken).toBe(false);
    expect(tok.addEosToken).toBe(true);
    expect(tok.encode('hello')).toEqual([...UNIGRAM_HELLO, 3]);
    expect(tok.encode('hello', { addSpecialTokens: false })).toEqual(UNIGRAM_HELLO);
    expect(tok.specialTokens).toMatchObject({ bos: '<s>', eos: '</s>', unk: '<unk>', pad: '[PAD]' });
    expect(tok.specialTokens.all).toEqual(expect.arrayContaining(['[CLS]', '[SEP]', '[MASK]']));
    expect(tok.modelMaxLength).toBe(2048);
  });

  it('special tokens written in the text are single ids for a SentencePiece model too', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    const ids = tok.encode('hello</s>hello', { addSpecialTokens: false });
    expect(ids).toEqual([...UNIGRAM_HELLO, 3, ...UNIGRAM_HELLO]);
    expect(tok.decode(ids)).toBe('hello</s>hello');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hellohello');
    expect(tok.decode([0, 0, ...UNIGRAM_HELLO_WORLD, 3], { skipSpecialTokens: true })).toBe('hello world');
  });

  it('Llama style (LlamaTokenizer, tokenizer.model): add_bos_token adds <s>, no pad token', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-bpe'));
    expect(tok.source).toBe('tokenizer.model');
    expect([tok.unkTokenId, tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([0, 1, 2, null]);
    expect(tok.encode('hello')).toEqual([1, ...BPE_HELLO]);
    // LlamaTokenizer (legacy) writes a space before a special token that follows text
    expect(tok.decode([1, ...BPE_HELLO, 2])).toBe('<s> hello</s>');
    expect(tok.decode([1, ...BPE_HELLO, 2], { skipSpecialTokens: true })).toBe('hello');
  });

  it('rinna style: </s> at the end of the text is not appended again; decode as T5Tokenizer', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    expect(tok.encode('hello</s>')).toEqual([...UNIGRAM_HELLO, 3]);
    expect(tok.encode('hello</s></s>')).toEqual([...UNIGRAM_HELLO, 3, 3]);
    expect(tok.encode('hello</s> ')).toEqual([...UNIGRAM_HELLO, 3, 263, 3]);
    expect(tok.encodeBatch(['hello</s>', 'hello'], { padding: 'longest' }).inputIds).toEqual([
      [...UNIGRAM_HELLO, 3],
      [...UNIGRAM_HELLO, 3],
    ]);
    // a space before a special token that follows text, the whole stripped
    expect(tok.decode([3, ...UNIGRAM_HELLO, 3])).toBe('</s> hello</s>');
    expect(tok.decode([0, 0, ...UNIGRAM_HELLO, 3], { skipSpecialTokens: true })).toBe('hello');
  });

  it('Llama style with legacy: false: no extra ▁ after a special token', () => {
    const config = { ...JSON.parse(read('sp-bpe/tokenizer_config.json')), legacy: false };
    const files = {
      'tokenizer.model': readFileSync(tokenizerFixturePath('sp-bpe/tokenizer.model')),
      'tokenizer_config.json': JSON.stringify(config),
    };
    const nonLegacy = createTokenizer(files);
    const legacy = createTokenizer({ ...files, 'tokenizer_config.json': read('sp-bpe/tokenizer_config.json') });
    // BPE_HELLO starts with "▁" (322): legacy runs the text after </s> through the dummy prefix
    expect(legacy.encode('</s>hello', { addSpecialTokens: false })).toEqual([2, ...BPE_HELLO]);
    expect(nonLegacy.encode('</s>hello', { addSpecialTokens: false })).toEqual([2, ...BPE_HELLO.slice(1)]);
    expect(nonLegacy.encode('hello', { addSpecialTokens: false })).toEqual(BPE_HELLO);
  });

  it('added tokens past the SentencePiece vocabulary (a Llama <pad> at the end) are ids of their own', () => {
    const config = {
      ...JSON.parse(read('sp-bpe/tokenizer_config.json')),
      pad_token: '<pad>',
      added_tokens_decoder: { '520': { content: '<pad>', special: true, lstrip: false, rstrip: false, normalized: false } },
    };
    const tok = createTokenizer({
      'tokenizer.model': readFileSync(tokenizerFixturePath('sp-bpe/tokenizer.model')),
      'tokenizer_config.json': JSON.stringify(config),
    });
    expect(tok.vocabSize).toBe(521);
    expect(tok.padTokenId).toBe(520);
    expect(tok.encode('hello<pad>')).toEqual([1, ...BPE_HELLO, 520]);
    expect(tok.decode([1, ...BPE_HELLO, 520, 520], { skipSpecialTokens: true })).toBe('hello');
  });

  it('add_bos_token / add_eos_token in tokenizer_config.json override tokenizer.json post_processor', () => {
    const config = JSON.parse(read('llama-bpe/tokenizer_config.json'));
    const make = (flags: object) =>
      createTokenizer({
        'tokenizer.json': read('llama-bpe/tokenizer.json'),
        'tokenizer_config.json': JSON.stringify({ ...config, ...flags }),
      });
    expect(make({}).encode('a')).toEqual([1, ...BPE_A]);
    expect(make({ add_bos_token: false }).encode('a')).toEqual(BPE_A);
    expect(make({ add_eos_token: true }).encode('a')).toEqual([1, ...BPE_A, 2]);
    expect(make({ add_bos_token: false, add_eos_token: true }).encode('a')).toEqual([...BPE_A, 2]);
    // neither flag: tokenizer.json's TemplateProcessing (<s> $A) decides
    const { add_bos_token: _b, add_eos_token: _e, ...noFlags } = config;
    const tok = createTokenizer({ 'tokenizer.json': read('llama-bpe/tokenizer.json'), 'tokenizer_config.json': JSON.stringify(noFlags) });
    expect(tok.encode('a')).toEqual([1, ...BPE_A]);
    expect(tok.addBosToken).toBe(true);
  });

  it('special_tokens_map.json wins over tokenizer_config.json; AddedToken objects are read', () => {
    const tok = createTokenizer({
      'tokenizer.json': read('neox-bpe/tokenizer.json'),
      'tokenizer_config.json': JSON.stringify({ eos_token: '<|endoftext|>', pad_token: null }),
      'special_tokens_map.json': JSON.stringify({ pad_token: { content: '<|padding|>', lstrip: false, special: true } }),
    });
    expect(tok.padTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.specialTokens.pad).toBe('<|padding|>');
  });

  it('a SentencePiece model alone takes its special ids from the model and adds nothing', () => {
    const tok = createTokenizer({ 'spiece.model': readFileSync(tokenizerFixturePath('sp-unigram/spiece.model')) });
    expect([tok.padTokenId, tok.unkTokenId, tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2, 3]);
    expect(tok.encode('hello')).toEqual(UNIGRAM_HELLO);
  });

  it("prefer: 'sentencepiece' uses tokenizer.model of a folder that also has tokenizer.json", async () => {
    const fast = await loadTokenizer(tokenizerFixturePath('llama-bpe'));
    const slow = await loadTokenizer(tokenizerFixturePath('llama-bpe'), { prefer: 'sentencepiece' });
    expect(fast.source).toBe('tokenizer.json');
    expect(slow.source).toBe('tokenizer.model');
    const text = '今日は良い天気ですね。 The quick brown fox 🍣';
    expect(slow.encode(text)).toEqual(fast.encode(text));
  });

  it('decode of an empty list is empty; an unknown id is an error', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('neox-bpe'));
    expect(tok.decode([])).toBe('');
    expect(tok.encode('')).toEqual([]);
    expect(() => tok.decode([tok.vocabSize])).toThrow(
      `decode: id ${tok.vocabSize} is not a token id of this tokenizer (0 to ${tok.vocabSize - 1})`,
    );
  });
});

describe('encodeBatch', () => {
  it('pads right with [PAD] to the longest and masks the padding', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    const batch = tok.encodeBatch(['hello world', 'hello'], { padding: 'longest' });
    expect(batch.inputIds).toEqual([
      [...UNIGRAM_HELLO_WORLD, 3],
      [...UNIGRAM_HELLO, 3, 0, 0, 0],
    ]);
    expect(batch.attentionMask).toEqual([
      [1, 1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0, 0, 0],
    ]);
  });

  it('pads left when asked, or when tokenizer_config.json says padding_side left', () => {
    const files = {
      'spiece.model': readFileSync(tokenizerFixturePath('sp-unigram/spiece.model')),
      'tokenizer_config.json': JSON.stringify({ ...JSON.parse(read('sp-unigram/tokenizer_config.json')), padding_side: 'left' }),
    };
    const tok = createTokenizer(files);
    expect(tok.paddingSide).toBe('left');
    const batch = tok.encodeBatch(['hello world', 'hello'], { padding: 'longest' });
    expect(batch.inputIds[1]).toEqual([0, 0, 0, ...UNIGRAM_HELLO, 3]);
    expect(batch.attentionMask[1]).toEqual([0, 0, 0, 1, 1, 1, 1]);
    const right = tok.encodeBatch(['hello world', 'hello'], { padding: 'longest', paddingSide: 'right' });
    expect(right.inputIds[1]).toEqual([...UNIGRAM_HELLO, 3, 0, 0, 0]);
  });

  it('pads to maxLength with max_length; longer sequences stay longer without truncation', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    const batch = tok.encodeBatch(['hello', 'hello world'], { padding: 'max_length', maxLength: 5 });
    expect(batch.inputIds).toEqual([
      [...UNIGRAM_HELLO, 3, 0],
      [...UNIGRAM_HELLO_WORLD, 3],
    ]);
    expect(batch.attentionMask).toEqual([
      [1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1],
    ]);
  });

  it('truncates the text and keeps the special tokens, from either side', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    const right = tok.encodeBatch(['hello world', 'hello'], { truncation: true, maxLength: 4, padding: 'max_length' });
    expect(right.inputIds).toEqual([
      [289, 279, 314, 3],
      [289, 279, 314, 3],
    ]);
    const left = tok.encodeBatch(['hello world'], { truncation: true, maxLength: 4, truncationSide: 'left' });
    expect(left.inputIds).toEqual([[308, 279, 274, 3]]);
    const bos = await loadTokenizer(tokenizerFixturePath('sp-bpe'));
    expect(bos.encodeBatch(['hello'], { truncation: true, maxLength: 3 }).inputIds).toEqual([[1, 322, 259]]);
    expect(bos.encodeBatch(['hello'], { truncation: true, maxLength: 3, addSpecialTokens: false }).inputIds).toEqual([[322, 259, 331]]);
  });

  it('without padding returns ragged rows with all-ones masks', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-bpe'));
    const batch = tok.encodeBatch(['hello', 'a']);
    expect(batch.inputIds).toEqual([
      [1, ...BPE_HELLO],
      [1, ...BPE_A],
    ]);
    expect(batch.attentionMask).toEqual([
      [1, 1, 1, 1, 1, 1],
      [1, 1],
    ]);
    expect(tok.encodeBatch([])).toEqual({ inputIds: [], attentionMask: [] });
  });

  it('a model without a pad token: padding is a clear error, padTokenId: eos pads with eos', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-bpe'));
    expect(tok.padTokenId).toBeNull();
    expect(() => tok.encodeBatch(['hello', 'a'], { padding: 'longest' })).toThrow(
      /padding needs a pad token, and this tokenizer has none .*Set pad_token there, or pass \{ padTokenId: tokenizer\.eosTokenId \} \(2, "<\/s>"\)/,
    );
    const batch = tok.encodeBatch(['hello', 'a'], { padding: 'longest', padTokenId: tok.eosTokenId ?? -1, paddingSide: 'left' });
    expect(batch.inputIds).toEqual([
      [1, ...BPE_HELLO],
      [2, 2, 2, 2, 1, ...BPE_A],
    ]);
    expect(batch.attentionMask[1]).toEqual([0, 0, 0, 0, 1, 1]);
  });

  it('neox-bpe pads with the eos it is given', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('neox-bpe'));
    // "a a" is "a" (2 + 0x61) and "Ġa", a merge of the fixture
    const spaceA = tok.tokenToId('\u0120a');
    expect(spaceA).toBeGreaterThan(257);
    const batch = tok.encodeBatch(['a a', 'a'], { padding: 'longest', padTokenId: 0 });
    expect(batch.inputIds).toEqual([
      [99, spaceA],
      [99, 0],
    ]);
    expect(batch.attentionMask).toEqual([
      [1, 1],
      [1, 0],
    ]);
  });

  it('checks its options', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('sp-unigram'));
    const noMax = createTokenizer({ 'spiece.model': readFileSync(tokenizerFixturePath('sp-unigram/spiece.model')) });
    expect(() => noMax.encodeBatch(['a'], { truncation: true })).toThrow(
      'encodeBatch: truncation needs maxLength, and tokenizer_config.json has no model_max_length',
    );
    expect(() => tok.encodeBatch(['a'], { truncation: true, maxLength: 0 })).toThrow('maxLength must be a positive integer');
    expect(() => tok.encodeBatch(['a'], { padding: 'longest', padTokenId: 100000 })).toThrow('padTokenId 100000 is not a token id');
    // model_max_length of tokenizer_config.json is the default maxLength
    const long = 'hello '.repeat(1000);
    expect(tok.encodeBatch([long], { truncation: true }).inputIds[0]).toHaveLength(2048);
  });
});

describe('errors', () => {
  it('a folder with no tokenizer file lists what was looked for', async () => {
    const dir = tempDir({ 'config.json': '{}' });
    await expect(loadTokenizer(dir)).rejects.toThrow(`no tokenizer in ${dir}: looked for tokenizer.json, tokenizer.model, spiece.model`);
    expect(() => createTokenizer({ 'tokenizer_config.json': '{}' })).toThrow(
      'no tokenizer file: looked for tokenizer.json, tokenizer.model, spiece.model; given tokenizer_config.json',
    );
  });

  it('a tokenizer.json that does not parse names the folder, the file and the parse error', async () => {
    const dir = tempDir({ 'tokenizer.json': '{"model": {' });
    await expect(loadTokenizer(dir)).rejects.toThrow(new RegExp(`^${dir}: tokenizer\\.json is not valid JSON: .+`));
  });

  it('a .model that is not a SentencePiece protobuf names the file', async () => {
    const dir = tempDir({ 'spiece.model': new TextEncoder().encode('this is not a protobuf at all') });
    await expect(loadTokenizer(dir)).rejects.toThrow(/spiece\.model is not a valid SentencePiece model/);
    const empty = tempDir({ 'tokenizer.model': new Uint8Array(0) });
    await expect(loadTokenizer(empty)).rejects.toThrow(/tokenizer\.model is not a valid SentencePiece model \(0 bytes\): it has no pieces/);
  });

  it('add_bos_token without a bos token is an error', () => {
    expect(() =>
      createTokenizer({
        'tokenizer.json': read('neox-bpe/tokenizer.json'),
        'tokenizer_config.json': JSON.stringify({ add_bos_token: true }),
      }),
    ).toThrow(/adds a bos token .* but has no bos_token/);
  });
});
