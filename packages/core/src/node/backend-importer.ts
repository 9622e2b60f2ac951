import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Imports `pkg` from the nearest node_modules at or above the working directory (its
 * package.json's `exports["."].import`, else `main`); false when there is none or it fails to load.
 * Core's registry uses it (through `setBackendImporter`, which `@peft/core/node` calls) for a
 * backend package installed where the application is: under pnpm, or with the CLI installed
 * globally, core itself cannot see packages installed next to it.
 */
export async function importFromWorkingDirectory(pkg: string): Promise<boolean> {
  // Inside this repository, code runs from source under the `@peft/source` export condition.
  const fromSource = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('@peft/source'));
  try {
    for (let dir = process.cwd(); ; dir = dirname(dir)) {
      const root = join(dir, 'node_modules', ...pkg.split('/'));
      if (existsSync(join(root, 'package.json'))) {
        const meta = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
          exports?: Record<string, { import?: string; '@peft/source'?: string } | string>;
          main?: string;
        };
        const dot = meta.exports?.['.'];
        const entry = (typeof dot === 'string' ? dot : (fromSource && dot?.['@peft/source']) || dot?.import) ?? meta.main ?? 'index.js';
        await import(/* @vite-ignore */ pathToFileURL(join(root, entry)).href);
        return true;
      }
      if (dirname(dir) === dir) return false;
    }
  } catch {
    return false;
  }
}
