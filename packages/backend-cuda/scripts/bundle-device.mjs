#!/usr/bin/env node
// Packs everything `bash scripts/gpu-window.sh OUT SECONDS` needs on a GPU machine that has no
// Node and no package registry into .device/ at the repository root (see GPU.md):
//
//   .device/node-<version>-linux-x64.xz   this machine's node binary, stripped (strip -o), xz -9e;
//                                         kept between packings of the same Node version (~80 s)
//   .device/runtime-<versions>.tar.xz     node_modules/: koffi with its linux-x64 native package,
//                                         the webgpu package's index.js with dist/linux-x64/dawn.node;
//                                         lib/libvulkan.so.1 (this machine's Vulkan loader, if any);
//                                         kept between packings of the same versions
//   .device/peft.tar.xz                   peft/dist/*.mjs: the stages' programs bundled with
//                                         @peft/* from source (device-check, bench-cuda,
//                                         window-smoke, window-webgpu); peft/fatbin/: the kernels
//                                         (built first if stale), where the bundles look (../fatbin)
//
//   .device/manifest.json                 the commit packed, and the tracked files that differed from it
//
// Then prints the transfer size (git-tracked files + .device/) and exits 1 at or above 50 MiB.
//
//   node packages/backend-cuda/scripts/bundle-device.mjs [--bundles-only DIR]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeTransfer, transferSize } from './transfer-size.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(pkg, '..', '..');
const dest = join(root, '.device');
const stage = join(dest, '.stage');

/** The bundles: name → entry (relative to the repository root). */
const ENTRIES = {
  'device-check': 'packages/backend-cuda/scripts/device-check.ts',
  'bench-cuda': 'benchmarks/bench-cuda.ts',
  'window-smoke': 'packages/backend-cuda/scripts/window/smoke.ts',
  'window-webgpu': 'benchmarks/src/cuda-suite-webgpu.ts',
};

/** `tar -c` of `what` (relative to `from`) into `out`, xz-compressed at `level`; written beside and renamed into place. */
function tarXz(from, what, out, level) {
  execFileSync(
    'bash',
    [
      '-c',
      `set -o pipefail; tar -C "$1" -cf - ${what.map((_, i) => `"$${i + 3}"`).join(' ')} | xz -T0 ${level} > "$2.tmp"`,
      'tar',
      from,
      out,
      ...what,
    ],
    {
      stdio: 'inherit',
    },
  );
  renameSync(`${out}.tmp`, out);
}

/** The folder of an installed package, found from `from` (links followed). */
function packageDir(name, from) {
  const require = createRequire(join(from, 'package.json'));
  let dir = dirname(require.resolve(name));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** The stages' programs, bundled into `outDir`. */
async function bundle(outDir) {
  const { build } = await import('tsup');
  await build({
    entry: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, join(root, v)])),
    outDir,
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    bundle: true,
    noExternal: [/^@peft\//],
    // Loaded at run time from node_modules beside the unpacked peft/ (koffi, webgpu) or absent there (the JavaScript peers of `pnpm bench`).
    external: ['koffi', 'webgpu', /^@tensorflow\//, 'gpu.js'],
    splitting: false,
    outExtension: () => ({ js: '.mjs' }),
    clean: true,
    silent: true,
    esbuildOptions(options) {
      options.conditions = ['@peft/source'];
    },
  });
}

/** peft.tar.xz: the bundles and the fatbins. */
async function bundles() {
  await bundle(join(stage, 'peft', 'dist'));
  cpSync(join(pkg, 'fatbin'), join(stage, 'peft', 'fatbin'), { recursive: true });
  tarXz(stage, ['peft'], join(dest, 'peft.tar.xz'), '-9');
}

/** Where this machine's Vulkan loader may be (Debian/Ubuntu, Fedora). */
const VULKAN_LOADERS = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1', '/usr/lib/libvulkan.so.1'];

/** koffi + @koromix/koffi-linux-x64 + webgpu (index.js, package.json, linux-x64 dawn.node), cached by their versions. */
function runtime() {
  const koffi = packageDir('koffi', pkg);
  const native = packageDir('@koromix/koffi-linux-x64', koffi);
  const webgpu = packageDir('webgpu', join(root, 'benchmarks'));
  const version = (d) => JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).version;
  // The Vulkan loader Dawn opens, for a GPU machine whose image has the NVIDIA ICD but not the loader.
  const loader = VULKAN_LOADERS.find((p) => existsSync(p));
  const name = `runtime-koffi${version(koffi)}-webgpu${version(webgpu)}${loader ? '-vulkan' : ''}.tar.xz`;
  if (existsSync(join(dest, name))) {
    console.log(`bundle-device: ${name} is packed already`);
    return name;
  }
  const nm = join(stage, 'node_modules');
  rmSync(nm, { recursive: true, force: true });
  cpSync(koffi, join(nm, 'koffi'), { recursive: true, dereference: true, filter: (src) => !/\/koffi\/(doc|vendor)(\/|$)/.test(src) });
  // koffi finds its native addon in the sibling package @koromix/koffi-<platform>-<arch> (glibc build only).
  cpSync(native, join(nm, '@koromix', 'koffi-linux-x64'), { recursive: true, dereference: true, filter: (src) => !/musl_x64/.test(src) });
  for (const f of ['package.json', 'index.js', join('dist', 'linux-x64', 'dawn.node')]) {
    cpSync(join(webgpu, f), join(nm, 'webgpu', f), { dereference: true });
  }
  if (loader) cpSync(loader, join(stage, 'lib', 'libvulkan.so.1'), { dereference: true });
  console.log(`bundle-device: compressing koffi and dawn.node (${name}, ~30 s once per version)`);
  tarXz(stage, loader ? ['node_modules', 'lib'] : ['node_modules'], join(dest, name), '-9');
  return name;
}

/** This machine's node, stripped and xz -9e, cached by version. */
function node() {
  const name = `node-${process.version}-${process.platform}-${process.arch}.xz`;
  if (existsSync(join(dest, name))) {
    console.log(`bundle-device: ${name} is packed already`);
    return name;
  }
  const stripped = join(stage, 'node');
  console.log(`bundle-device: stripping and compressing ${process.execPath} (xz -9e, ~80 s once per Node version)`);
  execFileSync('strip', ['-o', stripped, process.execPath], { stdio: 'inherit' });
  execFileSync('bash', ['-c', 'xz -9e -T0 -c "$1" > "$2.tmp" && mv "$2.tmp" "$2"', 'xz', stripped, join(dest, name)], { stdio: 'inherit' });
  return name;
}

/**
 * .device/manifest.json: the commit the bundles were made from and the tracked files that differed
 * from it (bundles are made from the working tree), for OUT/window.json; warns when there are any.
 */
function writeManifest() {
  const git = (...a) => execFileSync('git', a, { cwd: root, encoding: 'utf8' });
  const dirty = git('status', '--porcelain', '--untracked-files=no')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3));
  if (dirty.length > 0)
    console.log(`bundle-device: warning: packing ${dirty.length} tracked files with uncommitted changes: ${dirty.join(', ')}`);
  const manifest = { commit: git('rev-parse', 'HEAD').trim(), uncommitted: dirty, node: process.version, packed: new Date().toISOString() };
  writeFileSync(join(dest, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

async function main() {
  // --bundles-only DIR: the bundles alone into DIR (no kernels, no archives): the test of the bundles.
  const only = process.argv.indexOf('--bundles-only');
  if (only > 0) {
    const dir = process.argv[only + 1];
    if (!dir) throw new Error('--bundles-only needs a folder');
    await bundle(dir);
    console.log(`bundle-device: ${Object.keys(ENTRIES).join(', ')} bundled into ${dir}`);
    return;
  }
  execFileSync(process.execPath, [join(pkg, 'scripts', 'build-kernels.mjs')], { stdio: 'inherit' });
  mkdirSync(dest, { recursive: true });
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const t0 = Date.now();
  await bundles();
  const keep = new Set(['peft.tar.xz', runtime(), node(), 'manifest.json']);
  writeManifest();
  // Everything else goes: older packings, an unpacked run/, the layout of earlier versions of this script.
  for (const f of readdirSync(dest)) if (!keep.has(f)) rmSync(join(dest, f), { recursive: true, force: true });
  const size = transferSize(root);
  console.log(`bundle-device: ${[...keep].join(', ')} in ${dest} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  console.log(describeTransfer(size));
  console.log('carry .device/, then on the GPU machine: bash scripts/gpu-window.sh OUT 660');
  if (!size.ok) process.exit(1);
}

main().catch((err) => {
  console.error(`bundle-device: ${err.stack ?? err}`);
  process.exit(1);
});
