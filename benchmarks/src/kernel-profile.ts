/**
 * Per-kernel times of a backend whose kernels run to completion before they return (the CPU
 * backend): every method of the Backend interface is wrapped and timed with performance.now().
 * The wrapped backend is used in place of the real one; kernels run on the real one, so buffers
 * keep their owner. Elementwise kernels are keyed by their op (`unary:exp`), matmul also by shape.
 */
import type { Backend, MatmulParams } from '@peft/core';
import type { KernelProfile, KernelTimes } from './cpu-step-job.js';

/** Methods that take an op name first: keyed `method:op`. */
const OP_FIRST = new Set(['unary', 'unaryBackward', 'binary', 'reduce']);

export interface ProfiledBackend {
  /** Use this in place of the backend. */
  backend: Backend;
  /** Drops what was counted so far (after the warm-up steps). */
  reset(): void;
  /** What was counted since the last reset, with the steps' wall time and count. */
  snapshot(stepMs: number, steps: number): KernelProfile;
}

export function matmulKey(p: MatmulParams): string {
  return `${p.m}×${p.n}×${p.k}${p.transA ? ' tA' : ''}${p.transB ? ' tB' : ''}${p.batch > 1 ? ` b${p.batch}` : ''}${p.accumulate ? ' +=' : ''}`;
}

export function profileBackend(target: Backend): ProfiledBackend {
  let kernels = new Map<string, KernelTimes>();
  let matmul = new Map<string, KernelTimes & { flops: number }>();
  const wrapped = new Map<PropertyKey, unknown>();
  const add = (key: string, ms: number) => {
    const k = kernels.get(key);
    if (k) {
      k.calls++;
      k.ms += ms;
    } else kernels.set(key, { calls: 1, ms });
  };
  const backend = new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (typeof value !== 'function' || prop === 'constructor') return value;
      let fn = wrapped.get(prop) as ((...args: unknown[]) => unknown) | undefined;
      if (!fn) {
        const name = String(prop);
        fn = (...args: unknown[]) => {
          const t0 = performance.now();
          const out = (value as (...a: unknown[]) => unknown).apply(t, args);
          const ms = performance.now() - t0;
          add(OP_FIRST.has(name) ? `${name}:${String(args[0])}` : name, ms);
          if (name === 'matmul') {
            const p = args[3] as MatmulParams;
            const key = matmulKey(p);
            const flops = 2 * p.batch * p.m * p.n * p.k;
            const m = matmul.get(key);
            if (m) {
              m.calls++;
              m.ms += ms;
            } else matmul.set(key, { calls: 1, ms, flops });
          }
          return out;
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
  return {
    backend,
    reset() {
      kernels = new Map();
      matmul = new Map();
    },
    snapshot(stepMs, steps) {
      return { kernels: Object.fromEntries(kernels), matmul: Object.fromEntries(matmul), stepMs, steps };
    },
  };
}

export interface ProfileRow {
  kernel: string;
  callsPerStep: number;
  msPerStep: number;
  /** Of the steps' wall time. */
  share: number;
}

/** Kernels by time, largest first, and the time outside every kernel (autograd, ops, allocation in JS) as the last row. */
export function profileRows(p: KernelProfile): ProfileRow[] {
  const steps = Math.max(1, p.steps);
  const rows = Object.entries(p.kernels)
    .map(([kernel, k]) => ({ kernel, callsPerStep: k.calls / steps, msPerStep: k.ms / steps, share: p.stepMs > 0 ? k.ms / p.stepMs : 0 }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
  const inKernels = rows.reduce((s, r) => s + r.msPerStep * steps, 0);
  const outside = Math.max(0, p.stepMs - inKernels);
  rows.push({ kernel: '(outside kernels)', callsPerStep: 0, msPerStep: outside / steps, share: p.stepMs > 0 ? outside / p.stepMs : 0 });
  return rows;
}

/** Matmul shapes by time, largest first, with their GFLOP/s. */
export function matmulRows(p: KernelProfile): { shape: string; callsPerStep: number; msPerStep: number; share: number; gflops: number }[] {
  const steps = Math.max(1, p.steps);
  return Object.entries(p.matmul)
    .map(([shape, m]) => ({
      shape,
      callsPerStep: m.calls / steps,
      msPerStep: m.ms / steps,
      share: p.stepMs > 0 ? m.ms / p.stepMs : 0,
      gflops: m.ms > 0 ? (m.flops * m.calls) / (m.ms / 1000) / 1e9 : 0,
    }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
}
