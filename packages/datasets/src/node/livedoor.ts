import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { readTar } from '../archive/tar.js';
import {
  buildLivedoorCorpus,
  isLivedoorArticleName,
  type LivedoorArticle,
  type LivedoorCorpus,
  type LivedoorNormalizeOptions,
  parseLivedoorArticle,
} from '../livedoor/article.js';

/** Strict UTF-8 that keeps a BOM, like Python's `Path.read_text()` under a UTF-8 locale. */
function decodeArticle(bytes: Uint8Array, name: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error(`livedoor article ${name} is not valid UTF-8`);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readFolder(root: string, options: LivedoorNormalizeOptions): Promise<LivedoorArticle[]> {
  const textDir = (await isDirectory(join(root, 'text'))) ? join(root, 'text') : root;
  const articles: LivedoorArticle[] = [];
  for (const category of await readdir(textDir)) {
    const dir = join(textDir, category);
    if (!(await isDirectory(dir))) continue;
    for (const fileName of await readdir(dir)) {
      if (!isLivedoorArticleName(category, fileName)) continue;
      const path = join(dir, fileName);
      const text = decodeArticle(await readFile(path), path);
      articles.push(parseLivedoorArticle(text, category, fileName, options, path));
    }
  }
  return articles;
}

async function readArchive(path: string, options: LivedoorNormalizeOptions): Promise<LivedoorArticle[]> {
  const fh = await open(path, 'r');
  const magic = new Uint8Array(2);
  await fh.read(magic, 0, 2, 0);
  await fh.close();
  const file = createReadStream(path);
  const gunzip = magic[0] === 0x1f && magic[1] === 0x8b ? file.pipe(createGunzip()) : undefined;
  const source = gunzip ?? file;
  const articles: LivedoorArticle[] = [];
  try {
    for await (const entry of readTar(source as AsyncIterable<Uint8Array>)) {
      if (entry.type !== 'file') continue;
      const segments = entry.path.split('/');
      if (segments.length < 2) continue;
      const category = segments[segments.length - 2]!;
      const fileName = segments[segments.length - 1]!;
      if (!isLivedoorArticleName(category, fileName)) continue;
      const name = `${path}:${entry.path}`;
      articles.push(parseLivedoorArticle(decodeArticle(entry.data, name), category, fileName, options, name));
    }
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new Error(`${path} is not a readable tar.gz archive (${(e as Error).message})`);
    }
    throw e;
  } finally {
    gunzip?.destroy();
    file.destroy();
  }
  return articles;
}

/**
 * Reads the livedoor news corpus (Study A) from the extracted `text/` folder, its parent, or the
 * original `ldcc-20140209.tar.gz` (or a plain .tar), streamed entry by entry without extracting.
 * Articles are `<category>/<category>-<id>.txt`; `LICENSE.txt` and other files are skipped.
 */
export async function readLivedoor(path: string, options: LivedoorNormalizeOptions = {}): Promise<LivedoorCorpus> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    throw new Error(`livedoor corpus not found at ${path}: pass the extracted text/ folder, its parent, or ldcc-20140209.tar.gz`);
  }
  const articles = info.isDirectory() ? await readFolder(path, options) : await readArchive(path, options);
  if (articles.length === 0) {
    throw new Error(
      `no livedoor articles (<category>/<category>-<id>.txt) found in ${path}: pass the extracted text/ folder, its parent, or ldcc-20140209.tar.gz`,
    );
  }
  return buildLivedoorCorpus(articles);
}
