#!/usr/bin/env node
// Runs every reader's fuzz suite (files named *.fuzz.test.ts; they also run with the unit tests)
// and prints one table: cases per reader and their outcomes. Reports land in .tmp/fuzz/.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.tmp', 'fuzz');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const r = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '.fuzz.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, PEFT_FUZZ_REPORT: dir },
});
if (r.error) {
  console.error(`could not run vitest: ${r.error.message}`);
  process.exit(1);
}
const rows = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
  .sort((a, b) => a.reader.localeCompare(b.reader));
console.log('\n| reader | cases | accepted | rejected | errors | slowest ms | memory MiB | failures |');
console.log('|---|--:|--:|--:|---|--:|--:|--:|');
for (const x of rows) {
  const errors = Object.entries(x.errors)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `| ${x.reader} | ${x.cases} | ${x.accepted} | ${x.rejected} | ${errors} | ${x.slowestMs.toFixed(0)} | ${(x.largestMemoryBytes / 2 ** 20).toFixed(1)} | ${x.failures.length} |`,
  );
}
process.exit(r.status ?? 1);
