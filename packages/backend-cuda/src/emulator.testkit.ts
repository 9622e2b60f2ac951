// Builds the host emulation of the CUDA kernels for the tests (src/emulated*.test.ts): the
// driver stand-in test/emu/libcuda-emu.cc and kernels/*.cu compiled for the CPU with
// test/emu/cuda_emu.h, one library per kernel family, plus fatbin stand-ins that point
// cuModuleLoadData at them. Not part of the package's build.
//
// Builds are kept in $XDG_CACHE_HOME/peft/cuda-emu (else ~/.cache/peft/cuda-emu; PEFT_CUDA_EMU_DIR
// moves it), one folder per hash of every input and of the compiler's --version, so a fresh clone
// reuses a build of the same sources by the same compiler; the test files that start together
// wait for one build instead of each compiling the same libraries.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KERNELS } from './kernels.js';

const run = promisify(execFile);
const pkg = fileURLToPath(new URL('..', import.meta.url));
export const emuDir = join(pkg, 'test', 'emu');
const kernelDir = join(pkg, 'kernels');

export async function findCxx(): Promise<string | null> {
  return (await findCompiler())?.cxx ?? null;
}

/** The first C++ compiler that runs, with its --version output (part of the build's hash). */
async function findCompiler(): Promise<{ cxx: string; version: string } | null> {
  for (const cxx of [process.env.CXX, 'c++', 'g++', 'clang++']) {
    if (!cxx) continue;
    try {
      const { stdout } = await run(cxx, ['--version']);
      return { cxx, version: stdout };
    } catch {
      // next compiler
    }
  }
  return null;
}

const FLAGS = [
  '-std=c++17',
  '-O1',
  '-fPIC',
  '-shared',
  '-U_FORTIFY_SOURCE',
  '-Wall',
  '-Wno-unused-function',
  '-Wno-unused-variable',
  '-Wno-unknown-pragmas',
  // fmaf() (the kernels' and the emulated mma's) as one instruction instead of a libm call where
  // the CPU has FMA: the same correctly rounded result. -ffp-contract=off keeps the compiler from
  // fusing a·b + c into an FMA on its own, so nothing else rounds differently.
  ...(cpuHasFma() ? ['-mfma', '-ffp-contract=off'] : []),
];

function cpuHasFma(): boolean {
  try {
    return process.arch === 'x64' && /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function cacheRoot(): string {
  return process.env.PEFT_CUDA_EMU_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'peft', 'cuda-emu');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `build` unless `done()` already holds, with `lock` (a folder) held so that one process
 * builds while the others wait for it. A lock older than `staleMs` is taken as left behind by a
 * process that died.
 */
async function buildOnce(lock: string, done: () => boolean, build: () => Promise<void>, staleMs = 10 * 60_000): Promise<void> {
  for (;;) {
    if (done()) return;
    try {
      mkdirSync(lock);
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > staleMs) rmSync(lock, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      await sleep(200);
      continue;
    }
    try {
      if (!done()) await build();
      return;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/**
 * Builds the driver stand-in and one host library per kernel family into a folder named by the
 * hash of every input (rebuilt only when a kernel or the emulator changes), with fatbin stand-ins
 * that point cuModuleLoadData at those libraries. Returns the driver path and the fatbin folder.
 */
export async function buildEmulator(cxx: string, cxxVersion = ''): Promise<{ driver: string; fatbins: string; cublasDir: string }> {
  const families = [...new Set(Object.values(KERNELS).map((k) => k.family))].sort();
  const inputs = [
    ...readdirSync(emuDir).map((f) => join(emuDir, f)),
    ...readdirSync(kernelDir)
      .filter((f) => /\.cuh?$/.test(f))
      .map((f) => join(kernelDir, f)),
  ].sort();
  const hash = createHash('sha256');
  hash.update(cxx).update(cxxVersion).update(JSON.stringify(FLAGS));
  hash.update(JSON.stringify(KERNELS));
  for (const f of inputs) hash.update(f).update(readFileSync(f));
  const root = cacheRoot();
  const dir = join(root, hash.digest('hex').slice(0, 16));
  const driver = join(dir, 'libcuda-emu.so');
  const fatbins = join(dir, 'fatbin');
  const cublasDir = join(dir, 'cublas');
  const built = () => existsSync(join(fatbins, 'manifest.json'));
  if (!built()) {
    mkdirSync(root, { recursive: true });
    await buildOnce(`${dir}.lock`, built, () => compileEmulator(cxx, dir, families));
  }
  const now = new Date();
  utimesSync(dir, now, now);
  pruneBuilds(root, dir);
  return { driver, fatbins, cublasDir };
}

/** Keeps the 8 most recently used emulator builds in the cache (each under 1 MiB, but one per change of the kernels). */
function pruneBuilds(root: string, keep: string): void {
  try {
    const dirs = readdirSync(root)
      .filter((f) => /^[0-9a-f]{16}$/.test(f))
      .map((f) => ({ path: join(root, f), at: statSync(join(root, f)).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    for (const d of dirs.slice(8)) if (d.path !== keep) rmSync(d.path, { recursive: true, force: true });
  } catch {
    // pruning is best effort
  }
}

async function compileEmulator(cxx: string, dir: string, families: string[]): Promise<void> {
  const work = `${dir}.tmp-${process.pid}`;
  mkdirSync(join(work, 'fatbin'), { recursive: true });
  const flags = FLAGS;
  mkdirSync(join(work, 'cublas'));
  const jobs: Promise<unknown>[] = [
    run(cxx, [...flags, '-o', join(work, 'libcuda-emu.so'), join(emuDir, 'libcuda-emu.cc')]),
    run(cxx, [...flags, '-o', join(work, 'cublas', 'libcublasLt.so.13'), join(emuDir, 'libcublaslt-emu.cc')]),
  ];
  const manifest: Record<string, { hash: string; kernels: Record<string, string[]>; bytes: number }> = {};
  for (const family of families) {
    const names = Object.entries(KERNELS)
      .filter(([, k]) => k.family === family)
      .map(([name]) => name);
    // `extern __shared__ T name[];` (dynamic shared memory) becomes a pointer to the launch's buffer.
    const source = readFileSync(join(kernelDir, `${family}.cu`), 'utf8').replace(
      /extern __shared__ (\w+) (\w+)\[\];/g,
      '$1* $2 = ($1*)emu::dynamic_smem();',
    );
    const exports = names.map(
      (n) =>
        `extern "C" __attribute__((visibility("default"))) int emu_launch_${n}(const unsigned* d, unsigned smem, const void* a, size_t n, char* e, size_t el) { return emu::launch(${n}, "${n}", d, smem, a, n, e, el); }`,
    );
    const file = join(work, `${family}.cc`);
    writeFileSync(file, `#line 1 "${join(kernelDir, `${family}.cu`)}"\n${source}\n#line 1 "emulator exports"\n${exports.join('\n')}\n`);
    const lib = join(dir, `${family}.so`);
    jobs.push(
      run(cxx, [
        ...flags,
        '-fvisibility=hidden',
        '-DPEFT_CUDA_EMULATION',
        `-I${emuDir}`,
        `-I${kernelDir}`,
        '-o',
        join(work, `${family}.so`),
        file,
      ]),
    );
    // The fatbin stand-in: the fatbin magic, then the library's path.
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0xba55ed50, 0);
    writeFileSync(join(work, 'fatbin', `${family}.fatbin`), Buffer.concat([header, Buffer.from(`${lib}\0`)]));
    manifest[family] = { hash: 'emulated', kernels: Object.fromEntries(names.map((n) => [n, []])), bytes: 0 };
  }
  try {
    await Promise.all(jobs);
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string };
    throw new Error(`building the kernel emulator failed: ${e.stderr || e.message}`);
  }
  writeFileSync(
    join(work, 'fatbin', 'manifest.json'),
    JSON.stringify({ nvcc: `host emulation (${cxx})`, archs: ['sm_90'], ptx: 'compute_90', totalBytes: 0, families: manifest }),
  );
  renameSync(work, dir);
}

/**
 * Builds the emulator (when a C++ compiler exists) and points the backend at it through
 * PEFT_CUDA_DRIVER_PATH and PEFT_CUDA_FATBIN_DIR, and at the cuBLASLt stand-in
 * (test/emu/libcublaslt-emu.cc) through LD_LIBRARY_PATH; call before the backend is first used.
 * Returns null, after printing why, when there is no compiler.
 */
export async function useEmulator(): Promise<{ driver: string; fatbins: string; cublasDir: string; cxx: string } | null> {
  const compiler = await findCompiler();
  if (!compiler) {
    console.warn('[backend-cuda] no C++ compiler (c++/g++/clang++): skipping the CUDA kernels on the host emulator');
    return null;
  }
  const { cxx } = compiler;
  const emu = await buildEmulator(cxx, compiler.version);
  process.env.PEFT_CUDA_DRIVER_PATH = emu.driver;
  process.env.PEFT_CUDA_FATBIN_DIR = emu.fatbins;
  process.env.LD_LIBRARY_PATH = [emu.cublasDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return { ...emu, cxx };
}

/**
 * Compiles test/emu/selftest.cc (checks of the emulator itself) into the emulator's build folder
 * `dir` (its hash covers selftest.cc and cuda_emu.h) unless it is there, runs it, and returns its
 * output and exit status.
 */
export async function runSelftest(cxx: string, dir: string): Promise<{ output: string; status: number }> {
  const exe = join(dir, 'selftest');
  await buildOnce(
    `${exe}.lock`,
    () => existsSync(exe),
    () => compileSelftest(cxx, exe),
  );
  try {
    const { stdout } = await run(exe);
    return { output: stdout, status: 0 };
  } catch (err) {
    const e = err as { stdout?: string; code?: number; message: string };
    return { output: e.stdout ?? e.message, status: e.code ?? 1 };
  }
}

async function compileSelftest(cxx: string, exe: string): Promise<void> {
  const tmp = `${exe}.tmp-${process.pid}`;
  await run(cxx, [
    '-std=c++17',
    '-O1',
    '-U_FORTIFY_SOURCE',
    '-Wall',
    '-Wno-unknown-pragmas',
    '-Wno-unused-function',
    `-I${emuDir}`,
    `-I${kernelDir}`,
    '-o',
    tmp,
    join(emuDir, 'selftest.cc'),
  ]);
  renameSync(tmp, exe);
}
