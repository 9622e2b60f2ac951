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
  type LivedoorReadOptions,
  MAX_LIVEDOOR_ARTICLE_BYTES,
  parseLivedoorArticle,
} from '../livedoor/article.js';
import { reportMalformed } from '../text/malformed.js';

/** Strict UTF-8 that keeps a BOM, like Python's `Path.read_text()` under a UTF-8 locale. */
function decodeArticle(bytes: Uint8Array, name: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error(`livedoor article ${name} is not valid UTF-8`);
  }
}

function tooLarge(name: string, size: number, limit: number): string {
  return `livedoor article ${name} is ${size} bytes; articles larger than ${limit} bytes are not read (maxArticleBytes)`;
}

/** Reads one article, or records why it is malformed (throwing in the strict setting). */
function article(
  bytes: Uint8Array,
  category: string,
  fileName: string,
  name: string,
  options: LivedoorReadOptions,
  warnings: string[],
): LivedoorArticle | undefined {
  try {
    return parseLivedoorArticle(decodeArticle(bytes, name), category, fileName, options, name);
  } catch (e) {
    reportMalformed(options, warnings, (e as Error).message);
    return undefined;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readFolder(root: string, options: LivedoorReadOptions, warnings: string[]): Promise<LivedoorArticle[]> {
  const limit = options.maxArticleBytes ?? MAX_LIVEDOOR_ARTICLE_BYTES;
  const textDir = (await isDirectory(join(root, 'text'))) ? join(root, 'text') : root;
  const articles: LivedoorArticle[] = [];
  for (const category of await readdir(textDir)) {
    const dir = join(textDir, category);
    if (!(await isDirectory(dir))) continue;
    for (const fileName of await readdir(dir)) {
      if (!isLivedoorArticleName(category, fileName)) continue;
      const path = join(dir, fileName);
      const { size } = await stat(path);
      if (size > limit) {
        reportMalformed(options, warnings, tooLarge(path, size, limit));
        continue;
      }
      const a = article(await readFile(path), category, fileName, path, options, warnings);
      if (a) articles.push(a);
    }
  }
  return articles;
}

async function readArchive(path: string, options: LivedoorReadOptions, warnings: string[]): Promise<LivedoorArticle[]> {
  const limit = options.maxArticleBytes ?? MAX_LIVEDOOR_ARTICLE_BYTES;
  const fh = await open(path, 'r');
  const magic = new Uint8Array(2);
  await fh.read(magic, 0, 2, 0);
  await fh.close();
  const file = createReadStream(path);
  const gunzip = magic[0] === 0x1f && magic[1] === 0x8b ? file.pipe(createGunzip({ chunkSize: 256 * 1024 })) : undefined;
  const source = gunzip ?? file;
  // Keyed by entry path: a path stored twice is one article (see LivedoorReadOptions).
  const articles = new Map<string, LivedoorArticle | undefined>();
  const articleName = (entryPath: string) => {
    const segments = entryPath.split('/');
    if (segments.length < 2) return undefined;
    const category = segments[segments.length - 2]!;
    const fileName = segments[segments.length - 1]!;
    return isLivedoorArticleName(category, fileName) ? { category, fileName } : undefined;
  };
  const select = (entryPath: string, size: number): boolean => {
    if (!articleName(entryPath)) return false; // LICENSE.txt and the rest: streamed past, never buffered
    const name = `${path}:${entryPath}`;
    if (articles.has(entryPath)) {
      reportMalformed(
        options,
        warnings,
        `livedoor archive ${path}: entry ${JSON.stringify(entryPath)} appears more than once` +
          (options.malformed === 'warn' ? '; the later copy replaces the earlier' : ''),
      );
    }
    if (size > limit) {
      articles.set(entryPath, undefined);
      reportMalformed(options, warnings, tooLarge(name, size, limit));
      return false;
    }
    return true;
  };
  try {
    for await (const entry of readTar(source as AsyncIterable<Uint8Array>, { name: path, select, maxEntryBytes: limit })) {
      if (entry.type !== 'file') continue;
      const { category, fileName } = articleName(entry.path)!;
      articles.set(entry.path, article(entry.data, category, fileName, `${path}:${entry.path}`, options, warnings));
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
  return [...articles.values()].filter((a): a is LivedoorArticle => a !== undefined);
}

/**
 * Reads the livedoor news corpus (Study A) from the extracted `text/` folder, its parent, or the
 * original `ldcc-20140209.tar.gz` (or a plain .tar), streamed entry by entry without extracting.
 * Articles are `<category>/<category>-<id>.txt`; `LICENSE.txt` and other files are skipped (streamed
 * past in an archive, never buffered). Malformed articles: see {@link LivedoorReadOptions}.
 */
export async function readLivedoor(path: string, options: LivedoorReadOptions = {}): Promise<LivedoorCorpus> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    throw new Error(`livedoor corpus not found at ${path}: pass the extracted text/ folder, its parent, or ldcc-20140209.tar.gz`);
  }
  const warnings: string[] = [];
  const articles = info.isDirectory() ? await readFolder(path, options, warnings) : await readArchive(path, options, warnings);
  if (articles.length === 0) {
    throw new Error(
      `no livedoor articles (<category>/<category>-<id>.txt) found in ${path}: pass the extracted text/ folder, its parent, or ldcc-20140209.tar.gz`,
    );
  }
  return { ...buildLivedoorCorpus(articles), warnings };
}
