import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ByteSink } from '../safetensors/writer.js';

/** What `writeFileAtomic` writes: bytes, text, chunks, or a producer that writes to a sink. */
export type AtomicWriteData =
  | string
  | ArrayBufferView
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>
  | ((sink: ByteSink) => Promise<unknown>);

/** Why a write failed, in words, by the error code of the file system call. */
const CAUSES: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EFBIG: 'the file is larger than the file system allows',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of its path is a file, not a folder',
  ENOENT: 'its folder does not exist',
  EMFILE: 'too many files are open in this process',
  ENFILE: 'too many files are open on this system',
  EIO: 'the disk reported an input/output error',
  ENAMETOOLONG: 'its name is too long',
};

/** The code of a file system error, or undefined for any other error. */
function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The error a failed write ends with: the file, the cause in words and its code, and what became
 * of the file (it is left as it was). Carries `code`, `path` and `syscall` as Node's errors do, and
 * the original error as `cause`.
 */
function writeError(path: string, error: unknown, doing: string, tmp: string, tmpLeft: boolean): Error {
  const code = codeOf(error) ?? 'unknown';
  const dir = dirname(path);
  let cause = CAUSES[code] ?? `${(error as Error)?.message ?? String(error)}`.slice(0, 200);
  if (doing === 'create' && (code === 'EACCES' || code === 'EPERM')) cause = `its folder ${dir} is not writable`;
  if (doing === 'create' && code === 'EROFS') cause = `its folder ${dir} is on a read-only file system`;
  if (doing === 'rename' && code === 'EISDIR') cause = `${path} is a folder, not a file`;
  const left = tmpLeft ? ` The temporary file ${tmp} could not be removed.` : '';
  const out = new Error(`cannot write ${path}: ${cause} (${code}). ${path} was left as it was.${left}`, { cause: error });
  Object.assign(out, { code, path, syscall: (error as { syscall?: unknown } | null)?.syscall });
  return out;
}

/**
 * Creates `dir` and its missing parents for writing `file` into it. When that fails, the error names
 * the folder that could not be made and why: a read-only or not writable parent is named as such
 * (a recursive mkdir below a read-only folder can report a misleading ENOENT), as is a parent that
 * is a file.
 */
export async function makeDirectory(dir: string, file: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    const code = codeOf(error) ?? 'unknown';
    // The nearest folder above that exists is where creating failed.
    let parent = dir;
    let isDir = false;
    for (;;) {
      const s = await stat(parent).catch(() => null);
      if (s) {
        isDir = s.isDirectory();
        break;
      }
      const up = dirname(parent);
      if (up === parent) break;
      parent = up;
    }
    // Why the parent refuses a write: null when it accepts one.
    const refused = isDir
      ? await access(parent, constants.W_OK).then(
          () => null,
          (e: unknown) => codeOf(e) ?? 'EACCES',
        )
      : 'ENOTDIR';
    const writable = refused === null;
    let cause: string;
    if (parent !== dir && !isDir) cause = `${parent} is a file, not a folder`;
    else if (code === 'EROFS' || refused === 'EROFS') cause = `${parent} is on a read-only file system`;
    else if (!writable || code === 'EACCES' || code === 'EPERM') cause = `the folder ${parent} is not writable`;
    else if (parent === dir && !isDir) cause = `${dir} is a file, not a folder`;
    else cause = CAUSES[code] ?? String((error as Error)?.message).slice(0, 200);
    // A recursive mkdir below a read-only folder reports ENOENT: shown as what it is, not as the cause.
    const shown = code === 'ENOENT' && (isDir || parent !== dir) ? 'mkdir reported ENOENT' : code;
    const out = new Error(`cannot write ${file}: cannot create the folder ${dir}: ${cause} (${shown}). Nothing was written.`, {
      cause: error,
    });
    Object.assign(out, { code, path: dir, syscall: 'mkdir' });
    throw out;
  }
}

/**
 * Writes a file so that readers see either the old content or the complete new one: the data goes
 * to a temporary file in the same directory, which is fsynced and then renamed over `path`. If
 * anything fails (including the producer throwing midway) the temporary file is closed and removed
 * and `path` is left as it was. A failing file system call (disk full, read-only, not a file, ...)
 * ends in an error that names `path`, says the cause in words and keeps the call's `code`.
 */
export async function writeFileAtomic(path: string, data: AtomicWriteData): Promise<void> {
  const dir = dirname(path);
  // `.<name>.<pid>.<12 hex digits>.tmp`: the pid tells a later run whether the writer is still alive.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(tmp, 'wx');
  } catch (error) {
    throw writeError(path, error, 'create', tmp, false);
  }
  // The file system error that ended the write, if one did (a producer's own error is passed on as it is).
  let fsError: { error: unknown; doing: string } | null = null;
  const fs = async <T>(doing: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      fsError ??= { error, doing };
      throw error;
    }
  };
  let closed = false;
  try {
    let position = 0;
    const sink: ByteSink = {
      async write(chunk) {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await fs('write', () => handle.write(chunk, done, chunk.byteLength - done, position));
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
    await fs('sync', () => handle.sync());
    closed = true;
    await fs('close', () => handle.close());
    await fs('rename', () => rename(tmp, path));
  } catch (error) {
    if (!closed) await handle.close().catch(() => {});
    const tmpLeft = await rm(tmp, { force: true }).then(
      () => false,
      () => true,
    );
    const failed = fsError as { error: unknown; doing: string } | null;
    if (failed && (failed.error === error || codeOf(error) === codeOf(failed.error)))
      throw writeError(path, failed.error, failed.doing, tmp, tmpLeft);
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
