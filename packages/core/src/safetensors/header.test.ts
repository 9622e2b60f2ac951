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

  it('rejects an absurd header length without printing the length field', async () => {
    await expect(open(file('{}', 0, 2n ** 63n))).rejects.toThrow(
      'model.safetensors: not a safetensors file (header length field exceeds the file size 10)',
    );
    // Within the file but over the cap of the reference crate.
    const big = new Uint8Array(8 + 100_000_001);
    new DataView(big.buffer).setBigUint64(0, 100_000_001n, true);
    await expect(open(big)).rejects.toThrow(
      'model.safetensors: header length 100000001 is over the 100000000-byte limit: the file is corrupt or not safetensors',
    );
  });

  it('rejects a header that is not JSON, quoting none of it', async () => {
    const error = await open(file('{"a": {"dtype": "F32",')).catch((e: Error) => e);
    expect((error as Error).message).toBe('model.safetensors: header is not valid JSON (the text ends early, after 22 characters)');
    const text = await open(file('{"a": secret-words}')).catch((e: Error) => e.message);
    expect(text).toMatch(/^model\.safetensors: header is not valid JSON/);
    expect(text).not.toContain('secret');
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
      'model.safetensors: __metadata__ must be an object of strings, got an array of 1 item',
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

describe('safetensors header: hostile files', () => {
  it('rejects a deeply nested header before parsing it, naming the file (was: Maximum call stack size exceeded)', async () => {
    const depth = 100_000;
    const bytes = file(`{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    const started = performance.now();
    const error = await open(bytes).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).constructor).toBe(Error);
    expect((error as Error).message).toBe(
      'model.safetensors: header nests arrays or objects more than 3 levels deep (at character 7), deeper than this kind of file ever nests',
    );
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('never prints the length field or the text of a file that is not safetensors', async () => {
    const text = new TextEncoder().encode('root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n');
    const message = await open(text).catch((e: Error) => e.message);
    expect(message).toBe(
      `model.safetensors: not a safetensors file (header length field exceeds the file size ${text.length}): the file is truncated or not safetensors`,
    );
    expect(message).not.toMatch(/root|3475222254926655346/);
  });

  it('refuses shapes whose size overflows 2^53 at any step, even when a later dimension is 0', async () => {
    await expect(open(file({ a: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 0], data_offsets: [0, 0] } }))).rejects.toThrow(
      'model.safetensors: tensor "a" shape [1073741824,1073741824,0] is too large: its size in bits overflows 2^53 (F32)',
    );
    await expect(open(file({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 2 ** 53] } }, 1))).rejects.toThrow(
      'model.safetensors: tensor "a" data_offsets [0,9007199254740992] must be [begin, end], two non-negative integers',
    );
  });

  it('keeps messages short when a file gives huge names or arrays', async () => {
    const name = 'n'.repeat(100_000);
    const m1 = await open(file({ [name]: { dtype: 'F32', shape: [1], data_offsets: [0, 8] } }, 8)).catch((e: Error) => e.message);
    expect(m1).toMatch(
      /^model\.safetensors: tensor "n{120}"… \(100000 characters\) data_offsets \[0, 8\] cover 8 bytes but F32 \[1\] needs 4$/,
    );
    const shape = Array.from({ length: 10_000 }, () => -1);
    const m2 = await open(file({ a: { dtype: 'F32', shape, data_offsets: [0, 0] } })).catch((e: Error) => e.message);
    expect(m2).toBe('model.safetensors: tensor "a" shape an array of 10000 items must be an array of non-negative integers');
    const m3 = await open(file({ a: { dtype: 'x'.repeat(5000), shape: [1], data_offsets: [0, 4] } }, 4)).catch((e: Error) => e.message);
    expect(String(m3).length).toBeLessThan(400);
  });

  it('rejects a header length that cannot hold a JSON object', async () => {
    await expect(open(file('', 0))).rejects.toThrow('model.safetensors: header length 0 is too short for a JSON object');
  });
});
