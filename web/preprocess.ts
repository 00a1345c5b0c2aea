// The evaluation transform of convzoo (torchvision's) on decoded pixels, in the page: PIL's resize of
// the shorter side (same filters, weights and 8-bit rounding as Pillow's Resample.c, so a PNG gives
// the library's input exactly), center crop (zero padding when the image is smaller), ToTensor,
// Normalize, and PIL's convert('L') luma for 1-channel models. Pure TypeScript: no DOM, no tensors.

import { pilCoefficients, resizedSize, roundHalfEven, RESAMPLE_FILTERS, type ResampleFilter } from '../src/vision/pil.js';

/** The preprocessing a served model asks for (the `transform` of GET /v1/models). */
export interface EvalTransform {
  resizeSize: number;
  cropSize: number;
  mean: number[];
  std: number[];
  interpolation: string;
  channels: number;
}

/** 8-bit pixels, row-major, `channels` interleaved values per pixel. */
export interface Pixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
}

/** The filters the page can apply (Pillow's names). */
export const FILTERS: readonly string[] = RESAMPLE_FILTERS;

/** Every term is a multiple of 2^-22 below 2^10, so float64 sums exactly and this is Pillow's uint8 result. */
const toByte = (v: number): number => Math.min(255, Math.max(0, Math.floor(v + 0.5)));

/** Pillow's `img.resize((width, height), filter)`: horizontal pass then vertical, each rounded to 8 bits. */
export function resize(img: Pixels, width: number, height: number, filter: string): Pixels {
  const { channels: c } = img;
  if (filter === 'nearest') return resizeNearest(img, width, height);
  if (!FILTERS.includes(filter)) throw new Error(`unknown interpolation '${filter}' (expected one of ${FILTERS.join(', ')})`);
  const kind = filter as Exclude<ResampleFilter, 'nearest'>;
  let src: Pixels = img;
  if (width !== img.width) {
    const { start, count, k, ksize } = pilCoefficients(img.width, width, kind);
    const out = new Uint8Array(width * img.height * c);
    for (let y = 0; y < img.height; y++) {
      const row = y * img.width * c;
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let j = 0; j < count[x]; j++) s += k[x * ksize + j] * img.data[row + (start[x] + j) * c + ch];
          out[(y * width + x) * c + ch] = toByte(s);
        }
      }
    }
    src = { data: out, width, height: img.height, channels: c };
  }
  if (height !== img.height) {
    const { start, count, k, ksize } = pilCoefficients(img.height, height, kind);
    const out = new Uint8Array(width * height * c);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width * c; x++) {
        let s = 0;
        for (let j = 0; j < count[y]; j++) s += k[y * ksize + j] * src.data[(start[y] + j) * width * c + x];
        out[y * width * c + x] = toByte(s);
      }
    }
    src = { data: out, width, height, channels: c };
  }
  return src;
}

/** Pillow's NEAREST: source index trunc(scale / 2 + i * scale), the position accumulated by addition. */
function resizeNearest(img: Pixels, width: number, height: number): Pixels {
  const index = (inSize: number, outSize: number): number[] => {
    const scale = inSize / outSize;
    const idx: number[] = [];
    for (let o = 0, pos = scale * 0.5; o < outSize; o++, pos += scale) idx.push(outSize === inSize ? o : Math.min(Math.trunc(pos), inSize - 1));
    return idx;
  };
  const xs = index(img.width, width),
    ys = index(img.height, height);
  const c = img.channels;
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let ch = 0; ch < c; ch++) out[(y * width + x) * c + ch] = img.data[(ys[y] * img.width + xs[x]) * c + ch];
  return { data: out, width, height, channels: c };
}

/** RGBA (a canvas' ImageData) to RGB, dropping alpha as PIL's convert('RGB') does. */
export function rgbaToRgb(data: Uint8ClampedArray, width: number, height: number): Pixels {
  const out = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    out[p * 3] = data[p * 4];
    out[p * 3 + 1] = data[p * 4 + 1];
    out[p * 3 + 2] = data[p * 4 + 2];
  }
  return { data: out, width, height, channels: 3 };
}

/** PIL's convert('L'): ITU-R 601-2 luma in 16-bit fixed point. */
export function rgbToLuma(img: Pixels): Pixels {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const d = img.data;
  for (let p = 0, s = 0; p < n; p++, s += img.channels) out[p] = (d[s] * 19595 + d[s + 1] * 38470 + d[s + 2] * 7471 + 0x8000) >>> 16;
  return { data: out, width: img.width, height: img.height, channels: 1 };
}

/**
 * The model's input for one RGB image: a CHW Float32Array of `channels x cropSize x cropSize`,
 * resized, center-cropped (zero-padded where the image is smaller than the crop) and normalised.
 */
export function preprocess(rgb: Pixels, t: EvalTransform): Float32Array {
  const px = t.channels === 1 ? rgbToLuma(rgb) : rgb;
  const [rh, rw] = resizedSize(px.height, px.width, t.resizeSize);
  const resized = rh === px.height && rw === px.width ? px : resize(px, rw, rh, t.interpolation);
  const crop = t.cropSize;
  // Where the crop window starts in the resized image (negative: padding before it).
  const top = crop <= rh ? roundHalfEven((rh - crop) / 2) : -Math.floor((crop - rh) / 2);
  const left = crop <= rw ? roundHalfEven((rw - crop) / 2) : -Math.floor((crop - rw) / 2);
  const c = t.channels;
  const out = new Float32Array(c * crop * crop);
  for (let ch = 0; ch < c; ch++) {
    const src = resized.channels === 1 ? 0 : ch;
    const mean = Math.fround(t.mean[t.mean.length === 1 ? 0 : ch]);
    const std = Math.fround(t.std[t.std.length === 1 ? 0 : ch]);
    for (let y = 0; y < crop; y++)
      for (let x = 0; x < crop; x++) {
        const sy = y + top,
          sx = x + left;
        const inside = sy >= 0 && sy < rh && sx >= 0 && sx < rw;
        const v = inside ? resized.data[(sy * rw + sx) * resized.channels + src] : 0;
        // float32 steps as torchvision's ToTensor and Normalize take them.
        out[(ch * crop + y) * crop + x] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
      }
  }
  return out;
}

/** softmax of one row of logits, in float64. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const e = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i] - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

export interface Prediction {
  label: string;
  index: number;
  probability: number;
}

/** The k most probable classes, highest first. */
export function topk(probs: number[], labels: string[], k: number): Prediction[] {
  return probs
    .map((probability, index) => ({ label: labels[index] ?? `class ${index}`, index, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k);
}
