import { describe, expect, it } from 'vitest';
import { readTar, safeArchivePath } from './tar.js';
import { writeTar } from './tar-writer.js';

/** Overwrites a header field of the block at `at` and recomputes the checksum. */
function patchHeader(tar: Uint8Array, at: number, field: number, bytes: readonly number[] | string): Uint8Array {
  const out = tar.slice();
  const raw = typeof bytes === 'string' ? Array.from(bytes, (c) => c.charCodeAt(0)) : bytes;
  out.set(raw, at + field);
  out.fill(32, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += out[i]!;
  out.set(
    Array.from(`${sum.toString(8).padStart(6, '0')}\0 `, (c) => c.charCodeAt(0)),
    at + 148,
  );
  return out;
}

async function readAll(bytes: Uint8Array | Iterable<Uint8Array>, options = {}) {
  const out: string[] = [];
  for await (const e of readTar(bytes instanceof Uint8Array ? [bytes] : bytes, { name: 'corpus.tar', ...options })) out.push(e.path);
  return out;
}

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

describe('readTar on hostile headers', () => {
  const article = { path: 'text/smax/smax-1.txt', data: 'u\nd\nt\nbody\n' };

  it('rejects a pax size that is not a non-negative decimal, naming archive and header', async () => {
    for (const size of ['-5', 'abc', '1.5', '', ' 1', '0x10', '99999999999999999999']) {
      await expect(readAll(writeTar([{ ...article, pax: { size } }]))).rejects.toThrow(
        `corpus.tar: corrupt pax extended header "PaxHeader" at byte 0 (data at byte 512): record "size" is ${JSON.stringify(size)}, expected a non-negative decimal integer`,
      );
    }
  });

  it('rejects malformed pax records', async () => {
    const cases: [string, string][] = [
      ['x path=a\n', 'does not start with "<decimal length> "'],
      ['99 path=a\n', 'declares length 99; 10 byte(s) are left'],
      ['12 path=ab\n', 'declares length 12; 11 byte(s) are left'],
      ['1 path=ab\n', 'declares length 1; 10 byte(s) are left'],
      ['9 path=a ', 'does not end with a newline'],
      ['9 pathxa\n', 'is not "<key>=<value>"'],
    ];
    for (const [records, message] of cases) {
      const t = writeTar([{ path: 'PaxHeader', data: records }, article]);
      await expect(readAll(patchHeader(t, 0, 156, 'x'))).rejects.toThrow(`corpus.tar: corrupt pax extended header "PaxHeader"`);
      await expect(readAll(patchHeader(t, 0, 156, 'x'))).rejects.toThrow(message);
    }
  });

  it('rejects bad numeric header fields, naming entry and field', async () => {
    const t = writeTar([article]);
    await expect(readAll(patchHeader(t, 0, 124, '-0000000005\0'))).rejects.toThrow(
      'corpus.tar: corrupt tar header for entry "text/smax/smax-1.txt": field size is not a non-negative octal',
    );
    await expect(readAll(patchHeader(t, 0, 124, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb]))).rejects.toThrow(
      'field size is not a non-negative octal or base-256 number below 2^53 (bytes ff ff ff ff ff ff ff ff ff ff ff fb',
    );
    await expect(readAll(patchHeader(t, 0, 124, [0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).rejects.toThrow(
      'field size is not a non-negative octal or base-256 number below 2^53',
    );
    await expect(readAll(patchHeader(t, 0, 100, '07x4\0'))).rejects.toThrow('field mode is not octal');
    await expect(readAll(patchHeader(t, 0, 136, '9'))).rejects.toThrow('field mtime is not octal');
    const badSum = t.slice();
    badSum.set([0x7a, 0x7a], 148);
    await expect(readAll(badSum)).rejects.toThrow(
      'corpus.tar: corrupt tar header for entry "text/smax/smax-1.txt": checksum field is not octal',
    );
  });

  it('reads base-256 sizes and pax sizes that are valid', async () => {
    const t = writeTar([article]);
    const b256 = patchHeader(t, 0, 124, [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
    expect(await readAll(b256)).toEqual(['text/smax/smax-1.txt']);
    expect(await readAll(writeTar([{ ...article, pax: { size: '11', mtime: '1.5' } }]))).toEqual(['text/smax/smax-1.txt']);
  });

  it('limits the size of files read into memory and of metadata', async () => {
    await expect(readAll(writeTar([article]), { maxEntryBytes: 10 })).rejects.toThrow(
      'corpus.tar: archive entry "text/smax/smax-1.txt" is 11 bytes; entries read into memory are limited to 10 bytes',
    );
    // A header declaring 700 MB is refused before any of its data is read.
    const huge = patchHeader(writeTar([article]), 0, 124, `${(700 * 2 ** 20).toString(8).padStart(11, '0')}\0`);
    await expect(readAll(huge)).rejects.toThrow('is 734003200 bytes; entries read into memory are limited to 67108864 bytes');
    const longPax = patchHeader(writeTar([article]), 0, 156, 'x');
    await expect(readAll(patchHeader(longPax, 0, 124, `${(2 ** 30).toString(8).padStart(11, '0')}\0`))).rejects.toThrow(
      'corpus.tar: pax extended header "text/smax/smax-1.txt" at byte 0 declares 1073741824 bytes; at most 1048576 are accepted',
    );
  });

  it('streams past unselected entries without buffering them', async () => {
    // A 1 GiB LICENSE.txt made of one reused 1 MiB chunk: buffering it would allocate 1 GiB.
    const size = 2 ** 30;
    const license = patchHeader(
      writeTar([{ path: 'text/LICENSE.txt', data: '' }]).subarray(0, 512),
      0,
      124,
      `${size.toString(8).padStart(11, '0')}\0`,
    );
    const zeros = new Uint8Array(2 ** 20);
    function* source() {
      yield license;
      for (let i = 0; i < size / zeros.length; i++) yield zeros;
      yield writeTar([article]);
    }
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const seen: string[] = [];
    for await (const e of readTar(source(), { select: (path) => !path.endsWith('LICENSE.txt') })) {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
      seen.push(`${e.path} ${e.size} ${e.data.length}`);
    }
    expect(seen).toEqual(['text/smax/smax-1.txt 11 11']);
    expect(peak).toBeLessThan(64 * 2 ** 20);
  });

  it('names the archive when a skipped entry is truncated', async () => {
    const t = patchHeader(writeTar([article]), 0, 124, `${(5000).toString(8).padStart(11, '0')}\0`);
    await expect(readAll(t, { select: () => false })).rejects.toThrow(
      'corpus.tar: truncated tar archive: entry "text/smax/smax-1.txt" declares 5000 bytes, found 1536',
    );
  });
});

describe('safeArchivePath', () => {
  it('normalises harmless paths', () => {
    expect(safeArchivePath('./text//a/./b.txt')).toBe('text/a/b.txt');
    expect(() => safeArchivePath('C:\\x')).toThrow('absolute path');
    expect(() => safeArchivePath('a\\..\\..\\b')).toThrow('".." segment');
  });
});
