import { describe, expect, it } from 'vitest';
import { FuzzRng, TEXT_MUTATORS } from '../testing/fuzz.js';
import { describeJsonValue, firstJsonErrorAt, jsonNesting, parseUntrustedJson } from './json.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

describe('JSON from untrusted files', () => {
  it('finds where JSON.parse fails, without quoting the text', () => {
    expect(firstJsonErrorAt('{"a": [1, 2], "b": {"c": null}}')).toBeNull();
    expect(firstJsonErrorAt('root:x:0:0:root')).toBe(0);
    expect(firstJsonErrorAt('{"a": 1,}')).toBe(8);
    expect(firstJsonErrorAt('{"a": [1, 2}')).toBe(11);
    expect(firstJsonErrorAt('{"a": 1} x')).toBe(9);
    expect(firstJsonErrorAt('{"a": ')).toBe(6);
    expect(firstJsonErrorAt('"abc')).toBe(4);
    expect(() => parseUntrustedJson('{"model_type": "llama" "x": 1}', 'config.json', { maxDepth: 4 })).toThrow(
      'config.json: the file is not valid JSON at character 23 of 30',
    );
    expect(() => parseUntrustedJson('root:x:0:0:root:/root:/bin/bash', 'config.json', { maxDepth: 4 })).toThrow(
      /^config\.json: the file is not valid JSON at character 0 of 31$/,
    );
  });

  it('agrees with JSON.parse on what is valid, over thousands of mutated documents', () => {
    const seeds = [
      '{"a": [1, -2.5e3, true, false, null], "b": {"c": "d\\n\\u00e9"}, "e": []}',
      '[{"x": 0}, [], {}, "s", 1E+2, -0]',
      '{"model_type": "llama", "rope_parameters": {"factor": 8.0, "rope_type": "llama3"}, "eos_token_id": [1, 2]}',
    ];
    const rng = new FuzzRng(7);
    let checked = 0;
    for (let k = 0; k < 5000; k++) {
      let bytes: Uint8Array = encoder.encode(seeds[k % seeds.length]!);
      for (let m = 0; m < 1 + rng.below(3); m++) bytes = rng.pick(TEXT_MUTATORS)(bytes, rng);
      const text = decoder.decode(bytes);
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      const at = firstJsonErrorAt(text);
      expect(at === null, text).toBe(valid);
      checked++;
    }
    expect(checked).toBe(5000);
  });

  it('bounds nesting before parsing and describes values without their contents', () => {
    expect(jsonNesting('{"a": [[1]], "b": "[[[["}', 3)).toEqual({ depth: 3, tooDeepAt: null });
    expect(jsonNesting('[[[[1]]]]', 3)).toEqual({ depth: 4, tooDeepAt: 3 });
    expect(describeJsonValue({ secret: 'root:x:0:0' })).toBe('an object with 1 key');
    expect(describeJsonValue(['root', 'x'])).toBe('an array of 2 items');
    expect(describeJsonValue([1, 2])).toBe('an array [1,2]');
    expect(describeJsonValue('x'.repeat(100))).toBe(`the string "${'x'.repeat(40)}"… (100 characters)`);
  });
});
