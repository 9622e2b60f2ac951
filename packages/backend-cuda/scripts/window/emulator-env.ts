/**
 * For the GPU window's emulator mode (PEFT_GPU_WINDOW_EMULATE=1, see GPU.md): builds the host
 * emulator of the CUDA driver, kernels and cuBLASLt (src/emulator.testkit.ts) when needed and
 * prints, as one JSON line, the environment that points the backend at it:
 * {"env": {PEFT_CUDA_DRIVER_PATH, PEFT_CUDA_FATBIN_DIR, LD_LIBRARY_PATH}} or {"reason": "…"}.
 */
import { useEmulator } from '../../src/emulator.testkit.js';

const emu = await useEmulator().catch((err: Error) => {
  console.log(JSON.stringify({ reason: `building the emulator failed: ${err.message.split('\n')[0]}` }));
  process.exit(0);
});
if (!emu) {
  console.log(JSON.stringify({ reason: 'no C++ compiler (c++, g++ or clang++) for the host emulator' }));
} else {
  const { PEFT_CUDA_DRIVER_PATH, PEFT_CUDA_FATBIN_DIR, LD_LIBRARY_PATH } = process.env;
  console.log(JSON.stringify({ env: { PEFT_CUDA_DRIVER_PATH, PEFT_CUDA_FATBIN_DIR, LD_LIBRARY_PATH } }));
}
