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

/** ", GEMM: openblas x2 threads" for the CPU backend (its GEMM engine and threads), "" for others: for run headers. */
export function gemmNote(backend: Backend): string {
  const gemm = (backend as { sgemm?: { description?: unknown } }).sgemm?.description;
  return typeof gemm === 'string' ? `, GEMM: ${gemm}` : '';
}
