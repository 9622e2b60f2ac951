/**
 * Whether this machine can run the CUDA backend, and why not: never throws, never leaves
 * anything allocated. Checks, in order: koffi loads, libcuda.so.1 loads and cuInit succeeds, the
 * driver sees a GPU (the requested one), and the kernels were built (fatbin/manifest.json).
 */
import { CudaUnavailable, check, formatVersion, loadDriver } from './driver.js';
import { deviceInfo, fatbinDir, readManifest } from './runtime.js';

export interface CudaAvailability {
  available: boolean;
  /** Why not (when unavailable), or which GPU and driver (when available). */
  reason?: string;
  /** The GPUs the driver sees: "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)". */
  devices?: string[];
}

export function isAvailable(opts: { deviceIndex?: number } = {}): CudaAvailability {
  try {
    const d = loadDriver();
    const count = [0];
    check(d, d.cuDeviceGetCount(count), 'cuDeviceGetCount');
    if (count[0] === 0) return { available: false, reason: 'the CUDA driver is installed but sees no GPU (cuDeviceGetCount = 0)' };
    const devices: string[] = [];
    let driverVersion = 0;
    for (let i = 0; i < count[0]; i++) {
      const dev = [0];
      check(d, d.cuDeviceGet(dev, i), 'cuDeviceGet');
      const info = deviceInfo(d, dev[0], i);
      driverVersion = info.driverVersion;
      devices.push(`${info.name} (sm_${info.computeCapability.join('')}, ${(info.totalBytes / 2 ** 30).toFixed(1)} GiB)`);
    }
    const index = opts.deviceIndex ?? 0;
    if (index < 0 || index >= count[0]) {
      return { available: false, reason: `there is no GPU ${index}: the driver sees ${count[0]} (${devices.join('; ')})`, devices };
    }
    if (!readManifest()) {
      return {
        available: false,
        reason: `the CUDA kernels are not built (no ${fatbinDir()}manifest.json): run \`pnpm --filter @peft/backend-cuda build:kernels\` (needs nvcc) or reinstall the package`,
        devices,
      };
    }
    return { available: true, reason: `GPU ${index}: ${devices[index]}, driver ${formatVersion(driverVersion)}`, devices };
  } catch (err) {
    return { available: false, reason: err instanceof CudaUnavailable ? err.reason : `CUDA check failed: ${(err as Error).message}` };
  }
}
