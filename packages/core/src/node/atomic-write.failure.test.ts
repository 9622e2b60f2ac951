// Disk full, read-only folders and friends, injected into node:fs/promises (the tests may run as
// root, where a read-only mode does not stop writes): each failure names the file and the cause in
// words, closes the temporary file, removes it, and leaves the old file as it was.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const inject = vi.hoisted(() => ({
  /** Fail the nth `write` on a handle (1-based) with this code; 0: never. */
  writeAt: 0,
  writeCode: 'ENOSPC',
  openCode: '',
  syncCode: '',
  renameCode: '',
  /** mkdir fails with this code, as a recursive mkdir below a read-only folder does (ENOENT). */
  mkdirCode: '',
  /** access(W_OK) is refused: the folder is read-only for this user. */
  readOnly: false,
  writes: 0,
  opened: 0,
  closed: 0,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const fail = (code: string, syscall: string, path?: string) =>
    Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall, errno: -1, path });
  return {
    ...real,
    async open(path: string, flags: string) {
      if (inject.openCode && flags === 'wx') throw fail(inject.openCode, 'open', path);
      const handle = await real.open(path, flags);
      if (flags !== 'wx') return handle;
      inject.opened++;
      return new Proxy(handle, {
        get(target, key) {
          if (key === 'write')
            return (...args: Parameters<typeof handle.write>) => {
              if (++inject.writes === inject.writeAt) return Promise.reject(fail(inject.writeCode, 'write'));
              return target.write(...args);
            };
          if (key === 'sync') return () => (inject.syncCode ? Promise.reject(fail(inject.syncCode, 'fsync')) : target.sync());
          if (key === 'close')
            return () => {
              inject.closed++;
              return target.close();
            };
          const v = Reflect.get(target, key);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
    async mkdir(path: string, options: object) {
      if (inject.mkdirCode) throw fail(inject.mkdirCode, 'mkdir', path);
      return real.mkdir(path, options);
    },
    async access(path: string, mode?: number) {
      if (inject.readOnly) throw fail('EACCES', 'access', path);
      return real.access(path, mode);
    },
    async rename(from: string, to: string) {
      if (inject.renameCode) throw fail(inject.renameCode, 'rename', from);
      return real.rename(from, to);
    },
  };
});

const { mkdtemp, readdir, readFile, rm, writeFile } = await import('node:fs/promises');
const { tmpdir } = await import('node:os');
const { join } = await import('node:path');
const { makeDirectory, writeFileAtomic } = await import('./atomic-write.js');
const { saveShardedSafetensors } = await import('./save.js');
const { nodeDirSink } = await import('./adapters.js');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-atomic-fail-'));
  Object.assign(inject, {
    writeAt: 0,
    writeCode: 'ENOSPC',
    openCode: '',
    syncCode: '',
    renameCode: '',
    mkdirCode: '',
    readOnly: false,
    writes: 0,
    opened: 0,
    closed: 0,
  });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Three 1 MiB chunks, as a safetensors producer streams tensors. */
const producer = async (sink: { write(c: Uint8Array): Promise<void> }) => {
  for (let i = 0; i < 3; i++) await sink.write(new Uint8Array(1 << 20).fill(i));
};

describe('writeFileAtomic when the file system fails', () => {
  it.each([
    ['ENOSPC', 'the disk is full (ENOSPC)'],
    ['EDQUOT', 'the disk quota is used up (EDQUOT)'],
    ['EIO', 'the disk reported an input/output error (EIO)'],
  ])('a write failing with %s midway names the file and the cause, closes and removes the temporary file', async (code, words) => {
    const path = join(dir, 'adapter_model.safetensors');
    await writeFile(path, 'old adapter');
    inject.writeAt = 2;
    inject.writeCode = code;
    const error = (await writeFileAtomic(path, producer).catch((e: unknown) => e)) as Error & { code: string; path: string };
    expect(error.message).toBe(`cannot write ${path}: ${words}. ${path} was left as it was.`);
    expect(error.code).toBe(code);
    expect(error.path).toBe(path);
    expect((error.cause as { code: string }).code).toBe(code);
    expect(inject.opened).toBe(1);
    expect(inject.closed).toBe(1);
    expect(await readFile(path, 'utf8')).toBe('old adapter');
    expect(await readdir(dir)).toEqual(['adapter_model.safetensors']);
  });

  it('a read-only folder is named as not writable, not as a missing file', async () => {
    const path = join(dir, 'config.json');
    for (const [code, words] of [
      ['EACCES', `its folder ${dir} is not writable (EACCES)`],
      ['EROFS', `its folder ${dir} is on a read-only file system (EROFS)`],
    ]) {
      inject.openCode = code as string;
      await expect(writeFileAtomic(path, '{}')).rejects.toThrow(`cannot write ${path}: ${words}. ${path} was left as it was.`);
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('a failing fsync closes the handle once and removes the temporary file', async () => {
    const path = join(dir, 'log.csv');
    inject.syncCode = 'EIO';
    await expect(writeFileAtomic(path, 'a,b\n')).rejects.toThrow(`cannot write ${path}: the disk reported an input/output error (EIO).`);
    expect(inject.closed).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a failing rename (the target is a folder) removes the temporary file', async () => {
    const path = join(dir, 'state.json');
    inject.renameCode = 'EISDIR';
    await expect(writeFileAtomic(path, '{}')).rejects.toThrow(`cannot write ${path}: ${path} is a folder, not a file (EISDIR).`);
    expect(inject.closed).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it("passes the producer's own error on unchanged, after closing and removing the temporary file", async () => {
    const path = join(dir, 'x.bin');
    const own = new Error('tensor 7 failed to download');
    await expect(
      writeFileAtomic(path, async (sink) => {
        await sink.write(new Uint8Array(10));
        throw own;
      }),
    ).rejects.toBe(own);
    expect(inject.closed).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('makeDirectory', () => {
  it('says a read-only parent is not writable where mkdir reports ENOENT', async () => {
    inject.mkdirCode = 'ENOENT';
    inject.readOnly = true;
    const sub = join(dir, 'run', 'adapter');
    await expect(makeDirectory(sub, join(sub, 'adapter_model.safetensors'))).rejects.toThrow(
      `cannot write ${join(sub, 'adapter_model.safetensors')}: cannot create the folder ${sub}: the folder ${dir} is not writable (mkdir reported ENOENT). Nothing was written.`,
    );
  });

  it('names a read-only file system', async () => {
    inject.mkdirCode = 'EROFS';
    await expect(makeDirectory(join(dir, 'a'), join(dir, 'a', 'f'))).rejects.toThrow(`${dir} is on a read-only file system (EROFS)`);
  });

  it('saveShardedSafetensors into a folder below a read-only one names the folder, not a bare ENOENT', async () => {
    inject.mkdirCode = 'ENOENT';
    inject.readOnly = true;
    const out = join(dir, 'merged');
    const error = await saveShardedSafetensors(out, [{ name: 'w', dtype: 'float32', shape: [1], data: new Float32Array([1]) }]).catch(
      (e: unknown) => e as Error,
    );
    expect((error as Error).message).toBe(
      `cannot write ${join(out, 'model.safetensors')}: cannot create the folder ${out}: the folder ${dir} is not writable (mkdir reported ENOENT). Nothing was written.`,
    );
  });

  it('an adapter folder below a read-only one names the folder, not a bare ENOENT', async () => {
    inject.mkdirCode = 'ENOENT';
    inject.readOnly = true;
    const out = join(dir, 'run', 'adapter');
    const error = await nodeDirSink(out)
      .writeFile('adapter_config.json', '{}')
      .catch((e: unknown) => e as Error);
    expect((error as Error).message).toBe(
      `cannot write ${join(out, 'adapter_config.json')}: cannot create the folder ${out}: the folder ${dir} is not writable (mkdir reported ENOENT). Nothing was written.`,
    );
  });
});
