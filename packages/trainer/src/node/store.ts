import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { writeFileAtomic } from '@peft/core/node';
import { CHECKPOINT_DIR, CHECKPOINT_TEMP_PATTERN, intactCheckpointNote } from '../checkpoint.js';
import { causeInWords, errorCode, RunFolderError } from '../errors.js';
import type { RunStore } from '../store.js';

function inside(root: string, path: string): string {
  const full = resolve(root, path);
  const rel = relative(resolve(root), full);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new Error(`${root}: path ${JSON.stringify(path)} points outside the run folder: use a relative path without ".."`);
  }
  return rel === '' ? resolve(root) : join(resolve(root), rel);
}

/** `.<name>.<pid>.<12 hex digits>.tmp`: the temporary file of an atomic write (`writeFileAtomic`) of `<name>`. */
const FILE_TEMP_PATTERN = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;
/** Largest process id on Linux; a number beyond it in a temporary name cannot be a live process. */
const MAX_PID = 4_194_304;

/** Whether a process with this id runs now (one we may not signal runs too). */
function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > MAX_PID) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When this process started, in ms since the epoch: a temporary file with its pid from before then was left by an earlier process. */
const processStart = Date.now() - process.uptime() * 1000;

/**
 * Finds the temporary files and folders of interrupted writes under a run folder: files named as
 * `writeFileAtomic` names them and checkpoints being written (`checkpoints/.tmp-step-…`), whose
 * writing process is gone, or is this one but the entry predates it, or which are older than the
 * newest complete checkpoint. Removes them and returns their paths relative to `dir`.
 */
export async function removeStaleTempFiles(dir: string): Promise<{ removed: string[]; failed: string[] }> {
  const root = resolve(dir);
  const removed: string[] = [];
  const failed: string[] = [];
  // The newest complete checkpoint's time: its manifest is the last file written into it.
  let newest = -Infinity;
  for (const name of await readdir(join(root, CHECKPOINT_DIR)).catch(() => [] as string[])) {
    if (!/^step-\d+$/.test(name)) continue;
    const s = await stat(join(root, CHECKPOINT_DIR, name, 'manifest.json')).catch(() => null);
    if (s) newest = Math.max(newest, s.mtimeMs);
  }
  const stale = async (path: string, pid: number | null): Promise<boolean> => {
    const s = await stat(path).catch(() => null);
    if (!s) return false;
    if (s.mtimeMs < newest) return true;
    if (pid === null || !alive(pid)) return true;
    return pid === process.pid && s.mtimeMs < processStart;
  };
  // A run folder holds a few dozen entries; a folder given by mistake (a home folder) is not walked through.
  let budget = 20_000;
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
    budget -= entries.length;
    if (budget < 0) return;
    for (const e of entries) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      const full = join(root, path);
      const file = e.isFile() ? FILE_TEMP_PATTERN.exec(e.name) : null;
      const folder = e.isDirectory() ? CHECKPOINT_TEMP_PATTERN.exec(e.name) : null;
      if (file || folder) {
        const pid = file ? Number(file[1]) : folder![2] === undefined ? null : Number(folder![2]);
        if (await stale(full, pid)) {
          const ok = await rm(full, { recursive: true, force: true }).then(
            () => true,
            () => false,
          );
          (ok ? removed : failed).push(path);
        }
      } else if (e.isDirectory() && depth > 0) {
        await walk(path, depth - 1);
      }
    }
  };
  // The run folder, its checkpoints, artifacts, and a sweep's run folders below it.
  await walk('', 4);
  return { removed, failed };
}

/** The one line that says what `removeStaleTempFiles` did, or null when it found nothing. */
function staleLine(dir: string, found: { removed: string[]; failed: string[] }): string | null {
  const list = (paths: string[]) => `${paths.slice(0, 4).join(', ')}${paths.length > 4 ? `, and ${paths.length - 4} more` : ''}`;
  const parts: string[] = [];
  if (found.removed.length > 0)
    parts.push(
      `removed ${found.removed.length} temporary file(s) left in ${dir} by interrupted writes (their writer is gone): ${list(found.removed)}`,
    );
  if (found.failed.length > 0) parts.push(`could not remove the stale temporary file(s) ${list(found.failed)} in ${dir}`);
  return parts.length > 0 ? parts.join('; ') : null;
}

export interface NodeRunStoreOptions {
  /**
   * Receives the one line saying which stale temporary files (of writes interrupted by a kill) were
   * removed when the store was first used. Default: standard error.
   */
  onNotice?: (line: string) => void;
}

/**
 * A run folder on disk. Files are written atomically (temporary file, fsync, rename); a folder
 * renamed into place (a finished checkpoint) appears whole or not at all. On first use, the
 * temporary files that a killed run left behind are removed (see `removeStaleTempFiles`). A failing
 * file system call ends in a `RunFolderError` that names the file, says the cause in words (disk
 * full, read-only, ...) and, for files outside the checkpoints, which checkpoint is intact.
 */
export function nodeRunStore(dir: string, options: NodeRunStoreOptions = {}): RunStore {
  let swept: Promise<void> | null = null;
  const sweep = () =>
    (swept ??= removeStaleTempFiles(dir).then(
      (found) => {
        const line = staleLine(dir, found);
        if (line) (options.onNotice ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
      },
      () => {},
    ));

  /** The error for a failed file system call on `full` (relative `path`); other errors pass unchanged. */
  const failure = async (error: unknown, doing: string, full: string, path: string, remedyCode?: string): Promise<unknown> => {
    const code = errorCode(error);
    if (!code) return error;
    const writing = doing === 'write';
    // writeFileAtomic's errors name the file and the cause already.
    let message =
      writing && error instanceof Error && error.message.startsWith('cannot write ')
        ? error.message
        : `cannot ${doing} ${full}: ${causeInWords(code)} (${code}).`;
    // A checkpoint's own files are reported by writeCheckpoint, which knows which checkpoint is intact.
    if (doing !== 'read' && doing !== 'list' && !path.startsWith(`${CHECKPOINT_DIR}/`))
      message += ` ${await intactCheckpointNote(store, remedyCode ?? code)}`;
    return new RunFolderError(message, full, code, { cause: error });
  };

  const store: RunStore = {
    name: dir,
    async writeFile(path, data) {
      await sweep();
      const full = inside(dir, path);
      try {
        await mkdir(dirname(full), { recursive: true });
      } catch (error) {
        const code = errorCode(error) ?? 'unknown';
        const [why, like] = await whyNoFolder(dirname(full), code);
        throw await failure(
          Object.assign(new Error(`cannot write ${full}: ${why}`, { cause: error }), { code }),
          'write',
          full,
          path,
          like,
        );
      }
      try {
        await writeFileAtomic(full, data);
      } catch (error) {
        throw await failure(error, 'write', full, path);
      }
    },
    async readFile(path) {
      await sweep();
      const full = inside(dir, path);
      try {
        return new Uint8Array(await readFile(full));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw await failure(error, 'read', full, path);
      }
    },
    async list(path) {
      await sweep();
      const full = inside(dir, path);
      try {
        return (await readdir(full)).sort();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return [];
        throw await failure(error, 'list', full, path);
      }
    },
    async rename(from, to) {
      await sweep();
      const src = inside(dir, from);
      const dst = inside(dir, to);
      try {
        await mkdir(dirname(dst), { recursive: true });
        await rename(src, dst);
      } catch (error) {
        throw await failure(error, `move ${src} to`, dst, to);
      }
    },
    async remove(path) {
      await sweep();
      const full = inside(dir, path);
      try {
        await rm(full, { recursive: true, force: true });
      } catch (error) {
        throw await failure(error, 'remove', full, path);
      }
    },
  };
  return store;
}

/**
 * Why the folder `dir` could not be made: the nearest existing folder above it is not writable or
 * is read-only, or a part of the path is a file (a recursive mkdir below a read-only folder can
 * report ENOENT, which would read as "no such file"); and the code whose remedy applies.
 */
async function whyNoFolder(dir: string, code: string): Promise<[why: string, like: string]> {
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
  const what = parent === dir ? `the folder ${dir}` : `cannot create the folder ${dir}: the folder ${parent}`;
  // A recursive mkdir below a read-only folder reports ENOENT: shown as what it is, not as the cause.
  const shown = code === 'ENOENT' ? 'mkdir reported ENOENT' : code;
  if (!isDir) return [`${parent} is a file, not a folder (${shown}).`, 'ENOTDIR'];
  // Why the parent refuses a write: null when it accepts one (a recursive mkdir on a read-only file system says ENOENT).
  const refused = await access(parent, constants.W_OK).then(
    () => null,
    (e: unknown) => errorCode(e) ?? 'EACCES',
  );
  if (code === 'EROFS' || refused === 'EROFS') return [`${what} is on a read-only file system (${shown}).`, 'EROFS'];
  if (refused !== null || code === 'EACCES' || code === 'EPERM') return [`${what} is not writable (${shown}).`, 'EACCES'];
  return [`${what}: ${causeInWords(code)} (${code}).`, code];
}
