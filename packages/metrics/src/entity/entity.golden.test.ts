import { describe, expect, it } from 'vitest';
import { expectAllClose, expectClose, readFixture } from '../test-helpers.js';
import { entityClassificationReport, entityPrecisionRecallF1 } from './entity-metrics.js';
import { getEntities } from './get-entities.js';
import type { Scheme } from './scheme.js';

type N = number | null;
interface Case {
  id: number;
  mode: 'default' | 'strict';
  scheme: Scheme;
  suffix: boolean;
  yTrue: string[][];
  yPred: string[][];
  zeroDivision: 0 | 1 | 'warn';
  digits: number;
  entitiesTrue?: [string, number, number][] | [string, number, number][][];
  types?: string[];
  scores?: {
    none: { precision: N[]; recall: N[]; f1: N[]; support: number[] };
    micro: { precision: N; recall: N; f1: N; support: number };
    macro: { precision: N; recall: N; f1: N; support: number };
    weighted: { precision: N; recall: N; f1: N; support: number };
  };
  report?: string | null;
  error?: string;
}

const fixture = readFixture<{ seqeval: string; cases: Case[] }>('entity.json');

describe(`entity metrics against goldens (${fixture.seqeval})`, () => {
  it('has enough cases, in both modes', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(1000);
    expect(fixture.cases.filter((c) => c.mode === 'strict').length).toBeGreaterThan(200);
  });

  it('getEntities', () => {
    for (const c of fixture.cases) {
      const where = `case ${c.id}`;
      if (c.error !== undefined) continue;
      if (c.mode === 'default') {
        const got = getEntities(c.yTrue, { suffix: c.suffix }).map((e) => [e.type, e.start, e.end]);
        expect(got, where).toEqual(c.entitiesTrue);
      } else {
        const got = c.yTrue.map((s) =>
          getEntities(s, { mode: 'strict', scheme: c.scheme, suffix: c.suffix }).map((e) => [e.type, e.start, e.end]),
        );
        expect(got, where).toEqual(c.entitiesTrue);
      }
    }
  });

  it('entityPrecisionRecallF1 for every average', () => {
    for (const c of fixture.cases) {
      const where = `case ${c.id}`;
      const opts = { mode: c.mode, scheme: c.scheme, suffix: c.suffix, zeroDivision: c.zeroDivision };
      if (c.error !== undefined) {
        expect(() => entityPrecisionRecallF1(c.yTrue, c.yPred, opts), where).toThrow();
        continue;
      }
      const s = c.scores as NonNullable<Case['scores']>;
      const per = entityPrecisionRecallF1(c.yTrue, c.yPred, { ...opts, average: null });
      expect(per.types, where).toEqual(c.types);
      expectAllClose(per.precision, s.none.precision, `${where} precision`);
      expectAllClose(per.recall, s.none.recall, `${where} recall`);
      expectAllClose(per.f1, s.none.f1, `${where} f1`);
      expect(per.support, where).toEqual(s.none.support);
      for (const average of ['micro', 'macro', 'weighted'] as const) {
        const a = entityPrecisionRecallF1(c.yTrue, c.yPred, { ...opts, average });
        expectClose(a.precision, s[average].precision, `${where} ${average} precision`);
        expectClose(a.recall, s[average].recall, `${where} ${average} recall`);
        expectClose(a.f1, s[average].f1, `${where} ${average} f1`);
        expect(a.support, where).toBe(s[average].support);
      }
    }
  });

  it('entityClassificationReport text is identical', () => {
    let compared = 0;
    for (const c of fixture.cases) {
      if (c.error !== undefined || typeof c.report !== 'string') continue;
      const r = entityClassificationReport(c.yTrue, c.yPred, {
        mode: c.mode,
        scheme: c.scheme,
        suffix: c.suffix,
        zeroDivision: c.zeroDivision,
        digits: c.digits,
      });
      expect(r.text, `case ${c.id}`).toBe(c.report);
      compared++;
    }
    expect(compared).toBeGreaterThan(300);
  });
});
