import { describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { type ConformanceCase, conformanceCases } from './conformance.js';
import { gradcheckCases } from './gradcheck.js';
import { createOracleBackend } from './oracle-backend.js';

describe('conformance suite against the float64 oracle backend', () => {
  for (const c of conformanceCases({ create: createOracleBackend })) it(c.name, c.run);
});

describe('gradcheck against the float64 oracle backend', () => {
  for (const c of gradcheckCases({ create: createOracleBackend })) it(c.name, c.run);
});

/** The oracle with one kernel replaced. */
function broken(patch: (base: Backend) => Partial<Backend>): () => Backend {
  return () => {
    const base = createOracleBackend();
    return { ...base, ...patch(base), name: 'broken oracle' };
  };
}

async function failures(cases: ConformanceCase[], prefix: string): Promise<string[]> {
  const messages: string[] = [];
  for (const c of cases.filter((c) => c.name.startsWith(prefix))) {
    try {
      await c.run();
    } catch (e) {
      messages.push((e as Error).message);
    }
  }
  return messages;
}

describe('the suite catches broken kernels', () => {
  it('names the kernel, dtype, case, worst index, values and tolerance of a mismatch', async () => {
    // A GELU that uses the tanh approximation when asked for the exact one.
    const cases = conformanceCases({ create: broken((b) => ({ gelu: (out, x) => b.gelu(out, x, true) })), dtypes: ['float32'] });
    const messages = await failures(cases, 'gelu exact float32');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(
      /^gelu exact float32 \[seed \d+\] \(n=11\): out \[float32\]: \d+ of 11 elements outside tolerance \(atol [\d.e-]+, rtol 0\.00001\)/,
    );
    expect(messages[0]).toMatch(
      /worst at index \d+: expected -?[\d.e-]+, actual -?[\d.e-]+, \|diff\| [\d.e-]+ > [\d.e-]+ = atol \+ rtol·\|expected\|/,
    );
  });

  it('catches an output left unwritten on fully masked attention rows', async () => {
    const create = broken((b) => ({
      attention: (out, lse, q, k, v, mask, p) => {
        // Skips the rows that see no key: they keep their garbage (NaN).
        b.attention(out, lse, q, k, v, null, p);
        if (mask) b.fill(out, Number.NaN);
      },
    }));
    const messages = await failures(conformanceCases({ create, dtypes: ['float32'] }), 'attention float32');
    expect(messages.length).toBeGreaterThan(0);
  });

  it('catches a wrong GQA head mapping', async () => {
    const create = broken((b) => ({
      attention: (out, lse, q, k, v, mask, p) => {
        // h mod kvHeads instead of ⌊h / (heads / kvHeads)⌋: equivalent to repeating heads the other way.
        if (p.heads === p.kvHeads) return b.attention(out, lse, q, k, v, mask, p);
        throw new Error('no GQA');
      },
    }));
    const messages = await failures(conformanceCases({ create, dtypes: ['float32'] }), 'attention float32');
    expect(messages.some((m) => m.includes('GQA'))).toBe(true);
  });

  it('catches a backward kernel that disagrees with its forward (gradcheck)', async () => {
    const create = broken((b) => ({
      // 5% off: the kind of error a wrong constant in a derivative makes.
      geluBackward: (dx, dy, x, approximate) => {
        b.geluBackward(dx, dy, x, approximate);
        b.affine(dx, dx, 1.05, 0);
      },
    }));
    const messages = await failures(gradcheckCases({ create }), 'gradcheck geluBackward');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('dx = ∂L/∂x vs central differences');
  });

  it('catches a kernel that accumulates into its output instead of overwriting it', async () => {
    const create = broken((b) => ({
      embeddingBackward: (dWeight, dOut, ids, n, dim) => {
        // Forgets "dWeight = 0": adds into whatever was there.
        const tmp = b.alloc(dWeight.dtype, dWeight.size);
        b.embeddingBackward(tmp, dOut, ids, n, dim);
        b.binary('add', dWeight, dWeight, { shape: [dWeight.size], strides: [1], offset: 0 }, tmp, {
          shape: [dWeight.size],
          strides: [1],
          offset: 0,
        });
        b.free(tmp);
      },
    }));
    const messages = await failures(conformanceCases({ create, dtypes: ['float32'] }), 'embeddingBackward float32');
    expect(messages).toHaveLength(1);
  });

  it('fails a named dtype the backend does not claim, passes an unnamed one', async () => {
    const create = () => ({ ...createOracleBackend(), dtypes: ['float32', 'int32'] as const });
    await expect(
      conformanceCases({ create, dtypes: ['bfloat16'] })
        .find((c) => c.name === 'fill bfloat16')!
        .run(),
    ).rejects.toThrow(/does not claim dtype bfloat16/);
    await expect(
      conformanceCases({ create })
        .find((c) => c.name === 'fill bfloat16')!
        .run(),
    ).resolves.toBeUndefined();
  });

  it('checks against a second oracle when given one', async () => {
    const cases = conformanceCases({
      create: createOracleBackend,
      reference: broken((b) => ({ affine: (out, x, alpha, beta) => b.affine(out, x, alpha, beta + 1) })),
      dtypes: ['float32'],
    });
    const messages = await failures(cases, 'affine float32');
    expect(messages[0]).toContain('vs reference backend "broken oracle"');
  });
});
