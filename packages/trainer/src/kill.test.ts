// Kill -9 during writes: a child process trains the toy task with a checkpoint after every step
// (test-fixtures/kill-train.ts); this process watches the run folder and sends SIGKILL the moment a
// temporary file of a write appears (several times, at different points), and once between writes,
// restarting the child each time (it resumes). The final adapter, the last checkpoint's tensors and
// the logs must be byte-identical to an uninterrupted run's.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { nodeRunStore } from './node/index.js';
import { killRunOptions, killRunTask } from './test-fixtures/kill-run.js';
import { train } from './trainer.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const script = fileURLToPath(new URL('./test-fixtures/kill-train.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'peft-trainer-kill-'));
const backend = createCpuBackend({ threads: 1 });
afterAll(() => {
  backend.destroy();
  rmSync(root, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Temporary files of writes in progress (`.<name>.<pid>.<hex>.tmp`) and checkpoint folders being written, relative to `dir`. */
function temps(dir: string): { files: string[]; folders: string[] } {
  const files: string[] = [];
  const folders: string[] = [];
  const walk = (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return; // renamed or removed while we looked
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name.startsWith('.tmp-')) folders.push(relative(dir, full));
        walk(full);
      } else if (/^\..+\.\d+\.[0-9a-f]{12}\.tmp$/.test(e.name)) files.push(relative(dir, full));
    }
  };
  walk(dir);
  return { files, folders };
}

const checkpoints = (dir: string) =>
  readdirSync(join(dir, 'checkpoints'), { withFileTypes: true })
    .filter((e) => /^step-\d+$/.test(e.name))
    .map((e) => e.name);

interface Round {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

function start(dir: string): Round {
  const child = spawn(process.execPath, ['--conditions=@peft/source', '--import', 'tsx', script, dir], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const round: Round = { child, stdout: '', stderr: '', exit: new Promise((r) => child.on('exit', (code) => r(code))) };
  child.stdout!.on('data', (d) => {
    round.stdout += d;
  });
  child.stderr!.on('data', (d) => {
    round.stderr += d;
  });
  return round;
}

/** Polls the run folder every 2 ms until `when` says kill, or the child exits; returns whether it was killed. */
async function killWhen(dir: string, round: Round, when: (t: ReturnType<typeof temps>) => boolean): Promise<boolean> {
  let exited = false;
  void round.exit.then(() => {
    exited = true;
  });
  while (!exited) {
    if (existsSync(dir) && when(temps(dir))) {
      round.child.kill('SIGKILL');
      await round.exit;
      return true;
    }
    await sleep(2);
  }
  return false;
}

describe('kill -9 while training writes its run folder', () => {
  it('resumes after each kill to an adapter, checkpoint and logs byte-identical to an uninterrupted run', async () => {
    // The uninterrupted run, in this process, with the clock stopped as the child stops it (log.csv's timing columns).
    const whole = join(root, 'whole');
    const clock = vi.spyOn(performance, 'now').mockReturnValue(0);
    const task = killRunTask(backend);
    await train(task, { ...killRunOptions, out: nodeRunStore(whole) });
    task.dispose();
    clock.mockRestore();

    const dir = join(root, 'killed');
    const kills: { kind: 'during a write' | 'between writes'; left: ReturnType<typeof temps> }[] = [];
    const notices: string[] = [];
    const count = (kind: string) => kills.filter((k) => k.kind === kind).length;
    // Kill at the n-th temporary file a round sees (checked afterwards: a half-written file must be left), and once
    // when a new checkpoint has just appeared and nothing is being written. A kill that came too late is retried.
    const nth = [2, 5, 9, 3, 7, 4];
    while ((count('during a write') < 3 || count('between writes') < 1) && kills.length < 8) {
      const between = count('between writes') < 1 && count('during a write') >= 2;
      const at = nth[kills.length % nth.length] as number;
      const round = start(dir);
      const seen = new Set<string>();
      const before = existsSync(join(dir, 'checkpoints')) ? checkpoints(dir) : [];
      const killed = await killWhen(dir, round, (t) => {
        for (const f of t.files) seen.add(f);
        if (between) {
          const now = existsSync(join(dir, 'checkpoints')) ? checkpoints(dir) : [];
          return t.files.length === 0 && t.folders.length === 0 && now.some((c) => !before.includes(c));
        }
        return seen.size >= at && t.files.length > 0;
      });
      expect(killed, `the child finished before the kill (${round.stderr.slice(0, 500)})`).toBe(true);
      const left = temps(dir);
      kills.push({ kind: left.files.length > 0 ? 'during a write' : 'between writes', left });
      notices.push(...round.stderr.split('\n').filter((l) => l.startsWith('removed ')));
    }
    // The last round runs to the end.
    const last = start(dir);
    expect(await last.exit, last.stderr.slice(0, 1000)).toBe(0);
    notices.push(...last.stderr.split('\n').filter((l) => l.startsWith('removed ')));
    const result = JSON.parse(last.stdout.trim());
    expect(result.resumedFrom).toMatch(/checkpoints[/\\]step-\d{8}$/);

    // At least three kills landed while a temporary file was half written (it was still there after the kill), one between writes.
    expect(count('during a write')).toBeGreaterThanOrEqual(3);
    expect(count('between writes')).toBeGreaterThanOrEqual(1);
    // Each restart after a kill that left temporary files removed them, and said so in one line.
    const leftovers = kills.filter((k) => k.left.files.length + k.left.folders.length > 0).length;
    expect(notices).toHaveLength(leftovers);
    const escaped = dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const n of notices) expect(n).toMatch(new RegExp(`^removed \\d+ temporary file\\(s\\) left in ${escaped} by interrupted writes`));
    expect(temps(dir)).toEqual({ files: [], folders: [] });

    const bytes = (d: string, f: string) => readFileSync(join(d, f));
    for (const f of ['adapter/trainable.safetensors', 'log.csv', 'val-metrics.json', 'test-metrics.json', 'config.json'])
      expect(bytes(dir, f).equals(bytes(whole, f)), `${f} differs from the uninterrupted run's`).toBe(true);
    expect(checkpoints(dir)).toEqual(checkpoints(whole));
    const final = `checkpoints/${checkpoints(whole).at(-1)}`;
    for (const f of ['trainable.safetensors', 'optimizer.safetensors', 'best.safetensors', 'state.json', 'manifest.json'])
      expect(bytes(dir, `${final}/${f}`).equals(bytes(whole, `${final}/${f}`)), `${final}/${f} differs`).toBe(true);
  }, 60_000);
});
