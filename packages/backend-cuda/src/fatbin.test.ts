// CI-runnable without a GPU: the kernels compile with nvcc for every target architecture, the
// fatbins are up to date with kernels/*.cu, and every kernel the TypeScript side launches exists
// with the parameter layout it packs. Skips visibly where nvcc is absent and no fatbin was built.
// build-kernels takes a family from its compile cache (see scripts/build-kernels.mjs) only when
// the same sources, flags, nvcc build and host compiler compiled it before on this machine; the
// checks below read whatever it wrote.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fatbinEntries } from './fatbin.js';
import { KERNELS, PTX_TYPE } from './kernels.js';
import { FATBIN_DIR, readManifest } from './runtime.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const script = join(pkg, 'scripts', 'build-kernels.mjs');

function nvccVersion(): string | null {
  try {
    return (
      execFileSync(process.env.NVCC ?? 'nvcc', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim()
        .split('\n')
        .pop() ?? null
    );
  } catch {
    return null;
  }
}

const nvcc = nvccVersion();
if (!nvcc) console.warn('[backend-cuda] nvcc not found: skipping the kernel compilation test (set NVCC or put the CUDA toolkit on PATH)');

describe.skipIf(!nvcc)(`kernels compile with nvcc (${nvcc ?? 'absent'})`, () => {
  it('build-kernels compiles every stale family (or takes it from its compile cache) and then reports everything up to date', {
    timeout: 900_000,
  }, () => {
    const started = Date.now();
    const log = execFileSync('node', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    console.log(`${log.trim()}\n(build-kernels took ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    execFileSync('node', [script, '--check'], { encoding: 'utf8' });
  });
});

const manifest = readManifest();
if (!manifest && !nvcc) console.warn('[backend-cuda] no fatbin/manifest.json and no nvcc: skipping the fatbin checks');

describe.skipIf(!manifest && !nvcc)('the shipped fatbins', () => {
  it('hold SASS for sm_80, sm_86, sm_89, sm_90 and compute_90 PTX, per op family', () => {
    const m = readManifest();
    expect(m).not.toBeNull();
    for (const family of Object.keys(m!.families)) {
      const entries = fatbinEntries(readFileSync(`${FATBIN_DIR}${family}.fatbin`));
      expect(
        entries
          .filter((e) => e.kind === 'sass')
          .map((e) => e.arch)
          .sort(),
        family,
      ).toEqual([80, 86, 89, 90]);
      expect(
        entries.filter((e) => e.kind === 'ptx').map((e) => e.arch),
        family,
      ).toEqual([90]);
    }
  });

  it('are up to date with kernels/*.cu (build-kernels --check)', () => {
    execFileSync('node', [script, '--check'], { encoding: 'utf8' });
  });

  it('contain every kernel src/kernels.ts launches, with the parameters it packs', () => {
    const m = readManifest()!;
    const ptx = new Map<string, { family: string; params: string[] }>();
    for (const [family, f] of Object.entries(m.families))
      for (const [name, params] of Object.entries(f.kernels)) ptx.set(name, { family, params });
    for (const [name, k] of Object.entries(KERNELS)) {
      const found = ptx.get(name);
      expect(found, `kernel ${name} is not in any fatbin`).toBeDefined();
      expect(found!.family, name).toBe(k.family);
      expect(found!.params, `parameters of ${name}`).toEqual(k.params.map((p) => PTX_TYPE[p]));
    }
    expect(
      [...ptx.keys()].filter((n) => !(n in KERNELS)),
      'kernels compiled but never launched',
    ).toEqual([]);
  });

  it('has a manifest that names the compiler and the total size', () => {
    const m = readManifest()!;
    expect(m.archs).toEqual(['sm_80', 'sm_86', 'sm_89', 'sm_90']);
    expect(m.ptx).toBe('compute_90');
    expect(m.totalBytes).toBeGreaterThan(0);
    expect(existsSync(join(FATBIN_DIR, 'attention.fatbin'))).toBe(true);
    console.log(`fatbins: ${Object.keys(m.families).length} families, ${(m.totalBytes / 1024).toFixed(0)} KiB, nvcc ${m.nvcc}`);
  });
});

describe('fatbinEntries', () => {
  it('rejects a file that is not a fatbin', () => {
    expect(() => fatbinEntries(new Uint8Array(32))).toThrow(/not a fatbin/);
  });
});
