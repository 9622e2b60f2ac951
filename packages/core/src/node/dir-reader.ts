import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { FileOpener } from '../safetensors/sharded-reader.js';
import { fileSource } from './file-source.js';

/** A `FileOpener` over a directory: opens files inside it (never outside) as file sources. */
export function nodeDirReader(dir: string): FileOpener {
  return {
    name: dir,
    async open(fileName) {
      return fileSource(insideDir(dir, fileName));
    },
    async list() {
      const entries = await readdir(dir, { withFileTypes: true });
      return entries.filter((e) => e.isFile()).map((e) => e.name);
    },
  };
}

export function insideDir(dir: string, fileName: string): string {
  const full = resolve(dir, fileName);
  const rel = relative(resolve(dir), full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new Error(`${dir}: file name ${JSON.stringify(fileName)} points outside the directory: use a plain file name`);
  }
  return join(dir, rel);
}
