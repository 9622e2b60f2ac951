import { type BufferRole, bytesPerElement, checkBufferArg, checkSameSize, type DeviceBuffer, type DType } from '@peft/core';
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
export type Role = BufferRole;

/** Checks that `buf` is a live CudaBuffer of `owner` with at least `need` elements of the right kind (see core's checkBufferArg). */
export function arg(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: Role,
): CudaBuffer {
  return checkBufferArg(CudaBuffer, 'cuda', owner, kernel, name, buf, need, role);
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
  checkSameSize(kernel, name, b, size);
  return b;
}

export { checkCounts as counts, checkFinite as finite } from '@peft/core';
