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
