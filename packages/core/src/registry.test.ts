import '@peft/backend-cpu';
import { describe, expect, it } from 'vitest';
import { createBackend, registerBackend, registeredBackends } from './registry.js';
import { tensor } from './tensor.js';

describe('backend registry', () => {
  it('creates a backend by name once its package is imported, with its options', async () => {
    expect(registeredBackends()).toContain('cpu');
    const backend = await createBackend('cpu', { threads: 1 });
    expect(backend.name).toBe('cpu');
    const t = tensor([1, 2, 3], [3], { backend });
    expect(Array.from(await t.data())).toEqual([1, 2, 3]);
    t.dispose();
    backend.destroy();
  });

  it('uses a registered factory', async () => {
    const made: unknown[] = [];
    registerBackend('test-registry', async (options) => {
      made.push(options);
      return createBackend('cpu');
    });
    const b = await createBackend('test-registry', { x: 1 });
    expect(made).toEqual([{ x: 1 }]);
    b.destroy();
  });

  it('says which package to install for an unknown backend', async () => {
    await expect(createBackend('nonexistent')).rejects.toThrow(
      /createBackend: no backend "nonexistent": @peft\/backend-nonexistent could not be imported .*install it \(npm i @peft\/backend-nonexistent\)/,
    );
    await expect(createBackend('../x')).rejects.toThrow('is not a package suffix');
  });
});
