import { bytesPerElement, type DeviceBuffer, type DType } from '@peft/core';
import type { Block } from './allocator.js';

/** A tensor's device memory: a block of the caching allocator (256-byte aligned). */
export class CudaBuffer implements DeviceBuffer {
  freed = false;

  constructor(
    /** The backend state that allocated this buffer; core's checks refuse buffers of other backends. */
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
