import { describe, expect, it } from 'vitest';
import { parseLivedoorCommandLine } from '../commands/livedoor.js';
import { fromUser } from './paths.js';

describe('paths from the command line', () => {
  const script = { INIT_CWD: '/home/me/work', npm_lifecycle_event: 'peft' };

  it('are kept as typed when the program runs in the user folder', () => {
    expect(fromUser('models/x', {}, '/repo')).toBe('models/x');
    expect(fromUser('models/x', { INIT_CWD: '/repo', npm_lifecycle_event: 'peft' }, '/repo')).toBe('models/x');
    expect(fromUser(undefined, script, '/repo')).toBeUndefined();
  });

  it('are resolved from the user folder when a package script runs elsewhere; absolute ones stay', () => {
    expect(fromUser('models/x', script, '/repo')).toBe('/home/me/work/models/x');
    expect(fromUser('/data/ldcc.tar.gz', script, '/repo')).toBe('/data/ldcc.tar.gz');
  });

  it('peft train livedoor under a package script reads --model, --data and --out from the user folder', () => {
    const saved = { ...process.env };
    Object.assign(process.env, { INIT_CWD: '/home/me/work', npm_lifecycle_event: 'peft' });
    try {
      const o = parseLivedoorCommandLine(['--model', 'm', '--data', 'd.tar.gz', '--out', 'runs/a', '--preset', 'study'], {
        usage: 'peft train livedoor',
      });
      expect([o.modelDir, o.data, o.out]).toEqual(['/home/me/work/m', '/home/me/work/d.tar.gz', '/home/me/work/runs/a']);
    } finally {
      process.env = saved;
    }
  });
});
