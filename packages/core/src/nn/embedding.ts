import { embedding } from '../ops/embedding.js';
import type { Tensor } from '../tensor.js';
import { constantParam, normalParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

export interface EmbeddingOptions extends ParamOptions {
  /** 'default' is PyTorch's N(0, 1); 'zeros' skips the random draw; `{ normal: std }` is N(0, std²). */
  init?: 'default' | 'zeros' | { normal: number };
}

/** A lookup table [numEmbeddings, embeddingDim] like torch.nn.Embedding. */
export class Embedding extends Module {
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: EmbeddingOptions,
  ) {
    super();
    const shape = [numEmbeddings, embeddingDim];
    const init = opts.init ?? 'default';
    this.registerParameter(
      'weight',
      init === 'zeros' ? constantParam(shape, 0, opts) : normalParam(shape, init === 'default' ? 1 : init.normal, opts),
    );
  }

  get weight(): Tensor {
    return this.getParameter('weight');
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
