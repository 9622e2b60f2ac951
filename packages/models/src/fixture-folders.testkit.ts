// Shared by the model-loading tests: the fixture model folders, scratch copies of them that a test
// may damage, and config.json edits. Every scratch folder is removed by `removeScratch()`.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** fixtures/models at the repository root. */
export const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');

const scratch: string[] = [];

/** A new empty folder under the system's temporary folder, removed by `removeScratch()`. */
export function scratchDir(prefix = 'peft-models-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

/** A copy of the fixture model folder `name` that a test may damage. */
export function copyOf(name: string): string {
  const dir = scratchDir();
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** Rewrites `dir/config.json` after `edit` changed its parsed object. */
export function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(file, 'utf8'));
  edit(c);
  writeFileSync(file, JSON.stringify(c));
}

/** Removes every folder `scratchDir` and `copyOf` made (call it in `afterAll`). */
export function removeScratch(): void {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
}
