import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { writeFileAtomic } from '@peft/core/node';
import type { RunStore } from '../store.js';

function inside(root: string, path: string): string {
  const full = resolve(root, path);
  const rel = relative(resolve(root), full);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new Error(`${root}: path ${JSON.stringify(path)} points outside the run folder: use a relative path without ".."`);
  }
  return rel === '' ? resolve(root) : join(resolve(root), rel);
}

/**
 * A run folder on disk. Files are written atomically (temporary file, fsync, rename); a folder
 * renamed into place (a finished checkpoint) appears whole or not at all.
 */
export function nodeRunStore(dir: string): RunStore {
  return {
    name: dir,
    async writeFile(path, data) {
      const full = inside(dir, path);
      await mkdir(dirname(full), { recursive: true });
      await writeFileAtomic(full, data);
    },
    async readFile(path) {
      try {
        return new Uint8Array(await readFile(inside(dir, path)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },
    async list(path) {
      try {
        return (await readdir(inside(dir, path))).sort();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return [];
        throw error;
      }
    },
    async rename(from, to) {
      const dst = inside(dir, to);
      await mkdir(dirname(dst), { recursive: true });
      await rename(inside(dir, from), dst);
    },
    async remove(path) {
      await rm(inside(dir, path), { recursive: true, force: true });
    },
  };
}
