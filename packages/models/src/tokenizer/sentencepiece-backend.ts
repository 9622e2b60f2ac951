/**
 * A SentencePiece model alone (`spiece.model` / `tokenizer.model`) as transformers'
 * slow tokenizers use it: special and added tokens are split out of the text first,
 * the pieces between them go through SentencePiece.
 */

import type { TokenizerBackend } from './backend.js';
import { SentencePieceProcessor } from './sentencepiece/processor.js';

export class SentencePieceBackend implements TokenizerBackend {
  readonly sp: SentencePieceProcessor;
  private splitter: RegExp | null = null;
  private readonly splitIds = new Map<string, number>();
  readonly ownSpecialTokens: readonly string[] = [];

  constructor(
    bytes: Uint8Array,
    readonly source: 'spiece.model' | 'tokenizer.model',
  ) {
    this.sp = new SentencePieceProcessor(bytes, source);
  }

  get vocabSize(): number {
    return this.sp.pieceSize;
  }

  tokenToId(token: string): number | null {
    return this.sp.pieceToId(token);
  }

  idToToken(id: number): string | null {
    return this.sp.idToPiece(id);
  }

  setSplitTokens(tokens: readonly string[]): void {
    this.splitIds.clear();
    for (const t of tokens) {
      const id = this.sp.pieceToId(t);
      if (id !== null && t.length > 0) this.splitIds.set(t, id);
    }
    const alternatives = [...this.splitIds.keys()].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.splitter = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'gu') : null;
  }

  encodeText(text: string): number[] {
    if (!this.splitter) return this.sp.encode(text);
    const ids: number[] = [];
    let last = 0;
    for (const m of text.matchAll(this.splitter)) {
      const start = m.index ?? 0;
      if (start > last) ids.push(...this.sp.encode(text.slice(last, start)));
      ids.push(this.splitIds.get(m[0]) as number);
      last = start + m[0].length;
    }
    if (last < text.length) ids.push(...this.sp.encode(text.slice(last)));
    return ids;
  }

  defaultSpecialIds() {
    const sp = this.sp;
    return { bos_token: sp.bosId, eos_token: sp.eosId, unk_token: sp.unkId, pad_token: sp.padId };
  }

  defaultAffixes(): null {
    return null;
  }

  decode(ids: readonly number[], skipSpecial: boolean, special: ReadonlySet<number>): string {
    let text = '';
    let run: number[] = [];
    for (const id of ids) {
      if (!special.has(id)) {
        run.push(id);
        continue;
      }
      text += this.sp.decode(run);
      run = [];
      if (!skipSpecial) text += this.sp.idToPiece(id);
    }
    return text + this.sp.decode(run);
  }
}
