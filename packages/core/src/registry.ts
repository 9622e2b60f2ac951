import type { Backend } from './backend.js';

/** Makes a backend; options are the backend package's own (`{ threads }`, `{ device }`, `{ deviceIndex }`). */
export type BackendFactory = (options?: Record<string, unknown>) => Backend | Promise<Backend>;

/**
 * Imports a backend package (`@peft/backend-<name>`) that core's own `import()` could not; true
 * when it did. In Node, `@peft/core/node` installs one that looks in the working directory's project.
 */
export type BackendImporter = (pkg: string) => Promise<boolean>;

const factories = new Map<string, BackendFactory>();
let fallbackImporter: BackendImporter | null = null;

/**
 * Sets where `createBackend` looks for a backend package that core itself cannot import (under
 * pnpm, or a global install of the CLI, core cannot see packages installed next to it); null
 * removes it. Importing `@peft/core/node` sets its working-directory importer.
 */
export function setBackendImporter(importer: BackendImporter | null): void {
  fallbackImporter = importer;
}

/** Backend packages call this when imported, so `createBackend(name)` finds them. */
export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
}

/** Names of the backends registered so far (the packages imported). */
export function registeredBackends(): string[] {
  return [...factories.keys()];
}

/**
 * Creates a backend by name: 'cpu', 'webgpu', 'cuda', or any registered one. A backend whose
 * package has not been imported yet is imported as `@peft/backend-<name>` (in Node, or a bundler
 * that resolves dynamic imports), else through the importer set by `setBackendImporter` (in Node,
 * `@peft/core/node` looks in the working directory's project); a missing package is an error that
 * says what to install.
 * Importing the package and calling its factory (`createCpuBackend()`, …) works the same.
 */
export async function createBackend(name: string, options?: Record<string, unknown>): Promise<Backend> {
  let factory = factories.get(name);
  if (!factory) {
    if (!/^[a-z0-9-]+$/.test(name))
      throw new Error(`createBackend: backend name ${JSON.stringify(name)} is not a package suffix like cpu, webgpu, cuda`);
    const pkg = `@peft/backend-${name}`;
    try {
      await import(/* @vite-ignore */ pkg);
    } catch (error) {
      // Then where the application is (set by @peft/core/node): under pnpm (or a global install of
      // the CLI) core cannot see packages installed next to it, the working directory's project can.
      if (!(await fallbackImporter?.(pkg))) {
        throw new Error(
          `createBackend: no backend "${name}": ${pkg} could not be imported (${(error as Error).message}); install it (npm i ${pkg}) or pick one of: ${registeredBackends().join(', ') || 'none registered'}`,
        );
      }
    }
    factory = factories.get(name);
    if (!factory) throw new Error(`createBackend: ${pkg} was imported but did not register a backend named "${name}"`);
  }
  return factory(options);
}
