import { describe, expect, it, vi } from 'vitest';
import type { ByteSource } from './byte-source.js';
import { blobSource, bytesSource } from './byte-source.js';
import { openSafetensors } from './reader.js';
import { serializeSafetensors } from './writer.js';

/**
 * Written byte by byte: header length 200, the 198-byte JSON header padded with two spaces, then
 * F32 [1, 2] (0.5, -2), BF16 [2] (1.0, -3.140625) and U8 [3] (1, 2, 255).
 */
function handWrittenFile(): Uint8Array<ArrayBuffer> {
  const header =
    '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"ids":{"dtype":"U8","shape":[3],"data_offsets":[12,15]}}';
  expect(header.length).toBe(198);
  const padded = header.padEnd(200, ' ');
  const bytes = [
    200,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    ...[...padded].map((c) => c.charCodeAt(0)),
    0x00,
    0x00,
    0x00,
    0x3f, // 0.5f
    0x00,
    0x00,
    0x00,
    0xc0, // -2.0f
    0x80,
    0x3f, // bf16 1.0
    0x49,
    0xc0, // bf16 -3.140625
    1,
    2,
    255,
  ];
  return new Uint8Array(bytes);
}

/** Wraps a source and records every read. */
function spied(source: ByteSource) {
  const reads: Array<[number, number]> = [];
  const read = vi.fn(async (offset: number, length: number) => {
    reads.push([offset, length]);
    return source.read(offset, length);
  });
  return { source: { name: source.name, size: source.size, read }, reads };
}

describe('openSafetensors', () => {
  it('parses a file written by hand', async () => {
    const st = await openSafetensors(bytesSource(handWrittenFile(), 'hand.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.names()).toEqual(['w', 'b', 'ids']);
    expect(st.headerByteLength).toBe(200);
    expect(st.info('b')).toEqual({ dtype: 'BF16', shape: [2], dataOffsets: [8, 12], byteOffset: 216, byteLength: 4 });
    expect(await st.readTensor('w')).toEqual({ dtype: 'float32', shape: [1, 2], data: new Float32Array([0.5, -2]) });
    expect(await st.readTensor('b')).toEqual({ dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xc049]) });
    expect((await st.readTensor('b', { dtype: 'float32' })).data).toEqual(new Float32Array([1, -3.140625]));
    expect(await st.readTensor('ids')).toEqual({ dtype: 'int32', shape: [3], data: new Int32Array([1, 2, 255]) });
    expect(() => st.info('nope')).toThrow('hand.safetensors: no tensor "nope": the file has 3 tensors ("w", "b", "ids")');
  });

  it('reads only the header and then only the requested tensor', async () => {
    const big = new Float32Array(1000).map((_, i) => i);
    const bytes = serializeSafetensors({
      big: { dtype: 'F32', shape: [1000], data: big },
      small: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    });
    const { source, reads } = spied(bytesSource(bytes, 'lazy.safetensors'));
    const st = await openSafetensors(source);
    const headerLength = st.headerByteLength;
    expect(reads).toEqual([
      [0, 8],
      [8, headerLength],
    ]);
    expect((await st.readTensor('small', { dtype: 'float32' })).data).toEqual(new Float32Array([1, -2]));
    expect(reads.slice(2)).toEqual([[8 + headerLength + 4000, 4]]);
    const total = reads.reduce((sum, [, n]) => sum + n, 0);
    expect(total).toBe(8 + headerLength + 4);
    expect(bytes.length).toBe(8 + headerLength + 4004);
  });

  it('reads tensors whose data is not aligned to their element size', async () => {
    // U8 [3] then F32 [2] starting at data offset 3, written out of the writer's order by hand.
    const header =
      '{"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},"d":{"dtype":"I64","shape":[1],"data_offsets":[11,19]}}';
    const json = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + json.length + 19);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    const data = 8 + json.length;
    bytes.set([4, 5, 6], data);
    view.setFloat32(data + 3, 1.5, true);
    view.setFloat32(data + 7, -0.25, true);
    view.setBigInt64(data + 11, -123456n, true);
    expect((data + 3) % 4).not.toBe(0);
    const st = await openSafetensors(bytesSource(bytes, 'unaligned.safetensors'));
    expect((await st.readTensor('f')).data).toEqual(new Float32Array([1.5, -0.25]));
    expect((await st.readTensor('d')).data).toEqual(new Int32Array([-123456]));
    expect((await st.readTensor('u')).data).toEqual(new Int32Array([4, 5, 6]));
  });

  it('converts between float dtypes with round-to-nearest-even', async () => {
    // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): ties to even → 1.0.
    // 1 + 3 * 2^-8 ties between 1 + 2^-7 and 1 + 2^-6: ties to even → 1 + 2^-6.
    const values = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 65520, 2 ** -25, -0]);
    const st = await openSafetensors(bytesSource(serializeSafetensors({ x: { dtype: 'float32', shape: [5], data: values } })));
    const bf16 = await st.readTensor('x', { dtype: 'bfloat16' });
    expect(bf16.data).toEqual(new Uint16Array([0x3f80, 0x3f82, 0x4780, 0x3300, 0x8000]));
    const f16 = await st.readTensor('x', { dtype: 'float16' });
    // 1 + 2^-8 is exact in f16; 65520 rounds to +Inf in f16; 2^-25 is half the smallest subnormal → 0.
    expect(f16.data).toEqual(new Uint16Array([0x3c04, 0x3c0c, 0x7c00, 0x0000, 0x8000]));

    // f16 → bf16: 1 + 2^-8 (f16 0x3c04) rounds to even 1.0 in bf16.
    const half = await openSafetensors(
      bytesSource(serializeSafetensors({ h: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c04, 0x3c0c]) } })),
    );
    expect((await half.readTensor('h', { dtype: 'bfloat16' })).data).toEqual(new Uint16Array([0x3f80, 0x3f82]));
    // bf16 → f16: exact when representable.
    const brain = await openSafetensors(
      bytesSource(serializeSafetensors({ b: { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f82, 0xc049]) } })),
    );
    expect((await brain.readTensor('b', { dtype: 'float16' })).data).toEqual(new Uint16Array([0x3c10, 0xc248]));
  });

  it('refuses lossy or meaningless conversions with the tensor named', async () => {
    const st = await openSafetensors(
      bytesSource(
        serializeSafetensors({
          f: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
          big: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -1n, 2n ** 31n]) },
          ubig: { dtype: 'U32', shape: [2], data: new Uint32Array([5, 3_000_000_000]) },
          c: { dtype: 'C64', shape: [1], data: new Float32Array([1, 2]) },
        }),
        'x.safetensors',
      ),
    );
    await expect(st.readTensor('f', { dtype: 'int32' })).rejects.toThrow(
      'x.safetensors: tensor "f" is F32, a float dtype: it cannot load as int32; ask for float32, float16 or bfloat16',
    );
    await expect(st.readTensor('big')).rejects.toThrow(
      'x.safetensors: tensor "big" is I64 and its value 2147483648 at index 2 is outside the int32 range [-2147483648, 2147483647]: read its bytes with readRaw instead',
    );
    await expect(st.readTensor('ubig')).rejects.toThrow('tensor "ubig" is U32 and its value 3000000000 at index 1 is outside');
    await expect(st.readTensor('c')).rejects.toThrow(
      'x.safetensors: tensor "c" is C64, which has no core dtype: read its bytes with readRaw',
    );
    expect(new Float32Array((await st.readRaw('c')).slice().buffer)).toEqual(new Float32Array([1, 2]));
    // Integers can load as floats.
    const ints = await openSafetensors(
      bytesSource(serializeSafetensors({ i: { dtype: 'I16', shape: [2], data: new Int16Array([-3, 300]) } })),
    );
    expect((await ints.readTensor('i', { dtype: 'float32' })).data).toEqual(new Float32Array([-3, 300]));
    expect((await ints.readTensor('i', { dtype: 'bfloat16' })).data).toEqual(new Uint16Array([0xc040, 0x4396]));
  });

  it('reads from a Blob (a browser File)', async () => {
    const bytes = handWrittenFile();
    const st = await openSafetensors(blobSource(new Blob([bytes]), 'picked.safetensors'));
    expect(st.name).toBe('picked.safetensors');
    expect((await st.readTensor('w')).data).toEqual(new Float32Array([0.5, -2]));
    await expect(blobSource(new Blob([bytes]), 'picked').read(bytes.length - 2, 5)).rejects.toThrow(
      `picked: cannot read bytes [${bytes.length - 2}, ${bytes.length + 3}): the source is only ${bytes.length} bytes`,
    );
  });
});
