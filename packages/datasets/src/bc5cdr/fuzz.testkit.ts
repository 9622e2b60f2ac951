// Shared by the BC5CDR readers' fuzz tests (bio, bioc, pubtator).
import { join } from 'node:path';

/** The package's BC5CDR fixture folder. */
export const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'bc5cdr');

/**
 * `read()` with the file name before an error's message, as the node readers add it
 * (src/node/bc5cdr.ts); engine errors (TypeError, RangeError …) stay as they are, so the fuzz
 * harness sees them and fails the case.
 */
export function named<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof Error && e.constructor === Error) throw new Error(`${file}: ${e.message}`);
    throw e;
  }
}
