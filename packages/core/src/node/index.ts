export { loadAdapter, nodeDirSink, saveAdapter, saveMerged } from './adapters.js';
export type { AtomicWriteData } from './atomic-write.js';
export { writeFileAtomic } from './atomic-write.js';
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
