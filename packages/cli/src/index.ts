export { BACKENDS, type BackendName, createBackend } from './backends.js';
export { type BenchResult, benchTraining } from './commands/bench.js';
export { formatInfo, type InfoReport, infoReport } from './commands/info.js';
export { mergeAdapter } from './commands/merge.js';
export { COMMANDS, main, usage } from './main.js';
