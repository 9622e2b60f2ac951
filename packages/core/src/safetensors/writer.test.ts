import { describe, expect, it } from 'vitest';
import { bytesSource } from './byte-source.js';
import type { SafetensorsDType } from './dtypes.js';
import { openSafetensors } from './reader.js';
import type { ByteSink, NamedLazyTensorToWrite } from './writer.js';
import { serializeSafetensors, writeSafetensorsTo } from './writer.js';

const headerText = (bytes: Uint8Array) => {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + n));
};

describe('serializeSafetensors', () => {
  it('round-trips every dtype byte for byte', async () => {
    const cases: Array<[SafetensorsDType, number[], ArrayBufferView]> = [
      ['BOOL', [3], new Uint8Array([1, 0, 1])],
      ['U8', [2], new Uint8Array([0, 255])],
      ['I8', [2], new Int8Array([-128, 127])],
      ['I16', [2], new Int16Array([-300, 300])],
      ['U16', [2], new Uint16Array([1, 65535])],
      ['F16', [2], new Uint16Array([0x3c00, 0xfbff])],
      ['BF16', [2], new Uint16Array([0x3f80, 0xc049])],
      ['I32', [2], new Int32Array([-2147483648, 2147483647])],
      ['U32', [1], new Uint32Array([4294967295])],
      ['F32', [2, 2], new Float32Array([0.1, -2, 3.5, 1e-40])],
      ['F64', [2], new Float64Array([Math.PI, -1e300])],
      ['I64', [1], new BigInt64Array([-(2n ** 62n)])],
      ['U64', [1], new BigUint64Array([2n ** 64n - 1n])],
      ['F8_E4M3', [2], new Uint8Array([0x38, 0x7e])],
      ['F8_E5M2', [2], new Uint8Array([0x3c, 0x7b])],
      ['F8_E8M0', [1], new Uint8Array([127])],
      ['F8_E4M3FNUZ', [1], new Uint8Array([0x40])],
      ['F8_E5M2FNUZ', [1], new Uint8Array([0x40])],
      ['F4', [4], new Uint8Array([0x21, 0x43])],
      ['F6_E2M3', [4], new Uint8Array([1, 2, 3])],
      ['F6_E3M2', [4], new Uint8Array([4, 5, 6])],
      ['C64', [1], new Float32Array([1, -1])],
    ];
    const bytes = serializeSafetensors(
      cases.map(([dtype, shape, data]) => ({ name: `t_${dtype}`, dtype, shape, data })),
      { format: 'pt' },
    );
    const st = await openSafetensors(bytesSource(bytes, 'all.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    for (const [dtype, shape, data] of cases) {
      const name = `t_${dtype}`;
      expect(st.info(name).dtype).toBe(dtype);
      expect(st.info(name).shape).toEqual(shape);
      const raw = await st.readRaw(name);
      expect([...raw], name).toEqual([...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
      // The reference order keeps every tensor aligned to its element size.
      expect(st.info(name).byteOffset % Math.min(8, Math.max(1, data.byteLength / shape.reduce((a, b) => a * b, 1))), name).toBe(0);
    }
    expect((await st.readTensor('t_U64', { dtype: 'int32' }).catch((e: Error) => e.message)) as string).toContain(
      'its value 18446744073709551615 at index 0 is outside the int32 range',
    );
  });

  it('pads the header with spaces to a multiple of 8 and orders tensors like the reference writer', () => {
    const bytes = serializeSafetensors({
      b: { dtype: 'float16', shape: [1], data: new Uint16Array([0x3c00]) },
      ab: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) },
      c: { dtype: 'float32', shape: [1], data: new Float32Array([2]) },
      '10': { dtype: 'float32', shape: [1], data: new Float32Array([3]) },
    });
    const text = headerText(bytes);
    const json =
      '{"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
      '"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"ab":{"dtype":"U8","shape":[1],"data_offsets":[10,11]}}';
    expect(json.length).toBe(217);
    expect(text).toBe(`${json}       `);
    expect(text.length % 8).toBe(0);
    expect(bytes.length).toBe(8 + 224 + 11);
    expect([...bytes.subarray(8 + 224)]).toEqual([0, 0, 0x40, 0x40, 0, 0, 0, 0x40, 0x00, 0x3c, 9]);
  });

  it('writes metadata first and accepts an empty tensor set', () => {
    const bytes = serializeSafetensors([], { format: 'pt', note: 'héllo "q"' });
    expect(headerText(bytes)).toBe('{"__metadata__":{"format":"pt","note":"héllo \\"q\\""}}  ');
    expect(headerText(serializeSafetensors([]))).toBe('{}      ');
  });

  it('rejects duplicate names, wrong data sizes and bad shapes', () => {
    const t = { dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };
    expect(() =>
      serializeSafetensors([
        { name: 'w', ...t },
        { name: 'w', ...t },
      ]),
    ).toThrow('safetensors writer: tensor "w" is given twice: tensor names must be unique');
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } })).toThrow(
      'safetensors writer: tensor "w" has 20 bytes of data but F32 [2, 3] needs 24',
    );
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } })).toThrow(
      'safetensors writer: tensor "w" shape [-1] must be an array of non-negative integers',
    );
    expect(() => serializeSafetensors({ w: { dtype: 'F33' as 'F32', shape: [1], data: new Float32Array(1) } })).toThrow(
      'safetensors writer: tensor "w": dtype "F33" is not a safetensors dtype',
    );
    expect(() => serializeSafetensors({ __metadata__: t })).toThrow('the name __metadata__ is reserved');
    expect(() => serializeSafetensors({ w: t }, { step: 3 as unknown as string })).toThrow(
      'safetensors writer: metadata value of "step" must be a string, got 3',
    );
  });
});

describe('writeSafetensorsTo', () => {
  it('streams the same bytes as serializeSafetensors, asking lazy tensors for data one at a time', async () => {
    const calls: string[] = [];
    const chunks: Uint8Array[] = [];
    const sink: ByteSink = {
      async write(chunk) {
        calls.push(`write ${chunk.byteLength}`);
        chunks.push(chunk.slice());
      },
    };
    const entries: NamedLazyTensorToWrite[] = [
      {
        name: 'x',
        dtype: 'float32',
        shape: [3],
        data: async () => {
          calls.push('get x');
          return new Float32Array([1, 2, 3]);
        },
      },
      {
        name: 'y',
        dtype: 'bfloat16',
        shape: [2],
        data: () => {
          calls.push('get y');
          return new Uint16Array([0x3f80, 0x4000]);
        },
      },
      { name: 'z', dtype: 'int32', shape: [1], data: new Int32Array([-1]) },
    ];
    const size = await writeSafetensorsTo(sink, entries, { format: 'pt' });
    const eager = serializeSafetensors(
      [
        { name: 'x', dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) },
        { name: 'y', dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
        { name: 'z', dtype: 'int32', shape: [1], data: new Int32Array([-1]) },
      ],
      { format: 'pt' },
    );
    expect(size).toBe(eager.length);
    expect(Buffer.concat(chunks).equals(Buffer.from(eager))).toBe(true);
    const header = eager.length - 12 - 4 - 4;
    expect(calls).toEqual([`write ${header}`, 'get x', 'write 12', 'write 4', 'get y', 'write 4']);
  });

  it('fails on a lazy tensor of the wrong size after writing what came before', async () => {
    let written = 0;
    const sink: ByteSink = { write: async (c) => void (written += c.byteLength) };
    await expect(
      writeSafetensorsTo(sink, { w: { dtype: 'F16', shape: [4], data: () => new Uint16Array(3) } }, undefined, 'out.safetensors'),
    ).rejects.toThrow('out.safetensors: tensor "w" has 6 bytes of data but F16 [4] needs 8');
    expect(written).toBeGreaterThan(0);
  });
});
