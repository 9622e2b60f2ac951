export { CpuBackend, type CpuBackendOptions, createCpuBackend } from './backend.js';
export { CpuBuffer } from './buffer.js';
export { createSgemm } from './gemm/index.js';
