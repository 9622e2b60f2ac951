import { createCpuBackend } from '@peft/backend-cpu';
import { type MemoryInfo, memoryInfo } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { LOG_COLUMNS } from './log.js';
import { memoryRunStore, readJson } from './store.js';
import { BlobTask } from './test-helpers.js';
import { train } from './trainer.js';
import type { ValidationRecord } from './types.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const text = (bytes: Uint8Array | null | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());

describe('train on a tiny 3-class task', () => {
  it('improves validation macro-F1 over the untrained state, keeps the best state and writes the run folder', async () => {
    const task = new BlobTask({ backend, initSeed: 5 });
    const out = memoryRunStore('run');
    const memory: (MemoryInfo & { buffers: number })[] = [];
    const lines: string[] = [];
    const result = await train(task, {
      epochs: 4,
      batchSize: 16,
      microBatchSize: 8,
      lr: 0.05,
      warmupEpochs: 1,
      out,
      logEverySteps: 2,
      progress: { write: (t) => lines.push(t) },
      onEpoch: () => {
        const { buffers, bytes } = backend.memory();
        memory.push({ ...memoryInfo(backend), buffers, bytes });
      },
    });
    const untrained = result.validation[0]!;
    expect(untrained.epoch).toBe(0);
    expect(result.validation.map((v) => v.epoch)).toEqual([0, 1, 2, 3, 4]);
    expect(result.best.epoch).toBeGreaterThan(0);
    expect(result.best.score).toBeGreaterThan(untrained.score + 0.2);
    expect(result.best.score).toBe(Math.max(...result.validation.map((v) => v.score)));
    expect(result.steps).toBe(4 * 6);
    expect(result.warmupSteps).toBe(6);
    // The tensors hold the best state: evaluating again reproduces its validation score.
    expect((await task.evaluate('validation')).score).toBe(result.best.score);
    expect(result.test?.score).toBeGreaterThan(0.5);
    expect(Object.keys(result.test!.metrics)).toEqual(['accuracy', 'precision', 'recall', 'f1']);

    // Memory is flat across epochs (moments exist from the first step; nothing accumulates).
    expect(memory.slice(2)).toEqual(memory.slice(1, -1));

    // Run folder.
    const files = [...out.files.keys()].filter((f) => !f.startsWith('checkpoints/')).sort();
    expect(files).toEqual(['adapter/trainable.safetensors', 'config.json', 'log.csv', 'test-metrics.json', 'val-metrics.json']);
    const csv = text(out.files.get('log.csv')).trim().split('\n');
    expect(csv[0]).toBe(LOG_COLUMNS.join(','));
    expect(LOG_COLUMNS).toEqual(['epoch', 'step', 'lr', 'loss', 'val_score', 'tokens_per_s', 'elapsed_s']);
    const rows = csv.slice(1).map((l) => l.split(','));
    expect(rows.every((r) => r.length === LOG_COLUMNS.length)).toBe(true);
    const evalRows = rows.filter((r) => r[4] !== '');
    expect(evalRows.map((r) => Number(r[0]))).toEqual([0, 1, 2, 3, 4]);
    expect(evalRows.map((r) => Number(r[4]))).toEqual(result.validation.map((v) => v.score));
    expect(rows.filter((r) => r[4] === '').length).toBe(12); // a training row every 2 of 24 steps
    const val = await readJson<ValidationRecord[]>(out, 'val-metrics.json');
    expect(val).toEqual(result.validation);
    const test = await readJson<{ epoch: number; score: number; validationScore: number; metrics: Record<string, number> }>(
      out,
      'test-metrics.json',
    );
    expect(test).toMatchObject({ epoch: result.best.epoch, score: result.test!.score, validationScore: result.best.score });
    const config = await readJson<Record<string, unknown>>(out, 'config.json');
    expect(config).toMatchObject({
      epochs: 4,
      batchSize: 16,
      microBatchSize: 8,
      lr: 0.05,
      warmupSteps: 6,
      stepsPerEpoch: 6,
      totalSteps: 24,
    });
    expect(config?.trainable).toEqual([
      { name: 'fc1.weight', dtype: 'float32', shape: [16, 8], weightDecay: 0.01 },
      { name: 'fc1.bias', dtype: 'float32', shape: [16], weightDecay: 0 },
      { name: 'fc2.weight', dtype: 'float32', shape: [3, 16], weightDecay: 0.01 },
      { name: 'fc2.bias', dtype: 'float32', shape: [3], weightDecay: 0 },
    ]);
    expect(config?.task).toEqual({ task: 'blobs', classes: 3 });
    // One checkpoint kept: the last epoch's.
    expect([...new Set([...out.files.keys()].filter((f) => f.startsWith('checkpoints/')).map((f) => f.split('/')[1]))]).toEqual([
      'step-00000024',
    ]);

    // Plain progress lines (not a TTY): one per epoch's evaluation, and about 10 per epoch (here every step).
    const all = lines.join('');
    expect(all).not.toContain('\r');
    expect(all).toContain('epoch 2/4 step 6/6 (12/24) loss ');
    expect(all).toMatch(/epoch 3\/4 validation score 0\.\d{4} train loss 0\.\d{4} \| best/);
    expect(all).toMatch(/tok\/s ETA /);
    expect(all).toContain(`test score ${result.test!.score.toFixed(4)}`);
    task.dispose();
  });

  it('trains a float32 head over a frozen bfloat16 layer (mixed precision is the task’s choice)', async () => {
    const task = new BlobTask({ backend, frozenDtype: 'bfloat16', initSeed: 5 });
    const frozen = await task.fc1.weight.raw();
    const result = await train(task, { epochs: 3, batchSize: 16, lr: 0.05, warmupEpochs: 1, progress: false });
    expect(task.fc1.weight.dtype).toBe('bfloat16');
    expect(task.fc1.weight.grad).toBeNull();
    expect(await task.fc1.weight.raw()).toEqual(frozen);
    expect(result.best.score).toBeGreaterThan(result.validation[0]!.score + 0.2);
    task.dispose();
  });

  it('draws a progress bar in place on a terminal', async () => {
    const task = new BlobTask({ backend, trainSize: 32 });
    const out: string[] = [];
    await train(task, { epochs: 1, batchSize: 8, lr: 0.01, progress: { write: (t) => out.push(t), tty: true }, evaluateTest: false });
    const bars = out.filter((t) => t.startsWith('\r\x1b[2Kepoch 1/1 '));
    expect(bars.length).toBe(4);
    expect(bars[1]!.slice(5)).toMatch(/^epoch 1\/1 █{12}░{12} 2\/4 loss \d\.\d{4} lr \d\.\d{2}e-\d \S+ tok\/s ETA \d+s$/);
    task.dispose();
  });

  it('checks its inputs with messages that name the problem', async () => {
    const task = new BlobTask({ backend, trainSize: 8 });
    await expect(train(task, { epochs: 0, batchSize: 8, lr: 0.1 })).rejects.toThrow('epochs must be a positive integer, got 0');
    await expect(train(task, { epochs: 1, batchSize: 4, microBatchSize: 8, lr: 0.1 })).rejects.toThrow(
      'microBatchSize 8 is larger than batchSize 4',
    );
    await expect(train(task, { epochs: 1, batchSize: 4, lr: 0.1, warmupSteps: 1, warmupRatio: 0.1 })).rejects.toThrow(
      'give one of warmupSteps, warmupRatio, warmupEpochs, not warmupSteps and warmupRatio',
    );
    task.fc2.bias!.requiresGrad = false;
    await expect(train(task, { epochs: 1, batchSize: 4, lr: 0.1, progress: false })).rejects.toThrow('trainable "fc2.bias"');
    task.dispose();
  });
});
