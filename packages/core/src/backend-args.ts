import type { DeviceBuffer, View } from './backend.js';
import { DTYPES, type DType, type RawArray } from './dtype.js';

/** What a kernel argument must hold: any dtype, a float storage dtype, exactly float32, or int32. */
export type BufferRole = 'any' | 'float' | 'float32' | 'int32';

/** The fields every backend's buffer class has, which the argument checks read. */
export interface OwnedBuffer extends DeviceBuffer {
  readonly owner: object;
  readonly freed: boolean;
}

/** The class of a backend's buffers (its `instanceof` marks a buffer of that backend). */
export type BufferClass<B extends OwnedBuffer = OwnedBuffer> = abstract new (...args: never[]) => B;

/**
 * What the argument checks know of one backend instance: its name (for messages), the dtypes it
 * stores, its buffer class, and the `owner` every buffer it allocates points to.
 */
export interface CheckContext {
  readonly name: string;
  readonly dtypes: readonly DType[];
  readonly bufferClass: BufferClass;
  readonly owner: object;
}

type RawArrayType = Float32ArrayConstructor | Uint16ArrayConstructor | Int32ArrayConstructor;

/** The host array that holds a dtype's raw bits (see `encode`): float16 and bfloat16 as Uint16Array. */
export const RAW_ARRAY: Readonly<Record<DType, RawArrayType>> = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int32: Int32Array,
};

/**
 * For backend authors: checks that `buf` is a live buffer of class `kind` allocated by `owner`,
 * with at least `need` elements of the right kind, and returns it typed. Errors name the kernel,
 * the argument and the backend.
 */
export function checkBufferArg<B extends OwnedBuffer>(
  kind: BufferClass<B>,
  backendName: string,
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: BufferRole,
): B {
  if (!(buf instanceof kind)) {
    throw new Error(
      `${kernel}: ${name} is not a buffer of the ${backendName} backend (got ${describe(buf)}): allocate it with this backend's alloc()`,
    );
  }
  if (buf.owner !== owner)
    throw new Error(`${kernel}: ${name} belongs to another ${backendName} backend instance: allocate it with this one`);
  if (buf.freed) throw new Error(`${kernel}: ${name} was used after free()`);
  if (buf.size < need) throw new Error(`${kernel}: ${name} has ${buf.size} elements but the parameters need at least ${need}`);
  if (role === 'float' ? buf.dtype === 'int32' : role !== 'any' && buf.dtype !== role) {
    const want = role === 'float' ? 'a float dtype (float32, float16, bfloat16)' : role;
    throw new Error(`${kernel}: ${name} has dtype ${buf.dtype} but must be ${want}`);
  }
  return buf;
}

/** `checkBufferArg` for the backend that `c` describes. */
export function checkBuffer(
  c: CheckContext,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: BufferRole,
): DeviceBuffer {
  return checkBufferArg(c.bufferClass, c.name, c.owner, kernel, name, buf, need, role);
}

/** An elementwise operand must have exactly the output's `size` elements. */
export function checkSameSize(kernel: string, name: string, buf: DeviceBuffer, size: number): void {
  if (buf.size !== size) {
    throw new Error(`${kernel}: ${name} has ${buf.size} elements but the output has ${size}: elementwise operands must have the same size`);
  }
}

/** Checks that every value of `params` is a non-negative safe integer. */
export function checkCounts(kernel: string, params: Record<string, number>): void {
  for (const key in params) checkCount(kernel, key, params[key]!);
}

/** Checks that `value` is a non-negative safe integer. */
export function checkCount(kernel: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${kernel}: ${name} must be a non-negative integer, got ${value}`);
}

/** Checks that `value` is a finite number. */
export function checkFinite(kernel: string, name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${kernel}: ${name} must be a finite number, got ${value}`);
}

/**
 * Checks a strided view of `shape` over a buffer of `size` elements: the view's shape equals
 * `shape`, one integer stride per dimension, a non-negative integer offset, and every element it
 * reaches inside the buffer. Returns the number of elements of `shape`.
 */
export function checkView(kernel: string, name: string, view: View, shape: readonly number[], size: number): number {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${kernel}: view shape [${shape.join(',')}] has a bad dimension ${d}`);
    count *= d;
  }
  if (view.shape !== shape && (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i]))) {
    throw new Error(`${kernel}: ${name} view has shape [${view.shape.join(',')}] but the op needs [${shape.join(',')}]`);
  }
  if (view.strides.length !== shape.length) {
    throw new Error(`${kernel}: ${name} view has ${view.strides.length} strides for ${shape.length} dimensions`);
  }
  if (!Number.isSafeInteger(view.offset) || view.offset < 0)
    throw new Error(`${kernel}: ${name} view offset must be a non-negative integer, got ${view.offset}`);
  let min = view.offset;
  let max = view.offset;
  for (let d = 0; d < shape.length; d++) {
    const s = view.strides[d]!;
    if (!Number.isSafeInteger(s)) throw new Error(`${kernel}: ${name} view stride ${s} is not an integer`);
    const reach = (shape[d]! - 1) * s;
    if (reach < 0) min += reach;
    else max += reach;
  }
  if (count > 0 && (min < 0 || max >= size)) {
    throw new Error(
      `${kernel}: ${name} view (shape [${shape.join(',')}], strides [${view.strides.join(',')}], offset ${view.offset}) reaches elements ${min}..${max} of a buffer of ${size}`,
    );
  }
  return count;
}

/** `alloc(dtype, size)`: a dtype the backend stores and a size that is a non-negative safe integer. */
export function checkAlloc(c: CheckContext, dtype: DType, size: number): void {
  if (!c.dtypes.includes(dtype)) {
    const known = typeof dtype === 'string' && (DTYPES as readonly string[]).includes(dtype);
    throw new Error(
      known
        ? `alloc: the ${c.name} backend does not store dtype ${dtype}: use one of ${c.dtypes.join(', ')}`
        : `alloc: dtype ${JSON.stringify(dtype)} is not supported: use one of ${c.dtypes.join(', ')}`,
    );
  }
  checkCount('alloc', 'size', size);
}

/** `write(buf, data, offset)`: a live buffer of this backend, raw bits of its dtype, and room for them at `offset`. */
export function checkWrite(c: CheckContext, buf: DeviceBuffer, data: RawArray, offset: number): void {
  checkBuffer(c, 'write', 'buf', buf, 0, 'any');
  const type = RAW_ARRAY[buf.dtype];
  if (!(data instanceof type)) {
    throw new Error(`write: a ${buf.dtype} buffer takes a ${type.name} of raw bits (see encode), got ${describe(data)}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > buf.size) {
    throw new Error(`write: ${data.length} elements at offset ${offset} do not fit in a buffer of ${buf.size}`);
  }
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}
