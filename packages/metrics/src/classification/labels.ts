/** A class label: an integer or a string, as scikit-learn accepts for multiclass targets. */
export type Label = number | string;

/** What to do with a value of yTrue / yPred that is not in the `labels` option. */
export type UnlistedLabels = 'error' | 'ignore';

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function showList(values: readonly unknown[], max = 10): string {
  const head = values.slice(0, max).map(show).join(', ');
  return values.length > max ? `[${head}, … ${values.length - max} more]` : `[${head}]`;
}

/** Compares labels as numpy sorts them: numbers numerically, strings by code point. */
export function compareLabels(a: Label, b: Label): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  const ia = sa[Symbol.iterator]();
  const ib = sb[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0) as number;
    const cy = y.value.codePointAt(0) as number;
    if (cx !== cy) return cx - cy;
  }
}

function checkValues(name: string, values: readonly Label[]): void {
  if (!Array.isArray(values)) {
    throw new Error(`${name} must be an array of labels (numbers or strings), got ${typeof values}`);
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') continue;
    if (typeof v === 'number' && Number.isInteger(v)) continue;
    throw new Error(
      `${name}[${i}] is ${show(v)}: classification labels must be integers or strings (scikit-learn rejects continuous targets)`,
    );
  }
}

/** Checks the two target arrays: same length, integer-or-string labels, not a mix of both kinds. */
export function checkTargets(yTrue: readonly Label[], yPred: readonly Label[]): void {
  checkValues('yTrue', yTrue);
  checkValues('yPred', yPred);
  if (yTrue.length !== yPred.length) {
    throw new Error(`yTrue has ${yTrue.length} values but yPred has ${yPred.length}: they must be the same length`);
  }
}

/** Sorted union of the labels of the arrays (scikit-learn's `unique_labels`). */
export function uniqueLabels(...arrays: readonly (readonly Label[])[]): Label[] {
  const seen = new Set<Label>();
  for (const a of arrays) for (const v of a) seen.add(v);
  const out = [...seen];
  const hasString = out.some((v) => typeof v === 'string');
  const hasNumber = out.some((v) => typeof v === 'number');
  if (hasString && hasNumber) {
    const strings = out.filter((v) => typeof v === 'string');
    const numbers = out.filter((v) => typeof v === 'number');
    throw new Error(
      `Mix of label input types (string and number): strings ${showList(strings)}, numbers ${showList(numbers)}; ` +
        'use one kind of label for yTrue, yPred and labels',
    );
  }
  return out.sort(compareLabels);
}

/** 'binary' when yTrue ∪ yPred has at most two labels, else 'multiclass' (sklearn's `_check_targets`). */
export function targetType(yTrue: readonly Label[], yPred: readonly Label[]): 'binary' | 'multiclass' {
  return uniqueLabels(yTrue, yPred).length <= 2 ? 'binary' : 'multiclass';
}

/**
 * With explicit `labels`, a value of yTrue / yPred outside them is an error by default; with
 * `unlisted: 'ignore'` it is left out of every count, which is what scikit-learn does (its way to
 * exclude, say, a majority negative class from a micro average).
 */
export function checkListed(labels: readonly Label[], yTrue: readonly Label[], yPred: readonly Label[], unlisted: UnlistedLabels): void {
  checkValues('labels', labels);
  uniqueLabels(labels, yTrue, yPred);
  if (unlisted === 'ignore') return;
  if (unlisted !== 'error') {
    throw new Error(`unlistedLabels must be 'error' or 'ignore', got ${show(unlisted)}`);
  }
  const listed = new Set<Label>(labels);
  const missTrue = uniqueLabels(yTrue).filter((v) => !listed.has(v));
  const missPred = uniqueLabels(yPred).filter((v) => !listed.has(v));
  if (missTrue.length === 0 && missPred.length === 0) return;
  const parts: string[] = [];
  if (missTrue.length > 0) parts.push(`yTrue has ${showList(missTrue)}`);
  if (missPred.length > 0) parts.push(`yPred has ${showList(missPred)}`);
  throw new Error(
    `label set mismatch: ${parts.join(' and ')}, not in labels ${showList(labels)}; ` +
      "add them to labels, or pass unlistedLabels: 'ignore' to leave them out of the counts as scikit-learn does",
  );
}

export { show as showLabel, showList as showLabels };
