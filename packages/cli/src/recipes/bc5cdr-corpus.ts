// The BC5CDR corpus on disk: which files a folder holds (PubTator, BioC XML or BIO) and the
// sentences per split read from them.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type BiomedicalDocument, documentsToSentences, type Sentence } from '@peft/datasets';
import { readBio, readBioC, readPubTator } from '@peft/datasets/node';
import type { NerData } from '../tasks/ner.js';

export type Bc5cdrFormat = 'pubtator' | 'bioc' | 'bio';
type SplitName = 'train' | 'validation' | 'test';

/** File names looked for, by format: the BC5CDR release's (PubTator, BioC) and the common BIO layouts. */
const CORPUS_NAMES: readonly { format: Bc5cdrFormat; files: Record<SplitName, readonly string[]> }[] = [
  {
    format: 'pubtator',
    files: {
      train: ['CDR_TrainingSet.PubTator.txt'],
      validation: ['CDR_DevelopmentSet.PubTator.txt'],
      test: ['CDR_TestSet.PubTator.txt'],
    },
  },
  {
    format: 'bioc',
    files: { train: ['CDR_TrainingSet.BioC.xml'], validation: ['CDR_DevelopmentSet.BioC.xml'], test: ['CDR_TestSet.BioC.xml'] },
  },
  {
    format: 'bio',
    files: {
      train: ['CDR_TrainingSet.BIO.tsv', 'train.tsv', 'train.txt'],
      validation: ['CDR_DevelopmentSet.BIO.tsv', 'devel.tsv', 'dev.tsv', 'devel.txt', 'dev.txt'],
      test: ['CDR_TestSet.BIO.tsv', 'test.tsv', 'test.txt'],
    },
  },
];

export interface Bc5cdrFiles {
  format: Bc5cdrFormat;
  /** The folder the files are in (the given one, or a folder inside it such as `CDR.Corpus.v010516`). */
  dir: string;
  files: Record<SplitName, string>;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function lookedFor(): string {
  return CORPUS_NAMES.map(
    (c) =>
      `${c.format === 'pubtator' ? 'PubTator' : c.format === 'bioc' ? 'BioC XML' : 'BIO'}: ${[...c.files.train, ...c.files.validation, ...c.files.test].join(', ')}`,
  ).join('; ');
}

/**
 * Finds the BC5CDR train / development / test files in `dir` (or in one of its folders, e.g. the
 * release's `CDR.Corpus.v010516`): PubTator first, then BioC XML, then BIO. Errors name what was
 * looked for, and which split is missing when only some files are there.
 */
export async function findBc5cdrFiles(dir: string): Promise<Bc5cdrFiles> {
  const root = resolve(dir);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(root);
  } catch {
    throw new Error(`BC5CDR data folder ${dir} does not exist: pass --data <folder with CDR_TrainingSet.PubTator.txt, …> (${lookedFor()})`);
  }
  if (!st.isDirectory()) {
    throw new Error(`BC5CDR data path ${dir} is a file, not a folder: pass the folder that holds the three split files (${lookedFor()})`);
  }
  const dirs = [root];
  for (const name of (await readdir(root)).sort()) if (await isDir(join(root, name))) dirs.push(join(root, name));
  const partial: string[] = [];
  for (const d of dirs) {
    const names = new Set(await readdir(d));
    for (const c of CORPUS_NAMES) {
      const found: Partial<Record<SplitName, string>> = {};
      for (const split of ['train', 'validation', 'test'] as const) {
        const hit = c.files[split].find((n) => names.has(n));
        if (hit) found[split] = join(d, hit);
      }
      const have = Object.keys(found).length;
      if (have === 3) return { format: c.format, dir: d, files: found as Record<SplitName, string> };
      if (have > 0) {
        const missing = (['train', 'validation', 'test'] as const).filter((s) => !found[s]);
        partial.push(
          `${d} has ${Object.values(found).join(', ')} but no ${missing.map((s) => `${s} file (${c.files[s].join(' or ')})`).join(', ')}`,
        );
      }
    }
  }
  if (partial.length > 0) throw new Error(`BC5CDR data in ${dir} is incomplete: ${partial.join('; ')}`);
  throw new Error(`no BC5CDR corpus in ${dir}: looked for ${lookedFor()}`);
}

export interface Bc5cdrCorpus extends Bc5cdrFiles {
  sentences: NerData;
  /** Documents per split (PubTator and BioC; null for BIO, which has sentences only). */
  documents: Record<SplitName, BiomedicalDocument[]> | null;
  /** Mentions dropped while reading or splitting (text mismatches, overlaps, sentence-crossing mentions). */
  warnings: string[];
}

/** Reads the corpus in a folder into sentences per split (see `findBc5cdrFiles`). */
export async function readBc5cdrCorpus(dir: string): Promise<Bc5cdrCorpus> {
  const found = await findBc5cdrFiles(dir);
  const warnings: string[] = [];
  const sentences = {} as Record<SplitName, Sentence[]>;
  if (found.format === 'bio') {
    for (const split of ['train', 'validation', 'test'] as const) sentences[split] = await readBio(found.files[split]);
    return { ...found, sentences, documents: null, warnings };
  }
  const documents = {} as Record<SplitName, BiomedicalDocument[]>;
  for (const split of ['train', 'validation', 'test'] as const) {
    const read = found.format === 'pubtator' ? readPubTator : readBioC;
    const r = await read(found.files[split], { mismatch: 'warn' });
    warnings.push(...r.warnings);
    documents[split] = r.documents;
    const s = documentsToSentences(r.documents);
    warnings.push(...s.warnings);
    sentences[split] = s.sentences;
  }
  return { ...found, sentences, documents, warnings };
}
