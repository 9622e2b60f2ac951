import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeDirectory, writeFileAtomic } from './atomic-write.js';

// As root a folder's mode does not stop writes; the injected cases are in atomic-write.failure.test.ts.
const root = process.getuid?.() === 0;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes bytes, text, chunk iterables and producers', async () => {
    const path = join(dir, 'out.bin');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, 'héllo');
    expect(await readFile(path, 'utf8')).toBe('héllo');
    await writeFileAtomic(path, [new Uint8Array([4]), new Uint8Array([5, 6])]);
    expect([...(await readFile(path))]).toEqual([4, 5, 6]);
    await writeFileAtomic(path, async (sink) => {
      await sink.write(new Uint8Array([7]));
      await sink.write(new Uint16Array([0x0908]).subarray(0, 1) as unknown as Uint8Array);
    });
    expect([...(await readFile(path))]).toEqual([7, 8, 9]);
    expect(await readdir(dir)).toEqual(['out.bin']);
  });

  it('leaves the old file intact and no temp file when the producer throws midway', async () => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'old content');
    let wrote = 0;
    await expect(
      writeFileAtomic(path, async (sink) => {
        await sink.write(new Uint8Array(1 << 20).fill(1));
        wrote += 1 << 20;
        throw new Error('tensor 7 failed to download');
      }),
    ).rejects.toThrow('tensor 7 failed to download');
    expect(wrote).toBe(1 << 20);
    expect(await readFile(path, 'utf8')).toBe('old content');
    expect(await readdir(dir)).toEqual(['model.safetensors']);
  });

  it('leaves nothing behind when the target does not exist yet and an iterable throws', async () => {
    async function* chunks() {
      yield new Uint8Array([1]);
      throw new Error('boom');
    }
    await expect(writeFileAtomic(join(dir, 'new.bin'), chunks())).rejects.toThrow('boom');
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses to replace a folder, naming it, and leaves no temporary file', async () => {
    const path = join(dir, 'adapter');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'kept');
    await expect(writeFileAtomic(path, 'x')).rejects.toThrow(
      `cannot write ${path}: ${path} is a folder, not a file (EISDIR). ${path} was left as it was.`,
    );
    expect(await readdir(dir)).toEqual(['adapter']);
    expect(await readFile(join(path, 'inside'), 'utf8')).toBe('kept');
  });

  it('names a parent that is a file', async () => {
    await writeFile(join(dir, 'run'), 'a file');
    const sub = join(dir, 'run', 'adapter');
    await expect(makeDirectory(sub, join(sub, 'a.json'))).rejects.toThrow(
      `cannot write ${join(sub, 'a.json')}: cannot create the folder ${sub}: ${join(dir, 'run')} is a file, not a folder`,
    );
  });

  it.skipIf(root)('names a read-only folder (chmod 555) as not writable', async () => {
    await chmod(dir, 0o555);
    try {
      await expect(writeFileAtomic(join(dir, 'x.json'), '{}')).rejects.toThrow(`its folder ${dir} is not writable (EACCES)`);
      const sub = join(dir, 'a', 'b');
      await expect(makeDirectory(sub, join(sub, 'f'))).rejects.toThrow(`the folder ${dir} is not writable`);
    } finally {
      await chmod(dir, 0o755);
    }
  });
});

/** Mounts a small tmpfs at `at` (root on Linux only); false where that is not allowed. */
const mountTmpfs = (at: string, size: string) =>
  process.platform === 'linux' && root && spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at]).status === 0;

describe('writeFileAtomic on a real small disk (a 64 KiB tmpfs)', () => {
  let disk: string;
  let mounted = false;
  beforeEach(async () => {
    disk = join(dir, 'disk');
    await mkdir(disk);
    mounted = mountTmpfs(disk, '64k');
  });
  afterEach(() => {
    if (mounted) spawnSync('umount', [disk]);
  });

  it('a file that does not fit fails with ENOSPC naming it, keeps the old file and leaves no temporary file', async (ctx) => {
    if (!mounted) ctx.skip();
    const path = join(disk, 'adapter_model.safetensors');
    await writeFileAtomic(path, new Uint8Array(16 << 10).fill(1));
    await expect(writeFileAtomic(path, new Uint8Array(64 << 10).fill(2))).rejects.toThrow(
      `cannot write ${path}: the disk is full (ENOSPC). ${path} was left as it was.`,
    );
    expect((await readFile(path)).every((b) => b === 1)).toBe(true);
    expect(await readdir(disk)).toEqual(['adapter_model.safetensors']);
  });

  it('a read-only file system is named as such', async (ctx) => {
    if (!mounted) ctx.skip();
    if (spawnSync('mount', ['-o', 'remount,ro', disk]).status !== 0) ctx.skip();
    const path = join(disk, 'config.json');
    await expect(writeFileAtomic(path, '{}')).rejects.toThrow(
      `cannot write ${path}: its folder ${disk} is on a read-only file system (EROFS).`,
    );
    await expect(makeDirectory(join(disk, 'a', 'b'), join(disk, 'a', 'b', 'f'))).rejects.toThrow(
      `cannot create the folder ${join(disk, 'a', 'b')}: ${disk} is on a read-only file system (mkdir reported ENOENT). Nothing was written.`,
    );
  });
});
