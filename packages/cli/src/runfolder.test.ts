import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';
import { prepareRunFolder, previousRun } from './runfolder.js';

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
