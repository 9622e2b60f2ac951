import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeRunStore } from './node/index.js';
import { memoryRunStore, type RunStore, subStore } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'peft-trainer-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const text = async (s: RunStore, p: string) => {
  const b = await s.readFile(p);
  return b && new TextDecoder().decode(b);
};

for (const [kind, make] of [
  ['memory', () => memoryRunStore()],
  ['node', () => nodeRunStore(join(root, String(Math.random())))],
] as const) {
  describe(`${kind} run store`, () => {
    it('writes, lists, renames folders and removes', async () => {
      const s = make();
      await s.writeFile('a/b/c.txt', 'hello');
      await s.writeFile('a/d.bin', new Uint8Array([1, 2, 3]));
      await s.writeFile('a/e.bin', async (sink) => {
        await sink.write(new Uint8Array([4]));
        await sink.write(new Uint8Array([5]));
      });
      expect(await text(s, 'a/b/c.txt')).toBe('hello');
      expect(Array.from((await s.readFile('a/e.bin'))!)).toEqual([4, 5]);
      expect(await s.readFile('missing')).toBeNull();
      expect(await s.list('a')).toEqual(['b', 'd.bin', 'e.bin']);
      expect(await s.list('nothing')).toEqual([]);
      await s.rename('a/b', 'x/y');
      expect(await text(s, 'x/y/c.txt')).toBe('hello');
      expect(await s.list('a')).toEqual(['d.bin', 'e.bin']);
      await s.remove('a');
      await s.remove('never-was');
      expect(await s.list('')).toEqual(['x']);
      const sub = subStore(s, 'x');
      await sub.writeFile('z.json', '{}');
      expect(await text(s, 'x/z.json')).toBe('{}');
      expect(await sub.list('')).toEqual(['y', 'z.json']);
      await expect(s.writeFile('../escape', 'no')).rejects.toThrow(/outside the run folder|leaves the run folder/);
    });
  });
}
