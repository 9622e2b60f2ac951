// The toy model and batch of the whole-stack checks: the tiny checkpoints of fixtures/models and a
// fixed 3-class batch, shared by the WebGPU training test, the CUDA training check (on a GPU and on
// the host emulator) and anything else that trains the same thing on two backends. Every random
// draw (score init, LoRA A init, dropout masks) comes from seeded Generators, whose Philox streams
// are bit for bit the same on every backend.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Backend, Generator, getPeftModel, loraConfig } from '@peft/core';
import { SequenceClassifier } from '@peft/heads';
import { loadModel } from '@peft/models/node';

/** fixtures/models of the repository checkout, searched above this file and the working directory. */
export function findFixtures(): string {
  for (const start of [import.meta.dirname, process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      if (existsSync(join(d, 'fixtures', 'models', 'tiny-llama', 'config.json'))) return join(d, 'fixtures', 'models');
      if (dirname(d) === d) break;
    }
  }
  throw new Error(
    `cannot find fixtures/models/tiny-llama above ${import.meta.dirname} or ${process.cwd()}: run from the repository checkout`,
  );
}

export interface ToyBatch {
  inputIds: number[][];
  attentionMask: number[][];
  /** The class of each row: 0, 1, 2, 1. */
  labels: number[];
  /** For the causal LM: the answer is the last real token, the rest (prompt, padding) is -100. */
  lmLabels: number[][];
}

/**
 * A fixed 3-class batch: 4 right-padded rows of 3–8 token ids, the class given by the last token
 * (30, 40 or 50) after a prefix of ids in [60, 60 + `idRange`) from a seeded LCG, so the loss has
 * something to learn. Small, because SwiftShader (CI's WebGPU adapter) runs every workgroup on two
 * CPU cores. The CUDA check draws its prefixes from 400 ids, the WebGPU test from 500.
 */
export function toyBatch(idRange = 400): ToyBatch {
  const lengths = [5, 8, 3, 6];
  const labels = [0, 1, 2, 1];
  let s = 12345;
  const rows = lengths.map((n, i) => {
    const prefix = Array.from({ length: n - 1 }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return 60 + (s % idRange);
    });
    return [...prefix, 30 + 10 * labels[i]!];
  });
  const width = Math.max(...lengths);
  return {
    inputIds: rows.map((r) => [...r, ...Array(width - r.length).fill(0)]),
    attentionMask: rows.map((r) => [...r.map(() => 1), ...Array(width - r.length).fill(0)]),
    labels,
    lmLabels: rows.map((r) => [...r.map((id, j) => (j === r.length - 1 ? id : -100)), ...Array(width - r.length).fill(-100)]),
  };
}

/**
 * The tiny GPT-NeoX checkpoint with a 3-label score head (Generator 1) and LoRA (r 8, α 16 on
 * query_key_value, dropout 0.1, the head in modules_to_save; Generator 2), in training mode.
 */
export async function toyClassifier(backend: Backend, dtype: 'float32' | 'bfloat16' = 'float32', fixtures = findFixtures()) {
  const causal = await loadModel(join(fixtures, 'tiny-gpt-neox'), { backend, dtype });
  const head = new SequenceClassifier(causal, { numLabels: 3, generator: new Generator(1) });
  const peft = getPeftModel(head, loraConfig({ r: 8, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), {
    modelType: causal.config.modelType,
    generator: new Generator(2),
  });
  peft.train();
  return peft;
}
