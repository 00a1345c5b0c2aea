// Images as plain CHW Float32Arrays (values in [0, 1] after decoding) and the pixel operations the
// transforms are made of. Pure JS, so they run in worker threads without the native addon.
import { ConvzooError, check } from '../errors.js';

/** One image, channels-first: `data[c * height * width + y * width + x]`. */
export interface Image {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

export function makeImage(channels: number, height: number, width: number, data?: Float32Array): Image {
  const n = channels * height * width;
  if (data) check(data.length === n, 'image', `${data.length} values given, ${channels}x${height}x${width} needs ${n}`, 'E_SHAPE');
  return { data: data ?? new Float32Array(n), channels, height, width };
}

/** uint8 pixels to [0, 1] floats; `layout` 'hwc' (interleaved, as decoders give) or 'chw'. */
export function fromUint8(pixels: Uint8Array, channels: number, height: number, width: number, layout: 'hwc' | 'chw' = 'hwc'): Image {
  const img = makeImage(channels, height, width);
  const out = img.data;
  const plane = height * width;
  if (layout === 'chw' || channels === 1) {
    for (let i = 0; i < out.length; i++) out[i] = pixels[i] / 255;
  } else {
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++) out[c * plane + p] = pixels[p * channels + c] / 255;
    }
  }
  return img;
}

/** Python's round(): halves go to the even neighbour (torchvision's centre crop relies on it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The window [top, top+height) x [left, left+width); it must lie inside the image. */
export function crop(img: Image, top: number, left: number, height: number, width: number): Image {
  check(
    top >= 0 && left >= 0 && top + height <= img.height && left + width <= img.width && height > 0 && width > 0,
    'crop',
    `window (top ${top}, left ${left}, ${height}x${width}) outside a ${img.height}x${img.width} image`,
    'E_SHAPE',
  );
  const out = makeImage(img.channels, height, width);
  const src = img.data;
  const dst = out.data;
  for (let c = 0; c < img.channels; c++) {
    const sBase = c * img.height * img.width;
    const dBase = c * height * width;
    for (let y = 0; y < height; y++) {
      const s = sBase + (top + y) * img.width + left;
      dst.set(src.subarray(s, s + width), dBase + y * width);
    }
  }
  return out;
}

export type PaddingMode = 'constant' | 'edge' | 'reflect' | 'symmetric';

/** Pads [left, top, right, bottom] pixels (torchvision's order); reflect excludes the edge pixel, symmetric repeats it. */
export function pad(img: Image, padding: number | readonly number[], opts: { fill?: number | readonly number[]; mode?: PaddingMode } = {}): Image {
  const [l, t, r, b] = padding4(padding);
  const mode = opts.mode ?? 'constant';
  if (l === 0 && t === 0 && r === 0 && b === 0) return img;
  const { channels: C, height: H, width: W } = img;
  if (mode === 'reflect') {
    check(Math.max(l, r) < W && Math.max(t, b) < H, 'pad', `reflect padding (${l}, ${t}, ${r}, ${b}) must be smaller than the ${H}x${W} image`, 'E_SHAPE');
  }
  const OH = H + t + b;
  const OW = W + l + r;
  const out = makeImage(C, OH, OW);
  const fills = typeof opts.fill === 'number' || opts.fill === undefined ? null : opts.fill;
  const fill0 = typeof opts.fill === 'number' ? opts.fill : 0;
  const index = (i: number, n: number): number => {
    if (i >= 0 && i < n) return i;
    switch (mode) {
      case 'edge':
        return i < 0 ? 0 : n - 1;
      case 'reflect': {
        const p = 2 * (n - 1) || 1;
        let k = ((i % p) + p) % p;
        if (k >= n) k = p - k;
        return k;
      }
      case 'symmetric': {
        const p = 2 * n;
        let k = ((i % p) + p) % p;
        if (k >= n) k = p - 1 - k;
        return k;
      }
      default:
        return -1;
    }
  };
  const xs = new Int32Array(OW);
  for (let x = 0; x < OW; x++) xs[x] = index(x - l, W);
  for (let c = 0; c < C; c++) {
    const fill = fills ? (fills[c] ?? fills[0]) : fill0;
    const sBase = c * H * W;
    const dBase = c * OH * OW;
    for (let y = 0; y < OH; y++) {
      const sy = index(y - t, H);
      const d = dBase + y * OW;
      if (sy < 0) {
        out.data.fill(fill, d, d + OW);
        continue;
      }
      const s = sBase + sy * W;
      for (let x = 0; x < OW; x++) out.data[d + x] = xs[x] < 0 ? fill : img.data[s + xs[x]];
    }
  }
  return out;
}

export function padding4(p: number | readonly number[]): [number, number, number, number] {
  const v = typeof p === 'number' ? [p, p, p, p] : p.length === 1 ? [p[0], p[0], p[0], p[0]] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : [...p];
  check(
    v.length === 4 && v.every((x) => Number.isInteger(x) && x >= 0),
    'pad',
    `expected padding as n, [lr, tb] or [left, top, right, bottom] of non-negative integers, got ${JSON.stringify(p)}`,
  );
  return v as [number, number, number, number];
}

/** Mirror left-right. */
export function hflip(img: Image): Image {
  const out = makeImage(img.channels, img.height, img.width);
  const W = img.width;
  const rows = img.channels * img.height;
  for (let r = 0; r < rows; r++) {
    const o = r * W;
    for (let x = 0; x < W; x++) out.data[o + x] = img.data[o + W - 1 - x];
  }
  return out;
}

/** Mirror top-bottom. */
export function vflip(img: Image): Image {
  const out = makeImage(img.channels, img.height, img.width);
  const { height: H, width: W } = img;
  for (let c = 0; c < img.channels; c++) {
    const base = c * H * W;
    for (let y = 0; y < H; y++) out.data.set(img.data.subarray(base + (H - 1 - y) * W, base + (H - y) * W), base + y * W);
  }
  return out;
}

// ---- bilinear resampling, separable. Each axis gets a table of (first source index, weights).
interface AxisWeights {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  taps: number;
}

/**
 * Plain bilinear (align_corners=False, like F.interpolate and torchvision's tensor Resize without
 * antialias): two taps per output pixel at source coordinate (i + 0.5) * in/out - 0.5, clamped.
 */
function bilinearAxis(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize).fill(2);
  const weights = new Float32Array(outSize * 2);
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(src - i0, 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    start[i] = i0;
    if (i1 === i0) {
      count[i] = 1;
      weights[2 * i] = 1;
      weights[2 * i + 1] = 0;
    } else {
      weights[2 * i] = 1 - lambda;
      weights[2 * i + 1] = lambda;
    }
  }
  return { start, count, weights, taps: 2 };
}

/**
 * Antialiased bilinear (PIL's resampling filter, also torch's antialias=True): when shrinking, the
 * triangle filter is widened by the scale so every source pixel contributes; weights are normalised.
 */
function antialiasAxis(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * taps);
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    const w = new Float64Array(xsize);
    for (let j = 0; j < xsize; j++) {
      const x = Math.abs((j + xmin - center + 0.5) * invScale);
      w[j] = x < 1 ? 1 - x : 0;
      total += w[j];
    }
    start[i] = xmin;
    count[i] = xsize;
    for (let j = 0; j < xsize; j++) weights[i * taps + j] = total ? w[j] / total : 0;
  }
  return { start, count, weights, taps };
}

/** Resizes to height x width with bilinear interpolation; `antialias` (default true) filters when shrinking, as PIL does. */
export function resize(img: Image, height: number, width: number, opts: { antialias?: boolean } = {}): Image {
  check(
    Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0,
    'resize',
    `expected a positive integer size, got ${height}x${width}`,
    'E_SHAPE',
  );
  const { channels: C, height: H, width: W } = img;
  if (H === height && W === width) return img;
  const aa = opts.antialias ?? true;
  const ax = aa ? antialiasAxis(W, width) : bilinearAxis(W, width);
  const ay = aa ? antialiasAxis(H, height) : bilinearAxis(H, height);
  // Horizontal pass: C*H rows of W -> width.
  const tmp = new Float32Array(C * H * width);
  const src = img.data;
  for (let r = 0; r < C * H; r++) {
    const s = r * W;
    const d = r * width;
    for (let x = 0; x < width; x++) {
      const st = s + ax.start[x];
      const wo = x * ax.taps;
      let acc = 0;
      for (let k = 0; k < ax.count[x]; k++) acc += src[st + k] * ax.weights[wo + k];
      tmp[d + x] = acc;
    }
  }
  // Vertical pass: per channel, height rows each a weighted sum of source rows.
  const out = makeImage(C, height, width);
  const dst = out.data;
  for (let c = 0; c < C; c++) {
    const sBase = c * H * width;
    const dBase = c * height * width;
    for (let y = 0; y < height; y++) {
      const d = dBase + y * width;
      const wo = y * ay.taps;
      for (let k = 0; k < ay.count[y]; k++) {
        const wk = ay.weights[wo + k];
        if (wk === 0) continue;
        const s = sBase + (ay.start[y] + k) * width;
        for (let x = 0; x < width; x++) dst[d + x] += wk * tmp[s + x];
      }
    }
  }
  return out;
}

/** The output size of resizing the shorter side to `size` (torchvision's rule: the longer side is truncated). */
export function shorterSideSize(height: number, width: number, size: number, maxSize?: number): [number, number] {
  const short = Math.min(height, width);
  const long = Math.max(height, width);
  let newShort = size;
  let newLong = Math.trunc((size * long) / short);
  if (maxSize !== undefined && newLong > maxSize) {
    check(maxSize > size, 'resize', `maxSize (${maxSize}) must be greater than size (${size})`);
    newShort = Math.trunc((maxSize * newShort) / newLong);
    newLong = maxSize;
  }
  return height <= width ? [newShort, newLong] : [newLong, newShort];
}

/** In place: (x - mean[c]) / std[c]. */
export function normalize_(img: Image, mean: readonly number[], std: readonly number[]): Image {
  const C = img.channels;
  check(
    (mean.length === C || mean.length === 1) && (std.length === C || std.length === 1),
    'normalize',
    `expected ${C} (or 1) mean and std values for a ${C}-channel image, got ${mean.length} and ${std.length}`,
    'E_SHAPE',
  );
  const plane = img.height * img.width;
  for (let c = 0; c < C; c++) {
    const m = mean.length === 1 ? mean[0] : mean[c];
    const s = std.length === 1 ? std[0] : std[c];
    if (s === 0) throw new ConvzooError('normalize: std must not be 0', 'E_ARG', 'normalize');
    const d = img.data;
    for (let i = c * plane, e = i + plane; i < e; i++) d[i] = (d[i] - m) / s;
  }
  return img;
}
