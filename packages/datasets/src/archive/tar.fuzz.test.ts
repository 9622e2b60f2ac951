import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BINARY_MUTATORS, describeFailures, type Mutator, runFuzz } from '@peft/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { readLivedoor } from '../node/livedoor.js';
import { readTar } from './tar.js';
import { writeTar } from './tar-writer.js';

// Mutated tar archives, read entry by entry with readTar (LICENSE.txt skipped, as the livedoor
// reader does), and mutated tar.gz archives read whole by readLivedoor: each is accepted, or refused
// with an error naming the archive, within 2 s and 256 MiB. Decompression bombs: 10 s, 1 GiB.

const scratch = mkdtempSync(join(tmpdir(), `peft-tar-fuzz-${process.pid}-`));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const article = (category: string, id: number, title = '題名') => ({
  path: `text/${category}/${category}-${id}.txt`,
  data: `http://news.livedoor.com/article/detail/${id}/\n2012-01-01T00:00:00+0900\n　${title}　\n本文１\n\n本文２\n`,
});

const SEEDS = [
  writeTar([
    { path: 'text/', type: 'directory' },
    { path: 'text/smax/', type: 'directory' },
    { path: 'text/smax/LICENSE.txt', data: 'license text\n'.repeat(50) },
    article('smax', 1),
    article('smax', 2),
    article('peachy', 3),
  ]),
  writeTar([
    { path: `text/${'long-'.repeat(30)}/README.txt`, data: 'readme' },
    { ...article('it-life-hack', 4), pax: { mtime: '1325376000.5', comment: 'pax records' } },
    { path: './text/sports-watch/sports-watch-5.txt', data: 'u\nd\nt\n' },
    { path: 'text/topic-news/topic-news-6.txt', data: 'u\nd\nt' },
    { path: 'text/topic-news/empty.txt', data: '' },
  ]),
];

/** A header whose size field is `size` (octal), with its checksum recomputed. */
function withSize(tar: Uint8Array, size: number): Uint8Array {
  const out = tar.slice();
  out.set(
    Array.from(`${size.toString(8).padStart(11, '0')}\0`, (c) => c.charCodeAt(0)),
    124,
  );
  out.fill(32, 148, 156);
  const sum = out.subarray(0, 512).reduce((a, b) => a + b, 0);
  out.set(
    Array.from(`${sum.toString(8).padStart(6, '0')}\0 `, (c) => c.charCodeAt(0)),
    148,
  );
  return out;
}

const HOSTILE = [
  { name: 'pax size=-5', bytes: writeTar([{ ...article('smax', 1), pax: { size: '-5' } }]) },
  { name: 'pax size=abc', bytes: writeTar([{ ...article('smax', 1), pax: { size: 'abc' } }]) },
  { name: 'entry twice', bytes: writeTar([article('smax', 1), article('smax', 1, 'again')]) },
  { name: 'declares 700 MB', bytes: withSize(writeTar([article('smax', 1)]), 700 * 2 ** 20) },
  { name: 'LICENSE declares 2 GiB, truncated', bytes: withSize(writeTar([{ path: 'text/smax/LICENSE.txt', data: 'x' }]), 2 ** 31) },
  { name: 'traversal', bytes: writeTar([{ path: 'text/../../evil.txt', data: 'x' }]) },
  { name: 'symlink', bytes: writeTar([{ path: 'text/smax/smax-1.txt', type: 'symlink', linkTarget: '/etc/passwd' }]) },
  { name: 'pax path of 2 MB', bytes: writeTar([{ ...article('smax', 1), pax: { path: 'x'.repeat(2 ** 21) } }]) },
  { name: 'empty', bytes: new Uint8Array(0) },
  { name: 'one zero block', bytes: new Uint8Array(512) },
];

/** gzip as a plain Uint8Array: the mutators copy with slice(), which on a Buffer is a view of the same bytes. */
const gzip = (bytes: Uint8Array, level = 6) => new Uint8Array(gzipSync(bytes, { level }));

/** Each binary mutator applied to the tar inside a tar.gz (most mutations of the gzip bytes only break its CRC). */
const INSIDE_GZIP: Mutator[] = BINARY_MUTATORS.map((m) => {
  const inside: Mutator = (bytes, rng) => {
    let tar: Uint8Array;
    try {
      tar = new Uint8Array(gunzipSync(bytes));
    } catch {
      return m(bytes, rng);
    }
    return gzip(m(tar, rng));
  };
  Object.defineProperty(inside, 'name', { value: `${m.name} inside gzip` });
  return inside;
});

async function readWholeTar(bytes: Uint8Array, file: string): Promise<number> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 700) chunks.push(bytes.subarray(i, i + 700)); // chunk edges inside headers
  let total = 0;
  for await (const e of readTar(chunks, { name: file, select: (path) => !path.endsWith('LICENSE.txt') })) total += e.data.length;
  return total;
}

async function readTarGz(bytes: Uint8Array, file: string) {
  const path = join(scratch, file);
  writeFileSync(path, bytes);
  return readLivedoor(path);
}

describe('tar fuzz', () => {
  it('the seeds are valid corpora', async () => {
    for (const [i, seed] of SEEDS.entries()) expect((await readTarGz(gzip(seed), `seed-${i}.tar.gz`)).examples.length).toBe(3);
  });

  it('each mutated tar is read or refused naming the archive, in bounded time and memory', async () => {
    const report = await runFuzz({
      reader: 'tar',
      file: 'ldcc-20140209.tar',
      seeds: SEEDS,
      cases: 2000,
      mutators: BINARY_MUTATORS,
      extraCases: HOSTILE,
      read: readWholeTar,
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });

  it('each mutated tar.gz is read by readLivedoor or refused naming the archive, in bounded time and memory', async () => {
    const report = await runFuzz({
      reader: 'tar.gz',
      file: 'ldcc-20140209.tar.gz',
      seeds: SEEDS.map((s) => gzip(s)),
      cases: 300,
      mutators: [...BINARY_MUTATORS, ...INSIDE_GZIP, ...INSIDE_GZIP],
      extraCases: HOSTILE.map((c) => ({ name: c.name, bytes: gzip(c.bytes) })),
      read: readTarGz,
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });

  it('a gzip bomb (512 MiB LICENSE.txt in 0.5 MB) is streamed past within 10 s and well under 1 GB', async () => {
    // gzip members may be concatenated: the header, 8 members of 64 MiB of zeros, then an article.
    const zeros = gzip(new Uint8Array(64 * 2 ** 20), 9);
    const header = withSize(writeTar([{ path: 'text/smax/LICENSE.txt', data: '' }]).subarray(0, 512), 512 * 2 ** 20);
    const bomb = new Uint8Array(Buffer.concat([gzip(header), ...Array(8).fill(zeros), gzip(writeTar([article('smax', 1)]))]));
    const report = await runFuzz({
      reader: 'tar.gz bomb',
      file: 'ldcc-20140209.tar.gz',
      seeds: [bomb],
      cases: 0,
      extraCases: [{ name: '512 MiB LICENSE.txt', bytes: bomb }],
      timeLimitMs: 10_000,
      memoryLimitBytes: 2 ** 30,
      read: readTarGz,
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.accepted).toBe(1);
  }, 60_000);
});
