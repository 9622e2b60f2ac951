import { type BufferRole, bytesPerElement, checkBufferArg, checkSameSize, type DeviceBuffer, type DType } from '@peft/core';

/**
 * A tensor's device memory: a GPUBuffer from the pool (STORAGE | COPY_SRC | COPY_DST). float16 and
 * bfloat16 pack two elements per 32-bit word (element i in the low half of word ⌊i/2⌋ when i is
 * even); `capacity` is the pooled buffer's byte size, at least the element bytes rounded up to 4.
 */
export class WebGpuBuffer implements DeviceBuffer {
  freed = false;

  constructor(
    /** The backend that allocated this buffer; kernels refuse buffers of other backends. */
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

export const bpe = bytesPerElement;

/** What a kernel argument must hold: any dtype, a float storage dtype, exactly float32, or int32. */
export type Role = BufferRole;

/** Checks that `buf` is a live WebGpuBuffer of `owner` with at least `need` elements of the right kind (see core's checkBufferArg). */
export function arg(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: Role,
): WebGpuBuffer {
  return checkBufferArg(WebGpuBuffer, 'webgpu', owner, kernel, name, buf, need, role);
}

/** `arg` for elementwise operands: exactly `size` elements (the size of the output). */
export function same(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  size: number,
  role: Role,
): WebGpuBuffer {
  const b = arg(owner, kernel, name, buf, size, role);
  checkSameSize(kernel, name, b, size);
  return b;
}

export { checkCounts as counts, checkFinite as finite } from '@peft/core';
