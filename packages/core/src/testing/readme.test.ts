import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { readmeBlocks, runReadmeSnippet } from './readme.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'peft-readme-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A package `demo-pkg` whose README is `markdown` and whose source exports `answer = 42`. */
function demoPackage(markdown: string): string {
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'index.js'), 'export const answer = 42;\nexport const twice = (x) => 2 * x;\n');
  const pkg = { name: 'demo-pkg', type: 'module', exports: { '.': { '@peft/source': './src/index.js', import: './dist/index.js' } } };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
  writeFileSync(join(dir, 'README.md'), markdown);
  return join(dir, 'README.md');
}

it('lists fenced blocks with their language and the line of the opening fence', () => {
  const md = '# t\n\n```js\nconst a = 1;\n```\n\ntext\n```ts\nlet b: number;\n```\n```js\nc();\n```\n';
  expect(readmeBlocks(md)).toEqual([
    { lang: 'js', code: 'const a = 1;\n', line: 3 },
    { lang: 'ts', code: 'let b: number;\n', line: 8 },
    { lang: 'js', code: 'c();\n', line: 11 },
  ]);
  expect(readmeBlocks(md, 'js').map((b) => b.line)).toEqual([3, 11]);
});

it('runs a block against the package source, capturing console.log, bindings and checked claims', async () => {
  const readme = demoPackage(
    [
      '# demo',
      '```js',
      "import { answer, twice } from 'demo-pkg';",
      'const doubled = twice(answer);',
      'twice(2); // 4',
      'twice(3); // prose, not a claim',
      "console.log('doubled', doubled, [1, 2]);",
      '```',
      '```js',
      'console.log(1);',
      '```',
      '',
    ].join('\n'),
  );
  const run = await runReadmeSnippet(readme, { bindings: ['doubled'] });
  expect(run.lines).toEqual(['doubled 84 1,2']);
  expect(run.calls).toEqual([['doubled', 84, [1, 2]]]);
  expect(run.bindings).toEqual({ doubled: 84 });
  expect(run.claims).toEqual([{ line: 5, expression: 'twice(2)', expected: 4, actual: 4 }]);
  expect((await runReadmeSnippet(readme, { index: 1 })).lines).toEqual(['1']);
});

it('fails when a claim, a binding or the block itself is wrong', async () => {
  const readme = demoPackage("```js\nimport { twice } from 'demo-pkg';\ntwice(2); // 5\n```\n```js\nthrow new Error('boom');\n```\n");
  await expect(runReadmeSnippet(readme)).rejects.toThrow(/README\.md line 3: the expression gives 4, its comment says 5/);
  await expect(runReadmeSnippet(readme, { index: 1 })).rejects.toThrow(/README\.md: the ```js block at line 5 failed: boom/);
  await expect(runReadmeSnippet(readme, { index: 2 })).rejects.toThrow(/no ```js block number 2 \(it has 2\)/);
  await expect(runReadmeSnippet(readme, { lang: 'ts' })).rejects.toThrow(/no ```ts block number 0/);
  writeFileSync(readme, '```js\nconst kept = 1;\n```\n');
  await expect(runReadmeSnippet(readme, { bindings: ['dropped'] })).rejects.toThrow(/block at line 1 declares no top-level "dropped"/);
  expect((await runReadmeSnippet(readme, { bindings: ['kept'] })).bindings).toEqual({ kept: 1 });
});
