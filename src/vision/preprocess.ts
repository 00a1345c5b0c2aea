// Evaluation preprocessing of still images with sharp: EXIF orientation, resize of the shorter side,
// center crop, scaling to [0, 1] and per-channel normalisation, as torchvision's ImageClassification transform.
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConvzooError } from '../errors.js';
import type { ClassifierModel } from '../models/base.js';
import type { Interpolation } from '../models/registry.js';

export interface EvalTransform {
  resizeSize: number;
  cropSize: number;
  mean: number[];
  std: number[];
  interpolation: Interpolation | string;
  /** Channels the model takes: 3 (RGB) or 1 (grayscale). */
  channels: number;
}

/** The transform a model's loaded weights ask for, or its registered defaults (resize = crop / 0.875). */
export function evalTransformFor(model: ClassifierModel, channels?: number): EvalTransform {
  const meta = model.meta;
  const w = meta?.weights.find((e) => e.tag === model._weightsTag);
  const inputSize = meta?.inputSize ?? [3, 224, 224];
  const c = channels ?? inputSize[0];
  if (w) return { resizeSize: w.resizeSize, cropSize: w.cropSize, mean: w.mean, std: w.std, interpolation: w.interpolation, channels: c };
  const crop = inputSize[1];
  const mean = meta ? [...meta.mean] : [0.485, 0.456, 0.406];
  const std = meta ? [...meta.std] : [0.229, 0.224, 0.225];
  return { resizeSize: Math.round(crop / 0.875), cropSize: crop, mean: c === 1 ? [mean[0]] : mean, std: c === 1 ? [std[0]] : std, interpolation: meta?.interpolation ?? 'bilinear', channels: c };
}

const KERNELS: Record<string, 'linear' | 'cubic' | 'nearest'> = { bilinear: 'linear', bicubic: 'cubic', nearest: 'nearest' };

/**
 * Decodes an image file or buffer (JPEG, PNG, WebP, ...) into a normalised CHW Float32Array of
 * `channels x cropSize x cropSize`. Unsupported or corrupt data raises E_IMAGE naming the source.
 */
export async function loadImage(source: string | Buffer, t: EvalTransform): Promise<Float32Array> {
  const name = typeof source === 'string' ? source : 'image buffer';
  let input: Buffer;
  try {
    input = typeof source === 'string' ? readFileSync(source) : source;
  } catch (e) {
    throw new ConvzooError(`${name}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'E_IMAGE');
  }
  try {
    const oriented = sharp(input, { failOn: 'error' }).rotate(); // apply EXIF orientation
    const meta = await sharp(await oriented.toBuffer()).metadata();
    let { width = 0, height = 0 } = meta;
    const short = Math.min(width, height);
    const scale = t.resizeSize / short;
    // torchvision's Resize(int): the shorter side becomes `size`, the other keeps the aspect ratio (truncated).
    const [rw, rh] = width <= height ? [t.resizeSize, Math.floor(height * scale)] : [Math.floor(width * scale), t.resizeSize];
    const left = Math.round((rw - t.cropSize) / 2), top = Math.round((rh - t.cropSize) / 2);
    let pipeline = sharp(input, { failOn: 'error' }).rotate()
      .resize(rw, rh, { fit: 'fill', kernel: KERNELS[t.interpolation] ?? 'linear' })
      .extract({ left: Math.max(0, left), top: Math.max(0, top), width: t.cropSize, height: t.cropSize });
    pipeline = t.channels === 1 ? pipeline.grayscale() : pipeline.removeAlpha().toColorspace('srgb');
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    const c = info.channels, hw = t.cropSize * t.cropSize;
    width = info.width; height = info.height;
    const out = new Float32Array(t.channels * hw);
    for (let ch = 0; ch < t.channels; ch++) {
      const m = t.mean[ch], s = t.std[ch];
      for (let i = 0; i < hw; i++) out[ch * hw + i] = (data[i * c + ch] / 255 - m) / s;
    }
    return out;
  } catch (e) {
    if (e instanceof ConvzooError) throw e;
    throw new ConvzooError(`${name}: not a decodable image (${(e as Error).message})`, 'E_IMAGE');
  }
}

let imagenetClasses: string[] | undefined;
/** The 1000 ImageNet-1k class names, in torchvision's order. */
export function imagenetCategories(): string[] {
  if (!imagenetClasses) {
    const require = createRequire(import.meta.url);
    imagenetClasses = require('../../assets/imagenet_classes.json') as string[];
  }
  return imagenetClasses;
}
