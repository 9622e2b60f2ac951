import { describe, expect, it } from 'vitest';
import { checkModulePattern, compileModulePattern, ModulePatternError } from './module-pattern.js';
import { isModuleToSave, patternValue } from './targets.js';

const NAMES = [
  'model.layers.0.self_attn.q_proj',
  'model.layers.11.self_attn.v_proj',
  'model.layers.3.mlp.down_proj',
  'gpt_neox.layers.1.attention.query_key_value',
  'lm_head',
  'score',
  'a{2}',
  '',
];

describe('module-name patterns (Python re.fullmatch, linear time)', () => {
  it('match module names as Python re.fullmatch does for the regular subset', () => {
    // Expected: Python 3.12's re.fullmatch(pattern, name) is not None over NAMES (the last two rows by
    // reasoning: Python backtracks exponentially on them for the names that do not match).
    const cases: [string, boolean[]][] = [
      ['.*\\.(q_proj|v_proj)', [true, true, false, false, false, false, false, false]],
      ['model\\.layers\\.\\d+\\.self_attn\\.[qv]_proj', [true, true, false, false, false, false, false, false]],
      ['^model\\.layers\\.(0|3)\\..*$', [true, false, true, false, false, false, false, false]],
      ['.*layers\\.1\\d?\\..*', [false, true, false, true, false, false, false, false]],
      ['(?P<head>lm_head|score)', [false, false, false, false, true, true, false, false]],
      ['[^.]+', [false, false, false, false, true, true, true, false]],
      ['a{2}', [false, false, false, false, false, false, false, false]],
      ['a\\{2\\}', [false, false, false, false, false, false, true, false]],
      ['a{,2}', [false, false, false, false, false, false, false, true]],
      ['x{}|a\\{2}', [false, false, false, false, false, false, true, false]],
      ['.*\\bq_proj', [true, false, false, false, false, false, false, false]],
      ['(.+)+Z', [false, false, false, false, false, false, false, false]],
      ['(.*)*_proj', [true, true, true, false, false, false, false, false]],
    ];
    for (const [pattern, expected] of cases) {
      expect(
        NAMES.map((n) => compileModulePattern(pattern).fullMatch(n)),
        pattern,
      ).toEqual(expected);
    }
    // re.match: a prefix is enough.
    expect(compileModulePattern('model\\.layers').prefixMatch('model.layers.0.mlp')).toBe(true);
    expect(compileModulePattern('layers').prefixMatch('model.layers.0.mlp')).toBe(false);
  });

  it('agrees with the JavaScript engine on short names for patterns both read alike', () => {
    const patterns = ['(a|ab)(c|bcd)(d*)', '(a*)*b?', '[ab]{1,3}c+', '(?:a|b)*?c', '.*(x|y)\\.?', '\\w+\\.\\d{2}'];
    const alphabet = ['a', 'b', 'c', 'd', 'x', '.', '1'];
    const words: string[] = [''];
    for (let len = 1; len <= 4; len++) {
      const prev = words.filter((w) => w.length === len - 1);
      for (const w of prev) for (const c of alphabet) words.push(w + c);
    }
    for (const p of patterns) {
      const js = new RegExp(`^(?:${p})$`);
      const ours = compileModulePattern(p);
      for (const w of words) expect(ours.fullMatch(w), `${p} on ${JSON.stringify(w)}`).toBe(js.test(w));
    }
  });

  it('runs catastrophic patterns in time linear in the name', () => {
    const name = 'gpt_neox.layers.10.attention.query_key_value'.repeat(4);
    for (const p of ['(.+)+Z', '(a|a)*Z', '(.*a){20}', '((.*)*)*x', '(\\w|\\w\\w)*!']) {
      const started = performance.now();
      expect(compileModulePattern(p).fullMatch(name)).toBe(false);
      // The JavaScript engine takes exponential time on these (2^176 paths for the first).
      expect(performance.now() - started, p).toBeLessThan(200);
    }
  });

  it('rejects what the subset leaves out, naming the pattern and the reason', () => {
    const cases: [string, string][] = [
      ['(?=q)q_proj', 'lookarounds are not supported'],
      ['(?<!x)q', 'lookarounds are not supported'],
      ['(q)\\1', 'backreferences are not supported'],
      ['(?P<a>q)(?P=a)', 'backreferences are not supported'],
      ['(?i)Q_PROJ', 'inline flags'],
      ['(?>a+)b', 'atomic group'],
      ['a++', 'possessive'],
      ['a**', 'nothing to repeat'],
      ['(q_proj', 'unclosed "("'],
      ['q_proj)', 'unbalanced ")"'],
      ['[a-', 'unterminated character class'],
      ['[z-a]', 'reversed range'],
      ['\\q', 'unknown escape \\q'],
      ['a{5,2}', 'maximum is below its minimum'],
      ['a{2000}', 'more than 1000 times'],
      ['(a{900}){900}', 'too complex'],
      ['a{999}b{999}c{999}d{999}e{10}', 'too complex'],
      ['x'.repeat(1001), 'at most 1000'],
    ];
    for (const [pattern, reason] of cases) {
      let error: unknown;
      try {
        checkModulePattern(pattern);
      } catch (e) {
        error = e;
      }
      expect(error, pattern).toBeInstanceOf(ModulePatternError);
      expect((error as Error).message).toContain(reason);
      expect((error as Error).message).toContain(JSON.stringify(pattern.slice(0, 20)).slice(0, 10));
    }
  });

  it('patterns at the limits still match when wrapped for rank_pattern and modules_to_save', () => {
    for (const p of ['q'.repeat(1000), 'a{999}b{999}c{999}d{990}']) {
      expect(() => checkModulePattern(p)).not.toThrow();
      expect(patternValue({ [p]: 3 }, `model.layers.0.${p.startsWith('q') ? p : 'x'}`, 1)).toBe(p.startsWith('q') ? 3 : 1);
      expect(isModuleToSave(p, 'model.score')).toBe(false);
    }
  });
});
