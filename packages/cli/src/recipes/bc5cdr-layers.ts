// Study B's LoRA layer sets (finding 3) and the module names they stand for in each model type.
/** Study B's LoRA layer sets (finding 3). */
export type Bc5cdrLayers = 'q' | 'qk' | 'qkv' | 'qkvo' | 'all';
export const BC5CDR_LAYER_SETS: readonly Bc5cdrLayers[] = ['q', 'qk', 'qkv', 'qkvo', 'all'];

/** Llama module names of each layer set; `all` is every trainable layer of the study (the MLP, the embedding and the LM head too). */
export const BC5CDR_LLAMA_LAYERS: Readonly<Record<Bc5cdrLayers, readonly string[]>> = {
  q: ['q_proj'],
  qk: ['q_proj', 'k_proj'],
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  qkvo: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  all: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj', 'gate_proj', 'embed_tokens', 'lm_head'],
};

/** GPT-NeoX has one fused QKV projection, so only the sets that take q, k and v together exist there. */
const NEOX_LAYERS: Readonly<Partial<Record<Bc5cdrLayers, readonly string[]>>> = {
  qkv: ['query_key_value'],
  qkvo: ['query_key_value', 'dense'],
  all: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'embed_in', 'embed_out'],
};

/** The LoRA target module names of a layer set for a model type. */
export function bc5cdrTargetModules(layers: Bc5cdrLayers | readonly string[], modelType: string): string[] {
  if (typeof layers !== 'string') {
    if (layers.length === 0) throw new Error('bc5cdr: layers is an empty list: name at least one module (e.g. q_proj)');
    return [...layers];
  }
  if (!BC5CDR_LAYER_SETS.includes(layers))
    throw new Error(`bc5cdr: layers "${layers}" is unknown: use one of ${BC5CDR_LAYER_SETS.join(', ')}`);
  // Mistral and Qwen2 have Llama's module names.
  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2') return [...BC5CDR_LLAMA_LAYERS[layers]];
  const neox = NEOX_LAYERS[layers];
  if (modelType === 'gpt_neox' && neox) return [...neox];
  throw new Error(
    `bc5cdr: layers "${layers}" is defined for Llama (q_proj, k_proj, …); a ${modelType} model has ${modelType === 'gpt_neox' ? 'a fused query_key_value: use qkv, qkvo or all, or' : 'other module names:'} give the module names as a list`,
  );
}
