/**
 * A decoder for sentencepiece's `ModelProto` (sentencepiece_model.proto), the format of
 * `spiece.model` / `tokenizer.model`. Only the fields tokenization needs are read; every
 * other field is skipped by its wire type.
 */

export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

export interface SentencePiece {
  piece: string;
  /** float32, as stored */
  score: number;
  type: PieceType;
}

export interface TrainerSpec {
  /** 1 unigram, 2 bpe, 3 word, 4 char */
  modelType: number;
  vocabSize: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface ModelProto {
  pieces: SentencePiece[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class ProtoReader {
  pos: number;
  private readonly view: DataView;

  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Returns the low 32 bits (`lo`, as uint32) and the value as a double (exact below 2^53). */
  varint(): { lo: number; value: number } {
    let lo = 0;
    let hi = 0;
    const start = this.pos;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error(`truncated varint at byte ${start}`);
      const b = this.buf[this.pos++];
      const bits = b & 0x7f;
      if (i === 9 && bits > 1) throw new Error(`varint at byte ${start} overflows 64 bits`);
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (7 * i - 32);
      if ((b & 0x80) === 0) {
        lo >>>= 0;
        hi >>>= 0;
        return { lo, value: hi * 2 ** 32 + lo };
      }
    }
    throw new Error(`varint longer than 10 bytes at byte ${start}`);
  }

  int32(): number {
    return this.varint().lo | 0;
  }

  bool(): boolean {
    return this.varint().value !== 0;
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new Error(`truncated float at byte ${this.pos}`);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  bytes(): Uint8Array {
    const at = this.pos;
    const { value: len } = this.varint();
    if (len > this.end - this.pos) {
      throw new Error(`length ${len} at byte ${at} runs past the end of its message (byte ${this.end})`);
    }
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  sub(): ProtoReader {
    const b = this.bytes();
    return new ProtoReader(this.buf, b.byteOffset - this.buf.byteOffset, b.byteOffset - this.buf.byteOffset + b.length);
  }

  string(): string {
    const at = this.pos;
    const bytes = this.bytes();
    try {
      return utf8.decode(bytes);
    } catch {
      throw new Error(`string at byte ${at} is not valid UTF-8`);
    }
  }

  /** The next field's number and wire type; `at` is where its tag starts. */
  tag(): { field: number; wire: number; at: number } {
    const at = this.pos;
    const { value } = this.varint();
    const field = Math.floor(value / 8);
    if (field === 0) throw new Error(`field number 0 at byte ${at}`);
    if (field > MAX_FIELD_NUMBER) throw new Error(`field number ${field} at byte ${at} is beyond protobuf's ${MAX_FIELD_NUMBER}`);
    return { field, wire: value % 8, at };
  }

  /** Skips a field of an unread number; `at` is where its tag started (for errors). */
  skip(wire: number, at: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_I64:
      case WIRE_I32: {
        const size = wire === WIRE_I64 ? 8 : 4;
        if (size > this.end - this.pos) throw new Error(`field at byte ${at} needs ${size} bytes but its message ends at byte ${this.end}`);
        this.pos += size;
        return;
      }
      default:
        throw new Error(`unsupported wire type ${wire} at byte ${at}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Largest protobuf field number (2^29 - 1). */
const MAX_FIELD_NUMBER = 536870911;

function expectWire(field: string, tag: { wire: number; at: number }, expected: number): void {
  if (tag.wire !== expected) throw new Error(`field ${field} at byte ${tag.at} has wire type ${tag.wire}, expected ${expected}`);
}

function readPiece(r: ProtoReader): SentencePiece {
  const p: SentencePiece = { piece: '', score: 0, type: PieceType.NORMAL };
  while (!r.done()) {
    const tag = r.tag();
    const { field, wire, at } = tag;
    if (field === 1) {
      expectWire('SentencePiece.piece', tag, WIRE_LEN);
      p.piece = r.string();
    } else if (field === 2) {
      expectWire('SentencePiece.score', tag, WIRE_I32);
      p.score = r.float();
    } else if (field === 3) {
      expectWire('SentencePiece.type', tag, WIRE_VARINT);
      const t = r.int32();
      if (t < 1 || t > 6) throw new Error(`piece type ${t} at byte ${at} is not one of 1..6`);
      p.type = t as PieceType;
    } else r.skip(wire, at);
  }
  return p;
}

function readTrainerSpec(r: ProtoReader): TrainerSpec {
  const t: TrainerSpec = {
    modelType: 1,
    vocabSize: 8000,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
  };
  while (!r.done()) {
    const { field, wire, at } = r.tag();
    const varint = wire === WIRE_VARINT;
    const len = wire === WIRE_LEN;
    if (field === 3 && varint) t.modelType = r.int32();
    else if (field === 4 && varint) t.vocabSize = r.int32();
    else if (field === 24 && varint) t.treatWhitespaceAsSuffix = r.bool();
    else if (field === 35 && varint) t.byteFallback = r.bool();
    else if (field === 40 && varint) t.unkId = r.int32();
    else if (field === 41 && varint) t.bosId = r.int32();
    else if (field === 42 && varint) t.eosId = r.int32();
    else if (field === 43 && varint) t.padId = r.int32();
    else if (field === 44 && len) t.unkSurface = r.string();
    else if (field === 45 && len) t.unkPiece = r.string();
    else if (field === 46 && len) t.bosPiece = r.string();
    else if (field === 47 && len) t.eosPiece = r.string();
    else if (field === 48 && len) t.padPiece = r.string();
    else r.skip(wire, at);
  }
  return t;
}

function readNormalizerSpec(r: ProtoReader): NormalizerSpec {
  const n: NormalizerSpec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
  while (!r.done()) {
    const { field, wire, at } = r.tag();
    const varint = wire === WIRE_VARINT;
    const len = wire === WIRE_LEN;
    if (field === 1 && len) n.name = r.string();
    else if (field === 2 && len) n.precompiledCharsmap = r.bytes();
    else if (field === 3 && varint) n.addDummyPrefix = r.bool();
    else if (field === 4 && varint) n.removeExtraWhitespaces = r.bool();
    else if (field === 5 && varint) n.escapeWhitespaces = r.bool();
    else if (field === 6 && len) n.normalizationRuleTsv = r.string();
    else r.skip(wire, at);
  }
  return n;
}

/**
 * Parses a serialized ModelProto. `fileName` only labels errors:
 * `spiece.model is not a valid SentencePiece model: truncated varint at byte 12`.
 */
export function parseModelProto(bytes: Uint8Array, fileName: string): ModelProto {
  const fail = (why: string): never => {
    throw new Error(`${fileName} is not a valid SentencePiece model (${bytes.length} bytes): ${why}`);
  };
  const pieces: SentencePiece[] = [];
  let trainerSpec: TrainerSpec | null = null;
  let normalizerSpec: NormalizerSpec | null = null;
  try {
    const r = new ProtoReader(bytes, 0, bytes.length);
    while (!r.done()) {
      const tag = r.tag();
      if (tag.field === 1) {
        expectWire('ModelProto.pieces', tag, WIRE_LEN);
        pieces.push(readPiece(r.sub()));
      } else if (tag.field === 2) {
        expectWire('ModelProto.trainer_spec', tag, WIRE_LEN);
        trainerSpec = readTrainerSpec(r.sub());
      } else if (tag.field === 3) {
        expectWire('ModelProto.normalizer_spec', tag, WIRE_LEN);
        normalizerSpec = readNormalizerSpec(r.sub());
      } else r.skip(tag.wire, tag.at);
    }
  } catch (e) {
    fail((e as Error).message);
  }
  if (pieces.length === 0) fail('it has no pieces');
  const empty = pieces.findIndex((p) => p.piece.length === 0);
  if (empty >= 0) fail(`piece ${empty} is empty`);
  return {
    pieces,
    trainerSpec: trainerSpec ?? readTrainerSpec(new ProtoReader(new Uint8Array(0), 0, 0)),
    normalizerSpec: normalizerSpec ?? readNormalizerSpec(new ProtoReader(new Uint8Array(0), 0, 0)),
  };
}
