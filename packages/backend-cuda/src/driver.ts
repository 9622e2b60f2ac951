/**
 * The CUDA driver API (libcuda.so.1) over koffi: the declarations this backend needs, written
 * from cuda.h (CUDA 12/13; only entry points that exist in both, with their versioned names).
 * Nothing here runs at import: `loadDriver()` loads koffi and libcuda on first call and throws a
 * `CudaUnavailable` that says what is missing; `isAvailable()` (available.ts) turns that into a reason.
 *
 * Types: CUresult is an int; CUdevice an int; CUdeviceptr a uint64 (a Number: device addresses
 * are below 2⁵³); every other handle (context, stream, event, module, function, graph) a
 * `void *`, which koffi 3 gives as a BigInt.
 */
import { createRequire } from 'node:module';

export type Ptr = bigint | null;
/** koffi's module, typed loosely (we only use load/alloc/view/address). */
// biome-ignore lint/suspicious/noExplicitAny: koffi's functions are declared from C strings at run time.
export type Koffi = any;
// biome-ignore lint/suspicious/noExplicitAny: the same: a C function declared from a string.
type Fn = (...args: any[]) => any;

export const CUDA_SUCCESS = 0;
export const CUDA_ERROR_NOT_READY = 600;
/**
 * Errors that poison the context (cuda.h: "the process must be terminated and relaunched", or the
 * context destroyed): every later call answers the same error. ECC_UNCORRECTABLE 214,
 * ILLEGAL_ADDRESS 700, LAUNCH_TIMEOUT 702, ASSERT 710, HARDWARE_STACK_ERROR 714,
 * ILLEGAL_INSTRUCTION 715, MISALIGNED_ADDRESS 716, INVALID_ADDRESS_SPACE 717, INVALID_PC 718,
 * LAUNCH_FAILED 719.
 */
export const STICKY_ERRORS: ReadonlySet<number> = new Set([214, 700, 702, 710, 714, 715, 716, 717, 718, 719]);

/** Thrown when koffi, libcuda or a device cannot be had; `reason` is a sentence for the user. */
export class CudaUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'CudaUnavailable';
  }
}

export class CudaError extends Error {
  constructor(
    readonly code: number,
    readonly call: string,
    message: string,
  ) {
    super(message);
    this.name = 'CudaError';
  }
}

let koffiModule: Koffi | null = null;

/** koffi, loaded on first use (its native addon would fail on an unsupported platform). */
export function loadKoffi(): Koffi {
  if (koffiModule) return koffiModule;
  try {
    const require = createRequire(import.meta.url);
    koffiModule = require('koffi');
  } catch (err) {
    throw new CudaUnavailable(
      `the koffi package (FFI) could not be loaded: ${(err as Error).message.split('\n')[0]}. Reinstall @peft/backend-cuda so that koffi and its platform package (@koromix/koffi-<os>-<arch>) are installed`,
    );
  }
  return koffiModule;
}

const DRIVER_DECLS = {
  cuInit: 'int cuInit(unsigned int flags)',
  cuDriverGetVersion: 'int cuDriverGetVersion(_Out_ int *version)',
  cuGetErrorName: 'int cuGetErrorName(int error, _Out_ const char **str)',
  cuGetErrorString: 'int cuGetErrorString(int error, _Out_ const char **str)',
  cuDeviceGetCount: 'int cuDeviceGetCount(_Out_ int *count)',
  cuDeviceGet: 'int cuDeviceGet(_Out_ int *device, int ordinal)',
  cuDeviceGetName: 'int cuDeviceGetName(void *name, int len, int dev)',
  cuDeviceGetAttribute: 'int cuDeviceGetAttribute(_Out_ int *pi, int attrib, int dev)',
  cuDeviceTotalMem: 'int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)',
  cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ void **pctx, int dev)',
  cuDevicePrimaryCtxRelease: 'int cuDevicePrimaryCtxRelease_v2(int dev)',
  cuDevicePrimaryCtxGetState: 'int cuDevicePrimaryCtxGetState(int dev, _Out_ unsigned int *flags, _Out_ int *active)',
  cuDevicePrimaryCtxReset: 'int cuDevicePrimaryCtxReset_v2(int dev)',
  cuCtxSetCurrent: 'int cuCtxSetCurrent(void *ctx)',
  cuCtxSynchronize: 'int cuCtxSynchronize()',
  cuMemGetInfo: 'int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)',
  cuMemAlloc: 'int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytesize)',
  cuMemFree: 'int cuMemFree_v2(uint64_t dptr)',
  cuMemAllocHost: 'int cuMemAllocHost_v2(_Out_ void **pp, size_t bytesize)',
  cuMemFreeHost: 'int cuMemFreeHost(void *p)',
  cuMemcpyHtoDAsync: 'int cuMemcpyHtoDAsync_v2(uint64_t dst, void *src, size_t bytes, void *stream)',
  cuMemcpyDtoHAsync: 'int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t bytes, void *stream)',
  cuMemcpyDtoDAsync: 'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream)',
  cuMemsetD8Async: 'int cuMemsetD8Async(uint64_t dst, uint8_t value, size_t n, void *stream)',
  cuMemsetD16Async: 'int cuMemsetD16Async(uint64_t dst, uint16_t value, size_t n, void *stream)',
  cuMemsetD32Async: 'int cuMemsetD32Async(uint64_t dst, uint32_t value, size_t n, void *stream)',
  cuStreamCreate: 'int cuStreamCreate(_Out_ void **stream, unsigned int flags)',
  cuStreamDestroy: 'int cuStreamDestroy_v2(void *stream)',
  cuStreamSynchronize: 'int cuStreamSynchronize(void *stream)',
  cuEventCreate: 'int cuEventCreate(_Out_ void **event, unsigned int flags)',
  cuEventRecord: 'int cuEventRecord(void *event, void *stream)',
  cuEventQuery: 'int cuEventQuery(void *event)',
  cuEventDestroy: 'int cuEventDestroy_v2(void *event)',
  cuModuleLoadData: 'int cuModuleLoadData(_Out_ void **module, void *image)',
  cuModuleUnload: 'int cuModuleUnload(void *module)',
  cuModuleGetFunction: 'int cuModuleGetFunction(_Out_ void **fn, void *module, const char *name)',
  cuFuncSetAttribute: 'int cuFuncSetAttribute(void *fn, int attrib, int value)',
  cuLaunchKernel:
    'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int sharedMemBytes, void *stream, void *kernelParams, void *extra)',
  cuStreamBeginCapture: 'int cuStreamBeginCapture_v2(void *stream, int mode)',
  cuStreamEndCapture: 'int cuStreamEndCapture(void *stream, _Out_ void **graph)',
  cuGraphInstantiate: 'int cuGraphInstantiateWithFlags(_Out_ void **exec, void *graph, unsigned long long flags)',
  cuGraphLaunch: 'int cuGraphLaunch(void *exec, void *stream)',
  cuGraphExecDestroy: 'int cuGraphExecDestroy(void *exec)',
  cuGraphDestroy: 'int cuGraphDestroy(void *graph)',
} as const;

export type Driver = { [K in keyof typeof DRIVER_DECLS]: Fn } & { koffi: Koffi; path: string };

// cuDeviceGetAttribute codes (cuda.h CUdevice_attribute).
export const ATTR = {
  maxThreadsPerBlock: 1,
  maxSharedMemoryPerBlock: 8,
  multiprocessorCount: 16,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  maxSharedMemoryPerBlockOptin: 97,
} as const;
/** CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
export const FUNC_ATTR_MAX_DYNAMIC_SHARED = 8;
/** CU_STREAM_NON_BLOCKING */
export const STREAM_NON_BLOCKING = 1;
/** CU_EVENT_DISABLE_TIMING */
export const EVENT_DISABLE_TIMING = 2;
/** CU_STREAM_CAPTURE_MODE_RELAXED: our caching allocator may call cuMemAlloc while a step is captured. */
export const CAPTURE_MODE_RELAXED = 2;

let driver: Driver | null = null;
let driverError: CudaUnavailable | null = null;

/** The driver API, loaded and cuInit-ed once. Throws CudaUnavailable with the reason. */
export function loadDriver(): Driver {
  if (driver) return driver;
  if (driverError) throw driverError;
  try {
    const koffi = loadKoffi();
    // PEFT_CUDA_DRIVER_PATH: another driver library (the tests' stand-in; an unusual install).
    const path = process.env.PEFT_CUDA_DRIVER_PATH || (process.platform === 'win32' ? 'nvcuda.dll' : 'libcuda.so.1');
    let lib: Koffi;
    try {
      lib = koffi.load(path);
    } catch (err) {
      throw new CudaUnavailable(
        `no CUDA driver: ${path} could not be loaded (${(err as Error).message.split('\n')[0]}). Install the NVIDIA driver (libcuda ships with it, not with the CUDA toolkit)`,
      );
    }
    const d = { koffi, path } as Driver;
    for (const [key, decl] of Object.entries(DRIVER_DECLS)) {
      try {
        (d as Record<string, unknown>)[key] = lib.func(decl);
      } catch (err) {
        throw new CudaUnavailable(
          `${path} has no ${decl.split('(')[0].split(' ').pop()}: the NVIDIA driver is too old (${(err as Error).message})`,
        );
      }
    }
    const rc = d.cuInit(0);
    if (rc !== CUDA_SUCCESS)
      throw new CudaUnavailable(`cuInit failed: ${errorText(d, rc)} (no usable NVIDIA GPU, or the driver and kernel module do not match)`);
    driver = d;
    return d;
  } catch (err) {
    driverError = err instanceof CudaUnavailable ? err : new CudaUnavailable((err as Error).message);
    throw driverError;
  }
}

/** "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for a CUresult. */
export function errorText(d: Driver, rc: number): string {
  const name: (string | null)[] = [null];
  const text: (string | null)[] = [null];
  d.cuGetErrorName(rc, name);
  d.cuGetErrorString(rc, text);
  return `${name[0] ?? `CUresult ${rc}`}${text[0] ? ` (${text[0]})` : ''}`;
}

/** Throws a CudaError naming the call unless rc is CUDA_SUCCESS. */
export function check(d: Driver, rc: number, call: string, hint = ''): void {
  if (rc !== CUDA_SUCCESS) throw new CudaError(rc, call, `${call} failed: ${errorText(d, rc)}${hint ? `: ${hint}` : ''}`);
}

/** Driver version as "13.0" from cuDriverGetVersion's 13000. */
export function formatVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
