export { CpuBackend, type CpuBackendOptions, createCpuBackend } from './backend.js';
export { CpuBuffer } from './buffer.js';
export { createSgemm } from './gemm/index.js';

import { registerBackend } from '@peft/core';
import { createCpuBackend as create } from './backend.js';

registerBackend('cpu', (options) => create(options as { threads?: number }));
