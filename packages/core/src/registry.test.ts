import '@peft/backend-cpu';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importFromWorkingDirectory } from './node/index.js';
import { createBackend, registerBackend, registeredBackends, setBackendImporter } from './registry.js';
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

  it('finds a backend package installed in the working directory’s project (which core itself cannot see under pnpm)', async () => {
    const project = mkdtempSync(join(tmpdir(), 'peft-registry-'));
    const pkg = join(project, 'node_modules', '@peft', 'backend-fromcwd');
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: '@peft/backend-fromcwd', type: 'module', exports: { '.': { import: './dist/index.js' } } }),
    );
    // A real backend package imports @peft/core's registerBackend; this stand-in, outside the
    // workspace, reaches the same function through a global the test sets.
    (globalThis as { peftTestRegister?: typeof registerBackend }).peftTestRegister = registerBackend;
    writeFileSync(join(pkg, 'dist', 'index.js'), "globalThis.peftTestRegister('fromcwd', (o) => ({ name: 'fromcwd', options: o }));\n");
    const cwd = process.cwd();
    process.chdir(join(project));
    try {
      const b = (await createBackend('fromcwd', { y: 2 })) as unknown as { name: string; options: unknown };
      expect(b).toEqual({ name: 'fromcwd', options: { y: 2 } });
    } finally {
      process.chdir(cwd);
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('looks in the working directory only through the importer @peft/core/node sets (browser-safe core has none of its own)', async () => {
    const asked: string[] = [];
    setBackendImporter(async (pkg) => {
      asked.push(pkg);
      return false;
    });
    try {
      await expect(createBackend('elsewhere')).rejects.toThrow(/no backend "elsewhere": @peft\/backend-elsewhere could not be imported/);
      expect(asked).toEqual(['@peft/backend-elsewhere']);
      setBackendImporter(null);
      await expect(createBackend('elsewhere')).rejects.toThrow(/install it \(npm i @peft\/backend-elsewhere\)/);
    } finally {
      setBackendImporter(importFromWorkingDirectory);
    }
  });

  it('says which package to install for an unknown backend', async () => {
    await expect(createBackend('nonexistent')).rejects.toThrow(
      /createBackend: no backend "nonexistent": @peft\/backend-nonexistent could not be imported .*install it \(npm i @peft\/backend-nonexistent\)/,
    );
    await expect(createBackend('../x')).rejects.toThrow('is not a package suffix');
  });
});
