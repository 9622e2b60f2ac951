import { setBackendImporter } from '../registry.js';
import { importFromWorkingDirectory } from './backend-importer.js';

export { loadAdapter, nodeDirSink, saveAdapter, saveMerged } from './adapters.js';
export type { AtomicWriteData } from './atomic-write.js';
export { writeFileAtomic } from './atomic-write.js';
export { importFromWorkingDirectory } from './backend-importer.js';
export { nodeDirReader } from './dir-reader.js';
export { fileSource } from './file-source.js';
export type { SaveShardedOptions } from './save.js';
export {
  loadSafetensors,
  openSafetensorsDir,
  openSafetensorsFile,
  saveSafetensors,
  saveShardedSafetensors,
} from './save.js';

// In Node, createBackend(name) also finds a backend package installed in the working directory's
// project, which core itself cannot see under pnpm or beside a globally installed CLI.
setBackendImporter(importFromWorkingDirectory);
