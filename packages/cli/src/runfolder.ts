import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from './args.js';

/** Files and folders a training run leaves in its run folder (a sweep leaves them one level down, per configuration). */
const RUN_ENTRIES = new Set([
  'log.csv',
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
  if (!opts.overwrite) {
    const shown = found.length > 4 ? [...found.slice(0, 4), '…'] : found;
    throw new UsageError(
      `the run folder ${dir} already holds a previous run (${shown.join(', ')}); nothing was changed. ` +
        'Pass --resume to continue it, or --overwrite to replace it (or choose another --out).',
    );
  }
  opts.log?.(`replacing the previous run in ${dir}`);
  await rm(dir, { recursive: true, force: true });
}
