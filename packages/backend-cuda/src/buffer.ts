import { bytesPerElement, type DeviceBuffer, type DType } from '@peft/core';
import type { Block } from './allocator.js';

/** A tensor's device memory: a block of the caching allocator (256-byte aligned). */
export class CudaBuffer implements DeviceBuffer {
  freed = false;

  constructor(
    /** The backend that allocated this buffer; kernels refuse buffers of other backends. */
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
    readonly block: Block,
  ) {}

  /** Device address of element 0. */
  get ptr(): number {
    return this.block.ptr;
  }

  get byteLength(): number {
    return this.size * bytesPerElement(this.dtype);
  }
}

/** What a kernel argument must hold: any dtype, a float storage dtype, exactly float32, or int32. */
export type Role = 'any' | 'float' | 'float32' | 'int32';

/**
 * Checks that `buf` is a live CudaBuffer of `owner` with at least `need` elements of the right
 * kind, and returns it typed. Errors name the kernel and the argument.
 */
export function arg(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: Role,
): CudaBuffer {
  if (!(buf instanceof CudaBuffer)) {
    throw new Error(
      `${kernel}: ${name} is not a buffer of the cuda backend (got ${describe(buf)}): allocate it with this backend's alloc()`,
    );
  }
  if (buf.owner !== owner) throw new Error(`${kernel}: ${name} belongs to another cuda backend instance: allocate it with this one`);
  if (buf.freed) throw new Error(`${kernel}: ${name} was used after free()`);
  if (buf.size < need) throw new Error(`${kernel}: ${name} has ${buf.size} elements but the parameters need at least ${need}`);
  if (role === 'float' ? buf.dtype === 'int32' : role !== 'any' && buf.dtype !== role) {
    const want = role === 'float' ? 'a float dtype (float32, float16, bfloat16)' : role;
    throw new Error(`${kernel}: ${name} has dtype ${buf.dtype} but must be ${want}`);
  }
  return buf;
}

/** `arg` for elementwise operands: exactly `size` elements (the size of the output). */
export function same(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  size: number,
  role: Role,
): CudaBuffer {
  const b = arg(owner, kernel, name, buf, size, role);
  if (b.size !== size) {
    throw new Error(`${kernel}: ${name} has ${b.size} elements but the output has ${size}: elementwise operands must have the same size`);
  }
  return b;
}

/** Checks that every value of `params` is a non-negative safe integer. */
export function counts(kernel: string, params: Record<string, number>): void {
  for (const key in params) {
    const v = params[key];
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${kernel}: ${key} must be a non-negative integer, got ${v}`);
  }
}

/** Checks that `value` is a finite number. */
export function finite(kernel: string, name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${kernel}: ${name} must be a finite number, got ${value}`);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}
