import { type Span, sortUniqueSpans } from '../span.js';
import { type EntityScoresAveraged, type EntityScoresPerType, entityPrfFromCounts } from './entity-metrics.js';

export interface SpanScoreRow {
  precision: number;
  recall: number;
  f1: number;
  /** Gold spans. */
  support: number;
  /** Predicted spans. */
  predicted: number;
  /** Exact matches (same sentence, start, end and type). */
  tp: number;
}

export interface SpanScores {
  types: string[];
  perType: Record<string, SpanScoreRow>;
  micro: SpanScoreRow;
  macro: Omit<SpanScoreRow, 'tp' | 'predicted'>;
  weighted: Omit<SpanScoreRow, 'tp' | 'predicted'>;
  warnings: string[];
}

export interface SpanScoreOptions {
  /** Types to score (absent ones score as ill-defined); spans of other types are ignored. Default: all types seen. */
  types?: readonly string[];
  /** Default 'warn' (acts as 0, collects a warning). */
  zeroDivision?: 0 | 1 | 'warn';
  onWarning?: (message: string) => void;
}

function keyOf(sentence: number, s: Span): string {
  return `${sentence}:${s.start}:${s.end}`;
}

/**
 * Entity-level scores on spans: a predicted span counts when the same sentence has a gold span
 * with the same start, end and type. Duplicates count once. Per type, micro, macro and
 * support-weighted averages, with seqeval's zero-division rules.
 */
export function spanScores(
  gold: readonly (readonly Span[])[],
  pred: readonly (readonly Span[])[],
  options: SpanScoreOptions = {},
): SpanScores {
  if (gold.length !== pred.length) {
    throw new Error(
      `spanScores: ${gold.length} gold sentences but ${pred.length} predicted; pass one span list per sentence on both sides`,
    );
  }
  const g = new Map<string, Set<string>>();
  const p = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, sentence: number, spans: readonly Span[], side: string) => {
    for (const s of sortUniqueSpans(spans)) {
      if (!Number.isInteger(s.start) || !Number.isInteger(s.end) || s.start < 0 || s.end <= s.start) {
        throw new Error(`spanScores: ${side} sentence ${sentence} has span ${JSON.stringify(s)}; a span is integers 0 <= start < end`);
      }
      let set = m.get(s.type);
      if (!set) m.set(s.type, (set = new Set()));
      set.add(keyOf(sentence, s));
    }
  };
  gold.forEach((spans, i) => {
    add(g, i, spans, 'gold');
  });
  pred.forEach((spans, i) => {
    add(p, i, spans, 'predicted');
  });
  const types = options.types ? [...options.types] : [...new Set([...g.keys(), ...p.keys()])].sort();
  const counts = { types, tp: [] as number[], pred: [] as number[], true: [] as number[] };
  for (const t of types) {
    const gs = g.get(t) ?? new Set<string>();
    const ps = p.get(t) ?? new Set<string>();
    let tp = 0;
    for (const k of ps) if (gs.has(k)) tp++;
    counts.tp.push(tp);
    counts.pred.push(ps.size);
    counts.true.push(gs.size);
  }
  const warnings: string[] = [];
  const onWarning = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const common = { zeroDivision: options.zeroDivision, onWarning };
  const per = entityPrfFromCounts(counts, { ...common, average: null }) as EntityScoresPerType;
  const perType: Record<string, SpanScoreRow> = {};
  types.forEach((t, i) => {
    perType[t] = {
      precision: per.precision[i],
      recall: per.recall[i],
      f1: per.f1[i],
      support: counts.true[i],
      predicted: counts.pred[i],
      tp: counts.tp[i],
    };
  });
  const avg = (average: 'micro' | 'macro' | 'weighted') => {
    const a = entityPrfFromCounts(counts, { ...common, average }) as EntityScoresAveraged;
    return { precision: a.precision, recall: a.recall, f1: a.f1, support: a.support };
  };
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  return {
    types,
    perType,
    micro: { ...avg('micro'), predicted: sum(counts.pred), tp: sum(counts.tp) },
    macro: avg('macro'),
    weighted: avg('weighted'),
    warnings,
  };
}
