import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { RunFolderError } from './errors.js';
import { memoryRunStore, type RunStore } from './store.js';
import { BlobTask } from './test-helpers.js';
import { type TrainOptions, train } from './trainer.js';

const backend = createCpuBackend({ threads: 1 });
afterAll(() => backend.destroy());

/** A run folder in memory whose writes and moves fail where the test says, as a full disk would. */
function failingStore() {
  const base = memoryRunStore('run');
  const fail = { write: null as RegExp | null, rename: null as RegExp | null };
  const store: RunStore = {
    ...base,
    name: base.name,
    async writeFile(path, data) {
      if (fail.write?.test(path)) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC' });
      return base.writeFile(path, data);
    },
    async rename(from, to) {
      if (fail.rename?.test(to)) {
        fail.rename = null; // once: the move back succeeds
        throw Object.assign(new Error(`EIO: i/o error, rename '${from}' -> '${to}'`), { code: 'EIO' });
      }
      return base.rename(from, to);
    },
  };
  return { store, files: base.files, fail };
}

const settings = (out: RunStore, lr: number): TrainOptions => ({ epochs: 2, batchSize: 16, lr, out, progress: false, evaluateTest: false });
const adapterFiles = (files: Map<string, Uint8Array>) =>
  new Map([...files].filter(([k]) => k.startsWith('adapter/')).map(([k, v]) => [k, v.slice()]));
const temporary = (files: Map<string, Uint8Array>) => [...files.keys()].filter((k) => k.startsWith('.tmp-'));

describe('the final adapter write', () => {
  it('keeps the previous adapter byte for byte when writing the new one fails, and names the file and the intact checkpoint', async () => {
    const { store, files, fail } = failingStore();
    const first = new BlobTask({ backend, trainSize: 48 });
    await train(first, settings(store, 0.05));
    first.dispose();
    const old = adapterFiles(files);
    expect([...old.keys()]).toEqual(['adapter/trainable.safetensors']);

    // A second run into the same folder (other settings, so another adapter) meets a full disk at its adapter.
    fail.write = /^\.tmp-step-\d+-\d+-adapter\/trainable\.safetensors$/;
    const second = new BlobTask({ backend, trainSize: 48 });
    const error = await train(second, settings(store, 0.02)).catch((e: unknown) => e);
    second.dispose();
    expect(error).toBeInstanceOf(RunFolderError);
    const e = error as RunFolderError;
    expect(e.file).toBe('run/adapter/trainable.safetensors');
    expect(e.code).toBe('ENOSPC');
    expect(e.message).toBe(
      'cannot write the adapter run/adapter (the previous one is unchanged): writing adapter/trainable.safetensors failed: ' +
        'the disk is full (ENOSPC). The newest complete checkpoint run/checkpoints/step-00000006 (step 6) is intact: ' +
        'free some space on the disk, then run again with resume to continue from it.',
    );
    expect(adapterFiles(files)).toEqual(old);
    expect(temporary(files)).toEqual([]);

    // Space again: the resumed run replaces the adapter and leaves no temporary folder.
    fail.write = null;
    const third = new BlobTask({ backend, trainSize: 48 });
    await train(third, { ...settings(store, 0.02), resume: true });
    third.dispose();
    const now = adapterFiles(files);
    expect([...now.keys()]).toEqual(['adapter/trainable.safetensors']);
    expect(now.get('adapter/trainable.safetensors')).not.toEqual(old.get('adapter/trainable.safetensors'));
    expect(temporary(files)).toEqual([]);
  });

  it('moves the previous adapter back when the new one cannot be moved into place', async () => {
    const { store, files, fail } = failingStore();
    const first = new BlobTask({ backend, trainSize: 48 });
    await train(first, settings(store, 0.05));
    first.dispose();
    const old = adapterFiles(files);

    fail.rename = /^adapter$/;
    const second = new BlobTask({ backend, trainSize: 48 });
    const error = await train(second, { ...settings(store, 0.05), resume: true }).catch((e: unknown) => e);
    second.dispose();
    expect(error).toBeInstanceOf(RunFolderError);
    expect((error as Error).message).toMatch(
      /^cannot write the adapter run\/adapter \(the previous one is unchanged\): moving the new adapter into place failed: the disk reported an input\/output error \(EIO\)\. The newest complete checkpoint run\/checkpoints\/step-00000006 \(step 6\) is intact/,
    );
    // The old adapter was moved aside, the new one failed to move in, and the old one was moved back.
    expect(adapterFiles(files)).toEqual(old);
    expect(temporary(files)).toEqual([]);
  });
});
