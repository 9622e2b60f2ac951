import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tokenizerFixturePath } from '../fixtures.js';
import { parseModelProto } from './model-proto.js';
import { SentencePieceProcessor } from './processor.js';

interface SpGoldens {
  reference: string;
  strings: string[];
  models: Record<
    string,
    {
      pieceSize: number;
      unkId: number;
      bosId: number;
      eosId: number;
      padId: number;
      encode: number[][];
      decoded: (string | null)[];
      decodeCases: { ids: number[]; decoded: string }[];
    }
  >;
}

const goldens = JSON.parse(readFileSync(tokenizerFixturePath('sp-goldens.json'), 'utf8')) as SpGoldens;

describe(`SentencePieceProcessor against ${goldens.reference}`, () => {
  for (const [file, model] of Object.entries(goldens.models)) {
    describe(file, () => {
      const sp = new SentencePieceProcessor(readFileSync(tokenizerFixturePath(file)), file);

      it('reads the model: size and special ids', () => {
        expect(sp.pieceSize).toBe(model.pieceSize);
        expect([sp.unkId, sp.bosId, sp.eosId, sp.padId]).toEqual([model.unkId, model.bosId, model.eosId, model.padId]);
      });

      it(`encodes all ${goldens.strings.length} golden strings to the reference ids`, () => {
        const mismatches: string[] = [];
        goldens.strings.forEach((text, i) => {
          const ids = sp.encode(text);
          const want = model.encode[i];
          if (JSON.stringify(ids) !== JSON.stringify(want)) {
            const show = (xs: number[]) => xs.map((id) => sp.idToPiece(id)).join(' | ');
            mismatches.push(`${JSON.stringify(text)}\n  got  ${show(ids)}\n  want ${show(want)}`);
          }
        });
        expect(mismatches).toEqual([]);
      });

      it('decodes the reference ids to the reference text', () => {
        goldens.strings.forEach((text, i) => {
          expect(sp.decode(model.encode[i])).toBe(model.decoded[i] ?? text);
        });
      });

      it('decodes odd id sequences (control, unknown, broken UTF-8 bytes) as the reference', () => {
        for (const c of model.decodeCases) expect(sp.decode(c.ids), JSON.stringify(c.ids)).toBe(c.decoded);
      });
    });
  }

  it('rinna-like unigram keeps whitespace and has no dummy prefix; byte fallback spells unknown characters', () => {
    const sp = new SentencePieceProcessor(readFileSync(tokenizerFixturePath('sp-unigram/spiece.model')));
    const ids = sp.encode('龘');
    expect(ids.map((id) => sp.idToPiece(id))).toEqual(['<0xE9>', '<0xBE>', '<0x98>']);
    expect(sp.decode(ids)).toBe('龘');
    expect(sp.decode(sp.encode('  two  spaces '))).toBe('  two  spaces ');
    expect(sp.normalization).toBe('charsmap');
  });

  it('defaults model strips extra whitespace and merges a run of unknown characters into one <unk>', () => {
    const sp = new SentencePieceProcessor(readFileSync(tokenizerFixturePath('sp-extra/unigram-defaults.model')));
    expect(sp.normalize('  a   b  ')).toBe('\u2581a\u2581b');
    const ids = sp.encode('龘龘');
    expect(ids.filter((id) => id === sp.unkId)).toHaveLength(1);
    expect(sp.decode(ids)).toContain('\u2047');
  });
});

describe("decodePieces and addDummyPrefix (what transformers' slow tokenizers use)", () => {
  const bytes = readFileSync(tokenizerFixturePath('sp-bpe/tokenizer.model'));
  const sp = new SentencePieceProcessor(bytes, 'tokenizer.model');

  // [pieces, sentencepiece 0.2.2 decode(pieces)]: strings that are no piece are written unchanged
  const CASES: [string[], string][] = [
    [['\u2581', 'he', 'l', 'l', 'o'], 'hello'],
    [['', '\u2581', 'he'], 'he'],
    [['\u2581he', 'l', 'l', 'o'], '\u2581hello'],
    [
      ['\u2581hello', 'xyz', '', '\u2581w', '<0xE3>', '<0x81>', '<0x82>', '</s>', '<unk>', 'not\u2581a\u2581piece'],
      '\u2581helloxyz w\u3042 \u2047 not\u2581a\u2581piece',
    ],
    [['<0xE3>', 'zz', '<0x81>'], '\ufffdzz\ufffd'],
    [[], ''],
  ];

  it.each(CASES)('%j', (pieces, want) => {
    expect(sp.decodePieces(pieces)).toBe(want);
  });

  it('decode(ids) is decodePieces of their pieces', () => {
    const ids = sp.encode('hello world 龘 日本語');
    expect(sp.decodePieces(ids.map((id) => sp.idToPiece(id) as string))).toBe(sp.decode(ids));
  });

  it('addDummyPrefix: false encodes and decodes without the dummy ▁ (sentencepiece with the spec changed)', () => {
    const off = new SentencePieceProcessor(bytes, 'tokenizer.model', { addDummyPrefix: false });
    expect(sp.encode('hello world')).toEqual([322, 259, 331, 331, 329, 317, 331, 333]);
    expect(off.encode('hello world')).toEqual([259, 331, 331, 329, 317, 331, 333]);
    expect(off.encode(' hello')).toEqual([322, 259, 331, 331, 329]);
    expect(off.decode(off.encode(' hello'))).toBe(' hello');
    expect(sp.decode(off.encode(' hello'))).toBe('hello');
  });
});

describe('parseModelProto errors name the file', () => {
  it('rejects bytes that are not a protobuf', () => {
    expect(() => parseModelProto(new TextEncoder().encode('{"not": "a model"}'), 'spiece.model')).toThrow(
      /spiece\.model is not a valid SentencePiece model/,
    );
  });

  it('rejects a truncated model', () => {
    const bytes = readFileSync(tokenizerFixturePath('sp-unigram/spiece.model'));
    expect(() => new SentencePieceProcessor(bytes.subarray(0, 1000), 'spiece.model')).toThrow(
      /spiece\.model is not a valid SentencePiece model \(1000 bytes\): .*runs past the end/,
    );
  });

  it('rejects a model with no pieces', () => {
    expect(() => parseModelProto(new Uint8Array(0), 'tokenizer.model')).toThrow(
      'tokenizer.model is not a valid SentencePiece model (0 bytes): it has no pieces',
    );
  });
});
