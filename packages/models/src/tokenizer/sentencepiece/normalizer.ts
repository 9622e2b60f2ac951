/**
 * sentencepiece's Normalizer (normalizer.cc): the precompiled charsmap, whitespace
 * handling, the dummy prefix and the ▁ escape, done on UTF-8 bytes as the C++ does.
 */

import type { NormalizerSpec } from './model-proto.js';

export const SPACE_SYMBOL = '\u2581';
const SPACE_SYMBOL_BYTES = [0xe2, 0x96, 0x81];
const REPLACEMENT_BYTES = [0xef, 0xbf, 0xbd];
const SPACE = 0x20;

/** Byte length of the UTF-8 character starting with `lead` (sentencepiece's OneCharLen). */
export function oneCharLen(lead: number): number {
  return [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][lead >> 4];
}

/**
 * Length of the valid UTF-8 character at `pos`, or 0 when it is malformed
 * (sentencepiece's DecodeUTF8 rules: no overlongs, no surrogates, at most U+10FFFF).
 */
export function validUtf8Len(b: Uint8Array | number[], pos: number, end: number): number {
  const c0 = b[pos];
  const trail = (i: number) => pos + i < end && (b[pos + i] & 0xc0) === 0x80;
  const ok = (cp: number) => cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);
  if (c0 < 0x80) return 1;
  if ((c0 & 0xe0) === 0xc0 && trail(1)) {
    const cp = ((c0 & 0x1f) << 6) | (b[pos + 1] & 0x3f);
    return cp >= 0x80 && ok(cp) ? 2 : 0;
  }
  if ((c0 & 0xf0) === 0xe0 && trail(1) && trail(2)) {
    const cp = ((c0 & 0x0f) << 12) | ((b[pos + 1] & 0x3f) << 6) | (b[pos + 2] & 0x3f);
    return cp >= 0x800 && ok(cp) ? 3 : 0;
  }
  if ((c0 & 0xf8) === 0xf0 && trail(1) && trail(2) && trail(3)) {
    const cp = ((c0 & 0x07) << 18) | ((b[pos + 1] & 0x3f) << 12) | ((b[pos + 2] & 0x3f) << 6) | (b[pos + 3] & 0x3f);
    return cp >= 0x10000 && ok(cp) ? 4 : 0;
  }
  return 0;
}

/**
 * The precompiled charsmap: `<uint32 LE trie size><darts-clone double array><NUL
 * separated replacement strings>`. Lookup is the longest key that prefixes the input.
 */
export class PrecompiledCharsmap {
  private readonly units: Uint32Array;
  private readonly replacements: Uint8Array;

  constructor(blob: Uint8Array) {
    if (blob.length <= 4) throw new Error(`precompiled charsmap of ${blob.length} bytes is too short`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length || trieSize % 4 !== 0) {
      throw new Error(`precompiled charsmap trie size ${trieSize} does not fit its ${blob.length} bytes`);
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.replacements = blob.subarray(4 + trieSize);
  }

  /** Longest match at `pos`: [length in bytes, replacement bytes], or null. */
  match(input: Uint8Array, pos: number): [number, Uint8Array] | null {
    const units = this.units;
    const offset = (u: number) => ((u >>> 10) << ((u & (1 << 9)) >>> 6)) >>> 0;
    let node = offset(units[0]);
    let bestLength = 0;
    let bestValue = 0;
    for (let i = pos; i < input.length; i++) {
      const c = input[i];
      node = (node ^ c) >>> 0;
      if (node >= units.length) break;
      const unit = units[node];
      // label: the byte this unit was reached by (and the sign bit, set on leaves)
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      node = (node ^ offset(unit)) >>> 0;
      if (((unit >>> 8) & 1) === 1 && node < units.length) {
        bestLength = i - pos + 1;
        bestValue = units[node] & 0x7fffffff;
      }
    }
    if (bestLength === 0) return null;
    let end = bestValue;
    while (end < this.replacements.length && this.replacements[end] !== 0) end++;
    return [bestLength, this.replacements.subarray(bestValue, end)];
  }
}

/** Longest-match over a set of strings on UTF-8 bytes (sentencepiece's PrefixMatcher). */
export class BytePrefixMatcher {
  private readonly root = new Map<number, TrieNode>();
  readonly size: number;

  constructor(words: Iterable<string>) {
    const enc = new TextEncoder();
    let n = 0;
    for (const w of words) {
      const bytes = enc.encode(w);
      if (bytes.length === 0) continue;
      let children = this.root;
      let node: TrieNode | undefined;
      for (const b of bytes) {
        node = children.get(b);
        if (!node) {
          node = { children: new Map(), terminal: false };
          children.set(b, node);
        }
        children = node.children;
      }
      if (node) node.terminal = true;
      n++;
    }
    this.size = n;
  }

  /** Length of the longest word starting at `pos`, or 0. */
  match(input: Uint8Array, pos: number): number {
    let children = this.root;
    let best = 0;
    for (let i = pos; i < input.length; i++) {
      const node = children.get(input[i]);
      if (!node) break;
      if (node.terminal) best = i - pos + 1;
      children = node.children;
    }
    return best;
  }
}

interface TrieNode {
  children: Map<number, TrieNode>;
  terminal: boolean;
}

export type NormalizationForm = 'charsmap' | 'nfkc' | 'none';

export class Normalizer {
  private readonly charsmap: PrecompiledCharsmap | null;
  /** Used only when a model names an NFKC rule but ships no charsmap. */
  private readonly unicodeNfkc: boolean;
  readonly form: NormalizationForm;

  constructor(
    private readonly spec: NormalizerSpec,
    private readonly userDefined: BytePrefixMatcher,
    private readonly treatWhitespaceAsSuffix: boolean,
    fileName: string,
  ) {
    if (spec.precompiledCharsmap.length > 0) {
      try {
        this.charsmap = new PrecompiledCharsmap(spec.precompiledCharsmap);
      } catch (e) {
        throw new Error(`${fileName}: normalizer "${spec.name}": ${(e as Error).message}`);
      }
      this.unicodeNfkc = false;
      this.form = 'charsmap';
    } else {
      this.charsmap = null;
      this.unicodeNfkc = /nfkc/i.test(spec.name);
      this.form = this.unicodeNfkc ? 'nfkc' : 'none';
    }
  }

  /** Normalized text of `text`, the string the model segments. */
  normalize(text: string): string {
    if (text.length === 0) return '';
    const input = new TextEncoder().encode(this.unicodeNfkc ? text.normalize('NFKC') : text);
    const spec = this.spec;
    const out: number[] = [];
    let pos = 0;

    if (spec.removeExtraWhitespaces) {
      while (pos < input.length) {
        const [piece, consumed] = this.normalizePrefix(input, pos);
        if (!(piece.length === 1 && piece[0] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= input.length) return '';

    const addWs = () => {
      if (spec.escapeWhitespaces) out.push(...SPACE_SYMBOL_BYTES);
      else out.push(SPACE);
    };
    if (!this.treatWhitespaceAsSuffix && spec.addDummyPrefix) addWs();

    let isPrevSpace = spec.removeExtraWhitespaces;
    while (pos < input.length) {
      const [piece, consumed] = this.normalizePrefix(input, pos);
      let start = 0;
      if (isPrevSpace) while (start < piece.length && piece[start] === SPACE) start++;
      if (start < piece.length) {
        for (let n = start; n < piece.length; n++) {
          if (spec.escapeWhitespaces && piece[n] === SPACE) out.push(...SPACE_SYMBOL_BYTES);
          else out.push(piece[n]);
        }
        isPrevSpace = piece[piece.length - 1] === SPACE;
      }
      pos += consumed;
      if (!spec.removeExtraWhitespaces) isPrevSpace = false;
    }

    if (spec.removeExtraWhitespaces) {
      const space = spec.escapeWhitespaces ? SPACE_SYMBOL_BYTES : [SPACE];
      while (out.length >= space.length && space.every((b, i) => out[out.length - space.length + i] === b)) {
        out.length -= space.length;
      }
    }
    if (this.treatWhitespaceAsSuffix && spec.addDummyPrefix) addWs();
    return new TextDecoder().decode(Uint8Array.from(out));
  }

  /** One normalization step at `pos`: [normalized bytes, input bytes consumed]. */
  private normalizePrefix(input: Uint8Array, pos: number): [ArrayLike<number>, number] {
    const user = this.userDefined.match(input, pos);
    if (user > 0) return [input.subarray(pos, pos + user), user];
    if (this.charsmap) {
      const m = this.charsmap.match(input, pos);
      if (m) return [m[1], m[0]];
    }
    const len = validUtf8Len(input, pos, input.length);
    if (len === 0) return [REPLACEMENT_BYTES, 1];
    return [input.subarray(pos, pos + len), len];
  }
}
