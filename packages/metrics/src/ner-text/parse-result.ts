import type { Span } from '../span.js';

/** What a parser recovered from one generated output. */
export interface ParseResult {
  /** Entity spans on the input tokens (end exclusive), sorted, without duplicates. */
  spans: Span[];
  /** Entities the output named but that could not be placed on the input tokens. */
  unaligned: number;
  /** What was odd about the output (unclosed / stray markers, unknown labels, drift …). */
  warnings: string[];
}
