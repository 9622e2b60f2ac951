import { layerNorm } from '../ops/norms.js';
import type { Tensor } from '../tensor.js';
import { constantParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

export interface LayerNormOptions extends ParamOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  bias?: boolean;
}

/** torch.nn.LayerNorm over the last dimension: weight 1, bias 0 at start. */
export class LayerNorm extends Module {
  readonly eps: number;

  constructor(
    readonly dim: number,
    opts: LayerNormOptions,
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine !== false;
    this.registerParameter('weight', affine ? constantParam([dim], 1, opts) : null);
    this.registerParameter('bias', affine && opts.bias !== false ? constantParam([dim], 0, opts) : null);
  }

  forward(x: Tensor): Tensor {
    const params = new Map(this.ownParameters());
    return layerNorm(x, params.get('weight') ?? null, params.get('bias') ?? null, this.eps);
  }
}
