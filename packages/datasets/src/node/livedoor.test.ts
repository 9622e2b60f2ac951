import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTar } from '../archive/tar-writer.js';
import { splitLivedoor } from '../livedoor/split.js';
import { formatLivedoor } from '../livedoor/template.js';
import { readLivedoor } from './livedoor.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'livedoor');
const scratch = mkdtempSync(join(tmpdir(), 'peft-livedoor-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const CATEGORIES = [
  'dokujo-tsushin',
  'it-life-hack',
  'kaden-channel',
  'livedoor-homme',
  'movie-enter',
  'peachy',
  'smax',
  'sports-watch',
  'topic-news',
];

describe('readLivedoor on the fixture corpus', () => {
  it('reads the text/ folder, its parent and the tar.gz identically', async () => {
    const fromParent = await readLivedoor(fixtures);
    const fromText = await readLivedoor(join(fixtures, 'text'));
    const fromArchive = await readLivedoor(join(fixtures, 'ldcc-fixture.tar.gz'));
    expect(fromParent.labels).toEqual(CATEGORIES);
    expect(fromParent.examples.length).toBe(135); // 9 categories × 15; LICENSE.txt and README.txt skipped
    expect(fromText).toEqual(fromParent);
    expect(fromArchive).toEqual(fromParent);
  });

  it('normalises titles and bodies as the study does', async () => {
    const { examples } = await readLivedoor(fixtures);
    const e = examples.find((x) => x.id === 'peachy-6140208')!;
    expect(e).toEqual({
      id: 'peachy-6140208',
      category: 'peachy',
      label: 5,
      url: 'http://news.livedoor.com/article/detail/6140208/',
      date: '2012-02-17T09:30:00+0900',
      title: '美肌でファッションもかなう!',
      body: [
        '話題のスイーツはSNSでも大人気。',
        'かわいいコスメで毎日をハッピーに。',
        'スイーツにこだわる女性が増えているそうだ。',
        'かわいいダイエットで毎日をハッピーに。',
        '今季注目のパンケーキを紹介しよう。',
        '今季注目のファッションを紹介しよう。',
        '休日はダイエットを楽しむのがおすすめ(予約が必要)。',
        '今季注目のスイーツを紹介しよう。',
      ].join('\n'),
    });
    expect(formatLivedoor(e, 2).split('\n')[0]).toBe('美肌でファッションもかなう!');
    const t = examples.find((x) => x.id === 'peachy-6140821')!;
    expect(t.title).toBe('【Peachy】 春のパンケーキトレンド');
  });

  it('splits the fixture corpus 109 / 13 / 13, the same for the folder and the archive', async () => {
    const a = splitLivedoor((await readLivedoor(fixtures)).examples, { seed: 42 });
    const b = splitLivedoor((await readLivedoor(join(fixtures, 'ldcc-fixture.tar.gz'))).examples, { seed: 42 });
    expect([a.train.length, a.validation.length, a.test.length]).toEqual([109, 13, 13]);
    expect(b.test.map((e) => e.id)).toEqual(a.test.map((e) => e.id));
  });
});

describe('readLivedoor errors', () => {
  it('rejects an archive entry that escapes the root, naming it', async () => {
    const path = join(scratch, 'evil.tar.gz');
    writeFileSync(
      path,
      gzipSync(
        writeTar([
          { path: 'text/smax/smax-1.txt', data: 'u\nd\nt\nb\n' },
          { path: 'text/../../outside.txt', data: 'x' },
        ]),
      ),
    );
    await expect(readLivedoor(path)).rejects.toThrow('unsafe archive entry "text/../../outside.txt"');
    const link = join(scratch, 'link.tar.gz');
    writeFileSync(link, gzipSync(writeTar([{ path: 'text/smax/smax-2.txt', type: 'symlink', linkTarget: '/etc/passwd' }])));
    await expect(readLivedoor(link)).rejects.toThrow('unsafe archive entry "text/smax/smax-2.txt": symbolic link to "/etc/passwd"');
  });

  it('rejects an article with fewer than 3 lines, naming the file', async () => {
    const dir = join(scratch, 'short', 'text', 'smax');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'smax-1.txt'), 'http://example/\n2012-01-01\n');
    await expect(readLivedoor(join(scratch, 'short'))).rejects.toThrow(`livedoor article ${join(dir, 'smax-1.txt')} has 2 line(s)`);
    const tarPath = join(scratch, 'short.tar.gz');
    writeFileSync(tarPath, gzipSync(writeTar([{ path: 'text/smax/smax-1.txt', data: 'only one line' }])));
    await expect(readLivedoor(tarPath)).rejects.toThrow(`livedoor article ${tarPath}:text/smax/smax-1.txt has 1 line(s)`);
  });

  it('says what to pass when the path holds no articles', async () => {
    await expect(readLivedoor(join(scratch, 'missing'))).rejects.toThrow('livedoor corpus not found at');
    const empty = join(scratch, 'empty');
    mkdirSync(empty);
    await expect(readLivedoor(empty)).rejects.toThrow('no livedoor articles (<category>/<category>-<id>.txt) found in');
    const notGz = join(scratch, 'not.tar.gz');
    writeFileSync(notGz, new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
    await expect(readLivedoor(notGz)).rejects.toThrow('is not a readable tar.gz archive');
  });
});

describe('readLivedoor on hostile archives and articles', () => {
  const article = (n: number) => ({ path: `text/smax/smax-${n}.txt`, data: `u\nd\nt${n}\nbody\n` });

  it('streams past a 1 GiB LICENSE.txt in a 1 MB tar.gz: seconds and little memory', async () => {
    // gzip members may be concatenated: one member holds the header, then 16 copies of a member of 64 MiB of zeros.
    // (The 2 GiB case of the audit takes 2.7 s and 118 MiB peak RSS; before, 79 s and 4.2 GB.)
    const size = 2 ** 30;
    const header = writeTar([{ path: 'text/smax/LICENSE.txt', data: '' }])
      .subarray(0, 512)
      .slice();
    header.set(
      Array.from(`${size.toString(8).padStart(11, '0')}\0`, (c) => c.charCodeAt(0)),
      124,
    );
    header.fill(32, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    header.set(
      Array.from(`${sum.toString(8).padStart(6, '0')}\0 `, (c) => c.charCodeAt(0)),
      148,
    );
    const zeros = gzipSync(new Uint8Array(64 * 2 ** 20), { level: 9 });
    const path = join(scratch, 'bomb.tar.gz');
    writeFileSync(path, Buffer.concat([gzipSync(header), ...Array(16).fill(zeros), gzipSync(writeTar([article(1)]))]));
    const rssBefore = process.resourceUsage().maxRSS * 1024;
    const cpuBefore = process.cpuUsage(); // CPU time (zlib's threads included): wall time means little on a shared machine
    const corpus = await readLivedoor(path);
    const cpu = process.cpuUsage(cpuBefore);
    const grew = process.resourceUsage().maxRSS * 1024 - rssBefore;
    expect(corpus.examples.map((e) => e.id)).toEqual(['smax-1']);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(10_000);
    expect(grew).toBeLessThan(512 * 2 ** 20);
  }, 30_000);

  it('says a 700 MB article is too large, with the limit (folder and archive)', async () => {
    const dir = join(scratch, 'big', 'text', 'smax');
    mkdirSync(dir, { recursive: true });
    const fd = openSync(join(dir, 'smax-1.txt'), 'w');
    ftruncateSync(fd, 700 * 2 ** 20); // sparse: no disk space used
    closeSync(fd);
    await expect(readLivedoor(join(scratch, 'big'))).rejects.toThrow(
      `livedoor article ${join(dir, 'smax-1.txt')} is 734003200 bytes; articles larger than 16777216 bytes are not read (maxArticleBytes)`,
    );
    const tar = writeTar([article(1)]);
    tar.set(
      Array.from(`${(700 * 2 ** 20).toString(8).padStart(11, '0')}\0`, (c) => c.charCodeAt(0)),
      124,
    );
    tar.fill(32, 148, 156);
    const sum = tar.subarray(0, 512).reduce((a, b) => a + b, 0);
    tar.set(
      Array.from(`${sum.toString(8).padStart(6, '0')}\0 `, (c) => c.charCodeAt(0)),
      148,
    );
    const path = join(scratch, 'big.tar.gz');
    writeFileSync(path, gzipSync(tar));
    await expect(readLivedoor(path)).rejects.toThrow(
      `livedoor article ${path}:text/smax/smax-1.txt is 734003200 bytes; articles larger than 16777216`,
    );
    const warned = await readLivedoor(path, { malformed: 'warn', maxArticleBytes: 2 ** 30 }).catch((e: Error) => e.message);
    expect(warned).toContain(`${path}: truncated tar archive: entry "text/smax/smax-1.txt" declares 734003200 bytes`);
  });

  it('reports an unreadable pax size as such, naming archive and entry (not as a 0-line article)', async () => {
    for (const size of ['-5', 'abc']) {
      const path = join(scratch, `pax${size}.tar.gz`);
      writeFileSync(path, gzipSync(writeTar([{ ...article(1), pax: { size } }])));
      await expect(readLivedoor(path)).rejects.toThrow(
        `${path}: corrupt pax extended header "PaxHeader" at byte 0 (data at byte 512): record "size" is ${JSON.stringify(size)}`,
      );
    }
  });

  it('counts an entry stored twice once: an error, or a warning and the later copy', async () => {
    const path = join(scratch, 'dup.tar.gz');
    const later = { path: './text/smax/smax-1.txt', data: 'u\nd\nlater\nbody\n' };
    writeFileSync(path, gzipSync(writeTar([article(1), article(2), later])));
    await expect(readLivedoor(path)).rejects.toThrow(`livedoor archive ${path}: entry "text/smax/smax-1.txt" appears more than once`);
    const corpus = await readLivedoor(path, { malformed: 'warn' });
    expect(corpus.examples.map((e) => [e.id, e.title])).toEqual([
      ['smax-1', 'later'],
      ['smax-2', 't2'],
    ]);
    expect(corpus.warnings).toEqual([
      `livedoor archive ${path}: entry "text/smax/smax-1.txt" appears more than once; the later copy replaces the earlier`,
    ]);
  });

  it("skips and counts malformed articles with malformed: 'warn'", async () => {
    const path = join(scratch, 'mixed.tar.gz');
    const bad = { path: 'text/smax/smax-3.txt', data: new Uint8Array([0x75, 0x0a, 0xff, 0x0a, 0x74, 0x0a]) };
    writeFileSync(path, gzipSync(writeTar([article(1), { path: 'text/smax/smax-2.txt', data: 'one line' }, bad])));
    await expect(readLivedoor(path)).rejects.toThrow(`livedoor article ${path}:text/smax/smax-2.txt has 1 line(s)`);
    const corpus = await readLivedoor(path, { malformed: 'warn' });
    expect(corpus.examples.map((e) => e.id)).toEqual(['smax-1']);
    expect(corpus.warnings).toEqual([
      `livedoor article ${path}:text/smax/smax-2.txt has 1 line(s); expected at least 3 (URL, date, title, then the body). Is this file truncated?`,
      `livedoor article ${path}:text/smax/smax-3.txt is not valid UTF-8`,
    ]);
  });
});
