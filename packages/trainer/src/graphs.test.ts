import { createCpuBackend } from '@peft/backend-cpu';
import { affine, type Backend, type BackendGraph, keep, type Tensor, tensor } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { GraphCache } from './graphs.js';

/**
 * The CPU backend with a recording `captureGraph`, as a CUDA stream capture behaves: kernels
 * enqueued during capture are recorded instead of run, buffers allocated then belong to the graph
 * (freed by destroy), reads, writes and waits refuse, random numbers refuse; `launch` runs the
 * recorded kernels again. Enough to check GraphCache's bookkeeping without a GPU (the CUDA
 * emulator test in packages/integration checks real captures).
 */
function recordingBackend(): Backend & { destroyed: number } {
  const cpu = createCpuBackend();
  let recording: (() => void)[] | null = null;
  let owned: unknown[] | null = null;
  const host = new Set(['alloc', 'free', 'read', 'write', 'memory', 'resetPeak', 'sync', 'destroy', 'name', 'dtypes']);
  const state = { destroyed: 0 };
  const proxy = new Proxy(cpu, {
    get(target, name, receiver) {
      if (name === 'destroyed') return state.destroyed;
      if (name === 'captureGraph') {
        return (fn: () => void): BackendGraph => {
          const ops: (() => void)[] = [];
          const buffers: unknown[] = [];
          recording = ops;
          owned = buffers;
          try {
            fn();
          } finally {
            recording = null;
            owned = null;
          }
          return {
            launch: () => {
              for (const op of ops) op();
            },
            destroy: () => {
              state.destroyed++;
              for (const b of buffers) target.free(b as never);
            },
          };
        };
      }
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      if (name === 'alloc') {
        return (...args: unknown[]) => {
          const b = (value as (...a: unknown[]) => unknown).apply(target, args);
          owned?.push(b);
          return b;
        };
      }
      if (name === 'free') return (b: unknown) => (owned || recording ? undefined : target.free(b as never));
      if (name === 'read' || name === 'write' || name === 'sync') {
        return (...args: unknown[]) => {
          if (recording) throw new Error(`${String(name)}: not during capture`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      if (name === 'random' || name === 'dropout') {
        return (...args: unknown[]) => {
          if (recording) throw new Error(`${String(name)}: random numbers cannot be captured`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      if (host.has(name as string)) return value.bind(target);
      return (...args: unknown[]) => {
        if (recording) recording.push(() => (value as (...a: unknown[]) => unknown).apply(target, args));
        else (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return proxy as unknown as Backend & { destroyed: number };
}

/** out ← x · 2 + 1, on persistent tensors, as a body. */
function doubler(backend: Backend) {
  const x = keep(tensor([1, 2, 3], [3], { backend }));
  const out = keep(tensor([0, 0, 0], [3], { backend }));
  const body = (): string => {
    const y = affine(x, 2, 1);
    backend.copy(out.buffer(), y.buffer(), { shape: [3], strides: [1], offset: 0 });
    y.dispose();
    return 'recorded';
  };
  return { x, out, body };
}

const set = (t: Tensor, values: number[]) => t.backend.write(t.buffer(), Float32Array.from(values));

describe('GraphCache', () => {
  it('runs a key eagerly, then captures it, then replays it reading the inputs written before each call', async () => {
    const backend = recordingBackend();
    const cache = new GraphCache(backend, 'auto', 'test');
    const { x, out, body } = doubler(backend);
    expect(cache.run('a', body)).toEqual({ mode: 'eager', value: 'recorded' });
    expect(Array.from(await out.data())).toEqual([3, 5, 7]);
    set(x, [10, 20, 30]);
    expect(cache.run('a', body).mode).toBe('capture');
    expect(Array.from(await out.data())).toEqual([21, 41, 61]);
    set(x, [-1, 0, 1]);
    let calls = 0;
    expect(
      cache.run('a', () => {
        calls++;
        return 'not run';
      }),
    ).toEqual({ mode: 'replay', value: 'recorded' });
    expect(calls).toBe(0);
    expect(Array.from(await out.data())).toEqual([-1, 1, 3]);
    expect(cache.counts).toEqual({ captures: 1, replays: 1, kept: 1 });
    cache.dispose();
    expect(backend.destroyed).toBe(1);
  });

  it('keeps at most `limit` graphs, dropping the least recently used (its onDrop first, then the graph)', () => {
    const backend = recordingBackend();
    const cache = new GraphCache(backend, 'auto', 'test', 2);
    const { body } = doubler(backend);
    const dropped: string[] = [];
    const run = (key: string) =>
      cache.run(key, body, { onDrop: () => dropped.push(`${key} (destroyed before: ${backend.destroyed})`) }).mode;
    for (const key of ['a', 'b']) {
      expect(run(key)).toBe('eager');
      expect(run(key)).toBe('capture');
    }
    expect(run('a')).toBe('replay'); // b is now the least recently used
    expect(run('c')).toBe('eager');
    expect(run('c')).toBe('capture');
    expect(dropped).toEqual(['b (destroyed before: 0)']);
    expect(backend.destroyed).toBe(1);
    expect(cache.has('a') && cache.has('c') && !cache.has('b')).toBe(true);
    // A dropped key starts again from its own call count: its next call is a capture.
    expect(run('b')).toBe('capture');
    expect(dropped).toEqual(['b (destroyed before: 0)', 'a (destroyed before: 1)']);
    cache.dispose();
  });

  it("'auto': a failed capture is undone, recorded, and every later call runs eagerly", () => {
    const backend = recordingBackend();
    const cache = new GraphCache(backend, 'auto', 'test');
    let undone = 0;
    const body = () => {
      backend.random(backend.alloc('float32', 4), { seed: 1, offset: 0, distribution: 'uniform', low: 0, high: 1 });
      return 1;
    };
    expect(cache.run('r', body, { undo: () => undone++ }).mode).toBe('eager');
    expect(cache.run('r', body, { undo: () => undone++ }).mode).toBe('eager');
    expect(undone).toBe(1);
    expect(cache.error).toMatch(/random numbers cannot be captured/);
    expect(cache.enabled).toBe(false);
    const { body: other } = doubler(backend);
    expect([cache.run('d', other).mode, cache.run('d', other).mode, cache.run('d', other).mode]).toEqual(['eager', 'eager', 'eager']);
  });

  it('a check that refuses the recording destroys it and counts as a failed capture', () => {
    const backend = recordingBackend();
    const cache = new GraphCache(backend, 'auto', 'test');
    const { body } = doubler(backend);
    const check = () => {
      throw new Error('parameter "w" got its first gradient during the capture');
    };
    cache.run('a', body, { check });
    expect(cache.run('a', body, { check }).mode).toBe('eager');
    expect(backend.destroyed).toBe(1);
    expect(cache.error).toMatch(/first gradient/);
  });

  it('graph: true refuses a backend without captureGraph and throws when a capture fails', () => {
    expect(() => new GraphCache(createCpuBackend(), true, 'train')).toThrow(
      "train: graph: true, but the cpu backend cannot capture graphs (use 'auto' or false)",
    );
    expect(() => new GraphCache(createCpuBackend(), 'yes' as never, 'train')).toThrow(
      `train: graph must be true, false or 'auto', got "yes"`,
    );
    const backend = recordingBackend();
    const cache = new GraphCache(backend, true, 'train');
    const body = () => backend.sync();
    cache.run('s', body);
    expect(() => cache.run('s', body)).toThrow('train: capturing the step failed: sync: not during capture');
  });

  it('false never captures', () => {
    const backend = recordingBackend();
    const cache = new GraphCache(backend, false, 'test');
    const { body } = doubler(backend);
    expect([cache.run('a', body).mode, cache.run('a', body).mode]).toEqual(['eager', 'eager']);
    expect(cache.enabled).toBe(false);
    expect(cache.error).toBeNull();
  });
});
