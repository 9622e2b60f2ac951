/**
 * transformers' `Trie` (tokenization_utils.py), which slow tokenizers use to cut added and
 * special tokens out of the text before the model sees it: one pass, the earliest match
 * wins, and among matches starting there (or overlapping it from earlier) the longest.
 * Ported step by step so that overlapping tokens split the same way.
 */

type TrieNode = Map<string, TrieNode>;

/** the key that marks the end of a token in a node (transformers' `_termination_char`) */
const END = '';

export class AddedTokenTrie {
  private readonly data: TrieNode = new Map();

  constructor(tokens: Iterable<string> = []) {
    for (const t of tokens) this.add(t);
  }

  add(word: string): void {
    if (word.length === 0) return;
    let ref = this.data;
    // UTF-16 units: a token never starts inside a surrogate pair, so matches are the same as by code point
    for (let i = 0; i < word.length; i++) {
      let next = ref.get(word[i]);
      if (!next) {
        next = new Map();
        ref.set(word[i], next);
      }
      ref = next;
    }
    ref.set(END, new Map());
  }

  /** `text` cut at the boundaries of the tokens found; the tokens are pieces of their own. */
  split(text: string): string[] {
    let states = new Map<number, TrieNode>();
    const offsets = [0];
    let skip = 0;
    for (let current = 0; current < text.length; current++) {
      if (skip && current < skip) continue;
      const currentChar = text[current];
      const toRemove: number[] = [];
      let reset = false;
      for (const [stateStart, pointer] of states) {
        let start = stateStart;
        if (pointer.has(END)) {
          // a match ends here: look ahead for a longer one from this or an earlier start
          let end = current;
          for (const [lookstart, lookPointer] of states) {
            if (lookstart > start) break;
            let lookahead: number;
            if (lookstart < start) {
              lookahead = current + 1;
              end = current + 1;
            } else {
              lookahead = current;
              end = current;
            }
            let pointerAt = lookPointer;
            let nextChar = lookahead < text.length ? text[lookahead] : undefined;
            if (pointerAt.has(END)) {
              start = lookstart;
              end = lookahead;
              skip = lookahead;
            }
            while (nextChar !== undefined && pointerAt.has(nextChar)) {
              pointerAt = pointerAt.get(nextChar) as TrieNode;
              lookahead += 1;
              if (pointerAt.has(END)) {
                start = lookstart;
                end = lookahead;
                skip = lookahead;
              }
              if (lookahead === text.length) break;
              nextChar = text[lookahead];
            }
          }
          offsets.push(start, end);
          reset = true;
          break;
        }
        const next = pointer.get(currentChar);
        if (next) states.set(stateStart, next);
        else toRemove.push(stateStart);
      }
      if (reset) states = new Map();
      else for (const s of toRemove) states.delete(s);
      const first = this.data.get(currentChar);
      if (current >= skip && first) states.set(current, first);
    }
    for (const [start, pointer] of states) {
      if (pointer.has(END)) {
        offsets.push(start, text.length);
        break;
      }
    }
    offsets.push(text.length);
    const pieces: string[] = [];
    let start = 0;
    for (const end of offsets) {
      if (start >= end) continue;
      pieces.push(text.slice(start, end));
      start = end;
    }
    return pieces;
  }
}
