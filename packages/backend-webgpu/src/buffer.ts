import { bytesPerElement, type DeviceBuffer, type DType } from '@peft/core';

/**
 * A tensor's device memory: a GPUBuffer from the pool (STORAGE | COPY_SRC | COPY_DST). float16 and
 * bfloat16 pack two elements per 32-bit word (element i in the low half of word ⌊i/2⌋ when i is
 * even); `capacity` is the pooled buffer's byte size, at least the element bytes rounded up to 4.
 */
export class WebGpuBuffer implements DeviceBuffer {
  freed = false;

  constructor(
    /** The context of the backend that allocated this buffer; core's argument checks refuse buffers of other backends. */
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
    readonly gpu: GPUBuffer,
    readonly capacity: number,
  ) {}

  /** Bytes the elements occupy, rounded up to whole 32-bit words. */
  get byteLength(): number {
    return paddedBytes(this.dtype, this.size);
  }
}

/** Bytes of `size` elements of `dtype`, rounded up to a multiple of 4 (WebGPU copies move whole words). */
export function paddedBytes(dtype: DType, size: number): number {
  return Math.ceil((size * bytesPerElement(dtype)) / 4) * 4;
}
