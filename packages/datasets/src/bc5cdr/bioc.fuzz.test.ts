import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { parseBioC } from './bioc.js';
import { FIXTURES, named } from './fuzz.testkit.js';

// Each mutated BioC XML file is read as readBioC reads it (text, then parseBioC, errors prefixed with
// the file name): accepted, or refused with an error naming the file, within 2 s and 256 MiB.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const SMALL = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE collection SYSTEM "BioC.dtd" [ <!ENTITY x "y"> ]>
<collection><source>test</source>
<!-- a comment with <tags> -->
<document><id>7</id>
<passage><infon key="type">title</infon><offset>0</offset><text>A &amp; B &lt;C&gt; &#x1d6fc;</text>
<annotation id='1'><infon key="type">Chemical</infon><infon key="MESH">M1</infon>
<location offset="4" length="1"/><location offset="4" length="1"/><text><![CDATA[B]]></text></annotation></passage>
<passage><infon key="type">abstract</infon><offset>13</offset><text>tail&#x20;&#65;</text></passage>
<relation id="R0"><infon key="relation">CID</infon></relation>
</document></collection>`;

describe('BioC XML fuzz', () => {
  it('each mutated file is read or refused naming the file, in bounded time and memory', async () => {
    const doc = (passages: string) => `<collection><document><id>1</id>${passages}</document></collection>`;
    const passage = (offset: string) => doc(`<passage><offset>${offset}</offset><text>abc</text></passage>`);
    const report = await runFuzz({
      reader: 'bioc',
      file: 'CDR_TrainingSet.BioC.xml',
      seeds: [encoder.encode(SMALL), new Uint8Array(readFileSync(join(FIXTURES, 'CDR_TestSet.BioC.xml')))],
      cases: 1200,
      mutators: TEXT_MUTATORS,
      extraCases: [
        {
          name: 'stray end tags (350 KB)',
          bytes: encoder.encode(`<collection>${'<a>'.repeat(50_000)}${'</b>'.repeat(50_000)}</collection>`),
        },
        {
          name: 'stray end tags, shallow',
          bytes: encoder.encode(`<collection>${'<a>'.repeat(250)}${'</b>'.repeat(100_000)}</collection>`),
        },
        { name: '&#x110000;', bytes: encoder.encode(doc('<passage><offset>0</offset><text>a&#x110000;b</text></passage>')) },
        { name: '10,000 nested', bytes: encoder.encode(doc(`<passage><offset>0</offset><text>${'<i>'.repeat(10_000)}x</text></passage>`)) },
        ...['Infinity', 'abc', '1.5', '0x10', '-1', '1e9', '99999999999999999999'].map((o) => ({
          name: `offset ${o}`,
          bytes: encoder.encode(passage(o)),
        })),
        {
          name: '20,000 locations',
          bytes: encoder.encode(
            doc(
              `<passage><offset>0</offset><text>abc</text><annotation id="1">${'<location offset="0" length="1"/>'.repeat(20_000)}<text>a</text></annotation></passage>`,
            ),
          ),
        },
        { name: 'unterminated comment', bytes: encoder.encode(`<collection><!-- ${'x'.repeat(100_000)}`) },
        { name: 'unterminated quote', bytes: encoder.encode(`<collection a="${'x'.repeat(100_000)}`) },
        { name: 'DOCTYPE brackets', bytes: encoder.encode(`<!DOCTYPE x ${'['.repeat(100_000)}>`) },
        { name: '__proto__ attribute', bytes: encoder.encode(doc('<passage __proto__="x"><offset>0</offset><text>a</text></passage>')) },
      ],
      read: (bytes, file) => named(file, () => parseBioC(decoder.decode(bytes))),
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });
});
