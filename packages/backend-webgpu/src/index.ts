/// <reference types="@webgpu/types" />
export { createWebGpuBackend, WebGpuBackend, type WebGpuBackendOptions } from './backend.js';
export { WebGpuBuffer } from './buffer.js';
export { webGpuAvailable } from './device.js';
