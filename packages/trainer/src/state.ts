import { bytesSource, type DType, openSafetensors, type RawArray, type Tensor, writeSafetensorsTo } from '@peft/core';
import type { RunStore } from './store.js';

/** A tensor's values on the host in its storage form (16-bit patterns for float16/bfloat16). */
export interface HostTensor {
  dtype: DType;
  shape: readonly number[];
  data: RawArray;
}

/** Named host copies: the best state, a checkpoint's tensors. */
export type HostState = Map<string, HostTensor>;

/** Reads named tensors back to the host, bit for bit. */
export async function snapshot(tensors: Iterable<readonly [string, Tensor]>): Promise<HostState> {
  const out: HostState = new Map();
  for (const [name, t] of tensors) out.set(name, { dtype: t.dtype, shape: [...t.shape], data: await t.raw() });
  return out;
}

/**
 * Writes host copies back into the same tensors (in place: modules, optimizer and autograd keep
 * their handles). Every tensor must be in the state with its dtype and shape.
 */
export function restore(tensors: Iterable<readonly [string, Tensor]>, state: HostState, where: string): void {
  for (const [name, t] of tensors) {
    const h = state.get(name);
    if (!h)
      throw new Error(
        `${where}: no saved values for "${name}" (saved: ${[...state.keys()].slice(0, 5).join(', ')}${state.size > 5 ? ', …' : ''})`,
      );
    if (h.dtype !== t.dtype || h.shape.join() !== t.shape.join()) {
      throw new Error(`${where}: saved "${name}" is ${h.dtype} [${h.shape.join(', ')}] but ${t.describe()} is being trained`);
    }
    if (t.size > 0) t.backend.write(t.buffer(where), h.data);
  }
}

/** Writes host tensors as one safetensors file, tensor by tensor. */
export async function writeHostState(store: RunStore, path: string, state: HostState, metadata?: Record<string, string>): Promise<void> {
  const list = [...state].map(([name, h]) => ({ name, dtype: h.dtype, shape: h.shape, data: h.data }));
  await store.writeFile(path, (sink) => writeSafetensorsTo(sink, list, metadata, `${store.name}/${path}`));
}

/** Reads a safetensors file written by `writeHostState`, keeping the stored dtypes; null when it is missing. */
export async function readHostState(store: RunStore, path: string): Promise<HostState | null> {
  const bytes = await store.readFile(path);
  return bytes ? hostStateFromBytes(bytes, `${store.name}/${path}`) : null;
}

/** Parses a safetensors file written by `writeHostState` from its bytes; `where` names it in errors. */
export async function hostStateFromBytes(bytes: Uint8Array, where: string): Promise<HostState> {
  const file = await openSafetensors(bytesSource(bytes, where));
  const out: HostState = new Map();
  for (const name of file.names()) {
    const t = await file.readTensor(name);
    out.set(name, { dtype: t.dtype, shape: t.shape, data: t.data.slice() });
  }
  return out;
}
