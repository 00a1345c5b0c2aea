// The model registry: every architecture is registered by id with its metadata (paper, input size,
// normalisation, reference parameter count and MACs, weights), so that the CLI, summary, training,
// export and the server read one source of truth.
import { ConvzooError } from '../errors.js';
import type { ClassifierModel } from './base.js';
import { editDistance, type OptionSpec, type OptionTable } from './options.js';

export { editDistance };

export type Interpolation = 'bilinear' | 'bicubic' | 'nearest';

/** One set of pretrained weights: where to get it and how its images must be prepared. */
export interface WeightsEntry {
  tag: string;
  url: string;
  /** The leading hex digits of the file's SHA-256, as torchvision puts them in its file names. */
  sha256Prefix: string | null;
  default: boolean;
  numParams: number;
  acc1: number;
  acc5: number;
  resizeSize: number;
  cropSize: number;
  interpolation: Interpolation | string;
  mean: number[];
  std: number[];
  recipe?: string;
  /** Class names (defaults to the 1000 ImageNet classes). */
  categories?: 'imagenet' | string[];
}

export interface PaperRef {
  title: string;
  year: number;
  url?: string;
}

export interface ModelMeta {
  id: string;
  family: string;
  paper: PaperRef;
  /** (C, H, W) the network expects by default. */
  inputSize: [number, number, number];
  mean: [number, number, number];
  std: [number, number, number];
  interpolation: Interpolation;
  numClasses: number;
  /** Reference parameter count (torchvision's, or the paper's table) at the default class count. */
  params: number;
  /** Reference multiply-adds in GMACs (torchvision's "GFLOPS"), when published. */
  gmacs?: number;
  /** Name in torchvision when the state dict is key-for-key compatible. */
  torchvision?: string;
  /** State-dict prefix of the first convolution (adapted for inChans != 3) and of the classifier. */
  firstConv: string;
  classifier: string;
  weights: WeightsEntry[];
  /**
   * Renames a weights file's key to this model's key at load time (null drops it), for releases with
   * old key names (torchvision's DenseNet files: `denselayer1.norm.1.weight` is `denselayer1.norm1.weight`).
   * It runs before the key and shape check, so files in either naming load.
   */
  remapWeightsKey?: (fileKey: string) => string | null;
  /** Architecture options applied when pretrained weights are loaded (the user's options still win). */
  pretrainedOptions?: Record<string, unknown>;
  notes?: string;
}

/** Options every builder accepts. */
export interface ModelOptions {
  numClasses?: number;
  /** Input channels: 1 for grayscale. With pretrained weights the first conv's RGB filters are summed (1) or tiled. */
  inChans?: number;
  /** Dropout before the classifier where the architecture has dropout. */
  dropRate?: number;
}

/** How a registration declares its options: the free ones (beyond the common ones) and the variant's fixed configuration. */
export interface OptionsDeclaration<O extends ModelOptions, C extends object> {
  /** Every free option beyond numClasses, inChans and dropRate, with its type and range. */
  options: OptionTable<O>;
  /** What defines the variant (its block, depths, widths, injected layers); passing any of these keys with another value is an error. */
  fixed: C;
}

export interface RegisteredModel<O extends ModelOptions = ModelOptions, C extends object = object> {
  meta: ModelMeta;
  /** The free options beyond the common ones. */
  options: Readonly<Record<string, OptionSpec>>;
  /** The variant's fixed configuration, handed to build as its second argument. */
  fixed: C;
  build: (opts: O, fixed: C) => ClassifierModel;
}

// Each entry's option types are checked at registration; the map holds them type-erased.
const registry = new Map<string, RegisteredModel<ModelOptions, object>>();

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];
/** CIFAR-10's training-set mean and std, the usual normalisation of the papers' CIFAR networks. */
export const CIFAR10_MEAN: [number, number, number] = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD: [number, number, number] = [0.247, 0.2435, 0.2616];

/** The metadata most ImageNet classifiers share: 224 x 224 RGB, ImageNet mean/std, bilinear, 1000 classes. */
export const IMAGENET_DEFAULTS = {
  inputSize: [3, 224, 224],
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  interpolation: 'bilinear',
  numClasses: 1000,
} as const satisfies Pick<ModelMeta, 'inputSize' | 'mean' | 'std' | 'interpolation' | 'numClasses'>;

/**
 * Registers a model id: its metadata, its declared options (see OptionsDeclaration) and a builder
 * that receives checked options and the variant's fixed configuration.
 */
export function registerModel<O extends ModelOptions, C extends object>(
  meta: ModelMeta,
  decl: OptionsDeclaration<O, C>,
  build: (opts: O, fixed: C) => ClassifierModel,
): void {
  if (registry.has(meta.id)) throw new ConvzooError(`registerModel: '${meta.id}' is already registered`);
  registry.set(meta.id, {
    meta,
    options: decl.options as Readonly<Record<string, OptionSpec>>,
    fixed: decl.fixed,
    build: build as (opts: ModelOptions, fixed: object) => ClassifierModel,
  });
}

const aliases = new Map<string, string>();

/** Another name for a registered id (`senet154` for `legacy_senet154`); lookups resolve it, listings show the id. */
export function registerAlias(alias: string, id: string): void {
  const key = alias.toLowerCase();
  if (!registry.has(id)) throw new ConvzooError(`registerAlias: '${id}' is not registered`);
  if (registry.has(key) || aliases.has(key)) throw new ConvzooError(`registerAlias: '${alias}' is already a model id or alias`);
  aliases.set(key, id);
}

/** Every alias with the id it stands for. */
export function listAliases(): Record<string, string> {
  return Object.fromEntries(aliases);
}

export function getModelEntry(id: string): RegisteredModel {
  if (typeof id !== 'string' || !id) throw new ConvzooError(`expected a model id (a string), got ${JSON.stringify(id)}`, 'E_ARG');
  // Ids are lower case; 'ResNet50' means resnet50.
  const e = registry.get(id) ?? registry.get(id.toLowerCase()) ?? registry.get(aliases.get(id.toLowerCase()) ?? '');
  if (!e) {
    const near = suggestIds(id);
    throw new ConvzooError(`unknown model '${id}'${near.length ? `; did you mean ${near.join(', ')}?` : ''} (convzoo list shows all)`, 'E_NOT_FOUND');
  }
  return e;
}

/** The registered ids closest to `id` (case-insensitive edit distance, ids containing it first), at most `max`. */
export function suggestIds(id: string, max = 5): string[] {
  const q = id.toLowerCase();
  const scored = [...registry.keys()].map((k) => ({ k, d: k.includes(q) || q.includes(k) ? 0.5 : editDistance(q, k) }));
  const limit = Math.max(2, Math.ceil(q.length / 3));
  return scored
    .filter((s) => s.d <= limit)
    .sort((a, b) => a.d - b.d || a.k.length - b.k.length || a.k.localeCompare(b.k))
    .slice(0, max)
    .map((s) => s.k);
}

/**
 * Registered ids, optionally filtered (case-insensitive): a glob ('resnet*', 'vgg1?_bn') matches whole
 * ids; a plain word matches a family ('resnet' includes resnet_cifar) and ids that start with it or have it
 * after an underscore (wide_resnet50_2), so 'senet' lists the SENets and not densenet121.
 */
export function listModels(filter?: string): string[] {
  const ids = [...registry.keys()];
  if (!filter) return ids;
  const f = filter.toLowerCase();
  if (/[*?]/.test(f)) {
    const re = new RegExp(
      '^' +
        f
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.') +
        '$',
    );
    return ids.filter((id) => re.test(id));
  }
  return ids.filter((id) => {
    const family = registry.get(id)!.meta.family;
    return family === f || family.startsWith(`${f}_`) || id.startsWith(f) || id.includes(`_${f}`);
  });
}

export function modelMeta(id: string): ModelMeta {
  return getModelEntry(id).meta;
}
