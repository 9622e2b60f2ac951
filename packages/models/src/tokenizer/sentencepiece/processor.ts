/**
 * A SentencePiece processor in TypeScript: what `sentencepiece.SentencePieceProcessor`
 * does for `encode(text)` / `decode(ids)` on unigram and BPE models, checked against
 * sentencepiece 0.1.97 on the fixtures in ../fixtures (sp-goldens.json).
 */

import { BpeModel } from './bpe.js';
import { type ModelProto, PieceType, parseModelProto } from './model-proto.js';
import { BytePrefixMatcher, Normalizer, SPACE_SYMBOL, validUtf8Len } from './normalizer.js';
import { type Segment, UnigramModel } from './unigram.js';

const MODEL_TYPES: Record<number, string> = { 1: 'unigram', 2: 'bpe', 3: 'word', 4: 'char' };

export class SentencePieceProcessor {
  readonly proto: ModelProto;
  readonly modelType: 'unigram' | 'bpe';
  /** -1 where the model has none, as sentencepiece reports */
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** the UNKNOWN piece segmentation falls back to (sentencepiece's unk_id_) */
  private readonly unkInternal: number;
  private readonly ids = new Map<string, number>();
  private readonly byteIds: Int32Array;
  private readonly normalizer: Normalizer;
  private readonly model: { encode(normalized: string): Segment[] };

  /**
   * `fileName` labels errors (`spiece.model is not a valid SentencePiece model: ...`).
   * `addDummyPrefix` overrides the model's normalizer_spec.add_dummy_prefix, as
   * transformers' T5 / Llama tokenizers with `legacy: false` do to the model they load.
   */
  constructor(
    bytes: Uint8Array,
    readonly fileName = 'SentencePiece model',
    options: { addDummyPrefix?: boolean } = {},
  ) {
    const proto = parseModelProto(bytes, fileName);
    if (options.addDummyPrefix !== undefined) {
      proto.normalizerSpec = { ...proto.normalizerSpec, addDummyPrefix: options.addDummyPrefix };
    }
    this.proto = proto;
    const { pieces, trainerSpec, normalizerSpec } = proto;
    const type = MODEL_TYPES[trainerSpec.modelType] ?? `type ${trainerSpec.modelType}`;
    if (type !== 'unigram' && type !== 'bpe') {
      throw new Error(`${fileName}: SentencePiece model_type ${type} is not supported (supported: unigram, bpe)`);
    }
    this.modelType = type;
    if (trainerSpec.treatWhitespaceAsSuffix) {
      throw new Error(`${fileName}: treat_whitespace_as_suffix is not supported`);
    }
    let unk = -1;
    pieces.forEach((p, id) => {
      if (!this.ids.has(p.piece)) this.ids.set(p.piece, id);
      if (p.type === PieceType.UNKNOWN) unk = id;
    });
    if (unk < 0) throw new Error(`${fileName} is not a valid SentencePiece model: it has no piece of type UNKNOWN (<unk>)`);
    this.unkId = this.idIfType(trainerSpec.unkPiece, PieceType.UNKNOWN);
    this.bosId = this.idIfType(trainerSpec.bosPiece, PieceType.CONTROL);
    this.eosId = this.idIfType(trainerSpec.eosPiece, PieceType.CONTROL);
    this.padId = this.idIfType(trainerSpec.padPiece, PieceType.CONTROL);
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = this.ids.get(byteToPiece(b));
      if (id !== undefined && pieces[id].type === PieceType.BYTE) this.byteIds[b] = id;
    }
    const userDefined = new BytePrefixMatcher(pieces.filter((p) => p.type === PieceType.USER_DEFINED).map((p) => p.piece));
    this.normalizer = new Normalizer(normalizerSpec, userDefined, trainerSpec.treatWhitespaceAsSuffix, fileName);
    this.model = type === 'unigram' ? new UnigramModel(pieces, unk) : new BpeModel(pieces, unk);
    this.unkInternal = unk;
  }

  private idIfType(piece: string, type: PieceType): number {
    const id = this.ids.get(piece);
    return id !== undefined && this.proto.pieces[id].type === type ? id : -1;
  }

  get pieceSize(): number {
    return this.proto.pieces.length;
  }

  get byteFallback(): boolean {
    return this.proto.trainerSpec.byteFallback;
  }

  /** How the normalizer runs: the model's precompiled charsmap, Unicode NFKC (no charsmap shipped), or none. */
  get normalization(): string {
    return this.normalizer.form;
  }

  pieceToId(piece: string): number | null {
    return this.ids.get(piece) ?? null;
  }

  idToPiece(id: number): string | null {
    return this.proto.pieces[id]?.piece ?? null;
  }

  pieceType(id: number): PieceType | null {
    return this.proto.pieces[id]?.type ?? null;
  }

  normalize(text: string): string {
    return this.normalizer.normalize(text);
  }

  /** Ids of `text` (no bos/eos), as `SentencePieceProcessor.encode(text)`. */
  encode(text: string): number[] {
    const segments = this.model.encode(this.normalizer.normalize(text));
    const ids: number[] = [];
    let prevUnk = false;
    const enc = new TextEncoder();
    for (const [piece, id] of segments) {
      const isUnk = id === this.unkInternal;
      if (isUnk && this.byteFallback) {
        for (const b of enc.encode(piece)) {
          const byteId = this.byteIds[b];
          ids.push(byteId >= 0 ? byteId : this.unkInternal);
        }
      } else if (!(isUnk && prevUnk)) {
        // a run of unknown pieces becomes one <unk>
        ids.push(id);
      }
      prevUnk = isUnk;
    }
    return ids;
  }

  /** Text of `ids`, as `SentencePieceProcessor.decode(ids)`. */
  decode(ids: readonly number[]): string {
    const { pieces } = this.proto;
    for (const id of ids) {
      if (!Number.isInteger(id) || pieces[id] === undefined) {
        throw new Error(`${this.fileName}: cannot decode id ${id}: ids run from 0 to ${pieces.length - 1}`);
      }
    }
    return this.decodeSymbols(ids.map((id) => ({ piece: pieces[id].piece, id })));
  }

  /**
   * Text of piece strings, as `SentencePieceProcessor.decode(pieces)` (what transformers'
   * slow tokenizers call): a string that is no piece of the model is written as it is.
   */
  decodePieces(pieces: readonly string[]): string {
    return this.decodeSymbols(pieces.map((piece) => ({ piece, id: this.ids.get(piece) ?? -1 })));
  }

  /** sentencepiece's Decode over (piece, id) pairs; id -1: not in the vocabulary. */
  private decodeSymbols(symbols: readonly { piece: string; id: number }[]): string {
    const { pieces, trainerSpec, normalizerSpec } = this.proto;
    const stripBosWs = normalizerSpec.addDummyPrefix || normalizerSpec.removeExtraWhitespaces;
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;

    const flushBytes = () => {
      let offset = 0;
      while (offset < bytes.length) {
        const len = validUtf8Len(bytes, offset, bytes.length);
        if (len === 0) {
          text += '\uFFFD';
          offset += 1;
        } else {
          text += new TextDecoder().decode(Uint8Array.from(bytes.slice(offset, offset + len)));
          offset += len;
        }
      }
      bytes = [];
    };

    for (const { piece: surface, id } of symbols) {
      const p = id >= 0 ? pieces[id] : undefined;
      if (p?.type === PieceType.BYTE) {
        bytes.push(Number.parseInt(p.piece.slice(3, 5), 16));
        continue;
      }
      flushBytes();
      if (bosWsSeen || text.length > 0) isBosWs = false;
      bosWsSeen = false;
      if (p === undefined) {
        // sentencepiece maps it to <unk> and, as it is not the <unk> piece, writes it unchanged
        text += surface;
        continue;
      }
      if (p.type === PieceType.CONTROL) continue;
      if (p.type === PieceType.UNKNOWN) {
        text += trainerSpec.unkSurface;
        continue;
      }
      let piece = p.piece;
      if (isBosWs && stripBosWs && piece.startsWith(SPACE_SYMBOL)) {
        piece = piece.slice(SPACE_SYMBOL.length);
        bosWsSeen = !normalizerSpec.removeExtraWhitespaces;
      }
      text += piece.replaceAll(SPACE_SYMBOL, ' ');
    }
    flushBytes();
    return text;
  }
}

function byteToPiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}
