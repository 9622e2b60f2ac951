import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { webGpuAvailable } from '@peft/backend-webgpu';
import { loadModel } from '@peft/models/node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createBackend, installAdvice } from './backends.js';
import { benchTraining } from './commands/bench.js';
import { main } from './main.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

describe('peft info', () => {
  const llama7b = join(ROOT, 'fixtures', 'configs', 'llama-2-7b');
  const all = 'q_proj,k_proj,v_proj,o_proj,up_proj,down_proj,gate_proj,embed_tokens,lm_head';

  it("prints Study B's trainable parameters for LoRA on all layers at r = 128 on Llama-2-7B", async () => {
    const { code, out } = await run(['info', llama7b, '--r', '128', '--alpha', '256', '--target-modules', all]);
    expect(code).toBe(0);
    expect(out).toContain('llama, 32 layers, hidden 4096, MLP 11008, heads 32, head dim 128, vocabulary 32000');
    expect(out).toContain('parameters: 6,738,415,616');
    expect(out).toContain('trainable params: 329,056,256 || all params: 7,067,471,872 || trainable%: 4.6559');
  });

  it('counts every layer set and rank of the study grid', async () => {
    // LoRA adds r·(in + out) per linear layer and r·(vocab + hidden) per embedding.
    const h = 4096;
    const m = 11008;
    const v = 32000;
    const perLayer: Record<string, number> = {
      q_proj: 2 * h,
      k_proj: 2 * h,
      v_proj: 2 * h,
      o_proj: 2 * h,
      up_proj: h + m,
      down_proj: h + m,
      gate_proj: h + m,
    };
    const sets: Record<string, string[]> = {
      q: ['q_proj'],
      qk: ['q_proj', 'k_proj'],
      qkv: ['q_proj', 'k_proj', 'v_proj'],
      qkvo: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      all: all.split(','),
    };
    for (const [setName, modules] of Object.entries(sets)) {
      for (const r of [2, 4, 8, 64, 128]) {
        const expected = modules.reduce((n, mod) => n + (perLayer[mod] ? 32 * r * perLayer[mod]! : r * (v + h)), 0);
        const { out } = await run(['info', llama7b, '--r', String(r), '--target-modules', modules.join(',')]);
        expect(out, `${setName} r=${r}`).toContain(`trainable params: ${expected.toLocaleString('en-US')} ||`);
      }
    }
  });

  it('all-linear leaves the LM head out, as PEFT and getPeftModel do', async () => {
    const { code, out } = await run(['info', llama7b, '--r', '8', '--target-modules', 'all-linear']);
    expect(code).toBe(0);
    const h = 4096;
    const m = 11008;
    expect(out).toContain(`trainable params: ${(32 * 8 * (4 * 2 * h + 3 * (h + m))).toLocaleString('en-US')} ||`);
    expect(out).toContain('on 224 modules (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)');
  });

  it('names a missing folder', async () => {
    const { code } = await run(['info', join(ROOT, 'does-not-exist')]);
    expect(code).toBe(1);
  });
});

describe('peft merge', () => {
  it('writes a folder that loadModel reads and that gives the adapted logits', async () => {
    const out = mkdtempSync(join(tmpdir(), 'peft-merge-'));
    temps.push(out);
    const adapter = join(ROOT, 'fixtures', 'adapters', 'tiny-llama-all');
    const model = join(ROOT, 'fixtures', 'models', 'tiny-llama');
    const { code, out: printed } = await run(['merge', '--model', model, '--adapter', adapter, '--out', out]);
    expect(code).toBe(0);
    expect(printed).toContain(`wrote ${out}`);
    const backend = createCpuBackend();
    const merged = await loadModel(out, { backend });
    const ids = [[3, 17, 42, 99, 5]];
    const a = await merged.forward({ inputIds: ids }).logits.data();
    const { loadAdapter } = await import('@peft/core/node');
    const base = await loadModel(model, { backend });
    await loadAdapter(base, adapter);
    const b = await base.forward({ inputIds: ids }).logits.data();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-4);
    backend.destroy();
  });
});

describe('peft merge of a classifier adapter', () => {
  it('writes a …ForSequenceClassification folder with the labels saved with the adapter', async () => {
    const { AutoModelForSequenceClassification, AutoPeftModelForSequenceClassification } = await import('@peft/heads/node');
    const { getPeftModel } = await import('@peft/core');
    const { saveAdapter } = await import('@peft/core/node');
    const backend = createCpuBackend();
    const dir = mkdtempSync(join(tmpdir(), 'peft-merge-cls-'));
    temps.push(dir);
    const model = join(ROOT, 'fixtures', 'models', 'tiny-gpt-neox');
    const classifier = await AutoModelForSequenceClassification.fromPretrained(model, { backend, id2label: ['a', 'b', 'c'] });
    const peft = getPeftModel(classifier, { taskType: 'SEQ_CLS', r: 2, initLoraWeights: false });
    await saveAdapter(peft, join(dir, 'adapter'));
    const { code, out } = await run(['merge', '--model', model, '--adapter', join(dir, 'adapter'), '--out', join(dir, 'merged')]);
    expect(code).toBe(0);
    expect(out).toContain('(GPTNeoXForSequenceClassification, 3 labels: a, b, c)');
    const merged = await AutoModelForSequenceClassification.fromPretrained(join(dir, 'merged'), { backend });
    expect(merged.id2label).toEqual(['a', 'b', 'c']);
    const batch = { inputIds: [[5, 6, 7, 8]] };
    const reloaded = await AutoPeftModelForSequenceClassification.fromPretrained(join(dir, 'adapter'), { backend });
    const [x, y] = [merged.forward(batch).logits, reloaded.forward(batch).logits];
    const [a, b] = [await x.data(), await y.data()];
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-5);
    for (const t of [x, y]) t.dispose();
    for (const m of [peft, merged, reloaded]) m.dispose();
    backend.destroy();
  });
});

describe('peft bench', () => {
  it('times LoRA training steps and leaks nothing', async () => {
    const backend = createCpuBackend();
    const r = await benchTraining(backend, { config: 'tiny', batch: 2, seq: 16, steps: 2 });
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(r.trainable).toBe(2 * 8 * (64 + 192));
    backend.destroy();
  });
});

describe('peft', () => {
  it('prints usage, and an error for an unknown command or option', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    expect(out).toContain('Usage: peft <command> [options]');
    expect((await run(['nope'])).code).toBe(2);
    expect((await run(['info', '--bogus'])).code).toBe(2);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v']) {
      const { code, out } = await run([flag]);
      expect(code).toBe(0);
      expect(out).toBe(version);
    }
  });

  async function failing(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      written.push(String(s));
      return true;
    });
    try {
      const r = await run(argv);
      return { ...r, err: written.join('') };
    } finally {
      spy.mockRestore();
    }
  }

  it('an unknown command or study exits non-zero and suggests the closest name', async () => {
    let r = await failing(['trian']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "trian"; did you mean train?');
    r = await failing(['train', 'livdoor']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown study "livdoor"; did you mean livedoor?');
    expect(r.out).not.toContain('LoRA-trains');
    r = await failing(['train', 'bc5']);
    expect(r.err).toContain('did you mean bc5cdr?');
    r = await failing(['train', 'imdb']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown study "imdb" (known: livedoor, bc5cdr)');
    r = await failing(['train']);
    expect(r.code).toBe(2);
    expect((await run(['train', '--help'])).code).toBe(0);
  });
});

/** The CLI from source in a child process of its own process group (as a terminal's foreground job). */
interface Child {
  proc: ChildProcess;
  text: () => string;
  exited: Promise<number | null>;
  /** Resolves when the output matches. */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>;
}

const children: ChildProcess[] = [];
afterAll(() => {
  // A failed assertion must not leave a training process behind.
  for (const c of children) {
    try {
      if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, 'SIGKILL');
    } catch {}
  }
});

function spawnCli(command: string, args: string[]): Child {
  const proc = spawn(command, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let text = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const on = (d: Buffer) => {
    text += d.toString();
    for (const w of waiters.splice(0)) (w.re.test(text) ? w.resolve : () => waiters.push(w))();
  };
  proc.stdout!.on('data', on);
  proc.stderr!.on('data', on);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc,
    text: () => text,
    exited,
    waitFor: (re, timeoutMs = 120_000) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(text)) return resolve();
        const timer = setTimeout(() => reject(new Error(`no ${re} in ${timeoutMs} ms; output:\n${text.slice(-2000)}`)), timeoutMs);
        waiters.push({
          re,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        exited.then(() => {
          if (!re.test(text)) {
            clearTimeout(timer);
            reject(new Error(`exited before ${re}; output:\n${text.slice(-2000)}`));
          }
        });
      }),
  };
}

const nodeCli = (args: string[]) =>
  spawnCli(process.execPath, ['--conditions=@peft/source', '--import', 'tsx', join(ROOT, 'packages', 'cli', 'src', 'bin.ts'), ...args]);

/** Milliseconds until no process of the group is left (polled every 10 ms), or null after `limitMs`. */
async function groupGone(pgid: number, limitMs: number): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return performance.now() - t0;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return null;
}

/** The newest checkpoint's step and step within its epoch. */
function newestCheckpoint(dir: string): { name: string; step: number; stepInEpoch: number } {
  const names = readdirSync(join(dir, 'checkpoints'))
    .filter((n) => /^step-\d+$/.test(n))
    .sort();
  const name = names.at(-1)!;
  const state = JSON.parse(readFileSync(join(dir, 'checkpoints', name, 'state.json'), 'utf8'));
  return { name, step: state.step, stepInEpoch: state.stepInEpoch };
}

/** pnpm as `pnpm peft` runs it: the one running this test, else the repository's version through npx (null when neither runs). */
function pnpmCommand(): string[] | null {
  const execpath = process.env.npm_execpath ?? '';
  if (/pnpm/.test(execpath)) return [process.execPath, execpath];
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).packageManager as string;
  const probe = spawnSync('npx', ['-y', version, '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return probe.status === 0 ? ['npx', '-y', version] : null;
}

describe('Ctrl-C during a CPU-backend epoch of the tiny livedoor run', () => {
  // Three epochs of 14 steps each; Ctrl-C comes at step 2 of epoch 2.
  const settings = ['--epochs', '3', '--threads', '1'];
  const reference = mkdtempSync(join(tmpdir(), 'peft-sigint-ref-'));
  temps.push(reference);
  const pnpm = pnpmCommand();
  if (!pnpm) console.warn('[cli] Ctrl-C under pnpm: skipped (neither $npm_execpath nor npx can run pnpm here)');

  const sameAsReference = (dir: string) => {
    const adapter = (d: string) => readFileSync(join(d, 'adapter', 'adapter_model.safetensors'));
    expect(adapter(dir).equals(adapter(reference))).toBe(true);
    expect(readFileSync(join(dir, 'test-metrics.json'), 'utf8')).toBe(readFileSync(join(reference, 'test-metrics.json'), 'utf8'));
    expect(readFileSync(join(dir, 'adapter', 'labels.json'), 'utf8')).toBe(readFileSync(join(reference, 'adapter', 'labels.json'), 'utf8'));
  };

  async function interrupt(child: Child, dir: string, opts: { twice: boolean }) {
    await child.waitFor(/epoch 2\/3 step 2\/14/);
    const sent = performance.now();
    process.kill(-child.proc.pid!, 'SIGINT');
    if (opts.twice) {
      await child.waitFor(/stopping after the current step/, 10_000);
      process.kill(-child.proc.pid!, 'SIGINT');
    }
    const gone = await groupGone(child.proc.pid!, 20_000);
    expect(gone, `processes still running 20 s after Ctrl-C:\n${child.text().slice(-1500)}`).not.toBeNull();
    const seconds = (performance.now() - sent) / 1000;
    expect(existsSync(join(dir, 'run.lock')), 'the lock file is removed').toBe(false);
    return { seconds, text: child.text() };
  }

  it('an uninterrupted run (the reference)', async () => {
    const { code } = await run(['train', 'livedoor', ...settings, '--out', reference, '--overwrite']);
    expect(code).toBe(0);
  }, 120_000);

  it(`stops within a step with a checkpoint inside the epoch, every process of the group gone${pnpm ? ' (under pnpm)' : ''}; --resume then finishes byte-identical`, async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'peft-sigint-')), 'run');
    temps.push(dirname(dir));
    const args = ['train', 'livedoor', ...settings, '--out', dir];
    const child = pnpm ? spawnCli(pnpm[0]!, [...pnpm.slice(1), 'peft', ...args]) : nodeCli(args);
    const { seconds, text } = await interrupt(child, dir, { twice: false });
    // The step running at the signal finishes, a checkpoint is written, and the process exits:
    // well under a second here; the bound leaves room for a loaded machine, and stays far below an epoch's end
    // being waited for (which the checkpoint's position rules out anyway).
    expect(seconds).toBeLessThan(8);
    expect(text).toContain('SIGINT: stopping after the current step');
    expect(text).toMatch(/training aborted at epoch 2, step \d+\/14/);
    const ckpt = newestCheckpoint(dir);
    expect(ckpt.stepInEpoch, `${ckpt.name} is inside epoch 2`).toBeGreaterThan(0);
    expect(ckpt.stepInEpoch).toBeLessThan(14);
    expect(ckpt.step).toBe(14 + ckpt.stepInEpoch);
    const { code, out } = await run([...args, '--resume']);
    expect(code).toBe(0);
    expect(out).toContain(`run folder: ${dir}`);
    sameAsReference(dir);
  }, 240_000);

  it('a second Ctrl-C quits at once (exit 130), the last checkpoint intact: --resume finishes byte-identical', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'peft-sigint2-')), 'run');
    temps.push(dirname(dir));
    const args = ['train', 'livedoor', ...settings, '--out', dir];
    const child = nodeCli(args);
    const { text } = await interrupt(child, dir, { twice: true });
    expect(await child.exited).toBe(130);
    expect(text).toContain('SIGINT again: quitting now');
    const { code } = await run([...args, '--resume']);
    expect(code).toBe(0);
    sameAsReference(dir);
  }, 240_000);
});

describe('one process per run folder', () => {
  it('of two runs started at once into one folder, the second refuses, naming the first (pid, start time)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'peft-lock-')), 'run');
    temps.push(dirname(dir));
    const args = ['train', 'livedoor', '--epochs', '10', '--threads', '1', '--out', dir];
    const children = [nodeCli(args), nodeCli(args)];
    // Whichever takes the lock trains; the other exits 1 at once.
    const first = await Promise.race(children.map((c, i) => c.exited.then((code) => ({ i, code }))));
    const loser = children[first.i]!;
    const winner = children[1 - first.i]!;
    expect(first.code, loser.text()).toBe(1);
    const holder = JSON.parse(readFileSync(join(dir, 'run.lock'), 'utf8'));
    expect(holder.pid).toBe(winner.proc.pid);
    expect(holder.command).toContain('train livedoor');
    expect(loser.text()).toContain(
      `the run folder ${dir} is in use by another training process: pid ${winner.proc.pid}, started ${holder.started}`,
    );
    expect(loser.text()).toContain('--resume');
    // The winner is not disturbed; stopped, it removes its lock.
    await winner.waitFor(/epoch 1\/10 step 2\/14/);
    process.kill(-winner.proc.pid!, 'SIGINT');
    expect(await winner.exited).toBe(130);
    expect(existsSync(join(dir, 'run.lock'))).toBe(false);
  }, 240_000);
});

const gpu = await webGpuAvailable();

describe('--backend webgpu|cuda from the repository', () => {
  it('the install advice fits the project: this pnpm workspace, a pnpm project, an npm project', () => {
    expect(installAdvice('webgpu', join(ROOT, 'packages', 'cli'))).toContain('run `npx -y pnpm@10.34.9 install` at the repository root');
    const project = mkdtempSync(join(tmpdir(), 'peft-advice-'));
    temps.push(project);
    writeFileSync(join(project, 'package.json'), '{}');
    expect(installAdvice('cuda', project)).toBe('install it next to @peft/cli: `npm i @peft/backend-cuda`');
    writeFileSync(join(project, 'pnpm-lock.yaml'), '');
    expect(installAdvice('cuda', project)).toBe('install it next to @peft/cli: `pnpm add @peft/backend-cuda`');
  });

  it('the backend packages resolve from @peft/cli (core alone cannot see them under pnpm)', async () => {
    for (const name of ['backend-webgpu', 'backend-cuda'])
      expect(existsSync(join(ROOT, 'packages', 'cli', 'node_modules', '@peft', name, 'package.json')), name).toBe(true);
    await expect(createBackend('tpu')).rejects.toThrow('--backend "tpu" is not one of cpu, webgpu, cuda');
  });

  if (!gpu.available) console.warn(`[cli] skipping peft train livedoor --backend webgpu: no WebGPU adapter (${gpu.reason})`);
  it.skipIf(!gpu.available)(
    `peft train livedoor --backend webgpu on the bundled tiny model (${gpu.reason})`,
    async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'peft-webgpu-')), 'run');
      temps.push(dirname(out));
      // One update over the whole training split on short inputs: the WebGPU path end to end, quickly on a software adapter.
      const { code, out: printed } = await run([
        'train',
        'livedoor',
        '--backend',
        'webgpu',
        '--epochs',
        '1',
        '--batch-size',
        '109',
        '--max-length',
        '16',
        '--out',
        out,
      ]);
      expect(code).toBe(0);
      expect(printed).toContain('on the webgpu backend');
      expect(printed).toContain('preset tiny (no --model: the bundled tiny model)');
      expect(JSON.parse(readFileSync(join(out, 'test-metrics.json'), 'utf8')).score).toBeGreaterThanOrEqual(0);
    },
    300_000,
  );
});
