import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bytesSource } from './byte-source.js';
import { openSafetensors } from './reader.js';
import type { NamedTensorToWrite } from './writer.js';
import { serializeSafetensors } from './writer.js';

// Fixtures made by scripts/make-safetensors-golden.py with the reference (Rust) serializer.
const golden = new Uint8Array(readFileSync(new URL('./fixtures/golden.safetensors', import.meta.url)));
const expected = JSON.parse(readFileSync(new URL('./fixtures/golden.json', import.meta.url), 'utf8')) as {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: string; shape: number[]; values: Array<number | string>; bits?: number[] }>;
};
const num = (v: number | string) => (typeof v === 'number' ? v : Number(v));

describe('golden file from the reference writer', () => {
  it('loads every dtype with the values the reference wrote', async () => {
    const st = await openSafetensors(bytesSource(golden, 'golden.safetensors'));
    expect(st.metadata).toEqual(expected.metadata);
    expect(new Set(st.names())).toEqual(new Set(Object.keys(expected.tensors)));
    for (const [name, want] of Object.entries(expected.tensors)) {
      const info = st.info(name);
      expect(info.dtype, name).toBe(want.dtype);
      expect(info.shape, name).toEqual(want.shape);
      if (name === 'i64_big') {
        await expect(st.readTensor(name)).rejects.toThrow(
          'golden.safetensors: tensor "i64_big" is I64 and its value 1099511627776 at index 1 is outside the int32 range',
        );
        const raw = await st.readRaw(name);
        expect([...new BigInt64Array(raw.slice().buffer)]).toEqual([3n, 2n ** 40n]);
        continue;
      }
      if (want.bits) {
        expect([...(await st.readTensor(name)).data], name).toEqual(want.bits);
      }
      const float = want.dtype.startsWith('F') || want.dtype === 'BF16';
      const t = await st.readTensor(name, float ? { dtype: 'float32' } : {});
      expect(t.dtype, name).toBe(float ? 'float32' : 'int32');
      expect(t.shape, name).toEqual(want.shape);
      expect([...t.data], name).toEqual(want.values.map(num).map((v) => (float ? Math.fround(v) : v)));
    }
  });

  it('serializes the same tensors to the same bytes as the reference writer', async () => {
    const st = await openSafetensors(bytesSource(golden, 'golden.safetensors'));
    const tensors: NamedTensorToWrite[] = [];
    // Feed them in reverse alphabetical order: the writer must reorder like the reference.
    for (const name of [...st.names()].sort().reverse()) {
      const info = st.info(name);
      tensors.push({ name, dtype: info.dtype, shape: info.shape, data: await st.readRaw(name) });
    }
    const ours = serializeSafetensors(tensors, expected.metadata);
    expect(ours.length).toBe(golden.length);
    expect(Buffer.from(ours).equals(Buffer.from(golden))).toBe(true);
  });
});
