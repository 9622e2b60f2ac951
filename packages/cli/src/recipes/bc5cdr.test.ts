import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bc5cdrPublished, bc5cdrResultsTable, bc5cdrTargetModules, findBc5cdrFiles, readBc5cdrCorpus, runBc5cdr } from './bc5cdr.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const TINY = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const CORPUS = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');
const tmp = mkdtempSync(join(tmpdir(), 'bc5cdr-recipe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

const fixture = (f: string) => readFileSync(join(CORPUS, f), 'utf8');

describe('layer sets', () => {
  it("maps the study's layer sets to Llama module names", () => {
    expect(bc5cdrTargetModules('q', 'llama')).toEqual(['q_proj']);
    expect(bc5cdrTargetModules('qkvo', 'llama')).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(bc5cdrTargetModules('all', 'llama')).toEqual([
      'q_proj',
      'k_proj',
      'v_proj',
      'o_proj',
      'up_proj',
      'down_proj',
      'gate_proj',
      'embed_tokens',
      'lm_head',
    ]);
    expect(bc5cdrTargetModules(['q_proj', 'v_proj'], 'llama')).toEqual(['q_proj', 'v_proj']);
    expect(bc5cdrTargetModules('qkv', 'gpt_neox')).toEqual(['query_key_value']);
    expect(() => bc5cdrTargetModules('q', 'gpt_neox')).toThrow(/fused query_key_value: use qkv, qkvo or all/);
    expect(() => bc5cdrTargetModules('qv' as 'q', 'llama')).toThrow(/layers "qv" is unknown: use one of q, qk, qkv, qkvo, all/);
  });
});

describe('finding the corpus', () => {
  it('finds PubTator first, then BioC XML, then BIO files, also one folder down', async () => {
    expect(await findBc5cdrFiles(CORPUS)).toMatchObject({
      format: 'pubtator',
      files: { train: join(CORPUS, 'CDR_TrainingSet.PubTator.txt'), test: join(CORPUS, 'CDR_TestSet.PubTator.txt') },
    });
    const bioc = folder('bioc', {
      'CDR_Data/CDR.Corpus.v010516/CDR_TrainingSet.BioC.xml': fixture('CDR_TrainingSet.BioC.xml'),
      'CDR_Data/CDR.Corpus.v010516/CDR_DevelopmentSet.BioC.xml': fixture('CDR_DevelopmentSet.BioC.xml'),
      'CDR_Data/CDR.Corpus.v010516/CDR_TestSet.BioC.xml': fixture('CDR_TestSet.BioC.xml'),
    });
    // Two levels down is not searched; the folder one level down is.
    await expect(findBc5cdrFiles(bioc)).rejects.toThrow(/no BC5CDR corpus in .*bioc: looked for PubTator: CDR_TrainingSet.PubTator.txt/);
    expect(await findBc5cdrFiles(join(bioc, 'CDR_Data'))).toMatchObject({
      format: 'bioc',
      dir: join(bioc, 'CDR_Data', 'CDR.Corpus.v010516'),
    });
    const bio = folder('bio', {
      'train.tsv': fixture('CDR_TrainingSet.BIO.tsv'),
      'devel.tsv': fixture('CDR_DevelopmentSet.BIO.tsv'),
      'test.tsv': fixture('CDR_TestSet.BIO.tsv'),
    });
    expect(await findBc5cdrFiles(bio)).toMatchObject({ format: 'bio', files: { validation: join(bio, 'devel.tsv') } });
  });

  it('says what it looked for when the data is missing or incomplete', async () => {
    await expect(findBc5cdrFiles(join(tmp, 'nowhere'))).rejects.toThrow(
      /BC5CDR data folder .*nowhere does not exist: pass --data <folder with CDR_TrainingSet.PubTator.txt, …> \(PubTator: CDR_TrainingSet.PubTator.txt, CDR_DevelopmentSet.PubTator.txt, CDR_TestSet.PubTator.txt; BioC XML: .*; BIO: .*train.tsv/,
    );
    await expect(findBc5cdrFiles(join(CORPUS, 'CDR_TestSet.PubTator.txt'))).rejects.toThrow(/is a file, not a folder/);
    const partial = folder('partial', {
      'CDR_TrainingSet.PubTator.txt': fixture('CDR_TrainingSet.PubTator.txt'),
      'CDR_DevelopmentSet.PubTator.txt': fixture('CDR_DevelopmentSet.PubTator.txt'),
    });
    await expect(findBc5cdrFiles(partial)).rejects.toThrow(
      /incomplete: .*partial has .*CDR_TrainingSet.PubTator.txt, .*CDR_DevelopmentSet.PubTator.txt but no test file \(CDR_TestSet.PubTator.txt\)/,
    );
    await expect(findBc5cdrFiles(folder('empty', {}))).rejects.toThrow(/no BC5CDR corpus in .*empty: looked for/);
  });

  it('reads the same sentences from PubTator and BioC, and BIO sentences as given', async () => {
    const pubtator = await readBc5cdrCorpus(CORPUS);
    expect(pubtator.sentences.train.length).toBe(33);
    expect(pubtator.sentences.validation.length).toBe(22);
    expect(pubtator.sentences.test.length).toBe(22);
    expect(pubtator.documents!.train.length).toBe(8);
    const bioc = await readBc5cdrCorpus(join(tmp, 'bioc', 'CDR_Data'));
    expect(bioc.sentences).toEqual(pubtator.sentences);
    const bio = await readBc5cdrCorpus(join(tmp, 'bio'));
    expect(bio.documents).toBeNull();
    expect(bio.sentences.test.map((s) => s.tokens)).toEqual(pubtator.sentences.test.map((s) => s.tokens));
    expect(bio.sentences.test.map((s) => s.spans)).toEqual(pubtator.sentences.test.map((s) => s.spans));
  });
});

describe("the study's numbers", () => {
  it('puts the published F1 beside the setting that reproduces it', () => {
    const base = { method: 'tagging', labels: 'per-label', prompt: false, layers: 'all', r: 128 } as const;
    expect(bc5cdrPublished(base).map((p) => `${p.finding} ${p.split} ${p.row} ${p.f1}`)).toEqual([
      '1 validation Chemical 93.6',
      '2 validation overall 88.6',
      '3 validation overall 89.0–89.5',
      '4 test overall 88.9',
    ]);
    expect(bc5cdrPublished({ ...base, prompt: true }).map((p) => p.f1)).toEqual(['93.1']);
    expect(bc5cdrPublished({ ...base, method: 'extraction', labels: 'all' }).map((p) => p.f1)).toEqual(['86.5']);
    expect(bc5cdrPublished({ ...base, layers: 'q', r: 2 }).map((p) => p.f1)).toEqual(['93.6', '88.6', '65–69']);
    expect(bc5cdrPublished({ ...base, r: 16 }).map((p) => p.f1)).toEqual(['93.6', '88.6']);
  });

  it('prints P / R / F1 per type and overall in percent', () => {
    const row = { precision: 0.5, recall: 0.25, f1: 1 / 3, support: 4, predicted: 2, tp: 1 };
    const scores = { ...row, perType: { Disease: row, Chemical: { ...row, f1: 1 } }, unaligned: 0, sentences: 3 };
    const table = bc5cdrResultsTable(
      scores,
      scores,
      ['Disease', 'Chemical'],
      bc5cdrPublished({ method: 'tagging', labels: 'all', prompt: false, layers: 'all', r: 8 }),
    );
    expect(table.split('\n')).toEqual([
      '| entity type | dev P | dev R | dev F1 | test P | test R | test F1 | study F1 (Llama-2-7B) |',
      '|---|---:|---:|---:|---:|---:|---:|---|',
      '| Disease | 50.00 | 25.00 | 33.33 | 50.00 | 25.00 | 33.33 | — |',
      '| Chemical | 50.00 | 25.00 | 100.00 | 50.00 | 25.00 | 100.00 | — |',
      '| overall (micro) | 50.00 | 25.00 | 33.33 | 50.00 | 25.00 | 33.33 | dev 88.4 (finding 2: tagging, all) |',
    ]);
  });
});

describe('runBc5cdr', () => {
  it('refuses bad inputs before anything is trained or written', async () => {
    const out = join(tmp, 'bad-run');
    await expect(runBc5cdr({ modelDir: TINY, data: join(tmp, 'no-such-corpus'), out, log: () => {} })).rejects.toThrow(
      /BC5CDR data folder .*no-such-corpus does not exist/,
    );
    const bert = folder('bert', { 'config.json': JSON.stringify({ model_type: 'bert', hidden_size: 8 }) });
    await expect(runBc5cdr({ modelDir: bert, data: CORPUS, out, log: () => {} })).rejects.toThrow(
      /config.json has model_type "bert": supported are gpt_neox, llama/,
    );
    await expect(runBc5cdr({ modelDir: join(tmp, 'no-model'), data: CORPUS, out, log: () => {} })).rejects.toThrow(
      /model folder .*no-model does not exist/,
    );
    await expect(runBc5cdr({ modelDir: TINY, data: CORPUS, out, layers: 'qv' as 'q', log: () => {} })).rejects.toThrow(
      /layers "qv" is unknown/,
    );
    await expect(runBc5cdr({ modelDir: TINY, data: CORPUS, out, r: 0, log: () => {} })).rejects.toThrow(
      /r must be a positive integer, got 0/,
    );
    await expect(runBc5cdr({ modelDir: TINY, data: CORPUS, out, dropout: -0.1, log: () => {} })).rejects.toThrow(
      'bc5cdr: dropout must be in [0, 1), got -0.1',
    );
    await expect(runBc5cdr({ modelDir: TINY, data: CORPUS, out, types: ['Gene'], log: () => {} })).rejects.toThrow(
      /types \["Gene"\] must be distinct entity types of Disease, Chemical/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('trains one adapter per label, merges them, writes the run folder, and reuses it on resume', async () => {
    const out = join(tmp, 'run');
    const lines: string[] = [];
    const options = {
      modelDir: TINY,
      data: CORPUS,
      out,
      method: 'tagging',
      labels: 'per-label',
      layers: 'qkv',
      r: 4,
      dropout: 0.2,
      lr: 1e-2,
      epochs: 1,
      batchSize: 4,
      maxLength: 128,
      limit: { train: 8, validation: 4, test: 3 },
      gradientCheckpointing: false,
      progress: false,
      log: (l: string) => lines.push(l),
    } as const;
    const r = await runBc5cdr(options);
    expect(r.runs.map((x) => x.name)).toEqual(['Disease', 'Chemical']);
    for (const run of r.runs) {
      expect(run.trainableLine).toMatch(/^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
      expect(existsSync(join(run.adapterDir, 'adapter_config.json'))).toBe(true);
      expect(existsSync(join(run.adapterDir, 'adapter_model.safetensors'))).toBe(true);
      expect(JSON.parse(readFileSync(join(run.adapterDir, 'adapter_config.json'), 'utf8'))).toMatchObject({
        r: 4,
        lora_alpha: 8,
        target_modules: expect.arrayContaining(['q_proj', 'k_proj', 'v_proj']),
        task_type: 'CAUSAL_LM',
        lora_dropout: 0.2,
      });
      expect(JSON.parse(readFileSync(join(run.adapterDir, 'peft_run.json'), 'utf8'))).toMatchObject({ loraDropout: 0.2 });
      expect(JSON.parse(readFileSync(join(run.dir, 'predictions', 'validation.json'), 'utf8'))).toHaveLength(4);
      expect(run.train!.steps).toBe(2);
    }
    for (const s of [r.validation, r.test]) {
      for (const k of ['precision', 'recall', 'f1'] as const) {
        expect(s[k]).toBeGreaterThanOrEqual(0);
        expect(s[k]).toBeLessThanOrEqual(1);
      }
      expect(Object.keys(s.perType)).toEqual(['Disease', 'Chemical']);
    }
    expect(r.validation.sentences).toBe(4);
    expect(r.test.sentences).toBe(3);
    // Gold mentions of both types are scored after merging the two runs.
    expect(r.validation.support).toBe(r.runs[0]!.validation.support + r.runs[1]!.validation.support);
    expect(lines.some((l) => l.startsWith('[Disease] trainable params: '))).toBe(true);
    expect(lines.join('\n')).toContain('| entity type | dev P | dev R | dev F1 | test P | test R | test F1 | study F1 (Llama-2-7B) |');
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.test.f1).toBe(r.test.f1);
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain('| overall (micro) |');

    const again = await runBc5cdr({ ...options, resume: true, log: () => {} });
    expect(again.runs.map((x) => x.train)).toEqual([null, null]);
    expect(again.validation).toEqual(r.validation);
    expect(again.test).toEqual(r.test);
  });

  it('trains one adapter for all labels with extraction, here on Chemical alone', async () => {
    const r = await runBc5cdr({
      modelDir: TINY,
      data: CORPUS,
      out: join(tmp, 'run-all'),
      method: 'extraction',
      labels: 'all',
      types: ['Chemical'],
      prompt: true,
      layers: ['q_proj', 'v_proj'],
      r: 2,
      lr: 1e-2,
      epochs: 1,
      batchSize: 8,
      maxLength: 128,
      limit: { train: 8, validation: 3, test: 3 },
      progress: false,
      log: () => {},
    });
    expect(r.runs.map((x) => x.name)).toEqual(['all']);
    const preds = JSON.parse(readFileSync(join(r.runs[0]!.dir, 'predictions', 'test.json'), 'utf8'));
    expect(Object.keys(preds[0].outputs)).toEqual(['all']);
    expect(Object.keys(r.test.perType)).toEqual(['Chemical']);
    expect(r.table).toContain('| Chemical |');
    expect(r.table).not.toContain('| Disease |');
    expect(r.published).toEqual([]);
    expect(r.test.f1).toBeGreaterThanOrEqual(0);
    expect(r.test.f1).toBeLessThanOrEqual(1);
  });
});
