// Runs a package README's code blocks as they are written there, so that a README edit that breaks
// a snippet fails the package's unit tests (scripts/pack-check.mjs runs the first ```js block of
// each README against the packed packages). The block is written to a module in the package's
// `.tmp/` folder (git-ignored) and imported from there: the package's own name resolves to its
// sources through its package.json `exports` (the `@peft/source` entry), every other import as it
// would for the package itself. Framework-free: failures throw.

import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** A fenced code block of a Markdown file. */
export interface ReadmeBlock {
  /** The fence's language tag (`js`, `ts`, ...; empty when there is none). */
  lang: string;
  /** The code between the fences, ending with a newline. */
  code: string;
  /** 1-based line of the opening fence: the code's first line is `line + 1`. */
  line: number;
}

/** The fenced code blocks of `markdown` (only those tagged `lang` when given), in order. */
export function readmeBlocks(markdown: string, lang?: string): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  for (const m of markdown.matchAll(/^```([\w-]*)\n([\s\S]*?)^```/gm)) {
    if (lang !== undefined && m[1] !== lang) continue;
    blocks.push({ lang: m[1]!, code: m[2]!, line: markdown.slice(0, m.index).split('\n').length });
  }
  return blocks;
}

/** A line `expression; // <JSON value>` of a snippet: what the README says the expression gives. */
export interface ReadmeClaim {
  /** 1-based line in the README. */
  line: number;
  expression: string;
  /** The JSON value after `//`. */
  expected: unknown;
  /** What the expression gave. */
  actual: unknown;
}

export interface ReadmeRunOptions {
  /** Language tag of the block to run: `js` (default) or `ts`. */
  lang?: 'js' | 'ts';
  /** Which block of that language (default 0: the one scripts/pack-check.mjs runs for `js`). */
  index?: number;
  /**
   * Top-level bindings of the snippet to hand back in `bindings` (appended as `export { … }`, so a
   * README edit that drops one fails to load).
   */
  bindings?: readonly string[];
  /** Working directory while the snippet runs (relative paths in it); default the current one. */
  cwd?: string;
}

/** What a README snippet did. */
export interface ReadmeRun {
  block: ReadmeBlock;
  /** Each `console.log` call's arguments joined by spaces (strings as printed, arrays as `a,b`). */
  lines: string[];
  /** The raw arguments of each `console.log` call. */
  calls: unknown[][];
  /** The values of `options.bindings` after the snippet ran. */
  bindings: Record<string, unknown>;
  /** The snippet's `expression; // <JSON>` lines, each already checked (a mismatch throws). */
  claims: ReadmeClaim[];
}

const CLAIMS_KEY = '__peftReadmeClaims';
let runs = 0;
const STATEMENT_KEYWORDS = /^(?:const|let|var|import|export|function|class|if|else|for|while|do|switch|try|return|throw)\b/;

/**
 * Runs one code block of the README at `readmePath` (a package's README.md, beside its
 * package.json), capturing `console.log` (nothing is printed). Throws, naming the README and the
 * block's line, when the block is missing, when it throws, or when a line
 * `expression; // <JSON value>` at the top level gives another value than its comment says.
 */
export async function runReadmeSnippet(readmePath: string, options: ReadmeRunOptions = {}): Promise<ReadmeRun> {
  const lang = options.lang ?? 'js';
  const index = options.index ?? 0;
  const blocks = readmeBlocks(readFileSync(readmePath, 'utf8'), lang);
  const block = blocks[index];
  if (!block) throw new Error(`${readmePath}: no \`\`\`${lang} block number ${index} (it has ${blocks.length})`);

  const packageDir = dirname(readmePath);
  const moduleDir = join(packageDir, '.tmp');
  const file = join(moduleDir, `readme-${lang}-${index}-${process.pid}-${++runs}.${lang === 'ts' ? 'ts' : 'mjs'}`);
  const claimLines: { line: number; expression: string; expected: unknown }[] = [];
  // Line for line, so that an error's line in the module is the README's line minus `block.line`.
  const source = block.code
    .split('\n')
    .map((text, i) => {
      const claim = parseClaim(text);
      if (!claim) return text;
      claimLines.push({ line: block.line + 1 + i, ...claim });
      return `globalThis.${CLAIMS_KEY}.push(${claim.expression});${text.slice(claim.expression.length + 1)}`;
    })
    .join('\n');
  for (const name of options.bindings ?? []) {
    const declared = new RegExp(`^(?:const|let|var|(?:async )?function\\*?|class)\\b[^=(]*\\b${name}\\b`, 'm');
    if (!/^[\w$]+$/.test(name) || !declared.test(block.code))
      throw new Error(`${readmePath}: the \`\`\`${lang} block at line ${block.line} declares no top-level "${name}"`);
  }
  const exported = options.bindings?.length ? `\nexport { ${options.bindings.join(', ')} };\n` : '';
  mkdirSync(moduleDir, { recursive: true });
  writeFileSync(file, selfImportsToSource(source, packageDir, moduleDir) + exported);

  const values: unknown[] = [];
  const calls: unknown[][] = [];
  const log = console.log;
  const cwd = process.cwd();
  const global = globalThis as Record<string, unknown>;
  global[CLAIMS_KEY] = values;
  console.log = (...args: unknown[]) => {
    calls.push(args);
  };
  let module: Record<string, unknown>;
  try {
    if (options.cwd) process.chdir(options.cwd);
    module = await import(/* @vite-ignore */ file);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${readmePath}: the \`\`\`${lang} block at line ${block.line} failed: ${message}`, { cause: error });
  } finally {
    console.log = log;
    if (options.cwd) process.chdir(cwd);
    delete global[CLAIMS_KEY];
    rmSync(file, { force: true });
    try {
      rmdirSync(moduleDir);
    } catch {
      // Not empty: another run's module or other scratch files; the folder is git-ignored.
    }
  }

  const claims = claimLines.map((c, i) => ({ ...c, actual: values[i] }));
  for (const c of claims) {
    if (JSON.stringify(c.actual) !== JSON.stringify(c.expected))
      throw new Error(
        `${readmePath} line ${c.line}: the expression gives ${show(c.actual)}, its comment says ${JSON.stringify(c.expected)}`,
      );
  }
  const bindings: Record<string, unknown> = {};
  for (const name of options.bindings ?? []) bindings[name] = module[name];
  return { block, lines: calls.map((args) => args.join(' ')), calls, bindings, claims };
}

/** `expression; // <JSON value>` at the top level (no indent, brackets balanced), else undefined. */
function parseClaim(text: string): { expression: string; expected: unknown } | undefined {
  const m = /^([^\s/].*?);\s*\/\/\s*(.+?)\s*$/.exec(text);
  if (!m || STATEMENT_KEYWORDS.test(m[1]!)) return undefined;
  const expression = m[1]!;
  let depth = 0;
  for (const ch of expression) {
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch) && --depth < 0) return undefined;
  }
  if (depth !== 0) return undefined;
  try {
    return { expression, expected: JSON.parse(m[2]!) };
  } catch {
    return undefined; // a prose comment
  }
}

/**
 * Points `from '<name>'` and `from '<name>/<sub>'`, where `<name>` is the package's own name, at
 * the source file its package.json exports under `@peft/source` (a package cannot always import
 * itself by name from inside its folder).
 */
function selfImportsToSource(source: string, packageDir: string, moduleDir: string): string {
  let pkg: { name?: unknown; exports?: unknown };
  try {
    pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  } catch {
    return source; // not a package folder (the repository README): imports resolve as they are
  }
  const name = pkg.name;
  if (typeof name !== 'string' || typeof pkg.exports !== 'object' || pkg.exports === null) return source;
  const exportsMap = pkg.exports as Record<string, unknown>;
  const escaped = name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return source.replace(new RegExp(`(\\bfrom\\s*)(['"])(${escaped}(?:/[\\w.-]+)?)\\2`, 'g'), (whole, from, quote, specifier) => {
    const entry = exportsMap[specifier === name ? '.' : `./${specifier.slice(name.length + 1)}`];
    const target =
      typeof entry === 'string'
        ? entry
        : typeof entry === 'object' && entry !== null
          ? (entry as Record<string, unknown>)['@peft/source']
          : undefined;
    if (typeof target !== 'string') return whole;
    const path = relative(moduleDir, resolve(packageDir, target)).split(sep).join('/');
    return `${from}${quote}${path.startsWith('.') ? path : `./${path}`}${quote}`;
  });
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text;
}
