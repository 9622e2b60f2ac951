import { describe, expect, it } from 'vitest';
import { readTar, safeArchivePath } from './tar.js';
import { writeTar } from './tar-writer.js';

async function entries(bytes: Uint8Array, chunkSize = 4096) {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  const out: { path: string; type: string; text: string }[] = [];
  for await (const e of readTar(chunks)) out.push({ path: e.path, type: e.type, text: new TextDecoder().decode(e.data) });
  return out;
}

describe('readTar', () => {
  const long = `text/${'x'.repeat(120)}/記事.txt`;
  const tar = writeTar([
    { path: 'text/', type: 'directory' },
    { path: './text/a/a-1.txt', data: 'こんにちは\n' },
    { path: long, data: 'long name' },
    { path: 'text/empty.txt', data: '' },
  ]);

  it('reads files and directories, normalising paths and following pax long names', async () => {
    expect(await entries(tar)).toEqual([
      { path: 'text', type: 'directory', text: '' },
      { path: 'text/a/a-1.txt', type: 'file', text: 'こんにちは\n' },
      { path: long, type: 'file', text: 'long name' },
      { path: 'text/empty.txt', type: 'file', text: '' },
    ]);
  });

  it('gives the same entries whatever the chunk boundaries', async () => {
    expect(await entries(tar, 1)).toEqual(await entries(tar));
    expect(await entries(tar, 700)).toEqual(await entries(tar));
  });

  it('rejects entries that escape the root, naming them', async () => {
    await expect(entries(writeTar([{ path: '/etc/passwd', data: 'x' }]))).rejects.toThrow(
      'unsafe archive entry "/etc/passwd": absolute path',
    );
    await expect(entries(writeTar([{ path: 'text/../../evil.txt', data: 'x' }]))).rejects.toThrow(
      'unsafe archive entry "text/../../evil.txt": ".." segment',
    );
    await expect(entries(writeTar([{ path: 'text/link', type: 'symlink', linkTarget: '/etc' }]))).rejects.toThrow(
      'unsafe archive entry "text/link": symbolic link to "/etc"',
    );
    await expect(entries(writeTar([{ path: 'text/hard', type: 'hardlink', linkTarget: 'text/a.txt' }]))).rejects.toThrow(
      'unsafe archive entry "text/hard": hard link to "text/a.txt"',
    );
  });

  it('rejects a corrupt header', async () => {
    const bad = writeTar([{ path: 'a.txt', data: 'x' }]);
    bad[0] = 'b'.charCodeAt(0);
    await expect(entries(bad)).rejects.toThrow('corrupt tar header for entry "b.txt": checksum mismatch');
  });

  it('rejects a truncated archive', async () => {
    const t = writeTar([{ path: 'a.txt', data: 'x'.repeat(2000) }]);
    await expect(entries(t.subarray(0, 1024))).rejects.toThrow('truncated tar archive: entry "a.txt" declares 2000 bytes, found 512');
  });
});

describe('safeArchivePath', () => {
  it('normalises harmless paths', () => {
    expect(safeArchivePath('./text//a/./b.txt')).toBe('text/a/b.txt');
    expect(() => safeArchivePath('C:\\x')).toThrow('absolute path');
    expect(() => safeArchivePath('a\\..\\..\\b')).toThrow('".." segment');
  });
});
