import { rmsNorm } from '../ops/norms.js';
import type { Tensor } from '../tensor.js';
import { constantParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

export interface RMSNormOptions extends ParamOptions {
  eps?: number;
}

/** RMS normalisation with a weight (Llama's LlamaRMSNorm, torch.nn.RMSNorm). */
export class RMSNorm extends Module {
  readonly eps: number;

  constructor(
    readonly dim: number,
    opts: RMSNormOptions,
  ) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.registerParameter('weight', constantParam([dim], 1, opts));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.getParameter('weight'), this.eps);
  }
}
