import { dropout } from '../ops/random.js';
import { reshape } from '../ops/shape.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** Dropout active in training mode only, drawing its masks from a seeded generator. */
export class Dropout extends Module {
  constructor(
    readonly p: number,
    readonly generator: Generator = defaultGenerator,
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: probability ${p} must be in [0, 1)`);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return reshape(x, x.shape);
    return dropout(x, this.p, this.generator);
  }
}
