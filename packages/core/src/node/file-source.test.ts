import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '../safetensors/reader.js';
import { serializeSafetensors } from '../safetensors/writer.js';
import { nodeDirReader } from './dir-reader.js';
import { fileSource } from './file-source.js';

const dir = mkdtempSync(join(tmpdir(), 'peft-file-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openFds = () => readdirSync('/proc/self/fd').length;

describe('fileSource over hostile paths', () => {
  it('closes the file handle of every failed safetensors open (200 failures leave no descriptor behind)', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'root:x:0:0:root:/root:/bin/bash\n');
    const valid = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const truncated = join(dir, 'truncated.safetensors');
    writeFileSync(truncated, valid.subarray(0, valid.length - 1));
    const badJson = join(dir, 'bad-json.safetensors');
    const header = new TextEncoder().encode('{"w": nope}');
    const bytes = new Uint8Array(8 + header.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    writeFileSync(badJson, bytes);

    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const path = [text, truncated, badJson][i % 3]!;
      await expect(openSafetensors(await fileSource(path))).rejects.toThrow(path);
    }
    expect(openFds()).toBe(before);
  });

  it('refuses a directory or a FIFO instead of reading it (or waiting on it forever)', async () => {
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    await expect(fileSource(sub)).rejects.toThrow(`${sub}: not a regular file: expected a file of bytes`);
    const fifo = join(dir, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
    const started = performance.now();
    await expect(fileSource(fifo)).rejects.toThrow(`${fifo}: not a regular file`);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('reads through a link but never prints what the linked file holds', async () => {
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n');
    const model = join(dir, 'model-folder');
    mkdirSync(model);
    symlinkSync(secret, join(model, 'model.safetensors'));
    const reader = nodeDirReader(model);
    expect(await reader.list?.()).toEqual(['model.safetensors']);
    const message = await openSafetensors(await reader.open('model.safetensors')).catch((e: Error) => e.message);
    expect(message).toBe(
      `${join(model, 'model.safetensors')}: not a safetensors file (header length field exceeds the file size ${statSync(secret).size}): the file is truncated or not safetensors`,
    );
    expect(message).not.toMatch(/root|daemon|3475222254926655346/);
  });
});
