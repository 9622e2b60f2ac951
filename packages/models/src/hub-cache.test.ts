import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, removeScratch, scratchDir } from './fixture-folders.testkit.js';
import { loadModel, loadTokenizer } from './node/index.js';

const backend = createCpuBackend();
afterAll(() => {
  backend.destroy();
  removeScratch();
});

/**
 * A fixture folder laid out as the Hugging Face hub cache keeps a download:
 * models--org--name/blobs/<sha256> holds the bytes, snapshots/<revision>/<file> is a relative
 * symbolic link to its blob, refs/main names the revision.
 */
function hubCacheOf(name: string): string {
  const root = scratchDir('peft-hub-');
  const repo = join(root, `models--peft-test--${name}`);
  const revision = 'a'.repeat(40);
  const snapshot = join(repo, 'snapshots', revision);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  mkdirSync(join(repo, 'refs'));
  writeFileSync(join(repo, 'refs', 'main'), revision);
  for (const file of readdirSync(join(FIXTURES, name))) {
    const from = join(FIXTURES, name, file);
    if (!statSync(from).isFile()) continue;
    const bytes = readFileSync(from);
    const blob = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(repo, 'blobs', blob), bytes);
    symlinkSync(join('..', '..', 'blobs', blob), join(snapshot, file));
  }
  return snapshot;
}

describe('a hub-cache snapshot folder (every file a symbolic link into blobs/)', () => {
  for (const name of ['tiny-gpt-neox', 'tiny-llama']) {
    it(`${name}: loads the model and tokenizer, with the same logits as the plain folder`, async () => {
      const snapshot = hubCacheOf(name);
      const cached = await loadModel(snapshot, { backend, dtype: 'float32' });
      const plain = await loadModel(join(FIXTURES, name), { backend, dtype: 'float32' });
      const ids = (await loadTokenizer(snapshot)).encode('hello world, 日本語');
      expect(ids.length).toBeGreaterThan(2);
      expect(ids).toEqual((await loadTokenizer(join(FIXTURES, name))).encode('hello world, 日本語'));
      const inputIds = [[1, 5, 9, 2, 7]];
      const a = cached.forward({ inputIds }).logits;
      const b = plain.forward({ inputIds }).logits;
      expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
      a.dispose();
      b.dispose();
      cached.dispose();
      plain.dispose();
    });
  }
});
