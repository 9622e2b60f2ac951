import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));

/** The error parseConfig gives for the tiny Llama config with `edit` applied. */
function errorFor(edit: Record<string, unknown>, base = 'tiny-llama'): string {
  try {
    parseConfig({ ...fixture(base), ...edit });
  } catch (error) {
    expect((error as Error).constructor).toBe(Error);
    return (error as Error).message;
  }
  throw new Error(`config with ${JSON.stringify(edit)} was accepted`);
}

describe('parseConfig validates every field it uses', () => {
  it('refuses sizes beyond any real model, naming the field, the value and the range', () => {
    expect(errorFor({ num_hidden_layers: 1_000_000 })).toBe(
      'config.json: field "num_hidden_layers" is 1000000: expected a positive integer (at most 10000)',
    );
    expect(errorFor({ num_hidden_layers: 2147483648 })).toBe(
      'config.json: field "num_hidden_layers" is 2147483648: expected a positive integer (at most 10000)',
    );
    expect(errorFor({ hidden_size: 1e300 })).toBe(
      'config.json: field "hidden_size" is 1e+300: expected a positive integer (at most 131072)',
    );
    expect(errorFor({ vocab_size: 2 ** 30 })).toBe(
      'config.json: field "vocab_size" is 1073741824: expected a positive integer (at most 16777216)',
    );
    expect(errorFor({ intermediate_size: 0 })).toBe(
      'config.json: field "intermediate_size" is 0: expected a positive integer (at most 1048576)',
    );
    expect(errorFor({ max_position_embeddings: -1 })).toBe(
      'config.json: field "max_position_embeddings" is -1: expected a positive integer (at most 1073741824)',
    );
    expect(errorFor({ head_dim: 1.5 })).toBe('config.json: field "head_dim" is 1.5: expected a positive integer (at most 16384)');
  });

  it('refuses weight matrices no typed array can hold (was: Invalid typed array length at allocation)', () => {
    expect(errorFor({ hidden_size: 65536, num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 131072 })).toBe(
      'config.json: vocab_size × hidden_size (the embedding) is 8589934592 elements, more than one tensor can hold (4294967295): hidden_size 65536, vocab_size 131072, intermediate_size 160, num_attention_heads 4, head_dim 16384',
    );
    expect(errorFor({ hidden_size: 65536, num_attention_heads: 4 }, 'tiny-gpt-neox')).toMatch(
      /^config\.json: the attention projection \(heads × head_dim × hidden_size\) is 12884901888 elements, more than one tensor can hold/,
    );
  });

  it('checks that the sizes agree with each other', () => {
    expect(errorFor({ hidden_size: 63, head_dim: null })).toBe(
      'config.json: hidden_size 63 is not divisible by num_attention_heads 4: each head needs hidden_size / num_attention_heads features',
    );
    expect(errorFor({ num_key_value_heads: 3 })).toBe(
      'config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3: each key/value head serves a whole group of query heads',
    );
    expect(errorFor({ num_key_value_heads: 0 })).toBe(
      'config.json: field "num_key_value_heads" is 0: expected a positive integer (at most 16384)',
    );
    expect(errorFor({ head_dim: 8 }, 'tiny-gpt-neox')).toMatch(/^config\.json: head_dim 8 is not hidden_size \/ num_attention_heads/);
  });

  it('checks types of flags, norms, token ids, dtypes and dropout', () => {
    expect(errorFor({ tie_word_embeddings: 'yes' })).toBe('config.json: field "tie_word_embeddings" is "yes": expected true or false');
    expect(errorFor({ rms_norm_eps: -1 })).toBe('config.json: field "rms_norm_eps" is -1: expected a number in [0, 1)');
    expect(errorFor({ eos_token_id: 'two' })).toBe(
      'config.json: field "eos_token_id" is "two": expected a token id (an integer), a list of token ids, or null',
    );
    expect(errorFor({ torch_dtype: 'float8' })).toBe(
      'config.json: field "torch_dtype" is "float8": expected one of float32, float16, bfloat16, float64, auto',
    );
    expect(errorFor({ torch_dtype: { a: 1 } })).toBe(
      'config.json: field "torch_dtype" is {"a":1}: expected one of float32, float16, bfloat16, float64, auto',
    );
    expect(errorFor({ hidden_dropout: 2 }, 'tiny-gpt-neox')).toBe(
      'config.json: field "hidden_dropout" is 2: expected a probability in [0, 1)',
    );
    expect(errorFor({ initializer_range: 'big' })).toBe('config.json: field "initializer_range" is "big": expected a number from 0 to 1');
    expect(errorFor({ eos_token_id: Array.from({ length: 100 }, () => 'x') })).toBe(
      'config.json: field "eos_token_id" is an array of 100 items: expected a token id (an integer), a list of token ids, or null',
    );
    expect(errorFor({ hidden_act: 'x'.repeat(5000) })).toMatch(/^config\.json: hidden_act "x{40}"… \(5000 characters\) is not supported/);
  });

  it('says what is wrong with a config that is not an object or has no model_type', () => {
    expect(() => parseConfig(null as unknown as Record<string, unknown>)).toThrow(
      'config.json must hold a JSON object of model settings, got null',
    );
    expect(() => parseConfig([] as unknown as Record<string, unknown>)).toThrow(
      'config.json must hold a JSON object of model settings, got []',
    );
    expect(() => parseConfig({})).toThrow(
      'config.json has no "model_type": expected one of gpt_neox, llama, mistral, qwen2 (is this a Hugging Face model folder?)',
    );
    expect(() => parseConfig({ model_type: ['llama'] })).toThrow(
      'config.json has model_type ["llama"]: supported are gpt_neox, llama, mistral, qwen2',
    );
  });

  it('still reads every bundled config', () => {
    for (const name of [
      'tiny-llama',
      'tiny-gpt-neox',
      'hf-llama-v5',
      'hf-mistral-v5',
      'hf-qwen2-v5',
      'hf-gpt-neox-v5',
      'hf-llama-v4-longrope',
    ]) {
      expect(parseConfig(fixture(name)).numLayers).toBeGreaterThan(0);
    }
  });

  it('keeps messages about rope settings short when the values are huge', () => {
    const factors = Array.from({ length: 64 }, (_, i) => 1 + i / 7);
    const base = {
      model_type: 'llama',
      hidden_size: 4096,
      num_attention_heads: 32,
      num_hidden_layers: 2,
      vocab_size: 100,
      intermediate_size: 100,
    };
    const rope = (factor: number) => ({ rope_type: 'longrope', short_factor: factors, long_factor: factors, factor });
    for (const config of [
      { ...base, rope_parameters: rope(2), rope_scaling: rope(3) },
      { ...base, rope_scaling: Array.from({ length: 10_000 }, () => 1) },
    ]) {
      let message = '';
      try {
        parseConfig(config);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/^config\.json: rope_/);
      expect(message).toMatch(/… \(\d+ characters\)|characters cut/);
      expect(message.length).toBeLessThanOrEqual(1000);
    }
  });
});
