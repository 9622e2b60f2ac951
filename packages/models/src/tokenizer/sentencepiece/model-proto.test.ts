import { describe, expect, it } from 'vitest';
import { parseModelProto } from './model-proto.js';

/** A protobuf varint. */
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const tag = (field: number, wire: number) => varint(field * 8 + wire);
const len = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body];
const text = (s: string) => [...new TextEncoder().encode(s)];
/** SentencePiece { piece, score, type } */
const piece = (s: string, type = 1) => len(1, [...len(1, text(s)), ...tag(2, 5), 0, 0, 0, 0, ...tag(3, 0), ...varint(type)]);
const VALID = [...piece('<unk>', 2), ...piece('a')];

function errorOf(bytes: number[]): string {
  try {
    parseModelProto(new Uint8Array(bytes), 'tokenizer.model');
  } catch (e) {
    expect((e as Error).constructor).toBe(Error);
    return (e as Error).message;
  }
  return 'accepted';
}

describe('SentencePiece ModelProto reader on hostile bytes', () => {
  it('reads a valid model', () => {
    expect(parseModelProto(new Uint8Array(VALID), 'tokenizer.model').pieces.map((p) => p.piece)).toEqual(['<unk>', 'a']);
  });

  it('names the file and the byte offset of each defect', () => {
    const prefix = `tokenizer.model is not a valid SentencePiece model`;
    const cases: [number[], string][] = [
      // a tag whose varint has 10 bytes and a 65th bit
      [[...VALID, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], `varint at byte ${VALID.length} overflows 64 bits`],
      [[...VALID, 0x80, 0x80], `truncated varint at byte ${VALID.length}`],
      // pieces whose length runs past the end: 2^63 and 1000
      [
        [...VALID, ...tag(1, 2), ...varint(2n ** 63n)],
        `length 9223372036854776000 at byte ${VALID.length + 1} runs past the end of its message (byte ${VALID.length + 11})`,
      ],
      [[...VALID, ...tag(1, 2), ...varint(1000), 1, 2], `length 1000 at byte ${VALID.length + 1} runs past the end`],
      // pieces with wire type 0 (varint) instead of 2
      [[...VALID, ...tag(1, 0), 5], `field ModelProto.pieces at byte ${VALID.length} has wire type 0, expected 2`],
      [[...VALID, ...tag(9, 7)], `unsupported wire type 7 at byte ${VALID.length}`],
      [[...VALID, ...tag(9, 1), 1, 2, 3], `field at byte ${VALID.length} needs 8 bytes but its message ends at byte ${VALID.length + 4}`],
      [[...VALID, ...varint(2 ** 33)], `field number 1073741824 at byte ${VALID.length} is beyond protobuf's 536870911`],
      [[...VALID, 0], `field number 0 at byte ${VALID.length}`],
      [[...VALID, ...piece('b', 9)], `piece type 9 at byte ${VALID.length + 10} is not one of 1..6`],
      [[...VALID, ...len(1, len(1, [0xc3, 0x28]))], `string at byte ${VALID.length + 3} is not valid UTF-8`],
      [[...VALID, ...len(1, [...tag(2, 5), 1, 2])], `truncated float at byte ${VALID.length + 3}`],
    ];
    for (const [bytes, message] of cases) {
      const got = errorOf(bytes);
      expect(got).toContain(`${prefix} (${bytes.length} bytes): `);
      expect(got).toContain(message);
    }
  });

  it('reads in one linear pass: 100,000 pieces take well under two seconds', () => {
    const one = piece('x');
    const bytes = new Uint8Array(VALID.length + one.length * 100_000);
    bytes.set(VALID);
    for (let i = 0; i < 100_000; i++) bytes.set(one, VALID.length + i * one.length);
    const started = performance.now();
    expect(parseModelProto(bytes, 'tokenizer.model').pieces).toHaveLength(100_002);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
