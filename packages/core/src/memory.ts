import type { Backend } from './backend.js';
import type { Storage, Tensor } from './tensor.js';

/** Live tensor handles and bytes of distinct storages that core holds on one backend. */
export interface MemoryInfo {
  tensors: number;
  storages: number;
  bytes: number;
}

const stats = new Map<Backend, MemoryInfo>();
const scopes: Set<Tensor>[] = [];

function statsOf(backend: Backend): MemoryInfo {
  let s = stats.get(backend);
  if (!s) {
    s = { tensors: 0, storages: 0, bytes: 0 };
    stats.set(backend, s);
  }
  return s;
}

/** @internal called by the Tensor constructor. */
export function trackCreated(t: Tensor, storage: Storage): void {
  const s = statsOf(t.backend);
  s.tensors++;
  if (storage.refs === 1) {
    s.storages++;
    s.bytes += storage.bytes;
  }
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(t);
}

/** @internal called by Tensor.dispose before the storage is released. */
export function trackDisposed(t: Tensor, storage: Storage): void {
  const s = statsOf(t.backend);
  s.tensors--;
  if (storage.refs === 1) {
    s.storages--;
    s.bytes -= storage.bytes;
  }
  for (const scope of scopes) scope.delete(t);
}

/** Live tensors and bytes on `backend` as core sees them (tests use it to prove there is no leak). */
export function memoryInfo(backend: Backend): MemoryInfo {
  return { ...statsOf(backend) };
}

function collect(value: unknown, into: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, seen);
  }
}

function isTensor(value: object): value is Tensor {
  return typeof (value as Tensor).dispose === 'function' && typeof (value as Tensor).describe === 'function' && 'shape' in value;
}

/**
 * Runs `fn` and disposes every tensor created inside it, except the tensors it returns (also
 * inside arrays, plain objects and Maps) and those passed to `keep`. Returned tensors belong to
 * the enclosing scope, if any. `fn` must be synchronous: work is enqueued, nothing waits.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw error;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error('tidy: the function returned a Promise; tidy takes synchronous work only (read results after it returns)');
  }
  const kept = new Set<Tensor>();
  collect(result, kept, new Set());
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Removes tensors from every open scope so that no `tidy` disposes them. Returns its argument. */
export function keep<T>(value: T): T {
  const found = new Set<Tensor>();
  collect(value, found, new Set());
  for (const t of found) for (const scope of scopes) scope.delete(t);
  return value;
}

/** Disposes every tensor found in `value` (arrays, plain objects, Maps). */
export function dispose(value: unknown): void {
  const found = new Set<Tensor>();
  collect(value, found, new Set());
  for (const t of found) t.dispose();
}
