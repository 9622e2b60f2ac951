import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
