/**
 * sentencepiece's unigram segmentation (unigram_model.cc, Model::EncodeOptimized):
 * Viterbi over the lattice of vocabulary pieces, scores summed in float32 as the C++
 * does so that ties break the same way.
 */

import { PieceType, type SentencePiece } from './model-proto.js';

/** A piece of the segmentation: the normalized text it covers and its id (unk id for unknown). */
export type Segment = [piece: string, id: number];

interface CharTrieNode {
  children: Map<string, CharTrieNode>;
  id: number;
}

const MATCHED_TYPES: readonly PieceType[] = [PieceType.NORMAL, PieceType.USER_DEFINED, PieceType.UNUSED];

/**
 * Trie over the code points of pieces. By default holds the pieces sentencepiece's
 * models match (NORMAL, USER_DEFINED, UNUSED).
 */
export class PieceTrie {
  readonly root: CharTrieNode = { children: new Map(), id: -1 };

  constructor(pieces: readonly SentencePiece[], types: readonly PieceType[] = MATCHED_TYPES) {
    for (let id = 0; id < pieces.length; id++) {
      const { piece, type } = pieces[id];
      if (!types.includes(type)) continue;
      let node = this.root;
      for (const ch of piece) {
        let next = node.children.get(ch);
        if (!next) {
          next = { children: new Map(), id: -1 };
          node.children.set(ch, next);
        }
        node = next;
      }
      if (node.id === -1) node.id = id; // the first of duplicate pieces wins, as in the C++ map
    }
  }

  /** Length in code points of the longest piece starting at chars[pos], or 0. */
  longestMatch(chars: readonly string[], pos: number): number {
    let node: CharTrieNode | undefined = this.root;
    let best = 0;
    for (let k = pos; k < chars.length; k++) {
      node = node.children.get(chars[k]);
      if (!node) break;
      if (node.id >= 0) best = k - pos + 1;
    }
    return best;
  }
}

const UNK_PENALTY = 10;
const FLT_MIN = 1.1754943508222875e-38;
const FLT_MAX = 3.4028234663852886e38;

function utf8Len(ch: string): number {
  const cp = ch.codePointAt(0) ?? 0;
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

export class UnigramModel {
  private readonly trie: PieceTrie;
  private readonly minScore: number;
  private readonly maxScore: number;

  constructor(
    private readonly pieces: readonly SentencePiece[],
    private readonly unkId: number,
  ) {
    this.trie = new PieceTrie(pieces);
    let min = FLT_MAX;
    let max = FLT_MIN;
    for (const p of pieces) {
      if (p.type !== PieceType.NORMAL) continue;
      min = Math.min(min, p.score);
      max = Math.max(max, p.score);
    }
    this.minScore = Math.fround(min);
    this.maxScore = Math.fround(max);
  }

  encode(normalized: string): Segment[] {
    if (normalized.length === 0) return [];
    const chars = Array.from(normalized);
    const n = chars.length;
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    // best path ending at each code point position
    const bestScore = new Float64Array(n + 1);
    const startsAt = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    const byteLen = chars.map(utf8Len);

    for (let start = 0; start < n; start++) {
      const tillHere = bestScore[start];
      let hasSingleNode = false;
      let node: CharTrieNode | undefined = this.trie.root;
      let bytes = 0;
      for (let k = start; k < n; k++) {
        node = node.children.get(chars[k]);
        if (!node) break;
        bytes += byteLen[k];
        const id = node.id;
        if (id < 0) continue;
        const type = this.pieces[id].type;
        if (type === PieceType.UNUSED) continue;
        const end = k + 1;
        // User-defined symbols get a bonus so they are always chosen; this sum is a
        // double in the C++, the others float32.
        const candidate =
          type === PieceType.USER_DEFINED
            ? Math.fround(bytes * this.maxScore) - 0.1 + tillHere
            : Math.fround(this.pieces[id].score + tillHere);
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = Math.fround(candidate);
          startsAt[end] = start;
          bestId[end] = id;
        }
        if (end - start === 1) hasSingleNode = true;
      }
      if (!hasSingleNode) {
        const end = start + 1;
        const candidate = Math.fround(unkScore + tillHere);
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          bestId[end] = this.unkId;
        }
      }
    }

    const out: Segment[] = [];
    for (let end = n; end > 0; ) {
      const start = startsAt[end];
      out.push([chars.slice(start, end).join(''), bestId[end]]);
      end = start;
    }
    return out.reverse();
  }
}
