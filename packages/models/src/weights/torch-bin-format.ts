import type { WeightFormat, WeightReader } from '../load.js';
import { openTorchBin } from './torch-bin.js';
import { openShardedTorchBin, TORCH_BIN_FILE, TORCH_BIN_INDEX_FILE } from './torch-bin-sharded.js';

/** `pytorch_model.bin` (PyTorch's zip format, read without running pickle code), sharded or not. */
export const TORCH_BIN_FORMAT: WeightFormat = {
  files: [TORCH_BIN_INDEX_FILE, TORCH_BIN_FILE],
  async open(opener, file): Promise<WeightReader> {
    if (file === TORCH_BIN_INDEX_FILE) {
      const sharded = await openShardedTorchBin(opener, file, { lazy: true });
      return {
        label: `${file} and its ${sharded.shardFiles().length} shards`,
        names: () => sharded.names(),
        has: (n) => sharded.has(n),
        info: async (n) => {
          const info = await sharded.info(n);
          return { shape: info.shape, file: info.file };
        },
        readTensor: (n, opts) => sharded.readTensor(n, opts),
        close: () => sharded.close(),
      };
    }
    const bin = await openTorchBin(await opener.open(file));
    return {
      label: file,
      names: () => bin.names(),
      has: (n) => bin.has(n),
      info: async (n) => ({ shape: bin.info(n).shape, file }),
      readTensor: (n, opts) => bin.readTensor(n, opts),
      close: () => bin.close(),
    };
  },
};
