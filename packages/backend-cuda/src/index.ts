export { type AllocatorStats, type Block, CachingAllocator } from './allocator.js';
export { type CudaAvailability, isAvailable } from './available.js';
export { CudaBackend, type CudaBackendOptions, type CudaGraph, type CudaMemoryStats, createCudaBackend } from './backend.js';
export { CudaBuffer } from './buffer.js';
export { CudaError, CudaUnavailable } from './driver.js';
export type { DeviceInfo } from './runtime.js';
