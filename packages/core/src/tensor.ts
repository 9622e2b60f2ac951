import type { TapeNode } from './autograd/tape.js';
import type { Backend, DeviceBuffer } from './backend.js';
import { bytesPerElement, type DType, decode, encode, type RawArray, type ValueArray } from './dtype.js';
import { trackCreated, trackDisposed } from './memory.js';

let nextTensorId = 1;

/** Device memory shared by a tensor and its reshaped views; freed when the last handle lets go. */
export class Storage {
  refs = 1;
  constructor(
    readonly backend: Backend,
    readonly buffer: DeviceBuffer,
  ) {}

  get bytes(): number {
    return this.buffer.size * bytesPerElement(this.buffer.dtype);
  }

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) this.backend.free(this.buffer);
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function checkShape(shape: readonly number[], where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`${where}: shape ${formatShape(shape)} has ${d}: dimensions must be non-negative integers`);
  }
}

/**
 * A handle to an n-dimensional array in a backend's memory. Contiguous, row-major. Everything
 * but reading back (`await t.data()`) only enqueues work on the backend.
 */
export class Tensor {
  readonly id = nextTensorId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: Backend;
  /** Gradients flow to this tensor in `backward`. Leaves that require grad get `.grad`. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf (or of a tensor with `retainGrad`) after `backward`. Owned by this tensor. */
  grad: Tensor | null = null;
  /** Keep this non-leaf tensor's gradient in `.grad` during backward (PyTorch's `retain_grad()`). */
  retainGrad = false;
  /** Optional label shown in error messages (parameters carry their dotted name). */
  name: string | undefined;
  /** @internal the tape node that produced this tensor, if it was recorded. */
  node: TapeNode | null = null;
  #storage: Storage | null;

  /** @internal use the creation functions (`tensor`, `zeros`, …) or ops instead. */
  constructor(storage: Storage, shape: readonly number[], dtype: DType) {
    if (shapeSize(shape) !== storage.buffer.size) {
      throw new Error(`tensor of shape ${formatShape(shape)} needs ${shapeSize(shape)} elements, its buffer has ${storage.buffer.size}`);
    }
    this.#storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.backend = storage.backend;
    trackCreated(this, storage);
  }

  get size(): number {
    return this.#storage ? this.#storage.buffer.size : shapeSize(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.#storage === null;
  }

  /** A short description for error messages: `tensor #12 "w" [2, 3] float32`. */
  describe(): string {
    return `tensor #${this.id}${this.name ? ` "${this.name}"` : ''} ${formatShape(this.shape)} ${this.dtype}`;
  }

  /** @internal the storage, or an error naming `op` if this tensor was disposed. */
  storage(op = 'use'): Storage {
    if (!this.#storage) throw new Error(`${op}: ${this.describe()} was disposed and cannot be used`);
    return this.#storage;
  }

  /** @internal the device buffer, checked for disposal. */
  buffer(op = 'use'): DeviceBuffer {
    return this.storage(op).buffer;
  }

  /** Reads the values back: Float32Array for float dtypes, Int32Array for int32. */
  async data(): Promise<ValueArray> {
    return decode(await this.raw(), this.dtype);
  }

  /** Reads the raw storage bits back (Uint16Array for float16/bfloat16). */
  async raw(): Promise<RawArray> {
    const storage = this.storage('data');
    return storage.backend.read(storage.buffer);
  }

  /** Reads a one-element tensor back as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: ${this.describe()} has ${this.size} elements, expected exactly 1`);
    return (await this.data())[0]!;
  }

  /** Reads the values back as nested arrays. */
  async array(): Promise<unknown> {
    const flat = Array.from(await this.data());
    if (this.rank === 0) return flat[0];
    const build = (dim: number, offset: number): unknown[] => {
      const n = this.shape[dim]!;
      const stride = shapeSize(this.shape.slice(dim + 1));
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(dim === this.rank - 1 ? flat[offset + i] : build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  /** Releases this handle (and its gradient). The memory is freed when no view or saved copy still uses it. Idempotent. */
  dispose(): void {
    if (!this.#storage) return;
    const storage = this.#storage;
    this.#storage = null;
    this.node = null;
    trackDisposed(this, storage);
    storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** @internal a new handle on the same storage (for views and for tensors saved by autograd). */
  share(shape: readonly number[] = this.shape): Tensor {
    const storage = this.storage('share').retain();
    return new Tensor(storage, shape, this.dtype);
  }
}

export interface CreateOptions {
  backend: Backend;
  dtype?: DType;
  requiresGrad?: boolean;
  name?: string;
}

/** @internal allocates an uninitialised tensor on `backend`. */
export function empty(backend: Backend, shape: readonly number[], dtype: DType, op = 'empty'): Tensor {
  checkShape(shape, op);
  if (!backend.dtypes.includes(dtype)) {
    throw new Error(`${op}: backend "${backend.name}" does not store ${dtype}: it stores ${backend.dtypes.join(', ')}`);
  }
  const buffer = backend.alloc(dtype, shapeSize(shape));
  return new Tensor(new Storage(backend, buffer), shape, dtype);
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  if (opts.name !== undefined) t.name = opts.name;
  return t;
}

/** A tensor holding `values` (numbers or a typed array of values), rounded to `dtype` (default float32). */
export function tensor(values: ArrayLike<number>, shape: readonly number[], opts: CreateOptions): Tensor {
  const dtype = opts.dtype ?? 'float32';
  checkShape(shape, 'tensor');
  if (values.length !== shapeSize(shape)) {
    throw new Error(`tensor: ${values.length} values do not fill shape ${formatShape(shape)} (${shapeSize(shape)} elements)`);
  }
  const t = empty(opts.backend, shape, dtype, 'tensor');
  if (values.length > 0) opts.backend.write(t.buffer(), encode(values, dtype));
  return finish(t, opts);
}

/** A tensor from raw storage bits (Uint16Array for float16/bfloat16), as read from a checkpoint. */
export function fromRaw(raw: RawArray, shape: readonly number[], opts: CreateOptions & { dtype: DType }): Tensor {
  const t = empty(opts.backend, shape, opts.dtype, 'fromRaw');
  if (raw.length !== t.size) throw new Error(`fromRaw: ${raw.length} elements do not fill shape ${formatShape(shape)}`);
  const expected = opts.dtype === 'float32' ? Float32Array : opts.dtype === 'int32' ? Int32Array : Uint16Array;
  if (!(raw instanceof expected)) {
    t.dispose();
    throw new Error(`fromRaw: ${opts.dtype} storage needs a ${expected.name}, got ${raw.constructor.name}`);
  }
  if (raw.length > 0) opts.backend.write(t.buffer(), raw);
  return finish(t, opts);
}

export function full(shape: readonly number[], value: number, opts: CreateOptions): Tensor {
  const t = empty(opts.backend, shape, opts.dtype ?? 'float32', 'full');
  if (t.size > 0) opts.backend.fill(t.buffer(), value);
  return finish(t, opts);
}

export function zeros(shape: readonly number[], opts: CreateOptions): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: readonly number[], opts: CreateOptions): Tensor {
  return full(shape, 1, opts);
}

export function scalar(value: number, opts: CreateOptions): Tensor {
  return tensor([value], [], opts);
}

/** Copies `t` to another backend (reads it back, then uploads). */
export async function toBackend(t: Tensor, backend: Backend): Promise<Tensor> {
  const raw = await t.raw();
  return fromRaw(raw, t.shape, { backend, dtype: t.dtype });
}
