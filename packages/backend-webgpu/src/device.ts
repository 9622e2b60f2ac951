/**
 * Getting a GPUDevice: the caller's own, `navigator.gpu` in a browser, or Dawn through the
 * `webgpu` package in Node (imported dynamically, so browser bundles never pull it in).
 */

export interface DeviceRequest {
  powerPreference?: GPUPowerPreference;
  /** The GPU entry point to request the adapter from (default: navigator.gpu, else the `webgpu` package in Node). */
  gpu?: GPU;
}

const IN_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** How to get WebGPU where this runs: browser settings in a browser, the `webgpu` package in Node. */
const HOW_TO = IN_NODE
  ? 'In Node install the optional peer dependency `webgpu` (npm i webgpu) and a GPU driver; on a machine without a GPU, ' +
    "SwiftShader works: install Debian's chromium package and libvulkan1, then set " +
    'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json and XDG_RUNTIME_DIR. ' +
    'Or pass your own GPUDevice: createWebGpuBackend({ device })'
  : 'Use a browser with WebGPU enabled: Chrome/Edge 113+ (or chrome://flags/#enable-unsafe-webgpu where the GPU is blocklisted), ' +
    'Safari 26+ (or Safari Technology Preview), Firefox 141+ on Windows (elsewhere Firefox Nightly with dom.webgpu.enabled). ' +
    'WebGPU needs a secure context (https or localhost). Or use the CPU backend, which runs in any browser.';

/** The GPU entry point of this environment: navigator.gpu, else the `webgpu` package in Node. */
export async function findGpu(): Promise<{ gpu: GPU; source: string } | { gpu: null; why: string }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, source: 'navigator.gpu' };
  if (!IN_NODE) return { gpu: null, why: 'navigator.gpu is undefined: this browser has no WebGPU (or it is disabled)' };
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    const name = 'webgpu';
    mod = await import(/* @vite-ignore */ name);
  } catch (err) {
    return { gpu: null, why: `the \`webgpu\` package could not be loaded (${(err as Error).message.split('\n')[0]})` };
  }
  // Dawn's classes (GPUBufferUsage, GPUMapMode, …) as globals, as a browser has them.
  for (const [key, value] of Object.entries(mod.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  nodeGpu ??= mod.create([]);
  return { gpu: nodeGpu, source: 'the webgpu package (Dawn)' };
}

let nodeGpu: GPU | null = null;

/** Requests an adapter and a device with the adapter's largest buffer and workgroup limits. */
export async function requestDevice(req: DeviceRequest = {}): Promise<GPUDevice> {
  const found = req.gpu ? { gpu: req.gpu, source: 'the given GPU object' } : await findGpu();
  if (found.gpu === null) throw new Error(`createWebGpuBackend: no WebGPU: ${found.why}. ${HOW_TO}`);
  const adapter = await found.gpu.requestAdapter(req.powerPreference ? { powerPreference: req.powerPreference } : {});
  if (!adapter) throw new Error(`createWebGpuBackend: ${found.source} has no GPU adapter. ${HOW_TO}`);
  const want = [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupsPerDimension',
  ] as const;
  const requiredLimits: Record<string, number> = {};
  for (const key of want) requiredLimits[key] = adapter.limits[key];
  return adapter.requestDevice({ requiredLimits, label: '@peft/backend-webgpu' });
}

/** Whether a WebGPU adapter can be had here (for tests that must skip visibly without one). */
export async function webGpuAvailable(): Promise<{ available: boolean; reason: string }> {
  try {
    const found = await findGpu();
    if (found.gpu === null) return { available: false, reason: found.why };
    const adapter = await found.gpu.requestAdapter();
    if (!adapter) return { available: false, reason: `${found.source} has no GPU adapter (${HOW_TO})` };
    return { available: true, reason: `adapter from ${found.source}` };
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
}
