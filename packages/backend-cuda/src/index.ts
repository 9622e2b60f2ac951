export { type AllocatorStats, type Block, CachingAllocator } from './allocator.js';
export { type CudaAvailability, isAvailable } from './available.js';
export { type CudaBackend, type CudaBackendOptions, type CudaGraph, type CudaMemoryStats, createCudaBackend } from './backend.js';
export { CudaBuffer } from './buffer.js';
export type { GemmFallback } from './cublaslt.js';
export { CudaError, CudaUnavailable } from './driver.js';
export type { DeviceInfo } from './runtime.js';

import { registerBackend } from '@peft/core';
import { createCudaBackend as create, type CudaBackendOptions as Options } from './backend.js';

registerBackend('cuda', (options) => create(options as Options));
