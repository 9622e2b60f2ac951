#!/usr/bin/env node
// The whole test command: type check, lint, unit tests, build, packed-install checks and a
// short benchmark run. Prints one closing line "tests: N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const report = join(root, '.tmp', 'vitest.json');
mkdirSync(dirname(report), { recursive: true });

const steps = [
  ['type check', 'pnpm', ['run', 'typecheck']],
  ['lint and format', 'pnpm', ['run', 'lint']],
  ['unit tests', 'pnpm', ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]],
  ['build packages', 'pnpm', ['run', 'build']],
  ['packed packages install and run alone', 'pnpm', ['run', 'test:pack']],
  ['benchmarks (short)', 'pnpm', ['run', 'bench', '--short']],
];

let failedStep = null;
for (const [name, cmd, args] of steps) {
  const started = Date.now();
  console.log(`\n=== ${name}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  console.log(
    `=== ${name}: ${r.status === 0 ? 'ok' : `FAILED (exit ${r.status ?? r.signal})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  if (r.status !== 0) {
    failedStep = name;
    break;
  }
}

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests;
  failed = json.numFailedTests;
  skipped = json.numPendingTests + json.numTodoTests;
} catch {
  // vitest did not run or wrote no report
}
if (failedStep) {
  console.log(`\nstep failed: ${failedStep}`);
  failed = Math.max(failed, 1);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failedStep ? 1 : 0);
