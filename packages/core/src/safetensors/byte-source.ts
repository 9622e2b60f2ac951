/**
 * Random-access bytes: an in-memory buffer, a browser `File`/`Blob`, or (from `@peft/core/node`)
 * a file on disk. Readers ask only for the ranges they need.
 */
export interface ByteSource {
  /** Shown in error messages, usually the file name. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Exactly `length` bytes starting at `offset`; rejects when the range is outside the source.
   * The result may be a view into memory the source shares (see `bytesSource`); do not write to it.
   * With `into` (at least `length` bytes), a source may read into it and return a view of it, so a
   * caller streaming a large file reuses one buffer; sources that cannot ignore it.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Releases what the source holds open (a file handle). */
  close?(): Promise<void>;
}

export function checkRange(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new Error(`${source.name}: cannot read ${length} bytes at offset ${offset}: both must be non-negative integers`);
  }
  if (offset + length > source.size) {
    throw new Error(`${source.name}: cannot read bytes [${offset}, ${offset + length}): the source is only ${source.size} bytes`);
  }
}

/** A source over bytes already in memory. Reads are views into `bytes`, never copies. */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(this, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** A source over a `Blob` (a browser `File` from an `<input type="file">` or a drop). */
export function blobSource(blob: Blob, name = (blob as { name?: string }).name ?? 'blob'): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange(this, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}
