import type { DeviceBuffer } from './backend.js';

/** What a kernel argument must hold: any dtype, a float storage dtype, exactly float32, or int32. */
export type BufferRole = 'any' | 'float' | 'float32' | 'int32';

/** The fields every backend's buffer class has, which the argument checks read. */
export interface OwnedBuffer extends DeviceBuffer {
  readonly owner: object;
  readonly freed: boolean;
}

/**
 * For backend authors: checks that `buf` is a live buffer of class `kind` allocated by `owner`,
 * with at least `need` elements of the right kind, and returns it typed. Errors name the kernel,
 * the argument and the backend.
 */
export function checkBufferArg<B extends OwnedBuffer>(
  kind: abstract new (...args: never[]) => B,
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

/** An elementwise operand must have exactly the output's `size` elements. */
export function checkSameSize(kernel: string, name: string, buf: DeviceBuffer, size: number): void {
  if (buf.size !== size) {
    throw new Error(`${kernel}: ${name} has ${buf.size} elements but the output has ${size}: elementwise operands must have the same size`);
  }
}

/** Checks that every value of `params` is a non-negative safe integer. */
export function checkCounts(kernel: string, params: Record<string, number>): void {
  for (const key in params) {
    const v = params[key];
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${kernel}: ${key} must be a non-negative integer, got ${v}`);
  }
}

/** Checks that `value` is a finite number. */
export function checkFinite(kernel: string, name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${kernel}: ${name} must be a finite number, got ${value}`);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}
