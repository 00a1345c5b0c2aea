// One place where preprocessing is decided. Every consumer (predict, eval, the training data, a
// checkpoint loaded as a model) asks here, so mean/std, resize, crop and interpolation of a model
// cannot disagree between them.
//   - pretrained weights: their own entry (torchvision's resnet50 IMAGENET1K_V2 resizes to 232, not 256);
//   - a training run (and its checkpoints): Fashion-MNIST's statistics at the run's size, or an image
//     folder's resize to size / 0.875 and center crop, normalised like the weights it started from;
//   - otherwise the model's registered defaults.
import type { ModelMeta } from '../models/registry.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../models/registry.js';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '../data/transforms.js';
import type { EvalTransform } from './preprocess.js';

/** torchvision's and timm's default ratio of crop to resize (224 / 256). */
export const DEFAULT_CROP_PCT = 0.875;

/** The evaluation transform of one weights entry of `meta` (by tag), or null if it has no such entry. */
export function weightsDataConfig(meta: ModelMeta, tag: string | undefined, channels = meta.inputSize[0]): EvalTransform | null {
  const w = tag === undefined ? undefined : meta.weights.find((e) => e.tag === tag);
  if (!w) return null;
  return withChannels(
    { resizeSize: w.resizeSize, cropSize: w.cropSize, mean: [...w.mean], std: [...w.std], interpolation: w.interpolation, channels: 3 },
    channels,
  );
}

/** The model's registered defaults (input size, mean/std, interpolation), resize = crop / 0.875. */
export function defaultDataConfig(meta: ModelMeta | undefined, channels?: number): EvalTransform {
  const [c0, crop] = meta?.inputSize ?? [3, 224, 224];
  return withChannels(
    {
      resizeSize: Math.round(crop / DEFAULT_CROP_PCT),
      cropSize: crop,
      mean: [...(meta?.mean ?? IMAGENET_MEAN)],
      std: [...(meta?.std ?? IMAGENET_STD)],
      interpolation: meta?.interpolation ?? 'bilinear',
      channels: 3,
    },
    channels ?? c0,
  );
}

/** What a training run's evaluation data looks like (and so what its checkpoints expect). */
export interface RunDataSpec {
  /** 1 for Fashion-MNIST (grayscale IDX data), 3 for image folders. */
  channels: number;
  /** The run's --input-size. */
  inputSize?: number;
  /** The preprocessing of the weights the run started from, if any. */
  pretrained?: EvalTransform | null;
}

export function runDataConfig(run: RunDataSpec): EvalTransform {
  if (run.channels === 1) {
    // Fashion-MNIST: centred 28 x 28 garments, resized only, normalised by its own statistics (also when
    // fine-tuning ImageNet weights: the summed first conv sees grey images either way).
    const size = run.inputSize ?? 28;
    return { resizeSize: size, cropSize: size, mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD], interpolation: 'bilinear', channels: 1 };
  }
  if (run.pretrained && run.inputSize === undefined) return withChannels({ ...run.pretrained }, run.channels);
  const size = run.inputSize ?? run.pretrained?.cropSize ?? 224;
  const base = run.pretrained ?? { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], interpolation: 'bilinear' };
  return withChannels(
    {
      resizeSize: Math.round(size / DEFAULT_CROP_PCT),
      cropSize: size,
      mean: [...base.mean],
      std: [...base.std],
      interpolation: base.interpolation,
      channels: 3,
    },
    run.channels,
  );
}

/**
 * The preprocessing of the weights a `weights` argument names ('DEFAULT' or a tag of the model's table),
 * or null for a file, URL or checkpoint (whose preprocessing is not in the registry).
 */
export function pretrainedDataConfig(meta: ModelMeta, weights: string | undefined, channels?: number): EvalTransform | null {
  if (weights === undefined) return null;
  const tag = weights === 'DEFAULT' ? (meta.weights.find((w) => w.default) ?? meta.weights[0])?.tag : weights;
  return weightsDataConfig(meta, tag, channels);
}

/** Grayscale models take the first channel's statistics (as torchvision's Grayscale + Normalize do). */
function withChannels(t: EvalTransform, channels: number): EvalTransform {
  const perChannel = (v: number[]) => (v.length === channels ? v : Array.from({ length: channels }, (_, i) => v[Math.min(i, v.length - 1)]));
  return { ...t, channels, mean: perChannel(t.mean), std: perChannel(t.std) };
}
