import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryRunStore } from './store.js';
import { configName, expandGrid, type RunOutcome, runSweep, type SweepRun, selectBest, sweepMarkdown, sweepSvg } from './sweep.js';
import { BlobTask } from './test-helpers.js';
import { train } from './trainer.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

const outcome = (val: number[], bestEpoch: number, test: Record<string, number>): RunOutcome => ({
  best: { epoch: bestEpoch, step: bestEpoch * 10, score: val[bestEpoch]!, metrics: {} },
  test: { score: test.f1!, metrics: test },
  validation: val.map((score, epoch) => ({ epoch, step: epoch * 10, score, metrics: {} })),
});

describe('sweeps', () => {
  it('expands a grid with the first setting varying slowest, and names run folders', () => {
    expect(expandGrid({ lr: [1e-4, 3e-4], template: [0, 1, 2] })).toEqual([
      { lr: 1e-4, template: 0 },
      { lr: 1e-4, template: 1 },
      { lr: 1e-4, template: 2 },
      { lr: 3e-4, template: 0 },
      { lr: 3e-4, template: 1 },
      { lr: 3e-4, template: 2 },
    ]);
    expect(configName({ lr: 1e-4, template: 0, target: 'q k/v' })).toBe('lr=0.0001,template=0,target=q_k_v');
    expect(() => expandGrid({ lr: [] })).toThrow('"lr" needs a non-empty list of values');
  });

  it('summarises like the study: config columns, val F1 and test metrics in percent, selection by validation', () => {
    const runs: SweepRun[] = [
      {
        name: 'lr=0.0001,template=2',
        config: { lr: 1e-4, template: 2 },
        reused: false,
        result: outcome([0.1, 0.9, 0.95], 2, { accuracy: 0.9755, precision: 0.9724, recall: 0.9739, f1: 0.973 }),
      },
      {
        name: 'lr=0.0005,template=2',
        config: { lr: 5e-4, template: 2 },
        reused: false,
        result: outcome([0.1, 0.97, 0.96], 1, { accuracy: 0.9796, precision: 0.9777, recall: 0.9776, f1: 0.9775 }),
      },
    ];
    expect(selectBest(runs)).toBe(1);
    expect(sweepMarkdown(runs, { metrics: ['accuracy', 'precision', 'recall', { key: 'f1', label: 'F1' }] })).toBe(
      [
        '| lr | template | epoch | val F1 | accuracy | precision | recall | F1 |',
        '|---|---|---|---|---|---|---|---|',
        '| 0.0001 | 2 | 2 | 95.00 | 97.55 | 97.24 | 97.39 | 97.30 |',
        '| 0.0005 | 2 | 1 | **97.00** | 97.96 | 97.77 | 97.76 | 97.75 |',
        '',
        'Selected by val F1: lr = 0.0005, template = 2 (epoch 1, val F1 97.00; test score 97.75). Values in percent.',
        '',
      ].join('\n'),
    );
    const svg = sweepSvg(runs);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)?.length).toBe(2);
    expect(svg.match(/<circle /g)?.length).toBe(6);
    expect(svg).toContain('>lr=0.0001,template=2</text>');
    expect(svg).toContain('>val F1 per epoch</text>');
    expect(svg).toContain('stroke-width="3"'); // the selected configuration
    // Well-formed: every opened element is closed.
    const opened = svg.match(/<(?!\/)[a-z]+[^>]*[^/]>/g)?.length ?? 0;
    const closed = svg.match(/<\/[a-z]+>/g)?.length ?? 0;
    expect(opened).toBe(closed);
  });

  it('runs a grid one configuration after another, writes summary.md and val-f1.svg, and reuses finished runs', async () => {
    const out = memoryRunStore('sweep');
    const started: string[] = [];
    const run = async (config: Record<string, unknown>, ctx: { name: string; out?: unknown; resume: boolean }) => {
      started.push(ctx.name);
      const task = new BlobTask({ backend, trainSize: 48, hidden: config.hidden as number });
      try {
        return await train(task, {
          epochs: 2,
          batchSize: 16,
          lr: config.lr as number,
          out: ctx.out as never,
          resume: ctx.resume,
          progress: false,
          config,
        });
      } finally {
        task.dispose();
      }
    };
    const grid = { lr: [0.001, 0.05], hidden: [8] };
    const result = await runSweep(grid, run, { out, metrics: ['accuracy', 'precision', 'recall', 'f1'] });
    expect(started).toEqual(['lr=0.001,hidden=8', 'lr=0.05,hidden=8']);
    expect(result.runs.map((r) => r.result.validation.length)).toEqual([3, 3]);
    expect(result.best.name).toBe(result.runs[selectBest(result.runs)]!.name);
    const summary = new TextDecoder().decode(out.files.get('summary.md'));
    expect(summary).toBe(result.summary);
    expect(summary.split('\n')[0]).toBe('| lr | hidden | epoch | val F1 | accuracy | precision | recall | f1 |');
    expect(summary.split('\n')[2]).toMatch(
      /^\| 0\.001 \| 8 \| \d \| (\*\*)?\d+\.\d\d(\*\*)? \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|$/,
    );
    expect(new TextDecoder().decode(out.files.get('val-f1.svg'))).toBe(result.svg);
    expect(out.files.has('lr=0.05,hidden=8/test-metrics.json')).toBe(true);
    expect(out.files.has('lr=0.05,hidden=8/adapter/trainable.safetensors')).toBe(true);

    // Again with resume: finished configurations are read back, not trained again.
    started.length = 0;
    const again = await runSweep(grid, run, { out, resume: true, metrics: ['accuracy', 'precision', 'recall', 'f1'] });
    expect(started).toEqual([]);
    expect(again.runs.every((r) => r.reused)).toBe(true);
    expect(again.summary).toBe(result.summary);
  });
});
