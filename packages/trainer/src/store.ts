import type { ByteSink, FileSink } from '@peft/core';

/** What a run folder file holds: text, bytes, or a producer that streams bytes to a sink (safetensors). */
export type FileData = string | Uint8Array | ((sink: ByteSink) => Promise<unknown>);

/**
 * Where a run writes its folder: a directory on disk (`nodeRunStore` from `@peft/trainer/node`) or
 * memory (`memoryRunStore`, for browsers and tests). Paths are relative and `/`-separated.
 * It is a `FileSink` too, so `saveAdapterTo(peft, store)` writes into it.
 */
export interface RunStore extends FileSink {
  /** Shown in messages: the folder's path, or a label. */
  readonly name: string;
  /** Writes one file atomically: a reader sees the old content or all of the new one. Creates parent folders. */
  writeFile(path: string, data: FileData): Promise<void>;
  /** The file's bytes, or null when there is no such file. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** Names directly inside a folder (files and folders), sorted; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** Moves a file or folder (atomic for a folder on one file system); `to` must not exist. */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file or a folder with everything in it; nothing happens when it does not exist. */
  remove(path: string): Promise<void>;
}

export async function collectBytes(data: FileData): Promise<Uint8Array> {
  if (typeof data === 'string') return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data.slice();
  const chunks: Uint8Array[] = [];
  await data({
    async write(chunk) {
      chunks.push(chunk.slice());
    },
  });
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..'))
    throw new Error(`run store: path ${JSON.stringify(path)} leaves the run folder: use a relative path without ".."`);
  return parts.join('/');
}

/** A run folder in memory; `files` maps each path to its bytes. */
export function memoryRunStore(name = 'memory'): RunStore & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  const under = (dir: string) => (dir === '' ? '' : `${dir}/`);
  return {
    name,
    files,
    async writeFile(path, data) {
      const bytes = await collectBytes(data);
      files.set(normalize(path), bytes);
    },
    async readFile(path) {
      return files.get(normalize(path)) ?? null;
    },
    async list(dir) {
      const prefix = under(normalize(dir));
      const names = new Set<string>();
      for (const key of files.keys()) if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0]!);
      return [...names].sort();
    },
    async rename(from, to) {
      const src = normalize(from);
      const dst = normalize(to);
      const moved = [...files.entries()].filter(([k]) => k === src || k.startsWith(`${src}/`));
      if (moved.length === 0) throw new Error(`${name}: cannot rename ${from}: it does not exist`);
      if ([...files.keys()].some((k) => k === dst || k.startsWith(`${dst}/`)))
        throw new Error(`${name}: cannot rename to ${to}: it exists`);
      for (const [k, v] of moved) {
        files.delete(k);
        files.set(dst + k.slice(src.length), v);
      }
    },
    async remove(path) {
      const p = normalize(path);
      for (const k of [...files.keys()]) if (p === '' || k === p || k.startsWith(`${p}/`)) files.delete(k);
    },
  };
}

/** The same store seen from one of its folders (a sweep gives each configuration its own). */
export function subStore(store: RunStore, dir: string): RunStore {
  const prefix = normalize(dir);
  if (prefix === '') return store;
  const at = (p: string) => {
    const rest = normalize(p);
    return rest === '' ? prefix : `${prefix}/${rest}`;
  };
  return {
    name: `${store.name}/${prefix}`,
    writeFile: (p, data) => store.writeFile(at(p), data),
    readFile: (p) => store.readFile(at(p)),
    list: (p) => store.list(at(p)),
    rename: (a, b) => store.rename(at(a), at(b)),
    remove: (p) => store.remove(at(p)),
  };
}

export async function readJson<T>(store: RunStore, path: string): Promise<T | null> {
  const bytes = await store.readFile(path);
  if (!bytes) return null;
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new Error(`${store.name}/${path}: not valid JSON (${(error as Error).message})`);
  }
}

export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
