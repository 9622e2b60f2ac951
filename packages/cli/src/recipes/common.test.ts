import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend } from '@peft/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { recipeLog, StudyChecks, withBackend } from './common.js';

const dir = mkdtempSync(join(tmpdir(), 'recipe-common-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('StudyChecks', () => {
  const checks = new StudyChecks('bc5cdr');

  it('errors start with the study and name the option and the value', () => {
    expect(() => checks.positiveInt('r', 0)).toThrow('bc5cdr: r must be a positive integer, got 0');
    expect(() => checks.positiveInt('epochs', 1.5)).toThrow('bc5cdr: epochs must be a positive integer, got 1.5');
    expect(() => checks.positive('lr', Number.NaN)).toThrow('bc5cdr: lr must be a number > 0, got NaN');
    expect(() => checks.dropout('dropout', 1)).toThrow('bc5cdr: dropout must be in [0, 1), got 1');
    expect(() => checks.oneOf('method', 'spans' as 'tagging', ['tagging', 'extraction'])).toThrow(
      'bc5cdr: method "spans" is unknown: use tagging or extraction',
    );
    expect(checks.positiveInt('r', 8)).toBe(8);
  });

  it('the model folder: absent, a file, or one with config.json', async () => {
    await expect(checks.modelConfig(join(dir, 'none'))).rejects.toThrow(`bc5cdr: model folder ${join(dir, 'none')} does not exist`);
    writeFileSync(join(dir, 'file'), 'x');
    await expect(checks.modelConfig(join(dir, 'file'))).rejects.toThrow(`bc5cdr: model folder ${join(dir, 'file')} is a file`);
  });

  it('the dtype rule', () => {
    const backend = { name: 'b', dtypes: ['float32', 'bfloat16'] } as unknown as Backend;
    const config = (torchDtype: 'float32' | 'float16' | null) => ({ torchDtype }) as Parameters<StudyChecks['dtype']>[0];
    expect(checks.dtype(config('float16'), backend)).toBe('bfloat16');
    expect(checks.dtype(config(null), backend)).toBe('float32');
    expect(() => checks.dtype(config('float32'), backend, 'float16')).toThrow(
      'bc5cdr: backend "b" does not store float16: it stores float32, bfloat16',
    );
  });
});

describe('withBackend', () => {
  it('destroys a backend it made from a name, even when the run fails, and leaves a given one alone', async () => {
    let made: Backend | undefined;
    await expect(
      withBackend({ backend: 'cpu', threads: 1 }, async (b) => {
        made = b;
        vi.spyOn(b, 'destroy');
        throw new Error('run failed');
      }),
    ).rejects.toThrow('run failed');
    expect(made!.destroy).toHaveBeenCalledTimes(1);

    const given = createCpuBackend({ threads: 1 });
    const destroy = vi.spyOn(given, 'destroy');
    expect(await withBackend({ backend: given }, async (b) => b === given)).toBe(true);
    expect(destroy).not.toHaveBeenCalled();
    given.destroy();
  });
});

describe('recipeLog', () => {
  it('the given log, else standard error, none when progress is false', () => {
    const lines: string[] = [];
    recipeLog({ log: (l) => lines.push(l), progress: false })('a');
    expect(lines).toEqual(['a']);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write');
    try {
      recipeLog({})('b');
      recipeLog({ progress: false })('c');
      expect(err.mock.calls).toEqual([['b\n']]);
      expect(out).not.toHaveBeenCalled();
    } finally {
      err.mockRestore();
      out.mockRestore();
    }
  });
});
