import { noGrad } from '../../autograd/tape.js';
import { keep } from '../../memory.js';
import { Dropout } from '../../nn/dropout.js';
import { Module } from '../../nn/module.js';
import { add, affine, div, mul, scale, sqrt, square, sub } from '../../ops/elementwise.js';
import { linear } from '../../ops/matmul.js';
import { sum } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import type { LoraEmbedding, LoraLayer, LoraLinear, LoraVariant } from '../lora/layer.js';

/** DoRA's learnable magnitude (PEFT's DoraLinearLayer / DoraEmbeddingLayer): one `weight` vector. */
export class DoraMagnitude extends Module {
  constructor(weight: Tensor) {
    super();
    weight.requiresGrad = true;
    this.registerParameter('weight', weight);
  }

  get weight(): Tensor {
    return this.getParameter('weight');
  }
}

/** ‖W + ΔW‖ over `axis` (1: per output row of a Linear weight; 0: per feature column of an embedding table), float32, no gradient. */
function norm(weight: Tensor, delta: Tensor, axis: 0 | 1): Tensor {
  return noGrad(() => sqrt(sum(square(add(weight, delta)), axis)));
}

function magnitude(layer: LoraLayer, adapter: string): Tensor {
  const m = layer.lora_magnitude_vector.get(adapter);
  if (!m) throw new Error(`DoRA: layer has no magnitude for adapter "${adapter}"`);
  return (m as DoraMagnitude).weight;
}

function cacheNorm(layer: LoraLayer, adapter: string, n: Tensor): void {
  const key = `${adapter}-weight_norm`;
  layer.cache.get(key)?.dispose();
  layer.cache.set(key, keep(n));
}

function takeNorm(layer: LoraLayer, adapter: string): Tensor {
  const key = `${adapter}-weight_norm`;
  const n = layer.cache.get(key);
  if (!n) throw new Error(`DoRA: no weight norm cached for "${adapter}": it was not merged`);
  layer.cache.delete(key);
  return n;
}

/**
 * DoRA on a Linear (Liu et al. 2024; PEFT's DoraLinearVariant): W' = m · (W + s·BA) / ‖W + s·BA‖_row.
 * The norm is computed from the current factors and detached in forward, as the paper's §4.3 and
 * PEFT do; the magnitude starts at the norm of the initial weight, so the layer starts as the base.
 */
export class DoraLinearVariant implements LoraVariant {
  readonly name = 'dora';

  init(layer: LoraLayer, adapter: string): void {
    const lin = layer as LoraLinear;
    const n = noGrad(() => {
      const d = lin.deltaWeight(adapter);
      const r = norm(lin.weight, d, 1);
      d.dispose();
      return r;
    });
    layer.lora_magnitude_vector.set(adapter, new DoraMagnitude(n));
  }

  forward(layer: LoraLayer, adapter: string, x: Tensor, result: Tensor): Tensor {
    const lin = layer as LoraLinear;
    const s = lin.scaling.get(adapter)!;
    const weightNorm = noGrad(() => norm(lin.weight, lin.deltaWeight(adapter), 1));
    const factor = div(magnitude(lin, adapter), weightNorm);
    const dropout = lin.lora_dropout.get(adapter)!;
    const dropping = dropout instanceof Dropout && dropout.training && dropout.p > 0;
    let input = x;
    let baseResult: Tensor;
    if (dropping) {
      // PEFT recomputes the base product on the dropped-out input (without bias).
      input = dropout.forward(x);
      baseResult = linear(input, lin.weight);
    } else {
      const bias = lin.bias;
      baseResult = bias ? sub(result, bias) : result;
    }
    const { a, b } = lin.factors(adapter);
    const loraResult = linear(linear(input, a), b);
    const extra = add(mul(affine(factor, 1, -1), baseResult), scale(mul(factor, loraResult), s));
    return add(result, extra);
  }

  merge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const delta = layer.deltaWeight(adapter);
    const n = norm(weight, delta, 1);
    cacheNorm(layer, adapter, n);
    const factor = reshape(div(magnitude(layer, adapter), n), [n.size, 1]);
    return mul(factor, add(weight, delta));
  }

  unmerge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const n = takeNorm(layer, adapter);
    const factor = reshape(div(magnitude(layer, adapter), n), [n.size, 1]);
    n.dispose();
    return sub(div(weight, factor), layer.deltaWeight(adapter));
  }
}

/**
 * DoRA on an Embedding (PEFT's DoraEmbeddingVariant): one magnitude per embedding feature, the norm
 * taken over the vocabulary axis of W + ΔW; y = (m/‖·‖) ⊙ (base(ids) + s · embedding(ids, Aᵀ)·Bᵀ).
 */
export class DoraEmbeddingVariant implements LoraVariant {
  readonly name = 'dora';

  init(layer: LoraLayer, adapter: string): void {
    const n = noGrad(() => {
      const d = layer.deltaWeight(adapter);
      const r = norm(layer.weight, d, 0);
      d.dispose();
      return r;
    });
    layer.lora_magnitude_vector.set(adapter, new DoraMagnitude(n));
  }

  forward(layer: LoraLayer, adapter: string, ids: Tensor, result: Tensor): Tensor {
    const emb = layer as LoraEmbedding;
    const weightNorm = noGrad(() => norm(emb.weight, emb.deltaWeight(adapter), 0));
    const factor = div(magnitude(emb, adapter), weightNorm);
    const dora = scale(mul(factor, emb.loraOutput(adapter, ids)), emb.scaling.get(adapter)!);
    return add(mul(factor, result), dora);
  }

  merge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const delta = layer.deltaWeight(adapter);
    const n = norm(weight, delta, 0);
    cacheNorm(layer, adapter, n);
    return mul(div(magnitude(layer, adapter), n), add(weight, delta));
  }

  unmerge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const n = takeNorm(layer, adapter);
    const factor = div(magnitude(layer, adapter), n);
    n.dispose();
    return sub(div(weight, factor), layer.deltaWeight(adapter));
  }
}
