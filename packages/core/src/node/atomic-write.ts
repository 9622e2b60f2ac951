import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ByteSink } from '../safetensors/writer.js';

/** What `writeFileAtomic` writes: bytes, text, chunks, or a producer that writes to a sink. */
export type AtomicWriteData =
  | string
  | ArrayBufferView
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>
  | ((sink: ByteSink) => Promise<unknown>);

/**
 * Writes a file so that readers see either the old content or the complete new one: the data goes
 * to a temporary file in the same directory, which is fsynced and then renamed over `path`. If
 * anything fails (including the producer throwing midway) the temporary file is removed and `path`
 * is left as it was.
 */
export async function writeFileAtomic(path: string, data: AtomicWriteData): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx');
  try {
    let position = 0;
    const sink: ByteSink = {
      async write(chunk) {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done, position);
          done += bytesWritten;
          position += bytesWritten;
        }
      },
    };
    if (typeof data === 'string') await sink.write(new TextEncoder().encode(data));
    else if (ArrayBuffer.isView(data)) await sink.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else if (typeof data === 'function') await data(sink);
    else if (Symbol.asyncIterator in data) for await (const chunk of data) await sink.write(chunk);
    else for (const chunk of data) await sink.write(chunk);
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** Makes the rename durable; not possible on every platform (Windows), so failures are ignored. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}
