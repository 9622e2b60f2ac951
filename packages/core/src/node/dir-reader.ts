import { readdir, stat } from 'node:fs/promises';
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
      // Symbolic links count when they lead to a file: the Hugging Face hub cache keeps every file
      // of a snapshot folder as a link into its blobs/ folder.
      const entries = await readdir(dir, { withFileTypes: true });
      const files: string[] = [];
      for (const e of entries) {
        if (e.isFile()) files.push(e.name);
        else if (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => null))?.isFile()) files.push(e.name);
      }
      return files;
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
