/**
 * JSON text as Python's `json.dumps(obj, indent=2, sort_keys=True)` writes it (what PEFT's
 * `PeftConfig.save_pretrained` writes): keys sorted by code point, ", " / ": " separators with
 * newlines, non-ASCII escaped, no trailing newline. Numbers that Python holds as floats (named in
 * `floatKeys`) keep a ".0" when they are whole (`0.0`, not `0`).
 */
export function pythonJsonDumps(value: unknown, floatKeys: ReadonlySet<string> = new Set()): string {
  return dump(value, '', floatKeys, null);
}

function dump(value: unknown, indent: string, floatKeys: ReadonlySet<string>, key: string | null): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return pythonNumber(value, key !== null && floatKeys.has(key));
  if (typeof value === 'string') return pythonString(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + dump(v, inner, floatKeys, null)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value as object).sort(compareCodePoints);
    if (keys.length === 0) return '{}';
    const parts = keys.map((k) => `${inner}${pythonString(k)}: ${dump((value as Record<string, unknown>)[k], inner, floatKeys, k)}`);
    return `{\n${parts.join(',\n')}\n${indent}}`;
  }
  throw new Error(`pythonJsonDumps: cannot write a ${typeof value}`);
}

function pythonNumber(n: number, isFloat: boolean): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return 'Infinity';
  if (n === Number.NEGATIVE_INFINITY) return '-Infinity';
  if (Number.isInteger(n)) {
    if (!isFloat) return String(n);
    // Python's float repr: 16.0, 1e+16 for large values.
    return Math.abs(n) < 1e16 ? `${n}.0` : pythonFloatExp(n);
  }
  const s = String(n);
  // JS writes 1e-7 where Python writes 1e-07.
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

function pythonFloatExp(n: number): string {
  const [mant, exp] = n.toExponential().split('e') as [string, string];
  const sign = exp.startsWith('-') ? '-' : '+';
  const digits = exp.replace(/^[+-]/, '').padStart(2, '0');
  return `${mant.includes('.') ? mant : `${mant}`}e${sign}${digits}`;
}

function pythonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || (c >= 0x7f && c <= 0xffff)) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c > 0xffff) {
      const v = c - 0x10000;
      out += `\\u${(0xd800 + (v >> 10)).toString(16)}\\u${(0xdc00 + (v & 0x3ff)).toString(16)}`;
    } else out += ch;
  }
  return `${out}"`;
}

function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}
