import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend } from '@peft/core';

export const BACKENDS = ['cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * Creates a backend by name. Backend packages other than the CPU one are optional: they are
 * imported only when asked for, and a missing one is an error that says which package to install.
 */
export async function createBackend(name: string): Promise<Backend> {
  if (name === 'cpu') return createCpuBackend();
  const packages: Record<string, [string, string]> = {
    webgpu: ['@peft/backend-webgpu', 'createWebGpuBackend'],
    cuda: ['@peft/backend-cuda', 'createCudaBackend'],
  };
  const entry = packages[name];
  if (!entry) throw new Error(`--backend ${JSON.stringify(name)} is not one of ${BACKENDS.join(', ')}`);
  const [pkg, factory] = entry;
  let mod: Record<string, unknown>;
  try {
    mod = await import(pkg);
  } catch {
    throw new Error(`--backend ${name} needs the package ${pkg}: install it next to @peft/cli (npm i ${pkg})`);
  }
  const create = mod[factory] as (() => Backend | Promise<Backend>) | undefined;
  if (!create) throw new Error(`${pkg} does not export ${factory}`);
  return create();
}
