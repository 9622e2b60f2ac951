/**
 * sentencepiece's BPE segmentation (bpe_model.cc, Model::SampleEncode without dropout):
 * start from characters (user-defined symbols frozen whole), repeatedly merge the
 * adjacent pair whose merged piece has the highest score (ties: leftmost), then split
 * UNUSED pieces back into the pieces they were merged from.
 */

import { PieceType, type SentencePiece } from './model-proto.js';
import { PieceTrie, type Segment } from './unigram.js';

interface SymbolNode {
  prev: number;
  next: number;
  freeze: boolean;
  /** empty once merged into its left neighbour */
  piece: string;
}

interface Pair {
  left: number;
  right: number;
  score: number;
  /** length of the merged piece when queued; stale entries no longer match */
  size: number;
}

/** Max-heap on score, ties to the smaller left index (SymbolPairComparator). */
class PairQueue {
  private readonly heap: Pair[] = [];

  get size(): number {
    return this.heap.length;
  }

  private before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(p: Pair): void {
    const h = this.heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  pop(): Pair {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as Pair;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.before(h[l], h[best])) best = l;
        if (r < h.length && this.before(h[r], h[best])) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best], h[i]];
        i = best;
      }
    }
    return top;
  }
}

export class BpeModel {
  /** NORMAL, USER_DEFINED and UNUSED pieces (sentencepiece's `pieces_`) */
  private readonly pieceIds = new Map<string, number>();
  /** CONTROL, UNKNOWN and BYTE pieces (`reserved_id_map_`) */
  private readonly reservedIds = new Map<string, number>();
  private readonly userDefined: PieceTrie;

  constructor(
    private readonly pieces: readonly SentencePiece[],
    private readonly unkId: number,
  ) {
    pieces.forEach((p, id) => {
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = normal ? this.pieceIds : this.reservedIds;
      if (!map.has(p.piece)) map.set(p.piece, id);
    });
    this.userDefined = new PieceTrie(pieces, [PieceType.USER_DEFINED]);
  }

  private pieceToId(piece: string): number {
    return this.reservedIds.get(piece) ?? this.pieceIds.get(piece) ?? this.unkId;
  }

  encode(normalized: string): Segment[] {
    const chars = Array.from(normalized);
    const symbols: SymbolNode[] = [];
    for (let pos = 0; pos < chars.length; ) {
      const user = this.userDefined.longestMatch(chars, pos);
      const len = user > 0 ? user : 1;
      symbols.push({
        prev: symbols.length - 1,
        next: pos + len < chars.length ? symbols.length + 1 : -1,
        freeze: user > 0,
        piece: chars.slice(pos, pos + len).join(''),
      });
      pos += len;
    }
    if (symbols.length === 0) return [];

    const agenda = new PairQueue();
    const revMerge = new Map<string, [string, string]>();
    const maybeAddPair = (left: number, right: number) => {
      if (left === -1 || right === -1 || symbols[left].freeze || symbols[right].freeze) return;
      const piece = symbols[left].piece + symbols[right].piece;
      const id = this.pieceIds.get(piece);
      if (id === undefined) return;
      agenda.push({ left, right, score: this.pieces[id].score, size: piece.length });
      if (this.pieces[id].type === PieceType.UNUSED) revMerge.set(piece, [symbols[left].piece, symbols[right].piece]);
    };

    for (let i = 1; i < symbols.length; i++) maybeAddPair(i - 1, i);

    while (agenda.size > 0) {
      const top = agenda.pop();
      const l = symbols[top.left];
      const r = symbols[top.right];
      if (l.piece.length === 0 || r.piece.length === 0 || l.piece.length + r.piece.length !== top.size) continue;
      l.piece += r.piece;
      l.next = r.next;
      if (r.next >= 0) symbols[r.next].prev = top.left;
      r.piece = '';
      maybeAddPair(l.prev, top.left);
      maybeAddPair(top.left, l.next);
    }

    const out: Segment[] = [];
    const resegment = (w: string) => {
      const id = this.pieceToId(w);
      const split = this.pieces[id]?.type === PieceType.UNUSED ? revMerge.get(w) : undefined;
      if (!split) {
        out.push([w, id]);
        return;
      }
      resegment(split[0]);
      resegment(split[1]);
    };
    for (let i = 0; i !== -1; i = symbols[i].next) resegment(symbols[i].piece);
    return out;
  }
}
