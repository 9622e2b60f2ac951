export { type CpuBackend, type CpuBackendOptions, createCpuBackend } from './backend.js';
export { CpuBuffer } from './buffer.js';
export {
  BlasUnavailable,
  type ChosenSgemm,
  type CreateSgemmOptions,
  createSgemm,
  type GemmChoice,
  type GemmEngineInfo,
  type SgemmArgs,
  type SgemmEngine,
  sgemmReference,
} from './gemm/index.js';

import { registerBackend } from '@peft/core';
import { type CpuBackendOptions, createCpuBackend as create } from './backend.js';

registerBackend('cpu', (options) => create(options as CpuBackendOptions));
