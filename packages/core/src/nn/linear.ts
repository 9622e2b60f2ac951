import { linear } from '../ops/matmul.js';
import type { Tensor } from '../tensor.js';
import { constantParam, normalParam, type ParamOptions, uniformParam } from './init.js';
import { Module } from './module.js';

export interface LinearOptions extends ParamOptions {
  bias?: boolean;
  /**
   * 'default' is PyTorch's: U(±1/√inFeatures) for weight and bias. 'zeros' skips the random draw
   * (weights loaded next). `{ normal: std }` draws the weight from N(0, std²) and zeros the bias, as
   * transformers' `_init_weights` does with `initializer_range`.
   */
  init?: 'default' | 'zeros' | { normal: number };
}

/** y = x · Wᵀ + b with W stored [outFeatures, inFeatures] like torch.nn.Linear. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    const init = opts.init ?? 'default';
    const shape = [outFeatures, inFeatures];
    this.registerParameter(
      'weight',
      init === 'zeros'
        ? constantParam(shape, 0, opts)
        : init === 'default'
          ? uniformParam(shape, bound, opts)
          : normalParam(shape, init.normal, opts),
    );
    this.registerParameter(
      'bias',
      opts.bias === false ? null : init === 'default' ? uniformParam([outFeatures], bound, opts) : constantParam([outFeatures], 0, opts),
    );
  }

  get weight(): Tensor {
    return this.getParameter('weight');
  }

  get bias(): Tensor | null {
    for (const [name, t] of this.ownParameters()) if (name === 'bias') return t;
    return null;
  }

  forward(x: Tensor): Tensor {
    const last = x.shape[x.rank - 1];
    if (last !== this.inFeatures)
      throw new Error(`Linear(${this.inFeatures} → ${this.outFeatures}): input ${x.describe()} has ${last} features`);
    return linear(x, this.weight, this.bias);
  }
}
