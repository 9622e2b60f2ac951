export { DEFAULT_MAX_TAR_ENTRY_BYTES, type ReadTarOptions, readTar, safeArchivePath, type TarEntry } from './archive/tar.js';
export { type TarWriteEntry, writeTar } from './archive/tar-writer.js';
export {
  type BioReadOptions,
  type BioReadResult,
  formatBio,
  fromBioTags,
  parseBio,
  parseBioSentences,
  toBioTags,
} from './bc5cdr/bio.js';
export { formatBioC, parseBioC } from './bc5cdr/bioc.js';
export {
  type BiomedicalDocument,
  MAX_DOCUMENT_LENGTH,
  type Mention,
  type MentionCheckOptions,
  type Passage,
  type ReadResult,
} from './bc5cdr/document.js';
export {
  BC5CDR_LABELS,
  extractAllLabels,
  extractPerLabel,
  type NerFormatOptions,
  type NerMethod,
  NO_ENTITY,
  nerExample,
  nerInstruction,
  nerOutput,
  nerTrainingText,
  type PromptAnswer,
  parseTagPerLabel,
  sentenceText,
  tagAllLabels,
  tagPerLabel,
} from './bc5cdr/formats.js';
export { formatPubTator, parsePubTator } from './bc5cdr/pubtator.js';
export { documentsToSentences, mergeSpansByPriority, type Sentence, type SentencesResult, type TokenSpan } from './bc5cdr/sentence.js';
export { type CorpusStatistics, corpusStatistics, formatStatisticsTable } from './bc5cdr/statistics.js';
export { splitSentences, type TokenOffset, tokenize, tokenizeWithOffsets } from './bc5cdr/tokenize.js';
export { MAX_XML_DEPTH, parseXml, type XmlElement, type XmlNode } from './bc5cdr/xml.js';
export { type BatchOptions, batchIndices, batchItems } from './collate/batches.js';
export {
  type Batch,
  type CausalLMBatch,
  type CausalLMCollateOptions,
  type ClassificationBatch,
  type CollateOptions,
  collate,
  collateCausalLM,
} from './collate/collate.js';
export { IGNORE_INDEX, type TextTokenizer } from './collate/tokenizer.js';
export {
  buildLivedoorCorpus,
  isLivedoorArticleName,
  type LivedoorArticle,
  type LivedoorCorpus,
  type LivedoorExample,
  type LivedoorNormalizeOptions,
  type LivedoorReadOptions,
  MAX_LIVEDOOR_ARTICLE_BYTES,
  normalizeLivedoorBody,
  normalizeLivedoorTitle,
  parseLivedoorArticle,
} from './livedoor/article.js';
export { type LivedoorSplit, type LivedoorSplitOptions, splitLivedoor } from './livedoor/split.js';
export { formatLivedoor, type LivedoorTemplate } from './livedoor/template.js';
export { PhiloxStream } from './random/philox.js';
export { seededShuffle, splitIntoParts } from './random/shuffle.js';
export type { MalformedOptions } from './text/malformed.js';
export { pySplitLines, pyStrip } from './text/python-strings.js';
