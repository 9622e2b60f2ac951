import { readFile } from 'node:fs/promises';
import { type BioReadOptions, type BioReadResult, parseBioSentences } from '../bc5cdr/bio.js';
import { parseBioC } from '../bc5cdr/bioc.js';
import type { MentionCheckOptions, ReadResult } from '../bc5cdr/document.js';
import { parsePubTator } from '../bc5cdr/pubtator.js';
import type { Sentence } from '../bc5cdr/sentence.js';

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} file ${path}: ${(e as Error).message}`);
  }
}

function withFile(path: string, e: unknown): Error {
  return new Error(`${path}: ${(e as Error).message}`, { cause: e });
}

/** Reads a PubTator file (e.g. `CDR_TrainingSet.PubTator.txt`). */
export async function readPubTator(path: string, options: MentionCheckOptions = {}): Promise<ReadResult> {
  const text = await readText(path, 'PubTator');
  try {
    return parsePubTator(text, options);
  } catch (e) {
    throw withFile(path, e);
  }
}

/** Reads a BioC XML file (e.g. `CDR_TrainingSet.BioC.xml`). */
export async function readBioC(path: string, options: MentionCheckOptions = {}): Promise<ReadResult> {
  const text = await readText(path, 'BioC XML');
  try {
    return parseBioC(text, options);
  } catch (e) {
    throw withFile(path, e);
  }
}

/** Reads a tokenised BIO file (`token<TAB>tag`, blank line between sentences), with the warnings of `malformed: 'warn'`. */
export async function readBioSentences(path: string, options: BioReadOptions = {}): Promise<BioReadResult> {
  const text = await readText(path, 'BIO');
  try {
    return parseBioSentences(text, options);
  } catch (e) {
    throw withFile(path, e);
  }
}

/** Reads a tokenised BIO file (`token<TAB>tag`, blank line between sentences). */
export async function readBio(path: string, options: BioReadOptions = {}): Promise<Sentence[]> {
  return (await readBioSentences(path, options)).sentences;
}
