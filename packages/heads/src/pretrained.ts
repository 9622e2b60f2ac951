import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  type Backend,
  type DType,
  type FileOpener,
  type Generator,
  keep,
  loadAdapterFrom,
  openSafetensors,
  type PeftModel,
} from '@peft/core';
import {
  CausalLM,
  causalLMParameterShapes,
  checkCheckpoint,
  chooseDtype,
  loadWeightsInto,
  openWeights,
  outputHeadName,
  readConfig,
} from '@peft/models';
import { normalizeId2Label, SequenceClassifier } from './sequence-classifier.js';

export interface SequenceClassifierFromPretrainedOptions {
  backend: Backend;
  /** Storage dtype of the decoder's weights; default config.json's torch_dtype when the backend stores it. */
  dtype?: DType;
  /**
   * Number of classes. Default: that of `id2label`, else of config.json's `id2label` (a saved
   * classifier), else 2, as transformers.
   */
  numLabels?: number;
  /** Class names by id; default config.json's `id2label` when it has `numLabels` entries, else LABEL_0, LABEL_1, … */
  id2label?: readonly string[] | Readonly<Record<string, string>>;
  /** The pad token id that a merged folder's config.json records; default config.json's `pad_token_id`. */
  padTokenId?: number | null;
  /** Draws a new score layer's weight (N(0, initializer_range²), as transformers initialises it). */
  generator?: Generator;
}

/** The `score` parameter of transformers' sequence classifiers. */
const SCORE = 'score.weight';

/** config.json's class names, when it has an `id2label` object. */
function configLabels(raw: Record<string, unknown>, where: string): string[] | null {
  const v = raw.id2label;
  if (!v || typeof v !== 'object') return null;
  return normalizeId2Label(`${where}/config.json`, v as Record<string, string>);
}

/** The class names and count a load asks for, transformers' way: explicit, then config.json, then 2. */
function resolveLabels(
  raw: Record<string, unknown>,
  where: string,
  opts: Pick<SequenceClassifierFromPretrainedOptions, 'numLabels' | 'id2label'>,
): { numLabels: number; id2label?: readonly string[] } {
  if (opts.id2label) {
    const names = normalizeId2Label('fromPretrained', opts.id2label);
    if (opts.numLabels !== undefined && opts.numLabels !== names.length) {
      throw new Error(`fromPretrained: numLabels ${opts.numLabels} but id2label names ${names.length} classes`);
    }
    return { numLabels: names.length, id2label: names };
  }
  const saved = configLabels(raw, where);
  if (opts.numLabels !== undefined) {
    return saved && saved.length === opts.numLabels ? { numLabels: opts.numLabels, id2label: saved } : { numLabels: opts.numLabels };
  }
  if (saved) return { numLabels: saved.length, id2label: saved };
  const n = raw.num_labels;
  return { numLabels: typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 2 };
}

/**
 * transformers' `AutoModelForSequenceClassification.from_pretrained` for a decoder folder, over any
 * file source: the decoder's weights and a last-token `score` head (`SequenceClassifier`). A
 * folder saved as a classifier (`saveMerged` of a classifier, or transformers'
 * `…ForSequenceClassification.save_pretrained`) brings its `score.weight` and class names; a causal
 * LM folder gets a new head, drawn N(0, initializer_range²) as transformers draws it. The decoder
 * comes back frozen and the head trainable. The LM head is neither read nor kept (a classifier has
 * none, as in transformers): `classifier.model` serves the decoder's hidden states, not logits.
 */
export async function loadSequenceClassifierFrom(
  opener: FileOpener,
  opts: SequenceClassifierFromPretrainedOptions,
): Promise<SequenceClassifier> {
  const config = await readConfig(opener);
  const { numLabels, id2label } = resolveLabels(config.raw, opener.name, opts);
  const dtype = chooseDtype(config, opts.backend, opts.dtype);
  const weights = await openWeights(opener);
  let model: CausalLM | null = null;
  let classifier: SequenceClassifier | null = null;
  try {
    // The checkpoint's names, shapes and dtypes against config.json before anything is allocated:
    // the decoder must be there; the LM head (not read) and a saved score head may be.
    const head = `${outputHeadName(config)}.weight`;
    const shapes = causalLMParameterShapes(config).filter(([name]) => name !== head);
    await checkCheckpoint(opener.name, config, weights, shapes, (name) => name === SCORE || name === head);
    if (weights.has(SCORE)) {
      const rows = (await weights.info(SCORE)).shape[0];
      if (rows !== numLabels) {
        throw new Error(
          `${opener.name}: ${SCORE} has ${rows} rows (classes) but the classifier asks for ${numLabels}: load it without numLabels / id2label, or with ${rows} classes`,
        );
      }
    }
    model = keep(new CausalLM(config, { backend: opts.backend, dtype, init: 'zeros' }));
    model.nameOrPath = opener.name;
    const range = config.raw.initializer_range;
    classifier = new SequenceClassifier(model, {
      numLabels,
      id2label,
      padTokenId: opts.padTokenId,
      generator: opts.generator,
      init: { normal: typeof range === 'number' && range > 0 ? range : 0.02 },
    });
    await loadWeightsInto(opener.name, weights, classifier.namedParameters(), {
      optional: (name) => name === SCORE,
      ignore: (name) => name === head,
    });
    // Only the decoder was read: free an untied LM head (a tied one is the input embedding).
    if (!config.tieWordEmbeddings) model.lmHead.weight.dispose();
    model.freeze();
    return classifier;
  } catch (error) {
    (classifier ?? model)?.dispose();
    if (classifier) model?.lmHead.weight.dispose();
    throw error;
  } finally {
    await weights.close();
  }
}

export interface PeftSequenceClassifierFromPretrainedOptions {
  backend: Backend;
  dtype?: DType;
  /** Train the loaded adapter further (PEFT's is_trainable); default false: frozen, in eval mode. */
  isTrainable?: boolean;
  /** Name to load the adapter under; default "default". */
  adapterName?: string;
}

/** The JSON object in a file of `opener`, or null when the file is not there. */
async function readJson(opener: FileOpener, file: string): Promise<unknown> {
  if (opener.list && !(await opener.list()).includes(file)) return null;
  let source: Awaited<ReturnType<FileOpener['open']>>;
  try {
    source = await opener.open(file);
  } catch {
    return null;
  }
  try {
    const text = new TextDecoder().decode(await source.read(0, source.size));
    try {
      return JSON.parse(text);
    } catch (error) {
      // The engine's message may quote the text: give only where it failed.
      const at = /position (\d+)/.exec((error as Error).message)?.[1];
      throw new Error(`${opener.name}/${file} does not parse as JSON${at === undefined ? '' : ` (at character ${at})`}`);
    }
  } finally {
    await source.close?.();
  }
}

/** The adapter folder's adapter_config.json. */
export async function readAdapterConfig(adapter: FileOpener): Promise<Record<string, unknown>> {
  const raw = await readJson(adapter, ADAPTER_CONFIG_NAME);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`${adapter.name}: no ${ADAPTER_CONFIG_NAME}: is this a PEFT adapter folder?`);
  }
  return raw as Record<string, unknown>;
}

/**
 * The class names saved with a classifier adapter: adapter_config.json's `id2label` (as
 * `saveAdapter` writes it), else a `labels.json` list (older livedoor runs), else as many
 * LABEL_i as the saved `score` head has rows (an adapter from Python PEFT); null when none of these is there.
 */
export async function adapterLabels(
  adapter: FileOpener,
  config?: Record<string, unknown>,
): Promise<{ id2label?: string[]; numLabels: number } | null> {
  const raw = config ?? (await readAdapterConfig(adapter));
  if (raw.id2label && typeof raw.id2label === 'object') {
    const names = normalizeId2Label(`${adapter.name}/${ADAPTER_CONFIG_NAME}`, raw.id2label as Record<string, string>);
    return { id2label: names, numLabels: names.length };
  }
  const list = await readJson(adapter, 'labels.json');
  if (Array.isArray(list) && list.length > 0) {
    const names = normalizeId2Label(`${adapter.name}/labels.json`, list as string[]);
    return { id2label: names, numLabels: names.length };
  }
  const file = await openSafetensors(await adapter.open(ADAPTER_WEIGHTS_NAME));
  try {
    for (const name of file.names()) {
      if (/^base_model\.model\.score\.(modules_to_save\.[^.]+\.)?weight$/.test(name)) return { numLabels: file.info(name).shape[0]! };
    }
  } finally {
    await file.close();
  }
  return null;
}

/**
 * PEFT's `AutoPeftModelForSequenceClassification.from_pretrained` over file sources: the base
 * folder loaded as a classifier with the class names and head size saved with the adapter (see
 * `adapterLabels`), then the adapter (LoRA and the `score` head from modules_to_save) loaded onto
 * it. Returns the PeftModel; `peft.model` is the `SequenceClassifier` (`predict`, `id2label`).
 */
export async function loadPeftSequenceClassifierFrom(
  adapter: FileOpener,
  base: FileOpener,
  opts: PeftSequenceClassifierFromPretrainedOptions,
): Promise<PeftModel<SequenceClassifier>> {
  const config = await readAdapterConfig(adapter);
  const labels = await adapterLabels(adapter, config);
  const classifier = await loadSequenceClassifierFrom(base, { backend: opts.backend, dtype: opts.dtype, ...(labels ?? {}) });
  try {
    return await loadAdapterFrom(classifier, adapter, { isTrainable: opts.isTrainable, adapterName: opts.adapterName });
  } catch (error) {
    classifier.dispose();
    throw error;
  }
}
