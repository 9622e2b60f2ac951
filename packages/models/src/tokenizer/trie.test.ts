import { describe, expect, it } from 'vitest';
import { AddedTokenTrie } from './trie.js';

// [tokens, text, transformers 4.57.6 Trie().split(text)]; the first seven are transformers' own Trie tests
const CASES: [string[], string, string[]][] = [
  [['[CLS]', 'extra_id_1', 'extra_id_100'], '[CLS] This is a extra_id_100', ['[CLS]', ' This is a ', 'extra_id_100']],
  [['A'], 'ABC', ['A', 'BC']],
  [['A'], 'BCA', ['BC', 'A']],
  [['TOKEN]', '[SPECIAL_TOKEN]'], 'This is something [SPECIAL_TOKEN]', ['This is something ', '[SPECIAL_TOKEN]']],
  [['A', 'P', '[SPECIAL_TOKEN]'], 'This is something [SPECIAL_TOKEN]', ['This is something ', '[SPECIAL_TOKEN]']],
  [['AB', 'B', 'C'], 'ABC', ['AB', 'C']],
  [['ABC', 'B', 'CD'], 'ABCD', ['ABC', 'D']],
  [['ab', 'bcd'], 'abcd', ['ab', 'cd']],
  [['bc', 'abcd'], 'abcx abcd', ['a', 'bc', 'x ', 'abcd']],
  [['</s>', '<s>', '<unk>'], '<<s>></s>></s/s><unk', ['<', '<s>', '>', '</s>', '></s/s><unk']],
  [['🍣', '🍣🍺'], 'a🍣🍺b🍣', ['a', '🍣🍺', 'b', '🍣']],
  [[], 'plain', ['plain']],
  [['x'], '', []],
];

describe("AddedTokenTrie splits as transformers' Trie", () => {
  it.each(CASES)('%j in %j', (tokens, text, want) => {
    expect(new AddedTokenTrie(tokens).split(text)).toEqual(want);
  });
});
