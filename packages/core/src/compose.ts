/**
 * Builds a `Backend` from its parts, so that a backend package writes only what is its own:
 * memory management, and one implementation per kernel grouped by op family. Every argument check
 * lives in core (kernel-checks.ts, backend-args.ts) and runs here, before the implementation.
 *
 * For backend authors, a backend is composed like this (the CPU backend is the worked example):
 *
 * ```ts
 * // kernels/rotary.ts: a family of kernel implementations. Each takes the backend's context
 * // first, then the kernel's arguments, already checked: it only casts the buffers.
 * export const rotaryKernels = {
 *   rotary(ctx: MyContext, out, x, positions, p) { const o = out as MyBuffer; … },
 *   rotaryBackward(ctx: MyContext, dx, dy, positions, p) { … },
 * } satisfies KernelFamily<MyContext>;
 *
 * // backend.ts
 * export function createMyBackend(): MyBackend {
 *   const ctx: MyContext = { … };            // what the kernels share: device, pools, engines
 *   return composeBackend({
 *     name: 'mine',
 *     dtypes: DTYPES,
 *     bufferClass: MyBuffer,                 // buffers are `instanceof` this …
 *     owner: ctx,                            // … and point to this object through `owner`
 *     context: ctx,                          // (omitted: kernels get the composed backend itself)
 *     memory: { alloc, write, read, free, memory, resetPeak, sync, destroy },
 *     kernels: kernelTable('mine', families), // import * as families from './kernels/index.js'
 *     extras: { engineInfo },                // extra members of the returned object
 *   });
 * }
 * ```
 *
 * What the composed backend does before calling a part:
 * - every kernel: `alive(kernel)` when given, then `kernelChecks[kernel]`, which checks each
 *   parameter and each buffer (a `bufferClass` instance whose `owner` is `owner`, not freed, with
 *   the elements and role the parameters need, exact sizes for elementwise operands);
 * - `alloc`: not destroyed, `alive`, a dtype from `dtypes` and a non-negative integer size;
 * - `write`: `alive`, the buffer as above, raw bits of its dtype (`RAW_ARRAY`), room at `offset`;
 * - `read`: `alive` and the buffer, an error as a rejected promise;
 * - `free`: the buffer; a second free is an error, a free after `destroy()` does nothing;
 * - `sync`: `alive`, an error as a rejected promise; `destroy`: only once;
 * - `captureGraph`: present only when the memory part has it, after `alive`.
 * Parts therefore receive buffers of their own class (cast them) and parameters they may trust.
 * A check that needs a buffer's contents (ids or targets in range) stays in the backend that can
 * read them. The wrappers allocate nothing per call: the training step makes thousands of calls.
 */
import type { Backend, BackendGraph, BackendMemory, CaptureOptions } from './backend.js';
import { type BufferClass, type CheckContext, checkAlloc, checkBuffer, checkWrite, type OwnedBuffer } from './backend-args.js';
import type { DType, RawArray } from './dtype.js';
import { kernelChecks as checks, type KernelName } from './kernel-checks.js';

/** A kernel implementation: the backend's context, then the kernel's (checked) arguments. */
export type KernelImpl<C, K extends KernelName> = (ctx: C, ...args: Parameters<Backend[K]>) => void;
/** One implementation for every kernel of `Backend`. */
export type KernelImpls<C> = { readonly [K in KernelName]: KernelImpl<C, K> };
/** Some kernels' implementations: what one family file (`kernels/<family>.ts`) exports. */
export type KernelFamily<C> = Partial<KernelImpls<C>>;

/** A backend's memory management; each method receives arguments already checked (see above). */
export interface MemoryParts<B extends OwnedBuffer> {
  alloc(dtype: DType, size: number): B;
  write(buf: B, data: RawArray, offset: number): void;
  read(buf: B): Promise<RawArray>;
  free(buf: B): void;
  memory(): BackendMemory;
  resetPeak(): void;
  sync(): Promise<void>;
  /** Frees everything the backend holds; called once. */
  destroy(): void;
  captureGraph?(fn: () => void, options?: CaptureOptions): BackendGraph;
}

export interface BackendParts<B extends OwnedBuffer, C, E extends object> {
  readonly name: string;
  readonly dtypes: readonly DType[];
  /** The class of this backend's buffers. */
  readonly bufferClass: BufferClass<B>;
  /** The object every buffer this backend allocates holds as `owner`. */
  readonly owner: object;
  /** Passed first to every kernel implementation; when omitted, the composed backend itself (with its extras). */
  readonly context?: C;
  /** Throws when the backend can no longer do `what` (a lost device); called first by every kernel and by alloc, write, read and sync. */
  readonly alive?: (what: string) => void;
  readonly memory: MemoryParts<B>;
  readonly kernels: KernelImpls<C>;
  /** Further members of the returned object (engine information, backend-specific methods). */
  readonly extras?: E;
}

const noop = (_what: string): void => {};

type DataKernel =
  | 'fill'
  | 'copy'
  | 'addInto'
  | 'unary'
  | 'affine'
  | 'binary'
  | 'reduce'
  | 'argmax'
  | 'matmul'
  | 'embedding'
  | 'embeddingBackward';

/**
 * The kernel table of a backend from its families: `families` is the namespace of the backend's
 * `kernels/index.ts` (`import * as families from './kernels/index.js'`), each export one
 * `KernelFamily`. Every kernel of `Backend` must be implemented by exactly one family; an error
 * names the kernels missing or implemented twice.
 */
export function kernelTable<C>(backendName: string, families: Readonly<Record<string, KernelFamily<C>>>): KernelImpls<C> {
  const table: Record<string, unknown> = {};
  const from = new Map<string, string>();
  const twice: string[] = [];
  for (const [family, impls] of Object.entries(families)) {
    for (const [kernel, impl] of Object.entries(impls)) {
      if (typeof impl !== 'function') continue;
      const first = from.get(kernel);
      if (first !== undefined) twice.push(`${kernel} (${first} and ${family})`);
      from.set(kernel, family);
      table[kernel] = impl;
    }
  }
  const missing = (Object.keys(checks) as KernelName[]).filter((k) => !from.has(k));
  if (missing.length > 0 || twice.length > 0) {
    throw new Error(
      `${backendName} backend: ${missing.length > 0 ? `no family implements ${missing.join(', ')}` : ''}` +
        `${missing.length > 0 && twice.length > 0 ? '; ' : ''}${twice.length > 0 ? `implemented twice: ${twice.join(', ')}` : ''}`,
    );
  }
  return table as KernelImpls<C>;
}

/** The `Backend` made of `parts`, with every argument checked before a part is called (see the top of this file). */
export function composeBackend<B extends OwnedBuffer, C, E extends object = Record<never, never>>(
  parts: BackendParts<B, C, E>,
): Backend & E {
  const c: CheckContext = { name: parts.name, dtypes: parts.dtypes, bufferClass: parts.bufferClass, owner: parts.owner };
  const to = { context: parts.context as C };
  const backend = {
    ...(parts.extras as E),
    name: parts.name,
    dtypes: parts.dtypes,
    ...memoryOf(c, parts),
    ...dataKernelsOf(c, parts, to),
    ...layerKernelsOf(c, parts, to),
  };
  if (parts.context === undefined) to.context = backend as C;
  return backend as Backend & E;
}

function memoryOf<B extends OwnedBuffer, C, E extends object>(c: CheckContext, parts: BackendParts<B, C, E>) {
  const { memory: m, bufferClass, owner } = parts;
  const alive = parts.alive ?? noop;
  let destroyed = false;
  const capture = m.captureGraph?.bind(m);
  return {
    alloc(dtype: DType, size: number): B {
      if (destroyed) throw new Error(`alloc: this ${c.name} backend was destroyed: create a new one`);
      alive('alloc');
      checkAlloc(c, dtype, size);
      return m.alloc(dtype, size);
    },
    write(buf: B, data: RawArray, offset = 0): void {
      alive('write');
      checkWrite(c, buf, data, offset);
      m.write(buf, data, offset);
    },
    read(buf: B): Promise<RawArray> {
      try {
        alive('read');
        checkBuffer(c, 'read', 'buf', buf, 0, 'any');
      } catch (err) {
        return Promise.reject(err);
      }
      return m.read(buf);
    },
    free(buf: B): void {
      if (buf instanceof bufferClass && buf.owner === owner && buf.freed) {
        // destroy() released everything; handles that outlive the backend let go without error.
        if (destroyed) return;
        throw new Error('free: this buffer was already freed');
      }
      checkBuffer(c, 'free', 'buf', buf, 0, 'any');
      m.free(buf);
    },
    memory: (): BackendMemory => m.memory(),
    resetPeak: (): void => m.resetPeak(),
    sync(): Promise<void> {
      try {
        alive('sync');
      } catch (err) {
        return Promise.reject(err);
      }
      return m.sync();
    },
    destroy(): void {
      if (destroyed) return;
      m.destroy();
      destroyed = true;
    },
    ...(capture === undefined
      ? {}
      : {
          captureGraph(fn: () => void, options?: CaptureOptions): BackendGraph {
            alive('captureGraph');
            return capture(fn, options);
          },
        }),
  };
}

/**
 * Each kernel of data movement, elementwise, matmul and gather: `alive`, its check, its
 * implementation. Written out one by one: no rest arguments, no per-call allocation.
 */
function dataKernelsOf<B extends OwnedBuffer, C, E extends object>(
  c: CheckContext,
  parts: BackendParts<B, C, E>,
  to: { context: C },
): Pick<Backend, DataKernel> {
  const k = parts.kernels;
  const alive = parts.alive ?? noop;
  return {
    fill(out, value) {
      alive('fill');
      checks.fill(c, out, value);
      k.fill(to.context, out, value);
    },
    copy(out, src, view) {
      alive('copy');
      checks.copy(c, out, src, view);
      k.copy(to.context, out, src, view);
    },
    addInto(dst, src, view) {
      alive('addInto');
      checks.addInto(c, dst, src, view);
      k.addInto(to.context, dst, src, view);
    },
    unary(op, out, a) {
      alive('unary');
      checks.unary(c, op, out, a);
      k.unary(to.context, op, out, a);
    },
    affine(out, a, alpha, beta) {
      alive('affine');
      checks.affine(c, out, a, alpha, beta);
      k.affine(to.context, out, a, alpha, beta);
    },
    binary(op, out, a, aView, b, bView) {
      alive('binary');
      checks.binary(c, op, out, a, aView, b, bView);
      k.binary(to.context, op, out, a, aView, b, bView);
    },
    reduce(op, out, a, outer, len, inner) {
      alive('reduce');
      checks.reduce(c, op, out, a, outer, len, inner);
      k.reduce(to.context, op, out, a, outer, len, inner);
    },
    argmax(out, a, rows, cols) {
      alive('argmax');
      checks.argmax(c, out, a, rows, cols);
      k.argmax(to.context, out, a, rows, cols);
    },
    matmul(out, a, b, p) {
      alive('matmul');
      checks.matmul(c, out, a, b, p);
      k.matmul(to.context, out, a, b, p);
    },
    embedding(out, weight, ids, n, dim) {
      alive('embedding');
      checks.embedding(c, out, weight, ids, n, dim);
      k.embedding(to.context, out, weight, ids, n, dim);
    },
    embeddingBackward(dWeight, dOut, ids, n, dim) {
      alive('embeddingBackward');
      checks.embeddingBackward(c, dWeight, dOut, ids, n, dim);
      k.embeddingBackward(to.context, dWeight, dOut, ids, n, dim);
    },
  };
}

/** The kernels of norms, rotary, attention, activations, loss, randomness and the optimizer, as `dataKernelsOf`. */
function layerKernelsOf<B extends OwnedBuffer, C, E extends object>(
  c: CheckContext,
  parts: BackendParts<B, C, E>,
  to: { context: C },
): Pick<Backend, Exclude<KernelName, DataKernel>> {
  const k = parts.kernels;
  const alive = parts.alive ?? noop;
  return {
    layerNorm(out, mean, rstd, a, weight, bias, p) {
      alive('layerNorm');
      checks.layerNorm(c, out, mean, rstd, a, weight, bias, p);
      k.layerNorm(to.context, out, mean, rstd, a, weight, bias, p);
    },
    layerNormBackward(dx, dWeight, dBias, dy, a, weight, mean, rstd, p) {
      alive('layerNormBackward');
      checks.layerNormBackward(c, dx, dWeight, dBias, dy, a, weight, mean, rstd, p);
      k.layerNormBackward(to.context, dx, dWeight, dBias, dy, a, weight, mean, rstd, p);
    },
    rmsNorm(out, rstd, a, weight, p) {
      alive('rmsNorm');
      checks.rmsNorm(c, out, rstd, a, weight, p);
      k.rmsNorm(to.context, out, rstd, a, weight, p);
    },
    rmsNormBackward(dx, dWeight, dy, a, weight, rstd, p) {
      alive('rmsNormBackward');
      checks.rmsNormBackward(c, dx, dWeight, dy, a, weight, rstd, p);
      k.rmsNormBackward(to.context, dx, dWeight, dy, a, weight, rstd, p);
    },
    rotary(out, a, positions, p) {
      alive('rotary');
      checks.rotary(c, out, a, positions, p);
      k.rotary(to.context, out, a, positions, p);
    },
    rotaryBackward(dx, dy, positions, p) {
      alive('rotaryBackward');
      checks.rotaryBackward(c, dx, dy, positions, p);
      k.rotaryBackward(to.context, dx, dy, positions, p);
    },
    attention(out, lse, q, kk, v, mask, p) {
      alive('attention');
      checks.attention(c, out, lse, q, kk, v, mask, p);
      k.attention(to.context, out, lse, q, kk, v, mask, p);
    },
    attentionBackward(dq, dk, dv, dOut, q, kk, v, out, lse, mask, p) {
      alive('attentionBackward');
      checks.attentionBackward(c, dq, dk, dv, dOut, q, kk, v, out, lse, mask, p);
      k.attentionBackward(to.context, dq, dk, dv, dOut, q, kk, v, out, lse, mask, p);
    },
    gelu(out, a, approximate) {
      alive('gelu');
      checks.gelu(c, out, a, approximate);
      k.gelu(to.context, out, a, approximate);
    },
    geluBackward(dx, dy, a, approximate) {
      alive('geluBackward');
      checks.geluBackward(c, dx, dy, a, approximate);
      k.geluBackward(to.context, dx, dy, a, approximate);
    },
    siluMul(out, gate, up) {
      alive('siluMul');
      checks.siluMul(c, out, gate, up);
      k.siluMul(to.context, out, gate, up);
    },
    siluMulBackward(dGate, dUp, dy, gate, up) {
      alive('siluMulBackward');
      checks.siluMulBackward(c, dGate, dUp, dy, gate, up);
      k.siluMulBackward(to.context, dGate, dUp, dy, gate, up);
    },
    unaryBackward(op, dx, dy, a, y) {
      alive('unaryBackward');
      checks.unaryBackward(c, op, dx, dy, a, y);
      k.unaryBackward(to.context, op, dx, dy, a, y);
    },
    crossEntropy(loss, lse, logits, targets, p) {
      alive('crossEntropy');
      checks.crossEntropy(c, loss, lse, logits, targets, p);
      k.crossEntropy(to.context, loss, lse, logits, targets, p);
    },
    crossEntropyBackward(dLogits, dLoss, logits, targets, lse, p) {
      alive('crossEntropyBackward');
      checks.crossEntropyBackward(c, dLogits, dLoss, logits, targets, lse, p);
      k.crossEntropyBackward(to.context, dLogits, dLoss, logits, targets, lse, p);
    },
    random(out, p) {
      alive('random');
      checks.random(c, out, p);
      k.random(to.context, out, p);
    },
    dropout(out, a, p) {
      alive('dropout');
      checks.dropout(c, out, a, p);
      k.dropout(to.context, out, a, p);
    },
    dropoutBackward(dx, dy, p) {
      alive('dropoutBackward');
      checks.dropoutBackward(c, dx, dy, p);
      k.dropoutBackward(to.context, dx, dy, p);
    },
    rowDropout(out, a, streamKeys, rowKeys, p) {
      alive('rowDropout');
      checks.rowDropout(c, out, a, streamKeys, rowKeys, p);
      k.rowDropout(to.context, out, a, streamKeys, rowKeys, p);
    },
    rowDropoutBackward(dx, dy, streamKeys, rowKeys, p) {
      alive('rowDropoutBackward');
      checks.rowDropoutBackward(c, dx, dy, streamKeys, rowKeys, p);
      k.rowDropoutBackward(to.context, dx, dy, streamKeys, rowKeys, p);
    },
    adamw(param, grad, m, v, p, scalars) {
      alive('adamw');
      checks.adamw(c, param, grad, m, v, p, scalars);
      k.adamw(to.context, param, grad, m, v, p, scalars);
    },
  };
}
