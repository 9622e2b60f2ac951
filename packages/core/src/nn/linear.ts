import { linear } from '../ops/matmul.js';
import type { Tensor } from '../tensor.js';
import { constantParam, type ParamOptions, uniformParam } from './init.js';
import { Module } from './module.js';

export interface LinearOptions extends ParamOptions {
  bias?: boolean;
  /** 'default' is PyTorch's: U(±1/√inFeatures) for weight and bias. 'zeros' skips the random draw (weights loaded next). */
  init?: 'default' | 'zeros';
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
    const zero = opts.init === 'zeros';
    this.registerParameter(
      'weight',
      zero ? constantParam([outFeatures, inFeatures], 0, opts) : uniformParam([outFeatures, inFeatures], bound, opts),
    );
    this.registerParameter(
      'bias',
      opts.bias === false ? null : zero ? constantParam([outFeatures], 0, opts) : uniformParam([outFeatures], bound, opts),
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
