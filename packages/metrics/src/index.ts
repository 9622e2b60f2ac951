export { type AccuracyOptions, accuracyScore } from './classification/accuracy.js';
export {
  type ClassificationReport,
  type ClassificationReportDict,
  type ClassificationReportOptions,
  classificationReport,
  type ReportRow,
} from './classification/classification-report.js';
export { type ConfusionMatrixOptions, confusionMatrix } from './classification/confusion-matrix.js';
export { type Label, type UnlistedLabels, uniqueLabels } from './classification/labels.js';
export {
  type Average,
  type AveragedScores,
  f1Score,
  fbetaScore,
  type PerLabelScores,
  type PrfOptions,
  precisionRecallFscoreSupport,
  precisionScore,
  recallScore,
} from './classification/prf.js';
export type { WarningOptions, ZeroDivision } from './classification/zero-division.js';
export {
  type EntityAverage,
  type EntityClassificationReport,
  type EntityMetricOptions,
  type EntityReportOptions,
  type EntityReportRow,
  type EntityScoresAveraged,
  type EntityScoresPerType,
  entityClassificationReport,
  entityPrecisionRecallF1,
} from './entity/entity-metrics.js';
export { type EntityMode, type GetEntitiesOptions, getEntities } from './entity/get-entities.js';
export type { Scheme } from './entity/scheme.js';
export { type SpanScoreOptions, type SpanScoreRow, type SpanScores, spanScores } from './entity/span-scores.js';
export { type ExtractionFormatOptions, formatExtraction, formatTagged, type TagFormatOptions } from './ner-text/format.js';
export { mergeByPriority } from './ner-text/merge-by-priority.js';
export { type ExtractionFormat, parseExtraction } from './ner-text/parse-extraction.js';
export type { ParseResult } from './ner-text/parse-result.js';
export { type MarkerFormat, parseTagged, type TaggedFormat, type XmlFormat } from './ner-text/parse-tagged.js';
export type { Span } from './span.js';
