/**
 * Reader for PyTorch checkpoints (`pytorch_model.bin`, torch.save's zip format of torch >= 1.6).
 * Opening reads the zip central directory and `data.pkl` only; `data.pkl` is interpreted by a
 * restricted unpickler (see torch-bin-pickle.ts) that never executes code. Tensor data is read on
 * demand, one tensor at a time, and only the bytes of the storage range the tensor spans.
 */
import type { DType, RawArray } from '@peft/core';
import { assertDType, bf16ToFloat, decode, encode, f16ToFloat, floatToBf16, floatToF16 } from '@peft/core';
import type { TorchDType, TorchStorageRef } from './torch-bin-pickle.js';
import { describe, PyDict, TORCH_DTYPE_BYTES, TORCH_STORAGE_TYPES, TorchTensorRef, unpickleTorch } from './torch-bin-pickle.js';
import type { TorchBinSource, ZipEntry } from './torch-bin-zip.js';
import { assertReadableEntry, quoteName, readEntry, readEntryRange, readZipDirectory } from './torch-bin-zip.js';

export type { TorchDType } from './torch-bin-pickle.js';
export type { TorchBinSource } from './torch-bin-zip.js';

/** Where and how one tensor is stored. */
export interface TorchBinTensorInfo {
  /** Element type of the storage, as torch names it. */
  dtype: TorchDType;
  shape: number[];
  /** Strides in elements (a transposed view has non-C-order strides). */
  stride: number[];
  /** Offset of the first element within the storage, in elements. */
  storageOffset: number;
  /** The storage's key: its data is the zip entry `<prefix>/data/<key>`. Tied tensors share one. */
  storageKey: string;
  /** The pickled storage class, e.g. "FloatStorage". */
  storageType: string;
  /** Whether the tensor's elements are the storage's, in C order, without gaps. */
  contiguous: boolean;
  /** Saved as an `nn.Parameter` rather than a plain tensor. */
  parameter: boolean;
  /** Bytes of the tensor's data once made contiguous: numel × element size. */
  byteLength: number;
}

/** A tensor loaded into core's raw storage form: f16/bf16 as 16-bit patterns. */
export interface TorchBinLoadedTensor {
  dtype: DType;
  shape: number[];
  data: RawArray;
}

export interface TorchBinReadOptions {
  /**
   * Core dtype to load as. Default: float16 → float16, bfloat16 → bfloat16, other floats → float32,
   * integers and bool → int32 (int64 values must fit int32).
   */
  dtype?: DType;
}

/** What a single file and a sharded checkpoint have in common (same shape as core's `TensorReader`). */
export interface TorchBinReader {
  names(): string[];
  has(name: string): boolean;
  readRaw(name: string): Promise<Uint8Array>;
  readTensor(name: string, options?: TorchBinReadOptions): Promise<TorchBinLoadedTensor>;
  close(): Promise<void>;
}

interface TensorRecord {
  ref: TorchTensorRef;
  dtype: TorchDType;
  entry: ZipEntry;
  numel: number;
}

/** The core dtype a torch dtype loads as when none is asked for (see `TorchBinReadOptions`). */
export function defaultCoreDTypeOfTorch(dtype: TorchDType): DType {
  switch (dtype) {
    case 'float16':
      return 'float16';
    case 'bfloat16':
      return 'bfloat16';
    case 'float32':
    case 'float64':
      return 'float32';
    default:
      return 'int32';
  }
}

/** An opened torch.save checkpoint: `data.pkl` is parsed, tensor bytes are read on demand. */
export class TorchBinFile implements TorchBinReader {
  readonly source: TorchBinSource;
  /** The archive's top folder (torch names it after the file: "pytorch_model", "archive", ...). */
  readonly prefix: string;
  /** Byte order of the storages: "little" unless the archive has a `byteorder` entry saying "big". */
  readonly byteOrder: 'little' | 'big';
  /** Top-level keys of the pickled dict whose values are not tensors (they are not loaded). */
  readonly otherKeys: string[];
  private readonly tensors: Map<string, TensorRecord>;

  constructor(
    source: TorchBinSource,
    prefix: string,
    byteOrder: 'little' | 'big',
    tensors: Map<string, TensorRecord>,
    otherKeys: string[],
  ) {
    this.source = source;
    this.prefix = prefix;
    this.byteOrder = byteOrder;
    this.tensors = tensors;
    this.otherKeys = otherKeys;
  }

  get name(): string {
    return this.source.name;
  }

  /** Tensor names in the order of the pickled dict. */
  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private record(name: string): TensorRecord {
    const record = this.tensors.get(name);
    if (!record) {
      const known = this.names();
      const sample = known.slice(0, 5).map(quoteName);
      throw new Error(
        `${this.name}: no tensor ${quoteName(name)}: the file has ${known.length} tensors${known.length ? ` (${sample.join(', ')}${known.length > 5 ? ', ...' : ''})` : ''}`,
      );
    }
    return record;
  }

  /** Dtype, shape and storage layout of one tensor; throws for unknown names. Reads nothing. */
  info(name: string): TorchBinTensorInfo {
    const { ref, dtype, numel } = this.record(name);
    return {
      dtype,
      shape: [...ref.shape],
      stride: [...ref.stride],
      storageOffset: ref.storageOffset,
      storageKey: ref.storage.key,
      storageType: ref.storage.storageType,
      contiguous: isContiguous(ref.shape, ref.stride),
      parameter: ref.parameter,
      byteLength: numel * TORCH_DTYPE_BYTES[dtype],
    };
  }

  /**
   * The tensor's elements in C order as little-endian bytes of its torch dtype. Reads only the
   * storage bytes the tensor spans; a non-contiguous view (a transpose) is gathered into a copy.
   * For a contiguous tensor the result may be a view of what the source returned: do not write to it.
   */
  async readRaw(name: string): Promise<Uint8Array> {
    const { ref, dtype, entry, numel } = this.record(name);
    const size = TORCH_DTYPE_BYTES[dtype];
    if (numel === 0) return new Uint8Array(0);
    let last = ref.storageOffset;
    for (let d = 0; d < ref.shape.length; d++) last += (ref.shape[d]! - 1) * ref.stride[d]!;
    const spanStart = ref.storageOffset * size;
    const spanLength = (last + 1) * size - spanStart;
    const bytes = await readEntryRange(this.source, entry, spanStart, spanLength);
    if (bytes.byteLength !== spanLength) {
      throw new Error(
        `${this.name}: reading tensor ${quoteName(name)} gave ${bytes.byteLength} bytes, expected ${spanLength}: the file changed or is truncated`,
      );
    }
    let out = isContiguous(ref.shape, ref.stride) ? bytes : gather(bytes, size, ref.shape, ref.stride);
    if (this.byteOrder === 'big' && size > 1) out = swapBytes(out, size);
    return out;
  }

  /**
   * Reads one tensor and converts it to a core dtype (see `TorchBinReadOptions`): f16/bf16 keep
   * their bits or convert with round-to-nearest-even, float64 narrows to float32, integer types
   * load as int32 (values outside int32 are an error; read them with readRaw).
   */
  async readTensor(name: string, options: TorchBinReadOptions = {}): Promise<TorchBinLoadedTensor> {
    const { ref, dtype: torchDType } = this.record(name);
    const where = `${this.name}: tensor ${quoteName(name)}`;
    const dtype = options.dtype === undefined ? defaultCoreDTypeOfTorch(torchDType) : assertDType(options.dtype, where);
    const bytes = await this.readRaw(name);
    return { dtype, shape: [...ref.shape], data: convertTorchBytes(bytes, torchDType, dtype, where) };
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

/**
 * Opens a torch.save zip checkpoint: reads the end of the file and the zip central directory,
 * then `data.pkl`, which it unpickles without executing anything. Tensor data is not read.
 * The returned file owns `source` (its `close()` closes it); if opening fails, `source` is closed
 * before the error is thrown.
 */
export async function openTorchBin(source: TorchBinSource): Promise<TorchBinFile> {
  try {
    return await openSource(source);
  } catch (error) {
    await source.close?.().catch(() => {});
    throw error;
  }
}

async function openSource(source: TorchBinSource): Promise<TorchBinFile> {
  const name = source.name;
  const { entries } = await readZipDirectory(source);
  const all = [...entries.keys()];
  const pkl = all.find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? all.find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) {
    const torchScript = all.some((n) => n.endsWith('/constants.pkl') || /\/code\//.test(n));
    // The entry names are not listed: the file may be any zip archive (a link to someone's document).
    throw new Error(
      torchScript
        ? `${name}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint: save the model's state_dict() with torch.save instead`
        : `${name}: the zip archive has no data.pkl, so it is not a torch.save checkpoint (it has ${all.length} ${all.length === 1 ? 'entry' : 'entries'}, none named <folder>/data.pkl)`,
    );
  }
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length); // "pytorch_model/" (or "")

  const byteOrderEntry = entries.get(`${prefix}byteorder`);
  let byteOrder: 'little' | 'big' = 'little';
  if (byteOrderEntry) {
    const text = new TextDecoder().decode(await readEntry(source, byteOrderEntry, 64)).trim();
    if (text !== 'little' && text !== 'big') {
      const shown = /^[a-z]{1,16}$/.test(text) ? `says ${JSON.stringify(text)}` : `holds ${byteOrderEntry.uncompressedSize} bytes`;
      throw new Error(`${name}: byteorder entry ${shown}, not "little" or "big"`);
    }
    byteOrder = text;
  }

  const { root } = unpickleTorch(await readEntry(source, entries.get(pkl)!), name);
  if (!(root instanceof PyDict)) {
    throw new Error(
      `${name}: the checkpoint holds ${describe(root)}, not a state dict (a dict of tensor names to tensors): save model.state_dict() with torch.save`,
    );
  }

  const tensors = new Map<string, TensorRecord>();
  const otherKeys: string[] = [];
  for (const [key, value] of root.map) {
    if (typeof key !== 'string') {
      throw new Error(`${name}: the state dict has a key ${describe(key)} that is not a string: tensor names must be strings`);
    }
    if (!(value instanceof TorchTensorRef)) {
      otherKeys.push(key);
      continue;
    }
    tensors.set(key, checkTensor(source, key, value, entries, prefix));
  }
  if (tensors.size === 0 && otherKeys.length > 0) {
    const nested = [...root.map].find(([, v]) => v instanceof PyDict && [...v.map.values()].some((x) => x instanceof TorchTensorRef));
    if (nested) {
      throw new Error(
        `${name}: the checkpoint is a dict whose tensors are nested under ${describe(nested[0])}: this reader reads a flat state dict {name: tensor}; save that entry on its own`,
      );
    }
  }
  return new TorchBinFile(source, prefix, byteOrder, tensors, otherKeys);
}

/**
 * Checks a tensor against its storage before anything is read or allocated: the storage's zip
 * entry exists and is readable, holds exactly the bytes data.pkl says (a deflated entry's declared
 * size must be plausible for its compressed size), and the view stays inside it. A view with more
 * elements than its storage (stride-0 broadcasts, overlapping strides) is refused, so a tensor
 * never loads to more bytes than the file holds for it.
 */
function checkTensor(
  source: TorchBinSource,
  name: string,
  ref: TorchTensorRef,
  entries: Map<string, ZipEntry>,
  prefix: string,
): TensorRecord {
  const where = `${source.name}: tensor ${quoteName(name)}`;
  const storage: TorchStorageRef = ref.storage;
  const dtype = storage.dtype;
  if (!dtype) {
    throw new Error(
      `${where} is stored as torch.${storage.storageType.length > 64 ? `${storage.storageType.slice(0, 64)}...` : storage.storageType}, which is not supported: storage types are ${Object.keys(
        TORCH_STORAGE_TYPES,
      )
        .map((s) => `torch.${s}`)
        .join(', ')}`,
    );
  }
  const key = quoteName(storage.key);
  const entryName = `${prefix}data/${storage.key}`;
  const entry = entries.get(entryName);
  if (!entry) throw new Error(`${where}: its storage ${key} (zip entry ${quoteName(entryName)}) is missing from the archive`);
  assertReadableEntry(source, entry);
  const size = TORCH_DTYPE_BYTES[dtype];
  if (entry.uncompressedSize !== storage.numel * size) {
    throw new Error(
      `${where}: its storage ${key} holds ${entry.uncompressedSize} bytes but data.pkl says ${storage.numel} ${dtype} elements (${storage.numel * size} bytes): the file is corrupt`,
    );
  }
  const rank = ref.shape.length;
  const shown = () => (rank > 8 ? `a ${rank}-d view` : `shape [${ref.shape}] with stride [${ref.stride}] from offset ${ref.storageOffset}`);
  let numel = 1;
  for (let d = 0; d < rank; d++) numel *= ref.shape[d]!;
  if (numel === 0) return { ref, dtype, entry, numel };
  if (!Number.isSafeInteger(numel) || numel > storage.numel) {
    throw new Error(
      `${where}: ${shown()} has ${numel} elements but its storage ${key} holds only ${storage.numel}: a view larger than its storage (stride 0 or overlapping strides) is not loaded; save t.contiguous() instead`,
    );
  }
  let last = ref.storageOffset;
  for (let d = 0; d < rank; d++) last += (ref.shape[d]! - 1) * ref.stride[d]!;
  if (!Number.isSafeInteger(last) || last >= storage.numel) {
    throw new Error(`${where}: ${shown()} reaches element ${last} of storage ${key}, which has ${storage.numel}: the file is corrupt`);
  }
  return { ref, dtype, entry, numel };
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 0) return true;
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

type Units = Uint8Array | Uint16Array | Uint32Array;

/** Copies a strided view (element `size` bytes; `bytes` starts at the view's first element) into C order. */
function gather(bytes: Uint8Array, size: number, shape: number[], stride: number[]): Uint8Array {
  let numel = 1;
  for (const s of shape) numel *= s;
  const out = new Uint8Array(numel * size);
  // Move 8-byte elements as two 32-bit words (copying as float64 could canonicalise NaN payloads).
  const unit = size === 8 ? 4 : size;
  const per = size / unit;
  const src: Units = unit === 1 ? bytes : unit === 2 ? viewAs(bytes, Uint16Array) : viewAs(bytes, Uint32Array);
  const dst: Units = unit === 1 ? out : unit === 2 ? new Uint16Array(out.buffer) : new Uint32Array(out.buffer);
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]! * per;
  const index = new Array<number>(rank).fill(0);
  let o = 0;
  let base = 0;
  for (let done = 0; done < numel; done += inner) {
    for (let i = 0, s = base; i < inner; i++, s += innerStride) {
      for (let w = 0; w < per; w++) dst[o++] = src[s + w]!;
    }
    // Advance the odometer over the outer dimensions.
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      base += stride[d]! * per;
      if (index[d]! < shape[d]!) break;
      base -= index[d]! * stride[d]! * per;
      index[d] = 0;
    }
  }
  return out;
}

function swapBytes(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j]!;
  }
  return out;
}

type TypedArrayCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of little-endian bytes, copied first when the bytes are not aligned for it. */
function viewAs<T>(bytes: Uint8Array, Ctor: TypedArrayCtor<T>): T {
  const size = Ctor.BYTES_PER_ELEMENT;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/**
 * Converts a tensor's contiguous little-endian bytes of torch dtype `from` to core dtype `target`.
 * Floats convert among float32/float16/bfloat16 with round-to-nearest-even (float64 via float32);
 * integers and bool load as int32 (or as floats if asked); floats never load as int32.
 */
export function convertTorchBytes(bytes: Uint8Array, from: TorchDType, target: DType, where: string): RawArray {
  if (from === 'float16' || from === 'bfloat16') {
    const bits = viewAs(bytes, Uint16Array);
    if (target === from) return bits;
    if (target === 'int32') throw floatToIntError(from, where);
    if (target === 'float32') return decode(bits, from);
    // f16 <-> bf16: widening to float32 is exact, so this rounds once.
    const toFloat = from === 'float16' ? f16ToFloat : bf16ToFloat;
    const fromFloat = target === 'float16' ? floatToF16 : floatToBf16;
    const out = new Uint16Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = fromFloat(toFloat(bits[i]!));
    return out;
  }
  if (from === 'float32' || from === 'float64') {
    if (target === 'int32') throw floatToIntError(from, where);
    // float64 → float16/bfloat16 rounds twice (to float32, then to 16 bits); off by one ulp only in rare ties.
    const values = from === 'float32' ? viewAs(bytes, Float32Array) : Float32Array.from(viewAs(bytes, Float64Array));
    return target === 'float32' ? values : encode(values, target);
  }
  const ints = toInt32(bytes, from, where);
  return target === 'int32' ? ints : encode(Float32Array.from(ints), target);
}

function toInt32(bytes: Uint8Array, from: TorchDType, where: string): Int32Array {
  switch (from) {
    case 'int32':
      return viewAs(bytes, Int32Array);
    case 'bool': {
      const out = new Int32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
    }
    case 'uint8':
      return Int32Array.from(bytes);
    case 'int8':
      return Int32Array.from(viewAs(bytes, Int8Array));
    case 'int16':
      return Int32Array.from(viewAs(bytes, Int16Array));
    case 'int64': {
      // Each element is (lo, hi) as two int32 words; it fits int32 when hi is lo's sign extension.
      const words = viewAs(bytes, Int32Array);
      const out = new Int32Array(words.length / 2);
      for (let i = 0; i < out.length; i++) {
        const lo = words[2 * i]!;
        const hi = words[2 * i + 1]!;
        if (hi !== (lo < 0 ? -1 : 0)) {
          throw new Error(
            `${where} is int64 and its value ${viewAs(bytes, BigInt64Array)[i]} at index ${i} is outside the int32 range [-2147483648, 2147483647]: read its bytes with readRaw instead`,
          );
        }
        out[i] = lo;
      }
      return out;
    }
    default:
      throw new Error(`${where} is ${from}, which cannot be converted to int32`);
  }
}

function floatToIntError(from: TorchDType, where: string): Error {
  return new Error(`${where} is ${from}, a float dtype: it cannot load as int32; ask for float32, float16 or bfloat16`);
}
