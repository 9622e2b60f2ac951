import { readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './args.js';

/** The lock file a training run keeps in its run folder while it runs. */
export const LOCK_FILE = 'run.lock';

/** Files and folders a training run leaves in its run folder (a sweep leaves them one level down, per configuration). */
const RUN_ENTRIES = new Set([
  'log.csv',
  'curves.svg',
  'checkpoints',
  'adapter',
  'config.json',
  'val-metrics.json',
  'test-metrics.json',
  'results.md',
  'summary.md',
]);

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** What of a previous run `dir` holds (paths relative to it), empty when nothing: a missing folder, or one without run files. */
export async function previousRun(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await entries(dir)) {
    if (RUN_ENTRIES.has(name)) found.push(name);
    else if ((await stat(join(dir, name)).catch(() => null))?.isDirectory()) {
      for (const inner of await entries(join(dir, name))) if (RUN_ENTRIES.has(inner)) found.push(`${name}/${inner}`);
    }
  }
  return found.sort();
}

function refusePreviousRun(dir: string, found: string[]): never {
  const shown = found.length > 4 ? [...found.slice(0, 4), '…'] : found;
  throw new UsageError(
    `the run folder ${dir} already holds a previous run (${shown.join(', ')}); nothing was changed. ` +
      'Pass --resume to continue it, or --overwrite to replace it (or choose another --out).',
  );
}

/**
 * Checks a run folder before training writes to it. A folder that holds a previous run is only
 * continued (resume) or replaced (overwrite: the folder is removed first, so no stale checkpoint
 * or metric survives); otherwise it is an error that changes nothing in it.
 */
export async function prepareRunFolder(
  dir: string,
  opts: { resume: boolean; overwrite: boolean; log?: (line: string) => void },
): Promise<void> {
  if (opts.resume && opts.overwrite) throw new UsageError('--resume and --overwrite exclude each other: continue the run or replace it');
  if (opts.resume) return;
  const found = await previousRun(dir);
  if (found.length === 0) return;
  if (!opts.overwrite) refusePreviousRun(dir, found);
  opts.log?.(`replacing the previous run in ${dir}`);
  await rm(dir, { recursive: true, force: true });
}

/** Who holds a run folder: what its lock file records. */
export interface RunLockHolder {
  pid: number;
  host: string;
  /** ISO 8601 time the run started. */
  started: string;
  /** The command line that started it. */
  command: string;
}

/** A run folder's lock; `release()` removes the lock file (also done on process exit). */
export interface RunLock {
  dir: string;
  path: string;
  holder: RunLockHolder;
  release(): void;
}

/** A second run into a folder that a running process holds. */
export class RunFolderInUseError extends Error {
  override readonly name = 'RunFolderInUseError';
  constructor(
    message: string,
    readonly dir: string,
    readonly holder: RunLockHolder | null,
  ) {
    super(message);
  }
}

function isHolder(v: unknown): v is RunLockHolder {
  const h = v as RunLockHolder;
  return (
    typeof h === 'object' &&
    h !== null &&
    Number.isSafeInteger(h.pid) &&
    h.pid > 0 &&
    typeof h.host === 'string' &&
    typeof h.started === 'string' &&
    typeof h.command === 'string'
  );
}

/** Whether a process with this id runs on this machine (EPERM: it runs as another user). */
function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type LockState = { kind: 'none' } | { kind: 'held'; holder: RunLockHolder; text: string } | { kind: 'unreadable'; text: string };

/** Reads the lock file; a writer between its create and its write is waited for (briefly). */
async function readLock(path: string): Promise<LockState> {
  for (let attempt = 0; ; attempt++) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      throw new RunFolderInUseError(
        `cannot read the lock file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}): another run may hold the folder`,
        path,
        null,
      );
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {}
    if (isHolder(parsed)) return { kind: 'held', holder: parsed, text };
    if (attempt >= 10) return { kind: 'unreadable', text };
    await new Promise((r) => setTimeout(r, 50));
  }
}

function inUse(dir: string, path: string, holder: RunLockHolder): RunFolderInUseError {
  const where = holder.host === hostname() ? '' : ` on host ${holder.host}`;
  const how =
    holder.host === hostname()
      ? `Wait for it to finish, or stop it (Ctrl-C in its terminal, or kill -INT ${holder.pid}: it writes a checkpoint) and continue it with --resume; or choose another --out.`
      : `Wait for it to finish or stop it there, then continue with --resume; or choose another --out. If that process is gone, delete ${path}.`;
  return new RunFolderInUseError(
    `the run folder ${dir} is in use by another training process: pid ${holder.pid}${where}, started ${holder.started} (${holder.command}); nothing was changed. ${how}`,
    dir,
    holder,
  );
}

/**
 * Refuses (RunFolderInUseError) when a live process on this machine, or any process on another,
 * holds `dir`'s lock; read only. A stale lock (its process has ended) is left for `lockRunFolder`.
 */
export async function checkRunFolderFree(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const state = await readLock(path);
  if (state.kind === 'held' && (state.holder.host !== hostname() || alive(state.holder.pid))) throw inUse(dir, path, state.holder);
}

/**
 * Takes `dir` for this process: creates it and its lock file atomically (`wx`: exactly one of two
 * runs started at once gets it) with this process's id, host, start time and command. A lock whose
 * process has ended on this machine is taken over with a log line; a live one is a
 * RunFolderInUseError naming its process. The lock file is removed by `release()` and, should the
 * process exit first (an error, a second Ctrl-C), by an 'exit' handler. A folder it had to create
 * is removed again if the run left nothing in it.
 */
export async function lockRunFolder(dir: string, opts: { command: string; log?: (line: string) => void }): Promise<RunLock> {
  const path = join(dir, LOCK_FILE);
  // A folder made here and still empty at release (the run failed before writing) is removed again.
  const created = (await mkdir(dir, { recursive: true })) !== undefined;
  const holder: RunLockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command: opts.command };
  const text = `${JSON.stringify(holder, null, 2)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(path, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const state = await readLock(path);
      if (state.kind === 'none') continue; // released meanwhile
      if (state.kind === 'unreadable') {
        throw new RunFolderInUseError(
          `the run folder ${dir} has a lock file ${LOCK_FILE} that does not record a process (pid, host, started, command); nothing was changed. If no other run uses this folder, delete ${path} and start again.`,
          dir,
          null,
        );
      }
      const h = state.holder;
      if (h.host !== hostname() || alive(h.pid)) throw inUse(dir, path, h);
      opts.log?.(`taking over the stale lock of ${dir}: pid ${h.pid} (started ${h.started}) is no longer running`);
      // Remove it only if it is still that stale lock (another run may have taken it over meanwhile).
      const again = await readLock(path);
      if (again.kind === 'held' && again.text === state.text) await unlink(path).catch(() => {});
      continue;
    }
    try {
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.removeListener('exit', release);
      try {
        // Only our own lock: never one that a later run took over.
        if (readFileSync(path, 'utf8') === text) unlinkSync(path);
        if (created && readdirSync(dir).length === 0) rmdirSync(dir);
      } catch {}
    };
    process.on('exit', release);
    return { dir, path, holder, release };
  }
  throw new RunFolderInUseError(`could not take the lock ${path}: other runs keep taking it; choose another --out`, dir, null);
}

/**
 * Opens a run folder for a training run: refuses one that another live process holds, refuses
 * (without changing anything) one that holds a previous run unless resume or overwrite, takes the
 * lock, and for overwrite removes everything else in the folder. Release the lock when done.
 */
export async function openRunFolder(
  dir: string,
  opts: { resume: boolean; overwrite: boolean; command: string; log?: (line: string) => void },
): Promise<RunLock> {
  if (opts.resume && opts.overwrite) throw new UsageError('--resume and --overwrite exclude each other: continue the run or replace it');
  await checkRunFolderFree(dir);
  const found = opts.resume ? [] : await previousRun(dir);
  if (found.length > 0 && !opts.overwrite) refusePreviousRun(dir, found);
  const lock = await lockRunFolder(dir, { command: opts.command, log: opts.log });
  try {
    if (found.length > 0) {
      opts.log?.(`replacing the previous run in ${dir}`);
      for (const name of await readdir(dir)) if (name !== LOCK_FILE) await rm(join(dir, name), { recursive: true, force: true });
    }
  } catch (error) {
    lock.release();
    throw error;
  }
  return lock;
}

/** This process's command line, for the lock file: the arguments after node, shortened to 400 characters. */
export function runCommandLine(): string {
  const words = process.argv.slice(1).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
  const line = words.join(' ');
  return line.length > 400 ? `${line.slice(0, 399)}…` : line;
}
