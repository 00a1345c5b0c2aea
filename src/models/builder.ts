// One path from an id to a ready model: resolve the id, construct, load weights (tag, path or URL),
// adapt the first conv for other input channels and the head for other class counts, attach metadata.
import { existsSync } from 'node:fs';
import { ConvzooError, check, checkInt, checkNumber } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/creation.js';
import { load } from '../io/index.js';
import { ClassifierModel } from './base.js';
import { getModelEntry, type ModelOptions, type WeightsEntry, type ModelMeta } from './registry.js';
import { downloadCached } from './hub.js';

export interface CreateModelOptions extends ModelOptions {
  /** 'DEFAULT', a tag of the model's weights table (e.g. 'IMAGENET1K_V2'), a local file, or a URL. */
  weights?: string;
  /** Further architecture options of the family (e.g. zeroInitResidual). */
  [option: string]: unknown;
  onProgress?: (received: number, total: number | null) => void;
}

/** Builds a model by id with random initialisation (no weights). */
export function buildModel(id: string, opts: ModelOptions & Record<string, unknown> = {}): ClassifierModel {
  const entry = getModelEntry(id);
  checkModelOptions(entry.meta.id, opts);
  const model = entry.build(opts);
  model._meta = entry.meta;
  return model;
}

/** The options every family takes, checked before anything is built. */
export function checkModelOptions(id: string, opts: ModelOptions): void {
  check(opts !== null && typeof opts === 'object', id, 'expected the options to be an object');
  if (opts.numClasses !== undefined) checkInt(opts.numClasses, id, 'numClasses', 1);
  if (opts.inChans !== undefined) checkInt(opts.inChans, id, 'inChans', 1);
  if (opts.dropRate !== undefined) {
    checkNumber(opts.dropRate, id, 'dropRate', 0);
    check(opts.dropRate < 1, id, `expected dropRate to be below 1, got ${opts.dropRate}`);
  }
}

/** The weights entry a `weights` argument names, or null for a path / URL. */
export function resolveWeights(meta: ModelMeta, weights: string): WeightsEntry | null {
  if (weights === 'DEFAULT') {
    const d = meta.weights.find((w) => w.default) ?? meta.weights[0];
    if (!d) throw new ConvzooError(`${meta.id} has no pretrained weights; give a file or URL`, 'E_NOT_FOUND');
    return d;
  }
  const tagged = meta.weights.find((w) => w.tag === weights);
  if (tagged) return tagged;
  if (/^https?:\/\//.test(weights) || existsSync(weights)) return null;
  const tags = meta.weights.map((w) => w.tag);
  throw new ConvzooError(`${meta.id}: weights '${weights}' is neither a tag (${tags.length ? tags.join(', ') + ', DEFAULT' : 'none'}) nor an existing file or URL`, 'E_NOT_FOUND');
}

/**
 * Builds a model by id and, with `weights`, downloads (cached, hash-checked) and loads them. A class
 * count other than the weights' gets a fresh head; `inChans` other than 3 sums or tiles the first conv.
 */
export async function createModel(id: string, opts: CreateModelOptions = {}): Promise<ClassifierModel> {
  const { weights, onProgress, ...rest } = opts;
  let archOpts: Record<string, unknown> = rest;
  const meta = getModelEntry(id).meta;
  if (!weights) return buildModel(id, archOpts);
  const entry = resolveWeights(meta, weights);
  archOpts = { ...meta.pretrainedOptions, ...archOpts };
  const file = entry ? await downloadCached(entry.url, { sha256Prefix: entry.sha256Prefix, onProgress })
    : /^https?:\/\//.test(weights) ? await downloadCached(weights, { onProgress }) : weights;
  const sd = await load(file);
  try {
    const model = buildModel(id, archOpts);
    loadPretrained(model, sd, meta, archOpts);
    model._weightsTag = entry?.tag ?? file;
    return model;
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}

/** Loads a (torchvision-keyed) state dict into a model, adapting the first conv and the classifier. */
export function loadPretrained(model: ClassifierModel, sd: Record<string, Tensor>, meta: ModelMeta, opts: ModelOptions = {}): void {
  const inChans = opts.inChans ?? 3;
  const convKey = `${meta.firstConv}.weight`;
  if (inChans !== 3 && sd[convKey]) {
    const adapted = adaptInputConv(sd[convKey], inChans);
    sd[convKey].dispose();
    sd[convKey] = adapted;
  }
  const headKeys = Object.keys(sd).filter((k) => k.startsWith(`${meta.classifier}.`));
  const headOut = sd[`${meta.classifier}.weight`]?.shape[0];
  if (headOut !== undefined && headOut !== model.numClasses) {
    for (const k of headKeys) { sd[k].dispose(); delete sd[k]; }
    const { missingKeys } = model.loadStateDict(sd, { strict: false });
    const unexpectedMissing = missingKeys.filter((k) => !k.startsWith(`${meta.classifier}.`));
    if (unexpectedMissing.length) throw new ConvzooError(`loadPretrained: missing keys ${unexpectedMissing.join(', ')}`, 'E_STATE_DICT');
    return;
  }
  model.loadStateDict(sd);
}

/** timm's rule: 1 channel sums the RGB filters; other counts tile them and rescale by 3/inChans. */
export function adaptInputConv(weight: Tensor, inChans: number): Tensor {
  return noGrad(() => {
    const [, c] = weight.shape;
    if (inChans === 1) return weight.sum(1, { keepdim: true });
    const reps = Math.ceil(inChans / c);
    const tiled = weight.repeat(1, reps, 1, 1);
    const cut = tiled.narrow(1, 0, inChans);
    const scaled = cut.mul(c / inChans);
    tiled.dispose(); cut.dispose();
    return scaled;
  });
}
