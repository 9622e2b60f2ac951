import { type BufferRole, bytesPerElement, checkBufferArg, checkSameSize, type DeviceBuffer, type DType, type RawArray } from '@peft/core';

/** Host memory of one tensor: float32 as Float32Array, float16/bfloat16 as raw bits in Uint16Array, int32 as Int32Array. */
export class CpuBuffer implements DeviceBuffer {
  data: RawArray;
  freed = false;

  constructor(
    /** The backend state that allocated this buffer; kernels refuse buffers of other backends. */
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
  ) {
    this.data = dtype === 'float32' ? new Float32Array(size) : dtype === 'int32' ? new Int32Array(size) : new Uint16Array(size);
  }

  get byteLength(): number {
    return this.size * bytesPerElement(this.dtype);
  }
}

/** What kernels receive from the backend: its identity (buffer owner) and its GEMM engine. */
export interface CpuContext {
  readonly sgemm: import('./gemm/index.js').SgemmEngine;
}

/** What a kernel argument must hold: any dtype, a float storage dtype, exactly float32, or int32. */
export type Role = BufferRole;

/** Checks that `buf` is a live CpuBuffer of `owner` with at least `need` elements of the right kind (see core's checkBufferArg). */
export function arg(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  need: number,
  role: Role,
): CpuBuffer {
  return checkBufferArg(CpuBuffer, 'cpu', owner, kernel, name, buf, need, role);
}

/** `arg` for elementwise operands: exactly `size` elements (the size of the output). */
export function same(
  owner: object,
  kernel: string,
  name: string,
  buf: DeviceBuffer | null | undefined,
  size: number,
  role: Role,
): CpuBuffer {
  const b = arg(owner, kernel, name, buf, size, role);
  checkSameSize(kernel, name, b, size);
  return b;
}

export { checkCounts as counts, checkFinite as finite } from '@peft/core';
