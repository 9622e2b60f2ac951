#!/usr/bin/env node
// Packs every package under packages/ with pnpm, installs each tarball into an empty project with
// plain npm (with the tarballs of the @peft packages it depends on, nothing else from the
// workspace) and runs the first ```js snippet of the package's README there. A snippet may also
// use the @peft packages listed as devDependencies (the backend a user would pick).
// Then the repository README's quick start (its first ```js snippet) runs the same way, in a
// project with the @peft packages it imports and the bundled tiny model at the path it names.
// Arguments pick packages by name (and `quickstart` the quick start); none runs everything.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'peft-pack-'));
const only = process.argv.slice(2);

const packages = readdirSync(join(root, 'packages'))
  .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
  .map((d) => {
    const dir = join(root, 'packages', d);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    return { dir, pkg };
  })
  .filter(({ pkg }) => !pkg.private);
const checked = packages.filter(({ pkg }) => only.length === 0 || only.includes(pkg.name));
const quickstart = only.length === 0 || only.includes('quickstart');

// Pack what the checks install: the checked packages and their @peft dependencies (all of them
// for the quick start, which may import any).
const needed = new Set(checked.flatMap(({ pkg }) => [pkg.name, ...peftDeps(pkg.name)]));
const tarballs = new Map();
for (const { dir, pkg } of packages) {
  if (!quickstart && !needed.has(pkg.name)) continue;
  const out = execFileSync('pnpm', ['pack', '--pack-destination', work], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
  tarballs.set(pkg.name, out.startsWith('/') ? out : join(work, out));
}

/**
 * The @peft packages installed with `name`: its dependencies (recursively) and, for the README
 * snippet only, the @peft packages it lists as devDependencies (a backend the user picks).
 */
function peftDeps(name, seen = new Set(), top = true) {
  const entry = packages.find((p) => p.pkg.name === name);
  const direct = { ...(entry?.pkg.dependencies ?? {}), ...(top ? (entry?.pkg.devDependencies ?? {}) : {}) };
  for (const dep of Object.keys(direct)) {
    if (dep.startsWith('@peft/') && !seen.has(dep)) {
      seen.add(dep);
      peftDeps(dep, seen, false);
    }
  }
  return seen;
}

let failures = 0;
for (const { dir, pkg } of checked) {
  const project = mkdtempSync(join(work, 'project-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pack-check', private: true, type: 'module' }));
  const deps = [pkg.name, ...peftDeps(pkg.name)];
  const missing = deps.filter((d) => !tarballs.has(d));
  if (missing.length > 0) throw new Error(`${pkg.name}: no tarball for ${missing.join(', ')}`);
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  const snippet = readme.match(/```js\n([\s\S]*?)```/)?.[1];
  try {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...deps.map((d) => tarballs.get(d))], {
      cwd: project,
      stdio: 'inherit',
    });
    if (!snippet) throw new Error(`${pkg.name}: README.md has no \`\`\`js snippet to run`);
    writeFileSync(join(project, 'snippet.mjs'), snippet);
    const out = execFileSync('node', ['snippet.mjs'], { cwd: project, encoding: 'utf8' });
    for (const bin of Object.keys(pkg.bin ?? {})) {
      const help = execFileSync(join(project, 'node_modules', '.bin', bin), ['--help'], { cwd: project, encoding: 'utf8' });
      console.log(`ok   ${pkg.name}: \`${bin} --help\` runs from the installed package (${help.split('\n').length} lines)`);
    }
    console.log(
      `ok   ${pkg.name}: installed alone with ${deps.length - 1} @peft dependencies; README snippet printed:\n${out.trimEnd().replace(/^/gm, '       ')}`,
    );
  } catch (error) {
    failures++;
    console.error(`FAIL ${pkg.name}: ${error.message}`);
  }
}
if (quickstart) {
  const project = mkdtempSync(join(work, 'quickstart-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'quickstart-check', private: true, type: 'module' }));
  try {
    const snippet = readFileSync(join(root, 'README.md'), 'utf8').match(/```js\n([\s\S]*?)```/)?.[1];
    if (!snippet) throw new Error('README.md has no ```js quick start to run');
    const imported = [...new Set([...snippet.matchAll(/from '(@peft\/[a-z-]+)(?:\/[a-z]+)?'/g)].map((m) => m[1]))];
    const deps = new Set(imported);
    for (const name of imported) peftDeps(name, deps, false);
    const missing = [...deps].filter((d) => !tarballs.has(d));
    if (missing.length > 0) throw new Error(`quick start: no tarball for ${missing.join(', ')}`);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...[...deps].map((d) => tarballs.get(d))], {
      cwd: project,
      stdio: 'inherit',
    });
    for (const model of [...snippet.matchAll(/'(fixtures\/models\/[a-z0-9-]+)'/g)].map((m) => m[1])) {
      mkdirSync(join(project, model, '..'), { recursive: true });
      cpSync(join(root, model), join(project, model), { recursive: true });
    }
    writeFileSync(join(project, 'quickstart.mjs'), snippet);
    const lines = snippet.split('\n').filter((l) => l.trim() !== '').length;
    if (lines > 15) throw new Error(`the quick start has ${lines} lines of code, more than 15`);
    const out = execFileSync('node', ['quickstart.mjs'], { cwd: project, encoding: 'utf8' });
    if (!existsSync(join(project, 'out', 'classifier', 'adapter_config.json')))
      throw new Error('the quick start saved no adapter in out/classifier');
    console.log(
      `ok   README quick start (${lines} lines): installed ${[...deps].join(', ')} alone; it printed:\n${out.trimEnd().replace(/^/gm, '       ')}`,
    );
  } catch (error) {
    failures++;
    console.error(`FAIL README quick start: ${error.message}`);
  }
}
rmSync(work, { recursive: true, force: true });
if (failures > 0) process.exit(1);
