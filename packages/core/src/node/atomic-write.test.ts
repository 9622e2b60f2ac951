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
