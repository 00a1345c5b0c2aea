// One path from an id to a ready model: resolve the id, construct, load weights (tag, path or URL),
// adapt the first conv for other input channels and the head for other class counts, attach metadata.
import { existsSync } from 'node:fs';
import { ConvzooError, check, checkInt } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/creation.js';
import { openWeights, type WeightsFile } from '../io/index.js';
import { EMA_PREFIX, MODEL_PREFIX, checkpointMeta, type CheckpointMeta } from '../train/checkpoint.js';
import { runDataConfig, pretrainedDataConfig } from '../vision/data_config.js';
import type { ClassifierModel } from './base.js';
import type { OptimizeForInferenceOptions } from './optimize.js';
import { getModelEntry, type ModelOptions, type WeightsEntry, type ModelMeta } from './registry.js';
import { downloadCached, evictCached } from './hub.js';
import { checkOptions } from './options.js';
import { OnnxInferenceModel } from '../onnx/runtime.js';

export interface CreateModelOptions extends ModelOptions {
  /** 'DEFAULT', a tag of the model's weights table (e.g. 'IMAGENET1K_V2'), a local file, or a URL. */
  weights?: string;
  /** Further architecture options of the family (e.g. zeroInitResidual). */
  [option: string]: unknown;
  onProgress?: (received: number, total: number | null) => void;
  /** Where the model runs: 'libtorch' (the default), or 'onnxruntime' (see OnnxBackendOptions). */
  backend?: 'libtorch';
  /**
   * The inference fast path, applied once the weights are in: true for float32, or optimizeForInference's
   * options (`{ dtype: 'bfloat16' }`). The model is then inference-only.
   */
  optimize?: boolean | OptimizeForInferenceOptions;
  /** With a checkpoint of a run trained with --ema: load the moving average of the weights (`ema.*`), not the raw ones. */
  ema?: boolean;
}

/** createModel's options for a model run by onnxruntime: CreateModelOptions plus the backend's own. */
export interface OnnxBackendOptions extends ModelOptions {
  /** An inference-only OnnxInferenceModel: the libtorch model is built and loaded, exported to ONNX in memory, and run by onnxruntime on a worker thread. */
  backend: 'onnxruntime';
  /** onnxruntime's intra-op threads, an integer >= 1 (default: as convzoo's libtorch, one per core). */
  threads?: number;
  weights?: string;
  [option: string]: unknown;
  onProgress?: (received: number, total: number | null) => void;
}

/**
 * Builds a model by id with random initialisation (no weights). The options are checked against the
 * registration's declaration first (see checkModelOptions).
 */
export function buildModel(id: string, opts: ModelOptions & Record<string, unknown> = {}): ClassifierModel {
  const entry = getModelEntry(id);
  checkModelOptions(entry.meta.id, opts);
  const model = entry.build(opts, entry.fixed);
  model._meta = entry.meta;
  model._buildOptions = Object.freeze({ ...opts });
  return model;
}

/**
 * Checks options before anything is built: the common ones (numClasses, inChans, dropRate), the
 * family's declared free options (type and range), and that nothing the variant fixes is changed. An
 * unknown key fails with the nearest valid one named. All errors are E_ARG.
 */
export function checkModelOptions(id: string, opts: ModelOptions & Record<string, unknown>): void {
  check(opts !== null && typeof opts === 'object' && !Array.isArray(opts), id, 'expected the options to be an object');
  const entry = getModelEntry(id);
  checkOptions(entry.meta.id, opts, entry.options, entry.fixed);
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
  throw new ConvzooError(
    `${meta.id}: weights '${weights}' is neither a tag (${tags.length ? tags.join(', ') + ', DEFAULT' : 'none'}) nor an existing file or URL`,
    'E_NOT_FOUND',
  );
}

/**
 * Builds a model by id and, with `weights`, downloads (cached, hash-checked) and loads them. A class
 * count other than the weights' gets a fresh head; `inChans` other than the weights' sums or tiles the
 * first conv. `weights` may also be a convzoo training checkpoint (last.ckpt / best.ckpt): the model's
 * architecture options, classes and evaluation preprocessing then come from it. Keys and shapes are
 * checked against the model before any tensor data is read, so a wrong file fails fast and small.
 */
export async function createModel(id: string, opts: OnnxBackendOptions): Promise<OnnxInferenceModel>;
export async function createModel(id: string, opts?: CreateModelOptions): Promise<ClassifierModel>;
export async function createModel(id: string, opts: CreateModelOptions | OnnxBackendOptions = {}): Promise<ClassifierModel | OnnxInferenceModel> {
  check(opts !== null && typeof opts === 'object', 'createModel', 'expected the options to be an object');
  const { backend, optimize, ...rest } = opts;
  check(
    optimize === undefined || typeof optimize === 'boolean' || (optimize !== null && typeof optimize === 'object'),
    'createModel',
    `expected optimize to be a boolean or optimizeForInference's options, got ${JSON.stringify(optimize)}`,
  );
  if (backend === undefined || backend === 'libtorch') {
    const model = await createLibtorchModel(id, rest);
    if (optimize) applyOptimize(model, optimize as true | OptimizeForInferenceOptions);
    return model;
  }
  check(backend === 'onnxruntime', 'createModel', `expected backend to be 'libtorch' or 'onnxruntime', got ${JSON.stringify(backend)}`);
  check(!optimize, 'createModel', "optimize is libtorch's fast path; onnxruntime optimizes the graph itself (leave optimize out)");
  const { threads, ...modelOpts } = rest;
  if (threads !== undefined) checkInt(threads, 'createModel', 'threads', 1); // before the build and export
  const model = await createLibtorchModel(id, modelOpts);
  try {
    return await OnnxInferenceModel.fromModel(model, { threads: threads as number | undefined });
  } finally {
    model.dispose(); // onnxruntime holds its own copy of the weights
  }
}

/** Applies createModel's `optimize` option; the model is disposed if that fails. */
export function applyOptimize(model: ClassifierModel, optimize: true | OptimizeForInferenceOptions): void {
  try {
    model.optimizeForInference(optimize === true ? {} : optimize);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

async function createLibtorchModel(id: string, opts: CreateModelOptions): Promise<ClassifierModel> {
  const { weights, onProgress, ema, ...rest } = opts;
  const meta = getModelEntry(id).meta;
  check(ema === undefined || typeof ema === 'boolean', 'createModel', `expected ema to be a boolean, got ${JSON.stringify(ema)}`);
  check(!ema || (typeof weights === 'string' && weights !== ''), 'createModel', 'ema: true loads the averaged weights of a checkpoint; give it as weights');
  checkModelOptions(meta.id, rest);
  if (weights === undefined || weights === null) return buildModel(meta.id, rest);
  check(
    typeof weights === 'string' && weights !== '',
    'createModel',
    `expected weights to be 'DEFAULT', a tag, a file or a URL, got ${JSON.stringify(weights)}`,
  );
  const entry = resolveWeights(meta, weights);
  const url = entry ? entry.url : isUrl(weights) ? weights : null;
  const file = url ? await downloadCached(url, { sha256Prefix: entry?.sha256Prefix, onProgress }) : weights;
  let wf: WeightsFile;
  try {
    wf = await openWeights(file);
  } catch (e) {
    // A downloaded file that is not a weights file (an error page, a hostile pickle) is not kept.
    if (url && !entry?.sha256Prefix) evictCached(url);
    throw e;
  }
  try {
    const ckpt = checkpointInfo(wf.metadata, file);
    let archOpts: Record<string, unknown>;
    if (ema && !ckpt) throw new ConvzooError(`createModel: ema: true needs a convzoo checkpoint; ${file} is a plain weights file`, 'E_ARG', 'createModel');
    if (ema && !wf.entries.some((e) => e.name.startsWith(EMA_PREFIX)))
      throw new ConvzooError(`createModel: ${file} holds no moving average of the weights (train with --ema to keep one)`, 'E_NOT_FOUND', 'createModel');
    if (ckpt) {
      if (ckpt.modelId !== meta.id) throw new ConvzooError(`createModel: ${file} is a checkpoint of ${ckpt.modelId}, not ${meta.id}`, 'E_ARG', 'createModel');
      const conv = wf.entries.find((e) => e.name === `${MODEL_PREFIX}${meta.firstConv}.weight`);
      // A run started from pretrained weights was built with the options those weights need (GoogLeNet: no aux heads).
      archOpts = {
        ...(ckpt.startWeights ? meta.pretrainedOptions : {}),
        ...ckpt.modelOptions,
        numClasses: ckpt.classes.length,
        inChans: conv?.shape[1] ?? 3,
        ...rest,
      };
    } else {
      archOpts = { ...meta.pretrainedOptions, ...rest };
    }
    const model = buildModel(meta.id, archOpts);
    try {
      // A checkpoint's model tensors are its `model.*` entries (the rest is optimizer state and RNG).
      const { entries, fileKey, rename } = remapped(wf.entries, meta, ckpt ? (ema ? EMA_PREFIX : MODEL_PREFIX) : '');
      const plan = planLoad(model, entries, meta, file);
      const sd = rename(await wf.read(plan.read.map(fileKey)));
      try {
        applyLoad(model, sd, meta, plan);
      } finally {
        for (const t of Object.values(sd)) t.dispose();
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
    if (ckpt) {
      model._weightsTag = file;
      if (model.numClasses === ckpt.classes.length) model.classes = [...ckpt.classes];
      // The preprocessing of the run's evaluation data, decided where the trainer decides it.
      const channels = model.stateShapes().get(`${meta.firstConv}.weight`)?.[1] ?? 3;
      model._evalTransform = runDataConfig({ channels, inputSize: ckpt.inputSize, pretrained: pretrainedDataConfig(meta, ckpt.startWeights) });
    } else {
      model._weightsTag = entry?.tag ?? file;
    }
    return model;
  } finally {
    await wf.close();
  }
}

/** Loads the model saved in a convzoo training checkpoint, with its classes and preprocessing. */
export async function loadModel(checkpoint: string, opts: Omit<CreateModelOptions, 'weights'> = {}): Promise<ClassifierModel> {
  check(typeof checkpoint === 'string' && checkpoint !== '', 'loadModel', 'expected the path of a convzoo checkpoint');
  const wf = await openWeights(checkpoint);
  let ckpt: CheckpointMeta | null;
  try {
    ckpt = checkpointInfo(wf.metadata, checkpoint);
  } finally {
    await wf.close();
  }
  if (!ckpt)
    throw new ConvzooError(
      `loadModel: ${checkpoint} is not a convzoo checkpoint (give a model id with createModel for plain weight files)`,
      'E_FORMAT',
      'loadModel',
    );
  return createModel(ckpt.modelId, { ...opts, weights: checkpoint });
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/** The checkpoint's description (null for a plain weights file), its model id resolved (an alias to its id). */
function checkpointInfo(metadata: Record<string, string>, file: string): CheckpointMeta | null {
  const ckpt = checkpointMeta(metadata, file);
  return ckpt && { ...ckpt, modelId: getModelEntry(ckpt.modelId).meta.id };
}

/**
 * The file's entries under the model's key names (those under `prefix`, without it, renamed by
 * meta.remapWeightsKey), and the way back to the file's names.
 */
function remapped(entries: { name: string; shape: number[] }[], meta: ModelMeta, prefix = '') {
  const remap = meta.remapWeightsKey ?? ((k: string) => k);
  const toFile = new Map<string, string>();
  const out: { name: string; shape: number[] }[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const name = remap(e.name.slice(prefix.length));
    if (name === null) continue;
    if (toFile.has(name))
      throw new ConvzooError(`${meta.id}: weights keys ${toFile.get(name)} and ${e.name} both map to ${name}`, 'E_STATE_DICT', 'createModel');
    toFile.set(name, e.name);
    out.push({ name, shape: e.shape });
  }
  const toModel = new Map([...toFile].map(([m, f]) => [f, m]));
  return {
    entries: out,
    fileKey: (name: string) => toFile.get(name)!,
    rename: (sd: Record<string, Tensor>) => Object.fromEntries(Object.entries(sd).map(([k, t]) => [toModel.get(k)!, t])),
  };
}

interface LoadPlan {
  /** File entries to read. */
  read: string[];
  /** Some keys are left out (a classifier of another class count, heads the model lacks). */
  partial: boolean;
  /** The first conv's weight must be adapted to the model's input channels. */
  adaptConv: boolean;
}

/**
 * Checks a weights file's keys and shapes against the model before anything is read: a classifier of
 * another class count is left out (the model keeps its fresh head), a first conv of other input
 * channels is adapted, everything else must match key for key and shape for shape.
 */
function planLoad(model: ClassifierModel, entries: { name: string; shape: number[] }[], meta: ModelMeta, file: string): LoadPlan {
  const want = model.stateShapes();
  const have = new Map(entries.map((e) => [e.name, e.shape]));
  const headKey = `${meta.classifier}.weight`;
  const convKey = `${meta.firstConv}.weight`;
  const headDropped = have.has(headKey) && want.has(headKey) && have.get(headKey)![0] !== want.get(headKey)![0];
  const isHead = (k: string) => k.startsWith(`${meta.classifier}.`);
  const fileConv = have.get(convKey),
    modelConv = want.get(convKey);
  const adaptConv = !!fileConv && !!modelConv && fileConv.length === 4 && fileConv[1] !== modelConv[1];
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  const skipped = new Set([...have].filter(([k, shape]) => (headDropped && isHead(k)) || model.skipWeightsKey(k, shape)).map(([k]) => k));
  const missing = [...want.keys()].filter((k) => !have.has(k) && !k.endsWith('num_batches_tracked') && !(headDropped && isHead(k)));
  const unexpected = [...have.keys()].filter((k) => !want.has(k) && !skipped.has(k));
  const mismatched: string[] = [];
  for (const [k, shape] of have) {
    const w = want.get(k);
    if (!w || skipped.has(k)) continue;
    if (k === convKey && adaptConv) {
      if (!same([shape[0], ...shape.slice(2)], [w[0], ...w.slice(2)])) mismatched.push(`${k}: file [${shape.join(', ')}] vs model [${w.join(', ')}]`);
    } else if (!same(shape, w)) mismatched.push(`${k}: file [${shape.join(', ')}] vs model [${w.join(', ')}]`);
  }
  if (missing.length || unexpected.length || mismatched.length) {
    const list = (xs: string[]) => `${xs.slice(0, 10).join(', ')}${xs.length > 10 ? ', ...' : ''}`;
    const parts: string[] = [];
    if (missing.length) parts.push(`missing keys (${missing.length}): ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${list(unexpected)}`);
    if (mismatched.length) parts.push(`shape mismatches (${mismatched.length}): ${mismatched.slice(0, 10).join('; ')}`);
    const hint = unexpected.length && unexpected.every((k) => k.startsWith('module.')) ? ' (saved from DataParallel: strip the "module." prefix)' : '';
    throw new ConvzooError(`${file} does not fit ${meta.id}: ${parts.join('; ')}${hint}`, 'E_STATE_DICT', 'createModel');
  }
  return { read: entries.map((e) => e.name).filter((k) => !skipped.has(k)), partial: skipped.size > 0, adaptConv };
}

/** Copies the planned tensors into the model (the caller keeps and frees `sd`). */
function applyLoad(model: ClassifierModel, sd: Record<string, Tensor>, meta: ModelMeta, plan: LoadPlan): void {
  const convKey = `${meta.firstConv}.weight`;
  const adapted = plan.adaptConv ? adaptInputConv(sd[convKey], model.stateShapes().get(convKey)![1]) : null;
  try {
    model.loadStateDict(adapted ? { ...sd, [convKey]: adapted } : sd, { strict: !plan.partial }); // planLoad checked the keys already
  } finally {
    adapted?.dispose();
  }
}

/** Loads a (torchvision-keyed) state dict into a model, adapting the first conv and the classifier. */
export function loadPretrained(model: ClassifierModel, stateDict: Record<string, Tensor>, meta: ModelMeta): void {
  const { entries, fileKey, rename } = remapped(
    Object.entries(stateDict).map(([name, t]) => ({ name, shape: t.shape })),
    meta,
  );
  const plan = planLoad(model, entries, meta, 'state dict');
  const sd = rename(Object.fromEntries(plan.read.map((k) => [fileKey(k), stateDict[fileKey(k)]])));
  applyLoad(model, sd, meta, plan);
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
    tiled.dispose();
    cut.dispose();
    return scaled;
  });
}
