import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { describe, it } from 'vitest';
import { createCpuBackend } from './index.js';

describe('cpu backend conformance (@peft/core/testing)', () => {
  for (const c of conformanceCases({ create: () => createCpuBackend(), dtypes: ['float32', 'float16', 'bfloat16'] })) it(c.name, c.run);
});

describe('cpu backend gradient checks (@peft/core/testing)', () => {
  for (const c of gradcheckCases({ create: () => createCpuBackend() })) it(c.name, c.run);
});
