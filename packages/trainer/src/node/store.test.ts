// The run folder on disk when the disk fills up or a folder is read-only (injected into
// node:fs/promises: the tests may run as root, where a folder's mode does not stop writes), and
// the temporary files a killed run leaves behind.
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { RunFolderError as RunFolderErrorType } from '../errors.js';

const inject = vi.hoisted(() => ({
  /** A write to a temporary file whose path matches fails with `code`. */
  writePath: null as RegExp | null,
  /** mkdir of a path that matches fails with ENOENT, as a recursive mkdir below a read-only folder does. */
  mkdirPath: null as RegExp | null,
  /** access(W_OK) of a path that matches is refused. */
  readOnly: null as RegExp | null,
  code: 'ENOSPC',
  opened: 0,
  closed: 0,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const fail = (code: string, syscall: string, path?: string) =>
    Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall, path });
  return {
    ...real,
    async open(path: string, flags: string) {
      const handle = await real.open(path, flags);
      if (flags !== 'wx') return handle;
      inject.opened++;
      const failing = inject.writePath?.test(path) ?? false;
      return new Proxy(handle, {
        get(target, key) {
          if (key === 'write' && failing) return () => Promise.reject(fail(inject.code, 'write'));
          if (key === 'close')
            return () => {
              inject.closed++;
              return target.close();
            };
          const v = Reflect.get(target, key);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
    async mkdir(path: string, options: object) {
      if (inject.mkdirPath?.test(path)) throw fail('ENOENT', 'mkdir', path);
      return real.mkdir(path, options);
    },
    async access(path: string, mode?: number) {
      if (inject.readOnly?.test(path)) throw fail('EACCES', 'access', path);
      return real.access(path, mode);
    },
  };
});

const { spawnSync } = await import('node:child_process');
const { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } = await import('node:fs');
const { tmpdir } = await import('node:os');
const { join } = await import('node:path');
const { createCpuBackend } = await import('@peft/backend-cpu');
const { RunFolderError } = await import('../errors.js');
const { BlobTask, rawState } = await import('../test-helpers.js');
const { train } = await import('../trainer.js');
const { nodeRunStore, removeStaleTempFiles } = await import('./store.js');

const backend = createCpuBackend({ threads: 1 });
// log.csv's tokens/s and elapsed seconds measure the wall clock; stopped, the whole file must match byte for byte.
vi.spyOn(performance, 'now').mockReturnValue(0);
const root = mkdtempSync(join(tmpdir(), 'peft-trainer-node-store-'));
afterAll(() => {
  backend.destroy();
  rmSync(root, { recursive: true, force: true });
});

const reset = () => Object.assign(inject, { writePath: null, mkdirPath: null, readOnly: null, code: 'ENOSPC', opened: 0, closed: 0 });
// 2 epochs × 3 steps, a checkpoint every 2 steps and at each epoch's end.
const options = {
  epochs: 2,
  batchSize: 8,
  microBatchSize: 8,
  lr: 0.05,
  warmupEpochs: 1,
  checkpointEverySteps: 2,
  progress: false as const,
};
const newTask = () => new BlobTask({ backend, trainSize: 24, initSeed: 4 });

let whole: { test: unknown; state: Record<string, number[]>; adapter: Buffer; log: string } | null = null;
async function uninterrupted() {
  if (whole) return whole;
  const task = newTask();
  const dir = join(root, 'whole');
  const result = await train(task, { ...options, out: nodeRunStore(dir) });
  whole = {
    test: result.test,
    state: await rawState(task),
    adapter: readFileSync(join(dir, 'adapter', 'trainable.safetensors')),
    log: readFileSync(join(dir, 'log.csv'), 'utf8'),
  };
  task.dispose();
  return whole;
}

/** Runs until the injected failure, checks the error, then resumes with the disk healthy again to the uninterrupted result. */
async function failThenResume(name: string, arm: () => void, check: (e: RunFolderErrorType, dir: string) => void) {
  const expected = await uninterrupted();
  const dir = join(root, name);
  reset();
  arm();
  const task = newTask();
  const error = await train(task, { ...options, out: nodeRunStore(dir) }).catch((e: unknown) => e);
  task.dispose();
  const armed = { ...inject };
  reset();
  expect(error).toBeInstanceOf(RunFolderError);
  check(error as RunFolderErrorType, dir);
  // Every temporary file opened was closed and removed.
  expect(armed.closed).toBe(armed.opened);
  const left: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (/\.tmp$|^\.tmp-/.test(e.name)) left.push(join(d, e.name));
      if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  walk(dir);
  expect(left).toEqual([]);
  const second = newTask();
  const resumed = await train(second, { ...options, out: nodeRunStore(dir), resume: true });
  expect(resumed.test).toEqual(expected.test);
  expect(await rawState(second)).toEqual(expected.state);
  expect(readFileSync(join(dir, 'adapter', 'trainable.safetensors')).equals(expected.adapter)).toBe(true);
  expect(readFileSync(join(dir, 'log.csv'), 'utf8')).toBe(expected.log);
  second.dispose();
}

describe('nodeRunStore when the disk fails', () => {
  it('a full disk during a checkpoint names the checkpoint, the file and the cause, and says the previous one is intact', async () => {
    await failThenResume(
      'full-checkpoint',
      () => {
        inject.writePath = /\.tmp-step-00000004-\d+-[0-9a-z]+[/\\]\.optimizer\.safetensors\./;
      },
      (e, dir) => {
        expect(e.code).toBe('ENOSPC');
        expect(e.message).toMatch(
          new RegExp(
            `^cannot write checkpoint ${dir}/checkpoints/step-00000004: writing optimizer\\.safetensors failed: the disk is full \\(ENOSPC at ${dir}/checkpoints/\\.tmp-step-00000004-${process.pid}-[0-9a-z]+/optimizer\\.safetensors\\)\\. ` +
              `The unfinished checkpoint was removed\\. The newest complete checkpoint ${dir}/checkpoints/step-00000003 \\(step 3\\) is intact: free some space on the disk, then run again with resume to continue from it\\.$`,
          ),
        );
        expect(readdirSync(join(dir, 'checkpoints'))).toEqual(['step-00000003']);
      },
    );
  });

  it('a full disk while writing the adapter names the file and the intact final checkpoint', async () => {
    await failThenResume(
      'full-adapter',
      () => {
        // The new adapter is written into a temporary folder beside adapter/ and moved in when complete.
        inject.writePath = /[/\\]\.tmp-step-\d+-\d+-adapter[/\\]\.trainable\.safetensors\./;
      },
      (e, dir) => {
        const file = join(dir, 'adapter', 'trainable.safetensors');
        expect(e.file).toBe(file);
        expect(e.message).toBe(
          `cannot write the adapter ${join(dir, 'adapter')}: cannot write ${file}: the disk is full (ENOSPC). ${file} was left as it was. ` +
            `The newest complete checkpoint ${dir}/checkpoints/step-00000006 (step 6) is intact: free some space on the disk, then run again with resume to continue from it.`,
        );
      },
    );
  });

  it('a read-only run folder is named as not writable, not as a missing file', async () => {
    await failThenResume(
      'read-only',
      () => {
        inject.mkdirPath = /[/\\]read-only[/\\]\.tmp-step-\d+-\d+-adapter$/;
        inject.readOnly = /[/\\]read-only$/;
      },
      (e, dir) => {
        const file = join(dir, 'adapter', 'trainable.safetensors');
        expect(e.message).toBe(
          `cannot write the adapter ${join(dir, 'adapter')}: cannot write ${file}: cannot create the folder ${join(dir, 'adapter')}: the folder ${dir} is not writable (mkdir reported ENOENT). ` +
            `The newest complete checkpoint ${dir}/checkpoints/step-00000006 (step 6) is intact: make the run folder writable, then run again with resume to continue from it.`,
        );
      },
    );
  });
});

/** A small tmpfs mounted at `dir` (root on Linux only); false where mounting is not allowed. */
function mountTmpfs(dir: string, size: string): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0;
}
const disk = join(root, 'small-disk');
const mounted = mountTmpfs(disk, '2m');
afterAll(() => {
  if (mounted) spawnSync('umount', [disk]);
});

describe.runIf(mounted)('on a real full disk (a 2 MiB tmpfs)', () => {
  it('a checkpoint that no longer fits fails with ENOSPC naming the file; after space is freed the run resumes to the same result', async () => {
    const expected = await uninterrupted();
    const dir = join(disk, 'run');
    const filler = join(disk, 'filler');
    const task = newTask();
    const error = await train(task, {
      ...options,
      out: nodeRunStore(dir),
      onStep: (s) => {
        // Fill the disk after update 4 (its checkpoint is written by then): the next checkpoint, at the end of epoch 2, cannot be.
        if (s.step !== 4) return;
        try {
          writeFileSync(filler, new Uint8Array(4 << 20));
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
        }
      },
    }).catch((e: unknown) => e);
    task.dispose();
    expect(error).toBeInstanceOf(RunFolderError);
    const e = error as RunFolderErrorType;
    expect(e.code).toBe('ENOSPC');
    expect(e.message).toMatch(
      new RegExp(
        `^cannot write checkpoint ${dir}/checkpoints/step-00000006: writing \\S+ failed: the disk is full \\(ENOSPC at ${dir}/checkpoints/\\.tmp-step-00000006-\\d+-[0-9a-z]+/\\S+\\)\\. ` +
          `The unfinished checkpoint was removed\\. The newest complete checkpoint ${dir}/checkpoints/step-00000004 \\(step 4\\) is intact: free some space on the disk, then run again with resume to continue from it\\.$`,
      ),
    );
    expect(readdirSync(join(dir, 'checkpoints'))).toEqual(['step-00000004']);
    rmSync(filler);
    const second = newTask();
    const resumed = await train(second, { ...options, out: nodeRunStore(dir), resume: true });
    expect(resumed.resumedFrom).toBe(`${dir}/checkpoints/step-00000004`);
    expect(resumed.test).toEqual(expected.test);
    expect(await rawState(second)).toEqual(expected.state);
    expect(readFileSync(join(dir, 'adapter', 'trainable.safetensors')).equals(expected.adapter)).toBe(true);
    expect(readFileSync(join(dir, 'log.csv'), 'utf8')).toBe(expected.log);
    second.dispose();
  });
});

describe('stale temporary files of killed runs', () => {
  /** The pid of a process that has exited. */
  const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid as number;

  it('removes those whose writer is gone or that predate the newest checkpoint, keeps a live writer’s newer ones, and says so in one line', async () => {
    // A run killed in step 5: checkpoints 3 and 4 complete, and temporary files of the killed process.
    const dir = join(root, 'stale');
    const task = newTask();
    await expect(
      train(task, {
        ...options,
        out: nodeRunStore(dir),
        keepCheckpoints: 2,
        onStep: (s) => {
          if (s.step === 5) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    task.dispose();
    const dead = deadPid();
    const past = new Date(Date.now() - 3_600_000);
    const files = {
      deadConfig: `.config.json.${dead}.0123456789ab.tmp`,
      deadCheckpoint: `checkpoints/.tmp-step-00000005-${dead}-k2x9`,
      deadAdapter: `adapter/.trainable.safetensors.${dead}.a1b2c3d4e5f6.tmp`,
      // The final adapter being written, and the previous one moved aside, when the writer was killed.
      deadNewAdapter: `.tmp-step-00000006-${dead}-adapter`,
      deadOldAdapter: `.tmp-step-00000006-${dead}-oldadapter`,
      // This process's pid, from before it started (a container restarts with the same pid).
      ownOld: `.log.csv.${process.pid}.bbbbbbbbbbbb.tmp`,
      // A live process (our parent) that wrote long before the newest checkpoint.
      liveOld: `.val-metrics.json.${process.ppid}.cccccccccccc.tmp`,
      // A live process writing now: kept.
      liveNew: `.log.csv.${process.ppid}.dddddddddddd.tmp`,
      // Not our naming pattern: kept.
      other: '.notes.tmp',
    };
    const folders = ['deadCheckpoint', 'deadNewAdapter', 'deadOldAdapter'];
    for (const k of folders) {
      mkdirSync(join(dir, files[k as keyof typeof files]));
      writeFileSync(join(dir, files[k as keyof typeof files], 'trainable.safetensors'), 'partial');
    }
    mkdirSync(join(dir, 'adapter'));
    for (const [k, f] of Object.entries(files)) if (!folders.includes(k)) writeFileSync(join(dir, f), 'partial');
    for (const f of [files.ownOld, files.liveOld]) utimesSync(join(dir, f), past, past);

    const lines: string[] = [];
    const second = newTask();
    await train(second, { ...options, keepCheckpoints: 2, out: nodeRunStore(dir, { onNotice: (l) => lines.push(l) }), resume: true });
    second.dispose();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^removed 7 temporary file\\(s\\) left in ${dir} by interrupted writes \\(their writer is gone\\): `),
    );
    for (const k of ['deadConfig', 'deadCheckpoint', 'deadAdapter', 'deadNewAdapter', 'deadOldAdapter', 'ownOld', 'liveOld'] as const) {
      expect(existsSync(join(dir, files[k])), k).toBe(false);
    }
    expect(lines[0]).toContain(files.deadConfig);
    expect(existsSync(join(dir, files.liveNew))).toBe(true);
    expect(existsSync(join(dir, files.other))).toBe(true);
    // Once the resumed run has written newer checkpoints, the live writer's file predates them too.
    expect(await removeStaleTempFiles(dir)).toEqual({ removed: [files.liveNew], failed: [] });
    expect(await removeStaleTempFiles(dir)).toEqual({ removed: [], failed: [] });
  });

  it('leaves a folder without temporary files alone and prints nothing', async () => {
    const dir = join(root, 'clean');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), '{}');
    const lines: string[] = [];
    const store = nodeRunStore(dir, { onNotice: (l) => lines.push(l) });
    expect(await store.list('')).toEqual(['config.json']);
    expect(lines).toEqual([]);
  });
});
