import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { DType } from '@peft/core';
import { describe, expect, it } from 'vitest';
import type { TorchBinSource } from './torch-bin.js';
import { convertTorchBytes, openTorchBin } from './torch-bin.js';
import { readZipDirectory } from './torch-bin-zip.js';

// Fixtures made by scripts/make-torch-bin-fixtures.py with torch 1.13's torch.save; golden.json
// holds what torch itself reads back from each file (values, layouts, torch's dtype conversions).
const dir = new URL('./fixtures/torch-bin/', import.meta.url);
const fixture = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));

interface GoldenTensor {
  dtype: string;
  shape: number[];
  stride: number[];
  storage_offset: number;
  contiguous: boolean;
  parameter: boolean;
  values: Array<number | string | boolean>;
  as_float32?: number[];
  as_float16?: number[];
  as_bfloat16?: number[];
  shares_storage_with: string[];
}
const golden = JSON.parse(readFileSync(new URL('golden.json', dir), 'utf8')) as {
  files: Record<string, { tensors: Record<string, GoldenTensor>; other_keys?: string[] }>;
};

type Read = { offset: number; length: number };

/** A source over bytes that records every read. */
function spySource(bytes: Uint8Array, name: string): TorchBinSource & { reads: Read[] } {
  const reads: Read[] = [];
  return {
    name,
    size: bytes.byteLength,
    reads,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > bytes.byteLength) throw new Error(`${name}: read out of range`);
      reads.push({ offset, length });
      return bytes.subarray(offset, offset + length);
    },
  };
}

const open = (name: string) => openTorchBin(spySource(fixture(name), name.split('/').pop()!));
const bitsOf = (data: ArrayBufferView) =>
  Array.from(new Uint32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
const isFloat = (dtype: string) => dtype.startsWith('float') || dtype === 'bfloat16';
/**
 * NaN bit patterns as one marker: torch's vectorised float32 → bfloat16 turns every NaN into
 * 0xffff, core's rounding keeps a quiet NaN with its sign (0x7fc0); both are NaN.
 */
const nanTo = (dtype: DType) => (bits: number) => {
  const nan =
    dtype === 'float32' ? (bits & 0x7fffffff) > 0x7f800000 : dtype === 'float16' ? (bits & 0x7fff) > 0x7c00 : (bits & 0x7fff) > 0x7f80;
  return nan ? -1 : bits;
};
const num = (v: number | string | boolean) => (typeof v === 'boolean' ? Number(v) : Number(v));

describe('torch.save files match what torch reads back', () => {
  for (const [file, expected] of Object.entries(golden.files)) {
    it(`${file}: names, layouts and every value`, async () => {
      const ckpt = await open(file);
      expect(ckpt.names()).toEqual(Object.keys(expected.tensors));
      if (expected.other_keys) expect(ckpt.otherKeys).toEqual(expected.other_keys);
      for (const [name, want] of Object.entries(expected.tensors)) {
        const info = ckpt.info(name);
        expect(info.dtype, name).toBe(want.dtype);
        expect(info.shape, name).toEqual(want.shape);
        if (want.shape.reduce((a, b) => a * b, 1) > 0) {
          // Empty tensors' strides and offsets are whatever torch.load chose; skip them.
          expect(info.stride, name).toEqual(want.stride);
          expect(info.storageOffset, name).toBe(want.storage_offset);
          expect(info.contiguous, name).toBe(want.contiguous);
        }
        expect(info.parameter, name).toBe(want.parameter);
        for (const other of want.shares_storage_with) expect(ckpt.info(other).storageKey, `${name} ~ ${other}`).toBe(info.storageKey);

        if (name === 'i64_big') continue; // checked below
        const t = await ckpt.readTensor(name);
        expect(t.shape, name).toEqual(want.shape);
        if (want.dtype === 'float16' || want.dtype === 'bfloat16') {
          expect(t.dtype, name).toBe(want.dtype);
          expect(Array.from(t.data as Uint16Array), name).toEqual(want.dtype === 'float16' ? want.as_float16 : want.as_bfloat16);
        } else if (isFloat(want.dtype)) {
          expect(t.dtype, name).toBe('float32');
          expect(bitsOf(t.data), name).toEqual(want.as_float32);
        } else {
          expect(t.dtype, name).toBe('int32');
          expect(Array.from(t.data as Int32Array), name).toEqual(want.values.map(num));
        }
      }
      await ckpt.close();
    });

    it(`${file}: converts like torch to float32, float16 and bfloat16`, async () => {
      const ckpt = await open(file);
      for (const [name, want] of Object.entries(expected.tensors)) {
        if (name === 'i64_big') continue;
        const targets: DType[] = ['float32', 'float16', 'bfloat16'];
        for (const dtype of targets) {
          const t = await ckpt.readTensor(name, { dtype });
          expect(t.dtype).toBe(dtype);
          if (isFloat(want.dtype)) {
            const bits = dtype === 'float32' ? bitsOf(t.data) : Array.from(t.data as Uint16Array);
            expect(bits.map(nanTo(dtype)), `${name} as ${dtype}`).toEqual(want[`as_${dtype}` as 'as_float32']!.map(nanTo(dtype)));
          } else if (dtype === 'float32') {
            expect(Array.from(t.data as Float32Array), name).toEqual(want.values.map((v) => Math.fround(num(v))));
          }
        }
        if (isFloat(want.dtype)) {
          await expect(ckpt.readTensor(name, { dtype: 'int32' })).rejects.toThrow(
            `${file.split('/').pop()}: tensor ${JSON.stringify(name)} is ${want.dtype}, a float dtype: it cannot load as int32`,
          );
        }
      }
    });
  }

  it('keeps nn.Parameter, tied, transposed, offset and 0-d tensors apart', async () => {
    const ckpt = await open('state-dict.bin');
    expect(ckpt.info('param').parameter).toBe(true);
    expect(ckpt.info('embed.weight').storageKey).toBe(ckpt.info('lm_head.weight').storageKey);
    expect(ckpt.info('same_object')).toEqual(ckpt.info('norm.weight'));
    expect(ckpt.info('base_t')).toMatchObject({ shape: [4, 3], stride: [1, 4], contiguous: false, byteLength: 48 });
    expect(ckpt.info('base_slice')).toMatchObject({ shape: [2, 2], stride: [4, 1], storageOffset: 5, contiguous: false });
    expect(ckpt.info('scalar')).toMatchObject({ shape: [], stride: [], dtype: 'float32', byteLength: 4 });
    expect(Array.from((await ckpt.readTensor('scalar')).data)).toEqual([2.5]);
    expect(Array.from((await ckpt.readTensor('base_t')).data)).toEqual([0, 1, 2, 0.25, 1.25, 2.25, 0.5, 1.5, 2.5, 0.75, 1.75, 2.75]);
    const empty = await ckpt.readTensor('empty');
    expect(empty.shape).toEqual([0, 3]);
    expect(empty.data.length).toBe(0);
  });

  it('range-checks int64 → int32 and gives the raw int64 bytes', async () => {
    const ckpt = await open('state-dict.bin');
    await expect(ckpt.readTensor('i64_big')).rejects.toThrow(
      'state-dict.bin: tensor "i64_big" is int64 and its value 1099511627776 at index 1 is outside the int32 range [-2147483648, 2147483647]: read its bytes with readRaw instead',
    );
    const raw = await ckpt.readRaw('i64_big');
    expect(Array.from(new BigInt64Array(raw.slice().buffer))).toEqual([3n, 2n ** 40n]);
    // A transposed int64 view gathers whole 8-byte elements.
    const t = new BigInt64Array((await ckpt.readRaw('i64_t')).slice().buffer);
    expect(Array.from(t)).toEqual([1n, 3n, -(2n ** 31n), -2n, 2n ** 31n - 1n, 0n]);
  });

  it('names the file and the tensor for unknown names and bad dtypes', async () => {
    const ckpt = await open('state-dict.bin');
    expect(() => ckpt.info('nope')).toThrow('state-dict.bin: no tensor "nope": the file has 27 tensors ("embed.weight", "norm.weight"');
    await expect(ckpt.readTensor('f16', { dtype: 'float8' as DType })).rejects.toThrow(
      'state-dict.bin: tensor "f16": dtype "float8" is not supported',
    );
    expect(ckpt.has('f16')).toBe(true);
    expect(ckpt.has('step')).toBe(false);
  });
});

describe('lazy reads', () => {
  it('opening reads only the zip directory and data.pkl; a tensor reads only its span of its storage', async () => {
    const bytes = fixture('state-dict.bin');
    const source = spySource(bytes, 'state-dict.bin');
    const ckpt = await openTorchBin(source);

    const zip = await readZipDirectory(spySource(bytes, 'x'));
    const dataStart = (name: string) => {
      const e = zip.entries.get(name)!;
      const view = new DataView(bytes.buffer, bytes.byteOffset + e.localHeaderOffset, 30);
      return e.localHeaderOffset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
    };
    const pkl = zip.entries.get('state-dict/data.pkl')!;
    const pklEnd = dataStart('state-dict/data.pkl') + pkl.compressedSize;
    const inside = (r: Read, start: number, end: number) => r.offset >= start && r.offset + r.length <= end;

    const opening = source.reads.splice(0);
    for (const r of opening) {
      const ok = inside(r, pkl.localHeaderOffset, pklEnd) || inside(r, zip.centralDirectoryOffset, bytes.byteLength);
      expect(ok, `read [${r.offset}, ${r.offset + r.length})`).toBe(true);
    }

    // base_slice: storage offset 5, shape [2, 2], strides [4, 1] → elements 5..10 of "base"'s storage.
    const key = ckpt.info('base_slice').storageKey;
    const entry = zip.entries.get(`state-dict/data/${key}`)!;
    const t = await ckpt.readTensor('base_slice');
    expect(Array.from(t.data)).toEqual([1.25, 1.5, 2.25, 2.5]);
    const reads = source.reads.splice(0);
    const start = dataStart(`state-dict/data/${key}`);
    for (const r of reads) expect(inside(r, entry.localHeaderOffset, start + entry.compressedSize)).toBe(true);
    expect(reads.at(-1)).toEqual({ offset: start + 5 * 4, length: 6 * 4 });
    // The local header with its name (checked against the central directory), then the span.
    expect(reads.reduce((n, r) => n + r.length, 0)).toBeLessThanOrEqual(30 + `state-dict/data/${key}`.length + 24);

    // info() reads nothing.
    for (const name of ckpt.names()) ckpt.info(name);
    expect(source.reads).toEqual([]);
  });
});

describe('refused files', () => {
  const pwned = ['/tmp/peft-torch-bin-pwned-os-system', '/tmp/peft-torch-bin-pwned-eval'];

  it('refuses a pickle calling os.system and runs nothing', async () => {
    for (const p of pwned) rmSync(p, { force: true });
    await expect(open('malicious-os-system.bin')).rejects.toThrow(
      'malicious-os-system.bin: pickle global "os.system" is not allowed: only tensors and dicts are read',
    );
    await expect(open('malicious-eval.bin')).rejects.toThrow(
      'malicious-eval.bin: pickle global "builtins.eval" is not allowed: only tensors and dicts are read',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const p of pwned) expect(existsSync(p), p).toBe(false);
  });

  it('refuses a truncated file, naming it', async () => {
    await expect(open('truncated.bin')).rejects.toThrow(
      'truncated.bin: no zip end-of-central-directory record: it starts like a zip archive but its end is missing: the file is truncated',
    );
  });

  it('explains the legacy (pre-1.6) format and how to convert', async () => {
    await expect(open('legacy.bin')).rejects.toThrow(
      /^legacy\.bin: no zip end-of-central-directory record: it is in the legacy torch\.save format \(torch < 1\.6, or _use_new_zipfile_serialization=False\), which is not supported: convert it with torch >= 1\.6: .*torch\.save\(torch\.load\('legacy\.bin', map_location='cpu', weights_only=True\), 'legacy\.bin'\)/,
    );
  });

  it('refuses an unknown storage type, naming the tensor and the type', async () => {
    await expect(open('complex.bin')).rejects.toThrow(
      'complex.bin: tensor "c" is stored as torch.ComplexFloatStorage, which is not supported: storage types are torch.DoubleStorage, torch.FloatStorage',
    );
  });
});

describe('convertTorchBytes', () => {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

  it('rounds float32 to float16 and bfloat16 to nearest even', () => {
    const f = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65520, 2 ** -25]);
    expect(Array.from(convertTorchBytes(bytes(f), 'float32', 'float16', 'x'))).toEqual([0x3c00, 0x3c02, 0x3c04, 0x3c0c, 0x7c00, 0]);
    expect(Array.from(convertTorchBytes(bytes(f), 'float32', 'bfloat16', 'x')).slice(0, 4)).toEqual([0x3f80, 0x3f80, 0x3f80, 0x3f82]);
  });

  it('widens integers and bool, range-checks int64', () => {
    expect(Array.from(convertTorchBytes(new Uint8Array([0, 2, 1]), 'bool', 'int32', 'x'))).toEqual([0, 1, 1]);
    expect(Array.from(convertTorchBytes(new Uint8Array([0xff, 0x80]), 'int8', 'int32', 'x'))).toEqual([-1, -128]);
    expect(Array.from(convertTorchBytes(new Uint8Array([0xff, 0x80]), 'uint8', 'float32', 'x'))).toEqual([255, 128]);
    expect(Array.from(convertTorchBytes(bytes(new BigInt64Array([-(2n ** 31n), 5n])), 'int64', 'int32', 'x'))).toEqual([-(2 ** 31), 5]);
    expect(() => convertTorchBytes(bytes(new BigInt64Array([2n ** 31n])), 'int64', 'int32', 'f.bin: tensor "t"')).toThrow(
      'f.bin: tensor "t" is int64 and its value 2147483648 at index 0 is outside the int32 range',
    );
  });

  it('narrows float64 to float32 and handles unaligned bytes', () => {
    const b = new Uint8Array(17);
    b.set(bytes(new Float64Array([1 / 3, -1e300])), 1);
    expect(Array.from(convertTorchBytes(b.subarray(1), 'float64', 'float32', 'x'))).toEqual([Math.fround(1 / 3), -Infinity]);
  });
});
