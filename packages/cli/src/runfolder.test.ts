import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { bc5cdrPresetLine, bc5cdrRunName, parseBc5cdrCommandLine } from './commands/bc5cdr.js';
import { livedoorPresetLine, livedoorRunName, parseLivedoorCommandLine } from './commands/livedoor.js';
import { main } from './main.js';
import { choosePreset, defaultRunFolder, runStamp } from './presets.js';
import { LOCK_FILE, lockRunFolder, openRunFolder, prepareRunFolder, previousRun, RunFolderInUseError } from './runfolder.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const NEOX = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
const LLAMA = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const LIVEDOOR = join(ROOT, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz');
const BC5CDR = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');
const tmp = mkdtempSync(join(tmpdir(), 'peft-runfolder-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder with a previous run's files in it. */
function previous(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'checkpoints', 'step-00000010'), { recursive: true });
  mkdirSync(join(dir, 'adapter'), { recursive: true });
  writeFileSync(join(dir, 'log.csv'), 'epoch,step,loss\n1,10,0.5\n');
  writeFileSync(join(dir, 'checkpoints', 'step-00000010', 'state.json'), '{"step":10}');
  writeFileSync(join(dir, 'adapter', 'adapter_config.json'), '{}');
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  return dir;
}

/** Every file and folder under dir with its mtime and bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, rel));
    out[rel] = `${st.mtimeMs} ${st.isFile() ? readFileSync(join(dir, rel), 'base64') : 'dir'}`;
  }
  return out;
}

async function run(argv: string[]): Promise<{ code: number; err: string }> {
  const written: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    written.push(String(s));
    return true;
  });
  try {
    const code = await main(argv, () => {});
    return { code, err: written.join('') };
  } finally {
    spy.mockRestore();
  }
}

describe('a run folder that holds a previous run', () => {
  const cases: [string, string[]][] = [
    ['livedoor', ['train', 'livedoor', '--model', NEOX, '--data', LIVEDOOR]],
    ['livedoor --sweep', ['train', 'livedoor', '--model', NEOX, '--data', LIVEDOOR, '--sweep']],
    ['bc5cdr', ['train', 'bc5cdr', '--model', LLAMA, '--data', BC5CDR]],
  ];
  for (const [name, argv] of cases) {
    it(`${name}: without --resume or --overwrite exits non-zero, names the folder and the ways out, and changes no file`, async () => {
      const dir = previous(name.replace(/\W+/g, '-'));
      const before = snapshot(dir);
      const { code, err } = await run([...argv, '--out', dir, '--epochs', '1']);
      expect(code).not.toBe(0);
      expect(err).toContain(`the run folder ${dir} already holds a previous run`);
      expect(err).toContain('--resume');
      expect(err).toContain('--overwrite');
      expect(snapshot(dir)).toEqual(before);
    });
  }

  it('a sweep folder is recognised by its configurations’ run files', async () => {
    const dir = join(tmp, 'sweep');
    mkdirSync(join(dir, 'lr0.001-t2'), { recursive: true });
    writeFileSync(join(dir, 'lr0.001-t2', 'log.csv'), '');
    expect(await previousRun(dir)).toEqual(['lr0.001-t2/log.csv']);
    expect(await previousRun(join(tmp, 'missing'))).toEqual([]);
  });

  it('--resume leaves it to the run; --overwrite removes it; both at once is an error', async () => {
    const dir = previous('ways-out');
    const before = snapshot(dir);
    await prepareRunFolder(dir, { resume: true, overwrite: false });
    expect(snapshot(dir)).toEqual(before);
    await expect(prepareRunFolder(dir, { resume: true, overwrite: true })).rejects.toThrow('exclude each other');
    expect(snapshot(dir)).toEqual(before);
    const lines: string[] = [];
    await prepareRunFolder(dir, { resume: false, overwrite: true, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toContain(`replacing the previous run in ${dir}`);
    expect(() => statSync(dir)).toThrow();
  });

  it('a folder without run files is used as it is', async () => {
    const dir = join(tmp, 'unrelated');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await prepareRunFolder(dir, { resume: false, overwrite: true });
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });
});

describe('the run folder lock', () => {
  /** The id of a process that has ended. */
  const deadPid = () => {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(r.stdout);
  };

  it('is taken atomically: a second lock on the folder, in this process too, is refused naming the holder', async () => {
    const dir = join(tmp, 'lock-twice');
    const lock = await lockRunFolder(dir, { command: 'peft train livedoor --out x' });
    const recorded = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    expect(recorded).toEqual({ pid: process.pid, host: hostname(), started: lock.holder.started, command: 'peft train livedoor --out x' });
    const error = await lockRunFolder(dir, { command: 'again' }).catch((e) => e);
    expect(error).toBeInstanceOf(RunFolderInUseError);
    expect(error.message).toContain(
      `the run folder ${dir} is in use by another training process: pid ${process.pid}, started ${lock.holder.started}`,
    );
    expect(error.message).toContain(`kill -INT ${process.pid}`);
    // Refused before anything else is looked at, also with --overwrite.
    await expect(openRunFolder(dir, { resume: false, overwrite: true, command: 'x' })).rejects.toThrow(RunFolderInUseError);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    lock.release(); // idempotent
    (await lockRunFolder(dir, { command: 'later' })).release();
  });

  it('a stale lock (its process has ended) is taken over with a log line', async () => {
    const dir = join(tmp, 'lock-stale');
    mkdirSync(dir);
    const pid = deadPid();
    const started = '2026-01-02T03:04:05.000Z';
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), started, command: 'peft train bc5cdr' }));
    const lines: string[] = [];
    const lock = await lockRunFolder(dir, { command: 'mine', log: (l) => lines.push(l) });
    expect(lines).toEqual([`taking over the stale lock of ${dir}: pid ${pid} (started ${started}) is no longer running`]);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it("another host's lock is never taken over; a lock file that records no process is an error naming it", async () => {
    const dir = join(tmp, 'lock-other');
    mkdirSync(dir);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: deadPid(), host: 'elsewhere', started: 's', command: 'c' }));
    await expect(lockRunFolder(dir, { command: 'x' })).rejects.toThrow(`on host elsewhere, started s (c); nothing was changed`);
    writeFileSync(join(dir, LOCK_FILE), '\x00\x01 not json');
    await expect(lockRunFolder(dir, { command: 'x' })).rejects.toThrow(
      `has a lock file run.lock that does not record a process (pid, host, started, command); nothing was changed. If no other run uses this folder, delete ${join(dir, LOCK_FILE)}`,
    );
  });

  it('is removed when the process exits without releasing it (an error, a second Ctrl-C)', () => {
    const dir = join(tmp, 'lock-exit');
    const code = `
      const { lockRunFolder } = await import(${JSON.stringify(join(import.meta.dirname, 'runfolder.ts'))});
      await lockRunFolder(${JSON.stringify(dir)}, { command: 'child' });
      process.stdout.write((await import('node:fs')).existsSync(${JSON.stringify(join(dir, LOCK_FILE))}) ? 'locked' : 'not locked');
      process.exit(130);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stdout, r.stderr).toBe('locked');
    expect(r.status).toBe(130);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('a folder the lock created is removed at release when the run left nothing in it', async () => {
    const dir = join(tmp, 'lock-made', 'run');
    (await lockRunFolder(dir, { command: 'x' })).release();
    expect(existsSync(dir)).toBe(false);
    const kept = await lockRunFolder(dir, { command: 'x' });
    writeFileSync(join(dir, 'log.csv'), '');
    kept.release();
    expect(readdirSync(dir)).toEqual(['log.csv']);
  });

  it('--overwrite keeps the lock and removes everything else', async () => {
    const dir = previous('lock-overwrite');
    const lock = await openRunFolder(dir, { resume: false, overwrite: true, command: 'x' });
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    lock.release();
  });
});

describe('default run folders and presets', () => {
  it('name the model, the method and rank, the learning rate and template or types, and a UTC time', () => {
    const at = new Date('2026-12-07T14:35:09.123Z');
    expect(runStamp(at)).toBe('20261207-143509');
    expect(livedoorRunName({ modelDir: '/m/japanese-gpt-neox-3.6b/', lr: 5e-4, template: 1 })).toBe(
      'japanese-gpt-neox-3.6b-livedoor-lora-r32-lr5e-4-t1',
    );
    expect(livedoorRunName({ modelDir: 'x', lr: 0.01, sweep: true })).toBe('x-livedoor-lora-r32-sweep');
    const a = bc5cdrRunName({ modelDir: 'Llama-2-7b-hf', labels: 'per-label', r: 128, types: ['Disease'] });
    const b = bc5cdrRunName({ modelDir: 'Llama-2-13b-hf', labels: 'per-label', r: 128, types: ['Disease'] });
    const c = bc5cdrRunName({ modelDir: 'Llama-2-7b-hf', labels: 'per-label', r: 128, types: ['Chemical'] });
    expect(a).toBe('Llama-2-7b-hf-bc5cdr-tagging-per-label-disease-input-all-lora-r128-lr1e-4');
    expect(new Set([a, b, c]).size).toBe(3);
    expect(
      bc5cdrRunName({ modelDir: 'L', method: 'extraction', labels: 'all', prompt: true, layers: ['q_proj', 'v_proj'], r: 8, lr: 3e-4 }),
    ).toBe('L-bc5cdr-extraction-all-chemical+disease-prompt-q_proj+v_proj-lora-r8-lr3e-4');
  });

  it('a new run gets a fresh folder; --resume without --out continues the newest of the same settings', () => {
    const root = join(tmp, 'runs');
    mkdirSync(root);
    const first = defaultRunFolder('m-livedoor-lora-r32-lr5e-4-t2', false, root, new Date('2026-12-07T10:00:00Z'));
    expect(first).toBe(join(root, 'm-livedoor-lora-r32-lr5e-4-t2-20261207-100000'));
    mkdirSync(first);
    // Same second: a suffix keeps it apart.
    expect(defaultRunFolder('m-livedoor-lora-r32-lr5e-4-t2', false, root, new Date('2026-12-07T10:00:00Z'))).toBe(`${first}-2`);
    mkdirSync(join(root, 'm-livedoor-lora-r32-lr5e-4-t2-20261207-110000'));
    mkdirSync(join(root, 'm-livedoor-lora-r32-lr5e-4-t2-extra-20261207-120000'));
    expect(defaultRunFolder('m-livedoor-lora-r32-lr5e-4-t2', true, root)).toBe(join(root, 'm-livedoor-lora-r32-lr5e-4-t2-20261207-110000'));
    expect(() => defaultRunFolder('m-livedoor-lora-r32-lr1e-3-t2', true, root)).toThrow(
      '--resume without --out: no earlier run with these settings',
    );
  });

  it('a tiny model gets the tiny preset, a real one the study’s; --preset chooses; one line says which and how to override', () => {
    const tiny = choosePreset(undefined, NEOX, false);
    expect(tiny).toEqual({ name: 'tiny', reason: 'tiny-gpt-neox is tiny: hidden size 64 ≤ 256' });
    const real = join(ROOT, 'fixtures', 'configs', 'rinna-japanese-gpt-neox-3.6b');
    expect(choosePreset(undefined, real, false).name).toBe('study');
    expect(choosePreset('study', NEOX, false).name).toBe('study');
    expect(() => choosePreset('huge', NEOX, false)).toThrow('--preset "huge" is not one of tiny, study');

    const parsed = parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR], { usage: '' });
    expect(parsed).toMatchObject({ lr: 1e-2, batchSize: 8, maxLength: 64, epochs: 10, preset: { name: 'tiny' } });
    expect(livedoorPresetLine(parsed.preset, parsed)).toBe(
      'preset tiny (tiny-gpt-neox is tiny: hidden size 64 ≤ 256): lr 0.01, batch size 8, max length 64, epochs 10; --lr, --batch-size, --max-length, --epochs override one, --preset study switches',
    );
    expect(parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR, '--lr', '3e-3'], { usage: '' }).lr).toBe(3e-3);
    expect(parseLivedoorCommandLine(['--model', real, '--data', LIVEDOOR], { usage: '' })).toMatchObject({
      lr: 5e-4,
      batchSize: 32,
      maxLength: 512,
    });
    expect(parseLivedoorCommandLine(['--model', NEOX, '--data', LIVEDOOR, '--preset', 'study'], { usage: '' }).maxLength).toBe(512);

    const ner = parseBc5cdrCommandLine(['--model', LLAMA, '--data', BC5CDR], { usage: '' });
    expect(ner).toMatchObject({
      r: 8,
      lr: 5e-3,
      epochs: 2,
      batchSize: 8,
      maxLength: 160,
      gradientCheckpointing: false,
      preset: { name: 'tiny' },
    });
    expect(bc5cdrPresetLine(ner.preset, ner)).toContain('preset tiny (tiny-llama is tiny: hidden size 64 ≤ 256): r 8, lr 0.005');
    const study = parseBc5cdrCommandLine(['--model', join(ROOT, 'fixtures', 'configs', 'llama-2-7b'), '--data', BC5CDR], { usage: '' });
    expect(study).toMatchObject({ r: undefined, lr: undefined, preset: { name: 'study' } });
    expect(bc5cdrPresetLine(study.preset, study)).toContain(
      'r 128, lr 0.0001, batch size 8, max length 256, epochs 3, gradient checkpointing on',
    );
  });
});
