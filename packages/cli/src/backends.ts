import '@peft/backend-cpu';
import { type Backend, createBackend as createRegistered } from '@peft/core';

export const BACKENDS = ['cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * Creates a backend by name through core's registry. The CPU backend is always there; the WebGPU
 * and CUDA packages are optional and imported when asked for (a missing one is an error that says
 * which package to install).
 */
export async function createBackend(name: string, options?: Record<string, unknown>): Promise<Backend> {
  if (!(BACKENDS as readonly string[]).includes(name))
    throw new Error(`--backend ${JSON.stringify(name)} is not one of ${BACKENDS.join(', ')}`);
  return createRegistered(name, options);
}
