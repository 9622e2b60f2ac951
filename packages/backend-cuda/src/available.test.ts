import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('without a GPU the package still imports and says why', () => {
  it('importing the package never throws', async () => {
    const mod = await import('./index.js');
    expect(typeof mod.isAvailable).toBe('function');
    expect(typeof mod.createCudaBackend).toBe('function');
  });

  it('isAvailable() answers without throwing, with a reason', async () => {
    const { isAvailable } = await import('./index.js');
    const a = isAvailable();
    expect(typeof a.available).toBe('boolean');
    expect(a.reason).toMatch(/\S/);
    console.log(`[backend-cuda] isAvailable(): ${JSON.stringify(a)}`);
    const hasLibcuda = ['/usr/lib/x86_64-linux-gnu/libcuda.so.1', '/usr/lib64/libcuda.so.1', '/usr/lib/wsl/lib/libcuda.so.1'].some(
      existsSync,
    );
    if (!hasLibcuda && !process.env.LD_LIBRARY_PATH) {
      expect(a.available).toBe(false);
      expect(a.reason).toMatch(/libcuda\.so\.1/);
    }
  });

  it('a device index that does not exist is reported, not thrown', async () => {
    const { isAvailable } = await import('./index.js');
    const a = isAvailable({ deviceIndex: 99 });
    expect(a.available).toBe(false);
    expect(a.reason).toMatch(/\S/);
  });

  it('createCudaBackend throws CudaUnavailable with the same reason where CUDA is missing', async () => {
    const { isAvailable, createCudaBackend, CudaUnavailable } = await import('./index.js');
    const a = isAvailable();
    if (a.available) return;
    let caught: unknown;
    try {
      createCudaBackend().destroy();
    } catch (err) {
      caught = err;
    }
    if (caught instanceof CudaUnavailable) expect(a.reason).toContain(caught.reason);
    else expect(String(caught)).toMatch(/kernels|CUDA|cuda/);
  });
});
