#!/usr/bin/env node
// Compiles kernels/*.cu with nvcc into one fatbin per op family (fatbin/<family>.fatbin): SASS for
// sm_80, sm_86, sm_89 and sm_90, plus compute_90 PTX that newer GPUs JIT-compile. Writes
// fatbin/manifest.json: nvcc version, flags, and per family the hash of its inputs, its kernel
// names (the `.entry` symbols of the PTX) and its size. A family whose hash matches the manifest
// and whose fatbin exists is not compiled again.
//
// Compiled families are also kept in a compile cache outside the package, as ccache does:
// <cache>/<key>.fatbin and <key>.json (its kernels, nvcc's warnings and the fatbin's SHA-256),
// where the key hashes the family's inputs (sources, headers, flags, targets) together with
// nvcc's full --version text, the host compiler nvcc preprocesses with and NVCC_* variables. A
// fresh clone (CI) then compiles only what no earlier build on this machine compiled with the
// same inputs and compilers; an entry whose fatbin does not match its recorded hash is compiled
// again. The cache is capped at 256 MiB (least recently used entries go first).
//
//   node scripts/build-kernels.mjs            build what is stale (in parallel, one nvcc per family)
//   node scripts/build-kernels.mjs --check    exit 1 if anything is stale or missing (no compiling)
//   node scripts/build-kernels.mjs --force    rebuild everything with nvcc (the cache is not read)
//   NVCC=/path/to/nvcc, PEFT_CUDA_JOBS=N      the compiler and the number of parallel jobs
//   PEFT_CUDA_CACHE_DIR=/path                 the compile cache (default $XDG_CACHE_HOME/peft/cuda-fatbin,
//                                             else ~/.cache/peft/cuda-fatbin); PEFT_CUDA_CACHE=0: none
//   PEFT_CUDA_SKIP_KERNELS=1                  do nothing (a build machine without nvcc that ships
//                                             no kernels: the backend then reports them missing)
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(pkg, 'kernels');
const outDir = join(pkg, 'fatbin');
const manifestPath = join(outDir, 'manifest.json');

export const ARCHS = ['80', '86', '89', '90'];
export const PTX_ARCH = '90';
const FLAGS = ['-O3', '-std=c++17', '-Xptxas=-warn-spills'];

function gencode() {
  const out = ARCHS.map((a) => `-gencode=arch=compute_${a},code=sm_${a}`);
  out.push(`-gencode=arch=compute_${PTX_ARCH},code=compute_${PTX_ARCH}`);
  return out;
}

function findNvcc() {
  const candidates = [
    process.env.NVCC,
    'nvcc',
    process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'),
    '/usr/local/cuda/bin/nvcc',
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      const v = execFileSync(c, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const release = v.match(/release ([\d.]+), V([\d.]+)/);
      return { path: c, version: release ? release[2] : v.trim().split('\n').pop(), versionText: v };
    } catch {
      // try the next one
    }
  }
  return null;
}

/** The op families: kernels/*.cu, with the hash of everything that goes into each. */
export function families(nvccVersion = 'any') {
  const headers = readdirSync(srcDir)
    .filter((f) => f.endsWith('.cuh'))
    .sort()
    .map((f) => readFileSync(join(srcDir, f), 'utf8'));
  return readdirSync(srcDir)
    .filter((f) => f.endsWith('.cu'))
    .sort()
    .map((file) => {
      const h = createHash('sha256');
      h.update(JSON.stringify({ nvccVersion, flags: FLAGS, gencode: gencode() }));
      for (const text of headers) h.update(text);
      h.update(readFileSync(join(srcDir, file), 'utf8'));
      return { name: file.slice(0, -3), file, hash: h.digest('hex').slice(0, 16) };
    });
}

function readManifest() {
  try {
    return JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    return null;
  }
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}\nexited with ${code}:\n${out}`))));
  });
}

// --- the compile cache ------------------------------------------------------------------------

const CACHE_LIMIT_BYTES = 256 * 1024 * 1024;

function cacheDir() {
  if (process.env.PEFT_CUDA_CACHE === '0') return null;
  if (process.env.PEFT_CUDA_CACHE_DIR) return process.env.PEFT_CUDA_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'peft', 'cuda-fatbin');
}

/** What else decides nvcc's output: its own build, the host compiler it runs, its environment. */
function compilerIdentity(nvcc) {
  const version = (cmd) => {
    try {
      return execFileSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return `${cmd}: none`;
    }
  };
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('NVCC_'))
    .sort(([a], [b]) => (a < b ? -1 : 1));
  const host = process.env.NVCC_CCBIN ? [process.env.NVCC_CCBIN] : ['gcc', 'g++'];
  return JSON.stringify({ nvcc: nvcc.path, nvccVersion: nvcc.versionText, host: host.map(version), env });
}

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/** The cached build of `fam` by this compiler, or null (none, unreadable, or its fatbin does not match). */
function fromCache(dir, key) {
  try {
    const entry = JSON.parse(readFileSync(join(dir, `${key}.json`), 'utf8'));
    const fatbin = readFileSync(join(dir, `${key}.fatbin`));
    if (sha256(fatbin) !== entry.sha256 || !entry.kernels || Object.keys(entry.kernels).length === 0) return null;
    const now = new Date();
    utimesSync(join(dir, `${key}.json`), now, now);
    return { ...entry, fatbin };
  } catch {
    return null;
  }
}

function toCache(dir, key, fatbinPath, r) {
  try {
    mkdirSync(dir, { recursive: true });
    const fatbin = readFileSync(fatbinPath);
    const tmp = `.tmp-${process.pid}-${key}`;
    writeFileSync(join(dir, `${tmp}.fatbin`), fatbin);
    renameSync(join(dir, `${tmp}.fatbin`), join(dir, `${key}.fatbin`));
    const entry = {
      kernels: r.kernels,
      warnings: r.warnings,
      seconds: r.seconds,
      sha256: sha256(fatbin),
      compiled: new Date().toISOString(),
    };
    writeFileSync(join(dir, `${tmp}.json`), `${JSON.stringify(entry)}\n`);
    renameSync(join(dir, `${tmp}.json`), join(dir, `${key}.json`));
  } catch (err) {
    console.warn(`build-kernels: could not write the compile cache ${dir}: ${err.message}`);
  }
}

/** Drops the least recently used entries while the cache holds more than CACHE_LIMIT_BYTES. */
function pruneCache(dir) {
  try {
    const entries = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => {
        const key = f.slice(0, -5);
        const size = (name) => (existsSync(join(dir, name)) ? statSync(join(dir, name)).size : 0);
        return { key, used: statSync(join(dir, f)).mtimeMs, bytes: size(f) + size(`${key}.fatbin`) };
      })
      .sort((a, b) => a.used - b.used);
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    for (const e of entries) {
      if (total <= CACHE_LIMIT_BYTES) break;
      rmSync(join(dir, `${e.key}.json`), { force: true });
      rmSync(join(dir, `${e.key}.fatbin`), { force: true });
      total -= e.bytes;
    }
  } catch {
    // a cache that cannot be listed is only not pruned
  }
}

async function compile(nvcc, fam) {
  const keep = mkdtempSync(join(tmpdir(), `peft-cuda-${fam.name}-`));
  const tmpOut = join(outDir, `${fam.name}.fatbin.tmp`);
  const started = Date.now();
  try {
    const log = await run(nvcc.path, [
      '-fatbin',
      ...FLAGS,
      ...gencode(),
      '--keep',
      `--keep-dir=${keep}`,
      '-o',
      tmpOut,
      join(srcDir, fam.file),
    ]);
    // Kernel names: the .entry symbols of the PTX nvcc kept.
    const ptx = readdirSync(keep).find((f) => f.endsWith(`compute_${PTX_ARCH}.ptx`) || f.endsWith('.ptx'));
    const text = ptx ? readFileSync(join(keep, ptx), 'utf8') : '';
    const kernels = parseEntries(text);
    if (Object.keys(kernels).length === 0) throw new Error(`${fam.file}: no kernels found in the PTX nvcc kept in ${keep}`);
    renameSync(tmpOut, join(outDir, `${fam.name}.fatbin`));
    const warnings = log
      .split('\n')
      .filter((l) => /warning|spill/i.test(l) && !/0 bytes spill/.test(l))
      .join('\n');
    return { kernels, seconds: (Date.now() - started) / 1000, warnings };
  } finally {
    rmSync(keep, { recursive: true, force: true });
    rmSync(tmpOut, { force: true });
  }
}

/**
 * The kernels of a PTX file and their parameters as PTX types: `u64` (pointers, 64-bit ints),
 * `u32` (32-bit ints), `f32`, and `b8[N]@A` for a struct of N bytes aligned to A. src/kernels.ts
 * declares the same signatures; a test compares the two, so the packed launch arguments match.
 */
export function parseEntries(ptx) {
  const kernels = {};
  for (const m of ptx.matchAll(/\.entry\s+(\w+)\s*\(([^)]*)\)/g)) {
    kernels[m[1]] = m[2]
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => {
        const arr = p.match(/\.align (\d+) \.b8 \w+\[(\d+)\]/);
        if (arr) return `b8[${arr[2]}]@${arr[1]}`;
        const t = p.match(/^\.param \.(\w+)/);
        return t ? t[1] : p;
      });
  }
  return Object.fromEntries(Object.entries(kernels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function pool(items, jobs, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return results;
}

/** Which families are stale against the manifest (missing fatbin, other hash, other nvcc). */
export function staleFamilies(nvccVersion) {
  const manifest = readManifest();
  const version = nvccVersion ?? manifest?.nvcc ?? 'any';
  return families(version).filter((f) => {
    const entry = manifest?.families?.[f.name];
    return !entry || entry.hash !== f.hash || !existsSync(join(outDir, `${f.name}.fatbin`));
  });
}

async function main() {
  const args = new Set(process.argv.slice(2));
  if (process.env.PEFT_CUDA_SKIP_KERNELS === '1') {
    console.log('build-kernels: PEFT_CUDA_SKIP_KERNELS=1: not compiling');
    return;
  }
  const nvcc = findNvcc();
  if (args.has('--check')) {
    const stale = staleFamilies(nvcc?.version);
    if (stale.length > 0) {
      console.error(`build-kernels --check: stale or missing: ${stale.map((f) => f.file).join(', ')}: run node scripts/build-kernels.mjs`);
      process.exit(1);
    }
    console.log('build-kernels --check: every fatbin is up to date with kernels/*.cu');
    return;
  }
  if (!nvcc) {
    const manifest = readManifest();
    if (manifest && staleFamilies(manifest.nvcc).length === 0) {
      console.log('build-kernels: nvcc not found, but the fatbins in fatbin/ are up to date: nothing to do');
      return;
    }
    console.error(
      'build-kernels: nvcc not found (PATH, NVCC, CUDA_HOME/bin, /usr/local/cuda/bin): install the CUDA toolkit (12.8+ or 13) or set NVCC',
    );
    process.exit(1);
  }
  mkdirSync(outDir, { recursive: true });
  const all = families(nvcc.version);
  const stale = args.has('--force') ? all : staleFamilies(nvcc.version);
  const manifest = readManifest();
  const entries = manifest?.nvcc === nvcc.version ? { ...manifest.families } : {};
  const started = Date.now();
  const jobs = Number(process.env.PEFT_CUDA_JOBS) || Math.max(1, availableParallelism());
  if (stale.length > 0) {
    console.log(
      `build-kernels: nvcc ${nvcc.version}: building ${stale.length} of ${all.length} families for sm_${ARCHS.join(', sm_')} + compute_${PTX_ARCH} PTX, ${jobs} at a time`,
    );
  }
  const cache = cacheDir();
  const identity = cache ? compilerIdentity(nvcc) : '';
  let cached = 0;
  const results = await pool(stale, jobs, async (fam) => {
    const key = cache ? sha256(`${fam.hash}\n${identity}`).slice(0, 32) : '';
    const hit = cache && !args.has('--force') ? fromCache(cache, key) : null;
    if (hit) {
      const tmpOut = join(outDir, `${fam.name}.fatbin.tmp`);
      writeFileSync(tmpOut, hit.fatbin);
      renameSync(tmpOut, join(outDir, `${fam.name}.fatbin`));
      cached++;
      console.log(
        `  ${fam.file}: ${Object.keys(hit.kernels).length} kernels from the compile cache (compiled ${hit.compiled} in ${hit.seconds.toFixed(1)} s)${hit.warnings ? `\n${hit.warnings}` : ''}`,
      );
      return [fam, hit];
    }
    const r = await compile(nvcc, fam);
    console.log(
      `  ${fam.file}: ${Object.keys(r.kernels).length} kernels in ${r.seconds.toFixed(1)} s${r.warnings ? `\n${r.warnings}` : ''}`,
    );
    if (cache) toCache(cache, key, join(outDir, `${fam.name}.fatbin`), r);
    return [fam, r];
  });
  if (cache && stale.length > cached) pruneCache(cache);
  for (const [fam, r] of results) {
    entries[fam.name] = { hash: fam.hash, kernels: r.kernels, bytes: statSync(join(outDir, `${fam.name}.fatbin`)).size };
  }
  const keep = {};
  for (const f of all) keep[f.name] = entries[f.name];
  const totalBytes = Object.values(keep).reduce((s, e) => s + e.bytes, 0);
  // Written whole and renamed into place: a reader (a test in another process) never sees half of it.
  writeFileSync(
    `${manifestPath}.tmp`,
    `${JSON.stringify({ nvcc: nvcc.version, archs: ARCHS.map((a) => `sm_${a}`), ptx: `compute_${PTX_ARCH}`, flags: FLAGS, totalBytes, families: keep }, null, 2)}\n`,
  );
  renameSync(`${manifestPath}.tmp`, manifestPath);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `build-kernels: ${stale.length === 0 ? 'up to date' : `compiled ${stale.length - cached} families${cached ? `, took ${cached} from the compile cache ${cache},` : ''} in ${seconds} s`}; ${all.length} fatbins, ${(totalBytes / 1024).toFixed(0)} KiB in fatbin/`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    console.error(`build-kernels: ${err.message}`);
    process.exit(1);
  });
}
