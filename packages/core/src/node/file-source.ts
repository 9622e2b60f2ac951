import { open, stat } from 'node:fs/promises';
import type { ByteSource } from '../safetensors/byte-source.js';
import { checkRange } from '../safetensors/byte-source.js';

/** Largest single positional read (the OS caps one read near 2 GiB). */
const MAX_READ_BYTES = 1 << 30;

/**
 * A `ByteSource` over a file on disk: positional reads on one open file handle, so only the bytes
 * asked for are read. Call `close()` when done (closing a `SafetensorsFile` does it).
 */
export async function fileSource(path: string, name = path): Promise<ByteSource> {
  // Only regular files (through links, as the Hugging Face cache has them): opening a FIFO would
  // wait for a writer, and a directory or device has no meaningful size.
  if (!(await stat(path)).isFile()) throw new Error(`${name}: not a regular file: expected a file of bytes`);
  const handle = await open(path, 'r');
  let size: number;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${name}: not a regular file: expected a file of bytes`);
    size = info.size;
  } catch (error) {
    await handle.close();
    throw error;
  }
  let closed = false;
  return {
    name,
    size,
    async read(offset, length, into) {
      checkRange({ name, size }, offset, length);
      if (closed) throw new Error(`${name}: cannot read: the file was closed`);
      const out = into && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const want = Math.min(length - done, MAX_READ_BYTES);
        const { bytesRead } = await handle.read(out, done, want, offset + done);
        if (bytesRead === 0) {
          throw new Error(
            `${name}: file ended at byte ${offset + done} while reading [${offset}, ${offset + length}): it shrank since it was opened`,
          );
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
