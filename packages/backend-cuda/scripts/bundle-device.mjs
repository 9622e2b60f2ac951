#!/usr/bin/env node
// Bundles scripts/device-check.ts (with @peft/core, @peft/core/testing and @peft/backend-cpu, from
// source) into .device/peft/dist/device-check.mjs at the repository root, and the CUDA section of
// `pnpm bench` (benchmarks/bench-cuda.ts, with @peft/models, @peft/heads, @peft/trainer, from source)
// into .device/peft/dist/bench-cuda.mjs; copies the fatbins beside them (.device/peft/fatbin, where
// the bundles look for them), then packs this Node binary (xz-compressed, .device/node.xz) and koffi
// with its linux-x64 binary package (.device/node_modules). See GPU.md.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(pkg, '..', '..');
const dest = join(root, '.device');
const peft = join(dest, 'peft');

execFileSync('node', [join(pkg, 'scripts', 'build-kernels.mjs')], { stdio: 'inherit' });
rmSync(peft, { recursive: true, force: true });
await build({
  entry: {
    'device-check': join(pkg, 'scripts', 'device-check.ts'),
    'bench-cuda': join(root, 'benchmarks', 'bench-cuda.ts'),
  },
  outDir: join(peft, 'dist'),
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  bundle: true,
  noExternal: [/^@peft\//],
  external: ['koffi'],
  splitting: false,
  outExtension: () => ({ js: '.mjs' }),
  clean: true,
  silent: true,
  esbuildOptions(options) {
    options.conditions = ['@peft/source'];
  },
});
cpSync(join(pkg, 'fatbin'), join(peft, 'fatbin'), { recursive: true });

// This machine's node binary, compressed, and koffi (links followed): what a machine without Node needs.
mkdirSync(join(dest, 'node_modules'), { recursive: true });
execFileSync(
  'bash',
  [
    '-c',
    `xz -T0 -6 -c "${process.execPath}" > "${join(dest, 'node.xz.tmp')}" && mv "${join(dest, 'node.xz.tmp')}" "${join(dest, 'node.xz')}"`,
  ],
  {
    stdio: 'inherit',
  },
);
rmSync(join(dest, 'node_modules', 'koffi'), { recursive: true, force: true });
cpSync(join(pkg, 'node_modules', 'koffi'), join(dest, 'node_modules', 'koffi'), { recursive: true, dereference: true });
// koffi finds its native addon in the sibling package @koromix/koffi-<platform>-<arch>.
const pnpmDir = join(root, 'node_modules', '.pnpm');
const platformPkg = readdirSync(pnpmDir).find((d) => d.startsWith('@koromix+koffi-linux-x64@'));
if (!platformPkg) throw new Error('@koromix/koffi-linux-x64 is not installed (pnpm install)');
mkdirSync(join(dest, 'node_modules', '@koromix'), { recursive: true });
cpSync(
  join(pnpmDir, platformPkg, 'node_modules', '@koromix', 'koffi-linux-x64'),
  join(dest, 'node_modules', '@koromix', 'koffi-linux-x64'),
  {
    recursive: true,
    dereference: true,
  },
);
console.log(
  `bundle-device: ${join(peft, 'dist', 'device-check.mjs')}, ${join(peft, 'dist', 'bench-cuda.mjs')} + fatbins + node + koffi in ${dest}`,
);
