import type { DType, RawArray } from '../dtype.js';
import { assertDType } from '../dtype.js';
import type { ByteSource } from './byte-source.js';
import { convertTensorBytes } from './convert.js';
import { defaultCoreDType } from './dtypes.js';
import type { SafetensorsTensorInfo } from './header.js';
import { parseHeader, readHeaderLength } from './header.js';
import { quoteName } from './json.js';

/** A tensor loaded into core's raw storage form: f16/bf16 as 16-bit patterns. */
export interface LoadedTensor {
  dtype: DType;
  shape: number[];
  data: RawArray;
}

export interface ReadTensorOptions {
  /**
   * Core dtype to load as. Default: F16 → float16, BF16 → bfloat16, other floats → float32,
   * integers and BOOL → int32.
   */
  dtype?: DType;
}

/** Anything tensors can be read from by name: one safetensors file or a sharded checkpoint. */
export interface TensorReader {
  /** Tensor names: in data order for one file, in index order for a sharded checkpoint. */
  names(): string[];
  has(name: string): boolean;
  readRaw(name: string): Promise<Uint8Array>;
  readTensor(name: string, options?: ReadTensorOptions): Promise<LoadedTensor>;
  close(): Promise<void>;
}

/** An opened safetensors file: the header is parsed and validated, tensor bytes are read on demand. */
export class SafetensorsFile implements TensorReader {
  readonly source: ByteSource;
  readonly metadata: Record<string, string>;
  /** Byte length of the JSON header. */
  readonly headerByteLength: number;
  /** Absolute offset of the data region (8 + headerByteLength). */
  readonly dataOffset: number;
  private readonly tensors: Map<string, SafetensorsTensorInfo>;

  constructor(source: ByteSource, header: ReturnType<typeof parseHeader>) {
    this.source = source;
    this.metadata = header.metadata;
    this.headerByteLength = header.headerByteLength;
    this.dataOffset = header.dataOffset;
    this.tensors = header.tensors;
  }

  get name(): string {
    return this.source.name;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Dtype, shape and byte range of one tensor; throws for unknown names. */
  info(name: string): SafetensorsTensorInfo {
    const info = this.tensors.get(name);
    if (!info) {
      const known = this.names();
      const sample = known.slice(0, 5).map((n) => quoteName(n, 60));
      throw new Error(
        `${this.name}: no tensor ${quoteName(name)}: the file has ${known.length} tensors${known.length ? ` (${sample.join(', ')}${known.length > 5 ? ', ...' : ''})` : ''}`,
      );
    }
    return { ...info, shape: [...info.shape], dataOffsets: [...info.dataOffsets] };
  }

  /** The tensor's bytes, and only those: one read of `byteLength` bytes at `byteOffset`. */
  async readRaw(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const bytes = await this.source.read(info.byteOffset, info.byteLength);
    if (bytes.byteLength !== info.byteLength) {
      throw new Error(
        `${this.name}: reading tensor ${quoteName(name)} gave ${bytes.byteLength} bytes, expected ${info.byteLength}: the file changed or is truncated`,
      );
    }
    return bytes;
  }

  /**
   * Streams a tensor's bytes in pieces of at most `staging.byteLength` bytes read into `staging`
   * (reused: `onChunk` must consume each piece before returning). Loading a model this way holds
   * one small buffer instead of a copy of each tensor.
   */
  async streamRaw(name: string, staging: Uint8Array, onChunk: (bytes: Uint8Array, byteOffset: number) => void): Promise<void> {
    const info = this.info(name);
    for (let done = 0; done < info.byteLength; ) {
      const length = Math.min(staging.byteLength, info.byteLength - done);
      const bytes = await this.source.read(info.byteOffset + done, length, staging);
      if (bytes.byteLength !== length) {
        throw new Error(
          `${this.name}: reading tensor ${quoteName(name)} gave ${bytes.byteLength} bytes, expected ${length}: the file changed or is truncated`,
        );
      }
      onChunk(bytes, done);
      done += length;
    }
  }

  /**
   * Reads one tensor and converts it to a core dtype (see `ReadTensorOptions`). When no conversion
   * is needed and the bytes are aligned, `data` is a view of what the source returned (for a
   * `bytesSource`, of its buffer) rather than a copy.
   */
  async readTensor(name: string, options: ReadTensorOptions = {}): Promise<LoadedTensor> {
    const info = this.info(name);
    const where = `${this.name}: tensor ${quoteName(name)}`;
    const dtype = options.dtype === undefined ? defaultCoreDType(info.dtype) : assertDType(options.dtype, where);
    if (dtype === null) {
      throw new Error(`${where} is ${info.dtype}, which has no core dtype: read its bytes with readRaw`);
    }
    const bytes = await this.readRaw(name);
    return { dtype, shape: info.shape, data: convertTensorBytes(bytes, info.dtype, dtype, where) };
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

/**
 * Reads and validates only the header of a safetensors source (two small reads). The file takes
 * the source over: `close()` closes it, and when the header is rejected it is closed before the
 * error is thrown, so a failed open holds no file handle.
 */
export async function openSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  try {
    const first8 = source.size >= 8 ? await source.read(0, 8) : new Uint8Array(0);
    const headerLength = readHeaderLength(first8, source.name, source.size);
    const headerBytes = await source.read(8, headerLength);
    return new SafetensorsFile(source, parseHeader(headerBytes, source.name, source.size));
  } catch (error) {
    await source.close?.();
    throw error;
  }
}
