import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CublasLt, formatLtVersion, type GemmCall, gemmShape } from './cublaslt.js';
import { cublasLtCandidates, pythonSitePackages, realSearch } from './cublaslt-search.js';

describe('cublasLtCandidates', () => {
  const files = new Set([
    '/opt/ld/libcublasLt.so.12',
    '/cuda/lib64/libcublasLt.so.13',
    '/cuda/lib64/libcublasLt.so.12',
    '/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12',
  ]);
  const search = {
    env: { LD_LIBRARY_PATH: '/opt/ld:/nothing', CUDA_HOME: '/cuda', VIRTUAL_ENV: '/venv' },
    exists: (p: string) => files.has(p),
    list: (dir: string) => (dir === '/venv/lib' ? ['python3.11', 'site-packages-not'] : []),
    home: '/home/u',
  };

  it('searches LD_LIBRARY_PATH, then CUDA_HOME, then Python nvidia/cublas/lib, then the loader; .13 first with a CUDA 13 driver', () => {
    // The unversioned name comes last, after .13 and .12.
    expect(cublasLtCandidates(search, 13000).paths).toEqual([
      '/cuda/lib64/libcublasLt.so.13',
      '/opt/ld/libcublasLt.so.12',
      '/cuda/lib64/libcublasLt.so.12',
      '/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12',
      'libcublasLt.so.13',
      'libcublasLt.so.12',
      'libcublasLt.so',
    ]);
  });

  it('skips libcublasLt.so.13 under a CUDA 12 driver', () => {
    const found = cublasLtCandidates(search, 12080);
    expect(found.paths.some((p) => p.endsWith('.13'))).toBe(false);
    expect(found.names).toEqual(['libcublasLt.so.12', 'libcublasLt.so']);
  });

  it('searches the site-packages Python reports (nvidia/cu13/lib, cu12/lib, cublas/lib) after CUDA_HOME and before the fixed prefixes', () => {
    const wheels = new Set([
      '/py/site-packages/nvidia/cu13/lib/libcublasLt.so.13',
      '/py/site-packages/nvidia/cu12/lib/libcublasLt.so.12',
      '/py/user-site/nvidia/cublas/lib/libcublasLt.so',
    ]);
    const found = cublasLtCandidates(
      { ...search, exists: (p) => files.has(p) || wheels.has(p), sitePackages: ['/py/site-packages', '/py/user-site'] },
      13000,
    );
    expect(found.paths).toEqual([
      '/cuda/lib64/libcublasLt.so.13',
      '/py/site-packages/nvidia/cu13/lib/libcublasLt.so.13',
      '/opt/ld/libcublasLt.so.12',
      '/cuda/lib64/libcublasLt.so.12',
      '/py/site-packages/nvidia/cu12/lib/libcublasLt.so.12',
      '/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12',
      '/py/user-site/nvidia/cublas/lib/libcublasLt.so',
      'libcublasLt.so.13',
      'libcublasLt.so.12',
      'libcublasLt.so',
    ]);
    const at = (d: string) => found.searched.indexOf(d);
    expect(at('/cuda/lib')).toBeLessThan(at('/py/site-packages/nvidia/cu13/lib'));
    expect(at('/py/site-packages/nvidia/cu13/lib')).toBeLessThan(at('/py/site-packages/nvidia/cu12/lib'));
    expect(at('/py/site-packages/nvidia/cu12/lib')).toBeLessThan(at('/py/site-packages/nvidia/cublas/lib'));
    expect(at('/py/user-site/nvidia/cublas/lib')).toBeLessThan(at('/venv/lib/python3.11/site-packages/nvidia/cu13/lib'));
    expect(found.searched.at(-1)).toBe('/usr/local/cuda/lib64');
  });
});

describe('the cuBLASLt search on a fake PyTorch install (file system and Python process for real)', () => {
  const root = mkdtempSync(join(tmpdir(), 'peft-fake-torch-'));
  const site = join(root, 'lib', 'python3.12', 'site-packages');
  mkdirSync(join(site, 'nvidia', 'cu13', 'lib'), { recursive: true });
  writeFileSync(join(site, 'nvidia', 'cu13', 'lib', 'libcublasLt.so.13'), '');
  const script = (name: string, body: string) => {
    const path = join(root, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };
  // Answers whatever it is asked with the site-packages list, as python3 -c '…' does.
  const python = script('python3', `echo 'a warning first'; echo '["${site}", "${join(root, 'user-site')}"]'`);

  it('asks $PEFT_BENCH_PYTHON for its site-packages and finds nvidia/cu13/lib/libcublasLt.so.13 there', () => {
    const sites = pythonSitePackages({ PEFT_BENCH_PYTHON: python, PATH: process.env.PATH });
    expect(sites).toEqual({ python, dirs: [site, join(root, 'user-site')], errors: [] });
    const found = cublasLtCandidates({ ...realSearch(sites.dirs), env: {}, home: root }, 13000);
    expect(found.paths[0]).toBe(join(site, 'nvidia', 'cu13', 'lib', 'libcublasLt.so.13'));
    expect(found.paths.slice(1)).toEqual(['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so']);
  });

  it('falls back from a missing or silent Python to the next, and survives having none', () => {
    const missing = join(root, 'no-such-python');
    const silent = script('silent-python', 'exec /bin/sleep 5');
    const none = pythonSitePackages({ PEFT_BENCH_PYTHON: missing, PATH: root }, 300);
    // python3 on this PATH is the fake one.
    expect(none.python).toBe('python3');
    expect(none.errors).toEqual([`${missing}: not found`]);
    const slow = pythonSitePackages({ PEFT_BENCH_PYTHON: silent, PATH: join(root, 'empty') }, 300);
    expect(slow).toEqual({
      python: null,
      dirs: [],
      errors: [`${silent}: no answer within 0.3 s`, 'python3: not found', 'python: not found'],
    });
  });
});

describe('gemmShape and formatLtVersion', () => {
  const c = { m: 128, n: 4096, k: 11008, batch: 1, transA: false, transB: true, dtA: 'bfloat16', dtB: 'bfloat16', dtOut: 'bfloat16' };
  it('names the dtypes, sizes, batch and transposes, and a pointer alignment below 256 bytes', () => {
    expect(gemmShape(c as GemmCall, [256, 256, 256])).toBe('bf16 m=128 n=4096 k=11008 batch=1 transA=0 transB=1');
    expect(gemmShape({ ...c, dtOut: 'float32', batch: 4, transA: true } as GemmCall, [256, 16, 256])).toBe(
      'bf16→f32 m=128 n=4096 k=11008 batch=4 transA=1 transB=1 align=256/16/256',
    );
  });
  it('writes cublasLtGetVersion as major.minor.patch', () => {
    expect([formatLtVersion(130100), formatLtVersion(120405)]).toEqual(['13.1.0', '12.4.5']);
  });
});

describe('CublasLt.supports', () => {
  const base = { batch: 1, strideOut: 0 };
  it('takes float32, and bf16/f16 operands with a same-dtype or float32 output', () => {
    expect(CublasLt.supports({ ...base, dtA: 'float32', dtB: 'float32', dtOut: 'float32' })).toBe(true);
    expect(CublasLt.supports({ ...base, dtA: 'bfloat16', dtB: 'bfloat16', dtOut: 'float32' })).toBe(true);
    expect(CublasLt.supports({ ...base, dtA: 'float16', dtB: 'float16', dtOut: 'float16' })).toBe(true);
  });
  it('leaves mixed operands, a 16-bit output of float32 operands and summed batches to the tiled kernel', () => {
    expect(CublasLt.supports({ ...base, dtA: 'bfloat16', dtB: 'float32', dtOut: 'float32' })).toBe(false);
    expect(CublasLt.supports({ ...base, dtA: 'float32', dtB: 'float32', dtOut: 'bfloat16' })).toBe(false);
    expect(CublasLt.supports({ batch: 3, strideOut: 0, dtA: 'float32', dtB: 'float32', dtOut: 'float32' })).toBe(false);
  });
});
