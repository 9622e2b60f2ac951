import { describe, expect, it } from 'vitest';
import { CublasLt, cublasLtCandidates } from './cublaslt.js';

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
    expect(cublasLtCandidates(search, 13000)).toEqual([
      '/cuda/lib64/libcublasLt.so.13',
      '/opt/ld/libcublasLt.so.12',
      '/cuda/lib64/libcublasLt.so.12',
      '/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12',
      'libcublasLt.so.13',
      'libcublasLt.so.12',
    ]);
  });

  it('skips libcublasLt.so.13 under a CUDA 12 driver', () => {
    expect(cublasLtCandidates(search, 12080).some((p) => p.endsWith('.13'))).toBe(false);
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
