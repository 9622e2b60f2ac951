import type { Backend } from './backend.js';

/** Makes a backend; options are the backend package's own (`{ threads }`, `{ device }`, `{ deviceIndex }`). */
export type BackendFactory = (options?: Record<string, unknown>) => Backend | Promise<Backend>;

const factories = new Map<string, BackendFactory>();

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
 * that resolves dynamic imports); a missing package is an error that says what to install.
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
      // In Node, also look where the application is: under pnpm (or a global install of the CLI)
      // core cannot see packages installed next to it, the working directory's project can.
      if (!(await importFromWorkingDirectory(pkg))) {
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

/**
 * Node only: imports `pkg` from the nearest node_modules at or above the working directory (its
 * package.json's `exports["."].import`, else `main`); false when there is none or this is not Node.
 */
async function importFromWorkingDirectory(pkg: string): Promise<boolean> {
  const proc = (
    globalThis as { process?: { versions?: { node?: string }; cwd(): string; execArgv: string[]; env: Record<string, string | undefined> } }
  ).process;
  if (!proc?.versions?.node) return false;
  // Inside this repository, code runs from source under the `@peft/source` export condition.
  const fromSource = [...proc.execArgv, proc.env.NODE_OPTIONS ?? ''].some((a) => a.includes('@peft/source'));
  try {
    // Module names in variables: browser bundlers leave the imports alone instead of warning about them.
    const [fsName, pathName, urlName] = ['node:fs', 'node:path', 'node:url'];
    const fs = (await import(/* @vite-ignore */ fsName)) as {
      existsSync(p: string): boolean;
      readFileSync(p: string, e: string): string;
    };
    const path = (await import(/* @vite-ignore */ pathName)) as { join(...p: string[]): string; dirname(p: string): string };
    const url = (await import(/* @vite-ignore */ urlName)) as { pathToFileURL(p: string): URL };
    for (let dir = proc.cwd(); ; dir = path.dirname(dir)) {
      const root = path.join(dir, 'node_modules', ...pkg.split('/'));
      if (fs.existsSync(path.join(root, 'package.json'))) {
        const meta = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
          exports?: Record<string, { import?: string; '@peft/source'?: string } | string>;
          main?: string;
        };
        const dot = meta.exports?.['.'];
        const entry = (typeof dot === 'string' ? dot : (fromSource && dot?.['@peft/source']) || dot?.import) ?? meta.main ?? 'index.js';
        await import(/* @vite-ignore */ url.pathToFileURL(path.join(root, entry)).href);
        return true;
      }
      if (path.dirname(dir) === dir) return false;
    }
  } catch {
    return false;
  }
}
