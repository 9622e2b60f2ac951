import { describe, expect, it } from 'vitest';
import { bytesSource } from './byte-source.js';
import { openSafetensors } from './reader.js';
import { serializeSafetensors } from './writer.js';

/** A file made by hand: u64 length, the header text (not padded unless asked), then `data` bytes. */
function file(header: string | object, data: number | Uint8Array = 0, declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const bytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + bytes.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes, 8 + json.length);
  return out;
}

const open = (bytes: Uint8Array) => openSafetensors(bytesSource(bytes, 'model.safetensors'));

describe('safetensors header validation', () => {
  it('rejects a file shorter than the 8-byte length', async () => {
    await expect(open(new Uint8Array(5))).rejects.toThrow(
      'model.safetensors: file is 5 bytes, too small for a safetensors file, which starts with an 8-byte header length',
    );
  });

  it('rejects a header length past the end of the file', async () => {
    const bytes = file('{}', 0, 1000n);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: header length 1000 runs past the end of the file (10 bytes, so at most 2 bytes of header): the file is truncated or not safetensors',
    );
  });

  it('rejects an absurd header length', async () => {
    await expect(open(file('{}', 0, 2n ** 63n))).rejects.toThrow(
      'model.safetensors: header length 9223372036854775808 is over the 100000000-byte limit: the file is corrupt or not safetensors',
    );
  });

  it('rejects a header that is not JSON', async () => {
    await expect(open(file('{"a": {"dtype": "F32",'))).rejects.toThrow(
      /^model\.safetensors: header is not valid JSON \(.*\); it starts with "\{\\"a\\": \{\\"dtype\\": \\"F32\\","$/,
    );
  });

  it('rejects a header that is not UTF-8', async () => {
    const bytes = file('{"a":1}');
    bytes[10] = 0xff;
    await expect(open(bytes)).rejects.toThrow('model.safetensors: header (7 bytes) is not valid UTF-8');
  });

  it('rejects a header that is JSON but not an object', async () => {
    await expect(open(file('[1, 2]'))).rejects.toThrow('model.safetensors: header must be a JSON object of tensors, got an array [1,2]');
    await expect(open(file('null'))).rejects.toThrow('model.safetensors: header must be a JSON object of tensors, got null');
  });

  it('rejects an unknown dtype', async () => {
    const bytes = file({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: tensor "w" has dtype "F128", which is not a safetensors dtype: known are BOOL, F4,',
    );
  });

  it('rejects a size mismatch between offsets and shape', async () => {
    const bytes = file({ 'a.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 12] } }, 12);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: tensor "a.weight" data_offsets [0, 12] cover 12 bytes but F32 [2, 3] needs 24',
    );
  });

  it('rejects overlapping tensors', async () => {
    const bytes = file(
      {
        a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
        b: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
      },
      20,
    );
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: tensor "b" data_offsets [8, 20] overlap tensor "a" data_offsets [0, 12]: tensors must not share bytes',
    );
  });

  it('rejects offsets outside the data', async () => {
    const bytes = file({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: tensor "a" data_offsets [0, 16] run past the end of the data, which is 8 bytes: the file is truncated or the offsets are wrong',
    );
  });

  it('rejects a gap between tensors', async () => {
    const bytes = file(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      12,
    );
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: 4 unused bytes between tensor "a" (data_offsets [0, 4]) and tensor "b" (data_offsets [8, 12]): tensors must be contiguous',
    );
  });

  it('rejects a first tensor that does not start at 0', async () => {
    const bytes = file({ a: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } }, 4);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: tensor "a" data_offsets [2, 4] leave 2 unused bytes at the start of the data: the first tensor must begin at 0',
    );
  });

  it('rejects trailing bytes after the last tensor', async () => {
    const bytes = file({ a: { dtype: 'I16', shape: [2], data_offsets: [0, 4] } }, 10);
    await expect(open(bytes)).rejects.toThrow(
      'model.safetensors: data region is 10 bytes (file 72 bytes, header 54 bytes) but the tensors cover 4: 6 trailing bytes after tensor "a"',
    );
  });

  it('rejects a truncated file', async () => {
    const whole = serializeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    await expect(open(whole.subarray(0, whole.length - 3))).rejects.toThrow(
      'model.safetensors: tensor "w" data_offsets [0, 16] run past the end of the data, which is 13 bytes: the file is truncated or the offsets are wrong',
    );
  });

  it('rejects entries with missing, extra or ill-typed fields', async () => {
    await expect(open(file({ a: { dtype: 'F32', shape: [0] } }))).rejects.toThrow(
      'model.safetensors: tensor "a" has no "data_offsets": each tensor needs dtype, shape and data_offsets',
    );
    await expect(open(file({ a: { dtype: 'F32', shape: [0], data_offsets: [0, 0], offset: 3 } }))).rejects.toThrow(
      'model.safetensors: tensor "a" has an unexpected field "offset": expected only dtype, shape and data_offsets',
    );
    await expect(open(file({ a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 0] } }))).rejects.toThrow(
      'model.safetensors: tensor "a" shape [2,-1] must be an array of non-negative integers',
    );
    await expect(open(file({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 0] } }))).rejects.toThrow(
      'shape [1.5] must be an array of non-negative integers',
    );
    await expect(open(file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 8))).rejects.toThrow(
      'model.safetensors: tensor "a" data_offsets [0,4,8] must be [begin, end], two non-negative integers',
    );
    await expect(open(file({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4))).rejects.toThrow(
      'model.safetensors: tensor "a" data_offsets [4, 0] end before they begin',
    );
    await expect(open(file({ a: 7 }))).rejects.toThrow(
      'model.safetensors: tensor "a" must be an object {"dtype", "shape", "data_offsets"}, got number 7',
    );
  });

  it('rejects sub-byte tensors that do not fill whole bytes', async () => {
    await expect(open(file({ a: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2))).rejects.toThrow(
      'model.safetensors: tensor "a" F4 [3] is 12 bits, not a whole number of bytes',
    );
  });

  it('rejects a tensor named twice in the header', async () => {
    const header = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    await expect(open(file(header, 2))).rejects.toThrow('model.safetensors: header names tensor "a" twice: tensor names must be unique');
  });

  it('rejects metadata that is not strings', async () => {
    await expect(open(file({ __metadata__: { format: 'pt', step: 3 } }))).rejects.toThrow(
      'model.safetensors: __metadata__ value of "step" must be a string, got number 3',
    );
    await expect(open(file({ __metadata__: ['pt'] }))).rejects.toThrow(
      'model.safetensors: __metadata__ must be an object of strings, got an array ["pt"]',
    );
  });

  it('accepts null metadata, an empty file and zero-size tensors sharing an offset', async () => {
    const st = await open(
      file(
        {
          __metadata__: null,
          e1: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
          a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] },
          e2: { dtype: 'F32', shape: [3, 0], data_offsets: [2, 2] },
        },
        new Uint8Array([7, 9]),
      ),
    );
    expect(st.names()).toEqual(['e1', 'a', 'e2']);
    expect(st.metadata).toEqual({});
    expect([...(await st.readRaw('a'))]).toEqual([7, 9]);
    expect((await st.readTensor('e2')).data).toEqual(new Float32Array(0));
    const empty = await open(file('{}'));
    expect(empty.names()).toEqual([]);
  });
});
