import '@peft/backend-cpu';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Backend, createBackend as createRegistered, registeredBackends } from '@peft/core';

export const BACKENDS = ['cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * The optional backend packages, imported from here: they are optional peer dependencies of
 * @peft/cli (installed next to it in a project, linked as its dev dependencies in the repository),
 * so this module resolves them where core alone, under pnpm, cannot.
 */
const IMPORTS: Record<Exclude<BackendName, 'cpu'>, () => Promise<unknown>> = {
  webgpu: () => import('@peft/backend-webgpu'),
  cuda: () => import('@peft/backend-cuda'),
};

/** Where the working directory is: this repository (a pnpm workspace), a pnpm project, or an npm (or other) one. */
function projectKind(cwd: string): 'workspace' | 'pnpm' | 'npm' {
  for (let dir = cwd; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return 'workspace';
    if (existsSync(join(dir, 'pnpm-lock.yaml'))) return 'pnpm';
    if (existsSync(join(dir, 'package-lock.json'))) return 'npm';
    if (dirname(dir) === dir) return 'npm';
  }
}

/**
 * What to run so that `@peft/backend-<name>` (or the package `name` when it is a scoped package name,
 * e.g. `@peft/distributed`) can be imported, for the kind of project the command runs in.
 */
export function installAdvice(name: string, cwd: string = process.cwd()): string {
  const pkg = name.startsWith('@') ? name : `@peft/backend-${name}`;
  switch (projectKind(cwd)) {
    case 'workspace':
      return `in this pnpm workspace it is a dependency of @peft/cli: run \`npx -y pnpm@10.34.9 install\` at the repository root (or \`pnpm add ${pkg} --filter <your package>\`)`;
    case 'pnpm':
      return `install it next to @peft/cli: \`pnpm add ${pkg}\``;
    default:
      return `install it next to @peft/cli: \`npm i ${pkg}\``;
  }
}

/**
 * Creates a backend by name through core's registry. The CPU backend is always there; the WebGPU
 * and CUDA packages are optional and imported when asked for (a missing one is an error that says
 * how to install it, for pnpm or npm).
 */
export async function createBackend(name: string, options?: Record<string, unknown>): Promise<Backend> {
  if (!(BACKENDS as readonly string[]).includes(name))
    throw new Error(`--backend ${JSON.stringify(name)} is not one of ${BACKENDS.join(', ')}`);
  if (name !== 'cpu' && !registeredBackends().includes(name)) {
    try {
      await IMPORTS[name as Exclude<BackendName, 'cpu'>]();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const missing = code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(`@peft/backend-${name}'`);
      if (!missing) throw error;
      throw new Error(
        `--backend ${name}: the package @peft/backend-${name} is not installed where @peft/cli can import it; ${installAdvice(name)}`,
      );
    }
  }
  return createRegistered(name, options);
}

/** ", GEMM: openblas x2 threads" for the CPU backend (its GEMM engine and threads), "" for others: for run headers. */
export function gemmNote(backend: Backend): string {
  const gemm = (backend as { sgemm?: { description?: unknown } }).sgemm?.description;
  return typeof gemm === 'string' ? `, GEMM: ${gemm}` : '';
}
