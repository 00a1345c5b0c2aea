// Evaluation preprocessing of still images, as torchvision's ImageNet evaluation does it on PIL
// images: `Image.open(f).convert('RGB')`, Resize(resizeSize) of the shorter side with PIL's filter
// (bilinear with antialiasing by default), CenterCrop(cropSize), ToTensor, Normalize(mean, std).
// Decoding is sharp's (./decode.ts, following PIL's conversions), resizing PIL's own algorithm with
// libtorch doing the sums (./resample.ts): for the formats PIL and libvips decode alike (JPEG, PNG,
// ...) the result equals torchvision's input exactly. One difference by default: EXIF orientation
// is applied (torchvision's loader ignores it); `autoOrient: false` turns that off.
import { createRequire } from 'node:module';
import { weightsDataConfig, defaultDataConfig } from './data_config.js';
import { check, checkInt } from '../errors.js';
import { fromBytes, inferenceMode } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import type { ClassifierModel } from '../models/base.js';
import type { Interpolation } from '../models/registry.js';
import { decodeImage, rgbToLuma, type DecodedImage, type DecodeOptions } from './decode.js';
import { resizeCropPIL, padZeros, RESAMPLE_FILTERS, type ResampleFilter } from './resample.js';
import { resizedSize, roundHalfEven } from './pil.js';

export { decodeImage, type DecodedImage, type DecodeOptions } from './decode.js';

export interface EvalTransform {
  resizeSize: number;
  cropSize: number;
  mean: number[];
  std: number[];
  /** PIL's filter: bilinear (torchvision's default), bicubic, nearest, box, hamming or lanczos. */
  interpolation: Interpolation | string;
  /** Channels the model takes: 3 (RGB) or 1 (grayscale, PIL's convert('L')). */
  channels: number;
}

/**
 * The transform a model's loaded weights ask for (a convzoo checkpoint's training data, or a weights
 * table entry), else its registered defaults (resize = crop / 0.875).
 */
export function evalTransformFor(model: ClassifierModel, channels?: number): EvalTransform {
  if (model._evalTransform) return { ...model._evalTransform }; // a checkpoint's own preprocessing
  return (model.meta && weightsDataConfig(model.meta, model._weightsTag, channels)) || defaultDataConfig(model.meta, channels);
}

/** Throws E_ARG (naming `fn` and the field) unless `t` is a usable transform. */
export function checkTransform(t: EvalTransform, fn = 'loadImage'): void {
  check(t !== null && typeof t === 'object', fn, `expected transform to be an object, got ${String(t)}`);
  checkInt(t.resizeSize, fn, 'transform.resizeSize', 1);
  checkInt(t.cropSize, fn, 'transform.cropSize', 1);
  check(t.channels === 1 || t.channels === 3, fn, `expected transform.channels to be 1 or 3, got ${String(t.channels)}`);
  for (const key of ['mean', 'std'] as const) {
    const v = t[key];
    check(
      Array.isArray(v) && (v.length === t.channels || v.length === 1) && v.every((x) => typeof x === 'number' && Number.isFinite(x)),
      fn,
      `expected transform.${key} to be ${t.channels} (or 1) finite numbers, got ${JSON.stringify(v)}`,
    );
  }
  check(
    t.std.every((x) => x !== 0),
    fn,
    'transform.std must not contain 0',
  );
  check(
    RESAMPLE_FILTERS.includes(t.interpolation as ResampleFilter),
    fn,
    `unknown transform.interpolation '${String(t.interpolation)}' (expected one of ${RESAMPLE_FILTERS.join(', ')})`,
  );
}

/**
 * Resize, center crop, scale and normalise decoded pixels (torchvision's eval transform after the
 * loader) into a CHW Float32Array of `t.channels x cropSize x cropSize`.
 */
export function preprocessPixels(img: DecodedImage, t: EvalTransform): Float32Array {
  const px = t.channels === 1 ? rgbToLuma(img) : img;
  const [rh, rw] = resizedSize(px.height, px.width, t.resizeSize);
  const crop = t.cropSize;
  // CenterCrop: a window of the resized image; an axis shorter than the crop is zero-padded instead,
  // (crop - size) // 2 before and the rest after, as torchvision pads.
  const axis = (size: number): { start: number; len: number; before: number; after: number } =>
    crop <= size
      ? { start: roundHalfEven((size - crop) / 2), len: crop, before: 0, after: 0 }
      : { start: 0, len: size, before: Math.floor((crop - size) / 2), after: Math.floor((crop - size + 1) / 2) };
  const ya = axis(rh),
    xa = axis(rw);
  return inferenceMode(() =>
    tidy(() => {
      const hwc = fromBytes(px.data, [px.height, px.width, px.channels], 'uint8');
      const chw = hwc.permute(2, 0, 1); // a view: the passes copy only the bands they read
      let x = resizeCropPIL(chw, {
        height: rh,
        width: rw,
        top: ya.start,
        left: xa.start,
        cropHeight: ya.len,
        cropWidth: xa.len,
        filter: t.interpolation as ResampleFilter,
      });
      if (ya.before + ya.after + xa.before + xa.after > 0) x = padZeros(x, xa.before, xa.after, ya.before, ya.after);
      if (x.shape[0] !== t.channels) x = x.expand(t.channels, crop, crop);
      // ToTensor and Normalize in float32, the same ops torchvision applies.
      const scaled = x.to('float32').div(255);
      const c = t.channels;
      const mean = fromBytes(
        Float32Array.from({ length: c }, (_, i) => t.mean[t.mean.length === 1 ? 0 : i]),
        [c, 1, 1],
        'float32',
      );
      const std = fromBytes(
        Float32Array.from({ length: c }, (_, i) => t.std[t.std.length === 1 ? 0 : i]),
        [c, 1, 1],
        'float32',
      );
      const out = scaled.sub(mean).div(std).contiguous();
      return new Float32Array(out.data() as Float32Array);
    }),
  );
}

export interface LoadImageOptions extends DecodeOptions {}

/**
 * Decodes an image file or buffer (JPEG, PNG, WebP, ...) into a normalised CHW Float32Array of
 * `channels x cropSize x cropSize`, matching torchvision's evaluation preprocessing (see the top of
 * this file). Unsupported or corrupt data, a missing path or one that is not a regular file (a FIFO,
 * a directory) raise E_IMAGE naming the source; a bad transform raises E_ARG.
 */
export async function loadImage(source: string | Buffer, t: EvalTransform, opts: LoadImageOptions = {}): Promise<Float32Array> {
  checkTransform(t);
  const bytes = source as unknown;
  check(
    typeof bytes === 'string' || bytes instanceof Uint8Array,
    'loadImage',
    `expected a file path or a Buffer, got ${bytes === null ? 'null' : typeof bytes}`,
  );
  const img = await decodeImage(typeof bytes === 'string' || Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes as Uint8Array), opts);
  return preprocessPixels(img, t);
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
