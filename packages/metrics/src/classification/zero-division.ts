/**
 * What a ratio is set to when its denominator is zero. `'warn'` acts as 0 and reports a
 * warning (to `onWarning` and the result's `warnings`; nothing is printed). NaN makes the score
 * NaN, and averages then skip it (scikit-learn ≥ 1.3).
 */
export type ZeroDivision = 0 | 1 | 'warn' | number;

/** Collects the warnings scikit-learn would raise as `UndefinedMetricWarning` / `UserWarning`. */
export interface WarningOptions {
  /** Called once per warning, in addition to the result's `warnings` list. */
  onWarning?: (message: string) => void;
}

export function zeroDivisionValue(zeroDivision: ZeroDivision): number {
  if (zeroDivision === 'warn') return 0;
  if (zeroDivision === 0 || zeroDivision === 1 || Number.isNaN(zeroDivision)) return zeroDivision;
  throw new Error(`zeroDivision is ${JSON.stringify(zeroDivision)}: it must be 'warn', 0, 1 or NaN`);
}

export class WarningLog {
  readonly messages: string[] = [];
  constructor(private readonly sink?: (message: string) => void) {}
  warn(message: string): void {
    this.messages.push(message);
    this.sink?.(message);
  }
}
