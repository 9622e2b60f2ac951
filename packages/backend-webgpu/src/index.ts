/// <reference types="@webgpu/types" />
export { createWebGpuBackend, isCpuAdapter, type WebGpuBackend, type WebGpuBackendOptions } from './backend.js';
export { WebGpuBuffer } from './buffer.js';
export { webGpuAvailable } from './device.js';
export type { AttentionKind } from './kernels/attention.js';
export type { GemmKind } from './kernels/matmul.js';

import { registerBackend } from '@peft/core';
import { createWebGpuBackend as create, type WebGpuBackendOptions as Options } from './backend.js';

registerBackend('webgpu', (options) => create(options as Options));
