export { UsageError } from './args.js';
export { BACKENDS, type BackendName, createBackend } from './backends.js';
export * from './commands/bc5cdr.js';
export { type BenchResult, benchTraining } from './commands/bench.js';
export {
  type EvalOptions,
  type EvalReport,
  evaluateAdapter,
  formatEvalReport,
  writeEvalReport,
} from './commands/evaluate.js';
export { formatInfo, type InfoReport, infoReport } from './commands/info.js';
export * from './commands/livedoor.js';
export { mergeAdapter } from './commands/merge.js';
export { type ClassPrediction, type PredictOptions, predictTexts } from './commands/predict.js';
export { exitCodeOf, runInterruptible, stopOnSignals } from './interrupt.js';
export { COMMANDS, main, usage } from './main.js';
export * from './recipes/bc5cdr.js';
export { CURVES_FILE, type CurvesOptions, curvesSvg, parseLogCsv, writeCurves } from './recipes/curves.js';
export * from './recipes/livedoor.js';
export {
  type Bc5cdrRunSettings,
  type LivedoorRunSettings,
  parseRunSettings,
  RUN_SETTINGS_FILE,
  type RunSettings,
  RunSettingsError,
  readRunSettings,
} from './recipes/run-settings.js';
export * from './tasks/classification.js';
export * from './tasks/ner.js';
