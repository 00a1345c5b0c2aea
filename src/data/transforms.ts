// Composable, seeded image transforms on CHW Float32Array images. Random transforms draw only from
// the Rng they are given (the loader seeds one per sample from seed, epoch and index), so the same
// seed gives the same augmentations in every worker layout. Every built-in transform describes
// itself as plain data (`toSpec()`), which is how the loader rebuilds it inside worker threads.
import { ConvzooError, check } from '../errors.js';
import { type Image, makeImage, crop, pad, padding4, hflip, vflip, resize, shorterSideSize, roundHalfEven, normalize_, type PaddingMode } from './image.js';
import type { Rng } from './rng.js';

/** A plain-data description of a transform: `{name: 'RandomCrop', size: [32, 32], padding: 4, ...}`. */
export interface TransformSpec {
  name: string;
  [option: string]: unknown;
}

export interface Transform {
  /** Returns the transformed image (a new one, or `img` itself when nothing changes; never modifies `img`). */
  apply(img: Image, rng: Rng): Image;
  /** The transform as plain data, so that worker threads can rebuild it; absent for custom code. */
  toSpec?(): TransformSpec | undefined;
}

type Size = number | readonly [number, number];
const size2 = (s: Size, fn: string): [number, number] => {
  const v: number[] = typeof s === 'number' ? [s, s] : [...s];
  check(
    v.length === 2 && v.every((x) => Number.isInteger(x) && x > 0),
    fn,
    `expected size as n or [height, width] of positive integers, got ${JSON.stringify(s)}`,
  );
  return v as [number, number];
};

// ---- ImageNet statistics
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** AlexNet's PCA of ImageNet RGB pixels, as fb.resnet.torch ships it: eigenvalues and eigenvectors (columns). */
export const IMAGENET_PCA = {
  eigval: [0.2175, 0.0188, 0.0045],
  eigvec: [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.814],
    [-0.5836, -0.6948, 0.4203],
  ],
} as const;

export class Compose implements Transform {
  readonly transforms: readonly Transform[];
  constructor(transforms: readonly Transform[]) {
    this.transforms = [...transforms];
  }
  apply(img: Image, rng: Rng): Image {
    for (const t of this.transforms) img = t.apply(img, rng);
    return img;
  }
  toSpec(): TransformSpec | undefined {
    const parts = this.transforms.map((t) => t.toSpec?.());
    return parts.every((p) => p !== undefined) ? { name: 'Compose', transforms: parts } : undefined;
  }
}

/**
 * Resizes with bilinear interpolation. A number resizes the shorter side to it (aspect kept, the
 * longer side truncated as torchvision does); [height, width] resizes to exactly that.
 * `antialias` (default true) low-pass filters when shrinking, like PIL and torchvision's antialias=True.
 */
export class Resize implements Transform {
  constructor(
    readonly size: Size,
    readonly opts: { antialias?: boolean; maxSize?: number } = {},
  ) {
    if (typeof size === 'number') check(Number.isInteger(size) && size > 0, 'Resize', `expected a positive integer size, got ${size}`);
    else size2(size, 'Resize');
  }
  apply(img: Image): Image {
    const [h, w] = typeof this.size === 'number' ? shorterSideSize(img.height, img.width, this.size, this.opts.maxSize) : this.size;
    return resize(img, h, w, this.opts);
  }
  toSpec(): TransformSpec {
    return { name: 'Resize', size: this.size, ...this.opts };
  }
}

/** The centre crop of the given size (zero-padded first if the image is smaller), placed as torchvision does. */
export class CenterCrop implements Transform {
  readonly size: [number, number];
  constructor(size: Size) {
    this.size = size2(size, 'CenterCrop');
  }
  apply(img: Image): Image {
    return centerCrop(img, this.size[0], this.size[1]);
  }
  toSpec(): TransformSpec {
    return { name: 'CenterCrop', size: this.size };
  }
}

export function centerCrop(img: Image, th: number, tw: number): Image {
  if (th > img.height || tw > img.width) {
    const dw = Math.max(tw - img.width, 0);
    const dh = Math.max(th - img.height, 0);
    img = pad(img, [dw >> 1, dh >> 1, (dw + 1) >> 1, (dh + 1) >> 1]);
    if (img.height === th && img.width === tw) return img;
  }
  const top = roundHalfEven((img.height - th) / 2);
  const left = roundHalfEven((img.width - tw) / 2);
  return crop(img, top, left, th, tw);
}

export interface PadOptions {
  fill?: number | readonly number[];
  mode?: PaddingMode;
}

/** Pads by n, [left/right, top/bottom] or [left, top, right, bottom] pixels. */
export class Pad implements Transform {
  constructor(
    readonly padding: number | readonly number[],
    readonly opts: PadOptions = {},
  ) {
    padding4(padding);
  }
  apply(img: Image): Image {
    return pad(img, this.padding, this.opts);
  }
  toSpec(): TransformSpec {
    return { name: 'Pad', padding: this.padding, ...this.opts };
  }
}

export interface RandomCropOptions {
  /** Padding added before cropping (CIFAR's classic recipe: 4). */
  padding?: number | readonly number[];
  /** Pads images smaller than the crop. */
  padIfNeeded?: boolean;
  fill?: number | readonly number[];
  paddingMode?: PaddingMode;
}

/** A crop of the given size at a uniformly random position, after optional padding. */
export class RandomCrop implements Transform {
  readonly size: [number, number];
  constructor(
    size: Size,
    readonly opts: RandomCropOptions = {},
  ) {
    this.size = size2(size, 'RandomCrop');
    if (opts.padding !== undefined) padding4(opts.padding);
  }
  apply(img: Image, rng: Rng): Image {
    const [th, tw] = this.size;
    const padOpts = { fill: this.opts.fill, mode: this.opts.paddingMode };
    if (this.opts.padding !== undefined) img = pad(img, this.opts.padding, padOpts);
    if (this.opts.padIfNeeded && img.width < tw) img = pad(img, [tw - img.width, 0], padOpts);
    if (this.opts.padIfNeeded && img.height < th) img = pad(img, [0, th - img.height], padOpts);
    check(img.height >= th && img.width >= tw, 'RandomCrop', `crop ${th}x${tw} is larger than the (padded) ${img.height}x${img.width} image`, 'E_SHAPE');
    if (img.height === th && img.width === tw) return img;
    const top = rng.randint(0, img.height - th + 1);
    const left = rng.randint(0, img.width - tw + 1);
    return crop(img, top, left, th, tw);
  }
  toSpec(): TransformSpec {
    return { name: 'RandomCrop', size: this.size, ...this.opts };
  }
}

export interface RandomResizedCropOptions {
  /** Range of the crop's area as a fraction of the image's (default [0.08, 1]). */
  scale?: readonly [number, number];
  /** Range of the crop's width/height ratio, sampled log-uniformly (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
  antialias?: boolean;
}

/**
 * Inception-style crop (torchvision's RandomResizedCrop): up to 10 tries at a random area fraction
 * and log-uniform aspect ratio; if none fits, a centre crop clamped to the ratio range. The crop is
 * then resized to `size`.
 */
export class RandomResizedCrop implements Transform {
  readonly size: [number, number];
  readonly scale: readonly [number, number];
  readonly ratio: readonly [number, number];
  constructor(
    size: Size,
    readonly opts: RandomResizedCropOptions = {},
  ) {
    this.size = size2(size, 'RandomResizedCrop');
    this.scale = opts.scale ?? [0.08, 1];
    this.ratio = opts.ratio ?? [3 / 4, 4 / 3];
    check(
      this.scale[0] <= this.scale[1] && this.ratio[0] <= this.ratio[1] && this.scale[0] > 0 && this.ratio[0] > 0,
      'RandomResizedCrop',
      `expected increasing positive scale and ratio ranges, got scale ${JSON.stringify(this.scale)}, ratio ${JSON.stringify(this.ratio)}`,
    );
  }
  /** The crop window [top, left, height, width] for an image of the given size. */
  params(height: number, width: number, rng: Rng): [number, number, number, number] {
    const area = height * width;
    const logLo = Math.log(this.ratio[0]);
    const logHi = Math.log(this.ratio[1]);
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = area * rng.uniform(this.scale[0], this.scale[1]);
      const aspect = Math.exp(rng.uniform(logLo, logHi));
      const w = roundHalfEven(Math.sqrt(targetArea * aspect));
      const h = roundHalfEven(Math.sqrt(targetArea / aspect));
      if (w > 0 && w <= width && h > 0 && h <= height) {
        return [rng.randint(0, height - h + 1), rng.randint(0, width - w + 1), h, w];
      }
    }
    const inRatio = width / height;
    let w: number;
    let h: number;
    if (inRatio < this.ratio[0]) {
      w = width;
      h = roundHalfEven(w / this.ratio[0]);
    } else if (inRatio > this.ratio[1]) {
      h = height;
      w = roundHalfEven(h * this.ratio[1]);
    } else {
      w = width;
      h = height;
    }
    return [Math.floor((height - h) / 2), Math.floor((width - w) / 2), h, w];
  }
  apply(img: Image, rng: Rng): Image {
    const [top, left, h, w] = this.params(img.height, img.width, rng);
    return resize(crop(img, top, left, h, w), this.size[0], this.size[1], { antialias: this.opts.antialias });
  }
  toSpec(): TransformSpec {
    return { name: 'RandomResizedCrop', size: this.size, scale: this.scale, ratio: this.ratio, antialias: this.opts.antialias };
  }
}

/** Mirrors left-right with probability p (default 0.5). */
export class RandomHorizontalFlip implements Transform {
  constructor(readonly p = 0.5) {
    check(p >= 0 && p <= 1, 'RandomHorizontalFlip', `expected p in [0, 1], got ${p}`);
  }
  apply(img: Image, rng: Rng): Image {
    return rng.random() < this.p ? hflip(img) : img;
  }
  toSpec(): TransformSpec {
    return { name: 'RandomHorizontalFlip', p: this.p };
  }
}

/** Mirrors top-bottom with probability p (default 0.5). */
export class RandomVerticalFlip implements Transform {
  constructor(readonly p = 0.5) {
    check(p >= 0 && p <= 1, 'RandomVerticalFlip', `expected p in [0, 1], got ${p}`);
  }
  apply(img: Image, rng: Rng): Image {
    return rng.random() < this.p ? vflip(img) : img;
  }
  toSpec(): TransformSpec {
    return { name: 'RandomVerticalFlip', p: this.p };
  }
}

/** (x - mean[c]) / std[c] per channel (one value applies to every channel). */
export class Normalize implements Transform {
  readonly mean: number[];
  readonly std: number[];
  constructor(mean: readonly number[], std: readonly number[]) {
    check(
      mean.length > 0 && mean.length === std.length,
      'Normalize',
      `expected mean and std of the same non-zero length, got ${mean.length} and ${std.length}`,
    );
    check(
      std.every((s) => s !== 0),
      'Normalize',
      'std must not contain 0',
    );
    this.mean = [...mean];
    this.std = [...std];
  }
  apply(img: Image): Image {
    return normalize_(makeImage(img.channels, img.height, img.width, img.data.slice()), this.mean, this.std);
  }
  toSpec(): TransformSpec {
    return { name: 'Normalize', mean: this.mean, std: this.std };
  }
}

/**
 * AlexNet's PCA lighting noise (fb.resnet.torch's Lighting): alpha ~ N(0, alphastd) per principal
 * component, and channel c gets sum_j eigvec[c][j] * alpha[j] * eigval[j] added. Apply it to [0, 1]
 * RGB images, before Normalize.
 */
export class Lighting implements Transform {
  readonly eigval: number[];
  readonly eigvec: number[][];
  constructor(
    readonly alphastd = 0.1,
    eigval: readonly number[] = IMAGENET_PCA.eigval,
    eigvec: readonly (readonly number[])[] = IMAGENET_PCA.eigvec,
  ) {
    check(
      eigvec.length === eigval.length && eigvec.every((r) => r.length === eigval.length),
      'Lighting',
      `expected a ${eigval.length}x${eigval.length} eigvec matrix for ${eigval.length} eigenvalues`,
      'E_SHAPE',
    );
    this.eigval = [...eigval];
    this.eigvec = eigvec.map((r) => [...r]);
  }
  apply(img: Image, rng: Rng): Image {
    if (this.alphastd === 0) return img;
    const k = this.eigval.length;
    check(img.channels === k, 'Lighting', `expected a ${k}-channel image, got ${img.channels} channels`, 'E_SHAPE');
    const alpha = Array.from({ length: k }, () => rng.normal(0, this.alphastd));
    const out = makeImage(img.channels, img.height, img.width, img.data.slice());
    const plane = img.height * img.width;
    for (let c = 0; c < k; c++) {
      let rgb = 0;
      for (let j = 0; j < k; j++) rgb += this.eigvec[c][j] * alpha[j] * this.eigval[j];
      const d = out.data;
      for (let i = c * plane, e = i + plane; i < e; i++) d[i] += rgb;
    }
    return out;
  }
  toSpec(): TransformSpec {
    return { name: 'Lighting', alphastd: this.alphastd, eigval: this.eigval, eigvec: this.eigvec };
  }
}

/**
 * VGG's scale jittering: resize the shorter side to an integer S uniform on [minSize, maxSize]
 * (default [256, 512]), then take a random `cropSize` crop (default 224).
 */
export class ScaleJitter implements Transform {
  readonly minSize: number;
  readonly maxSize: number;
  readonly cropSize: [number, number];
  constructor(readonly opts: { minSize?: number; maxSize?: number; cropSize?: Size; antialias?: boolean } = {}) {
    this.minSize = opts.minSize ?? 256;
    this.maxSize = opts.maxSize ?? 512;
    this.cropSize = size2(opts.cropSize ?? 224, 'ScaleJitter');
    check(
      Number.isInteger(this.minSize) && Number.isInteger(this.maxSize) && this.minSize > 0 && this.minSize <= this.maxSize,
      'ScaleJitter',
      `expected integer 0 < minSize <= maxSize, got ${this.minSize}, ${this.maxSize}`,
    );
    check(this.minSize >= Math.min(...this.cropSize), 'ScaleJitter', `minSize (${this.minSize}) must be at least the crop size (${this.cropSize.join('x')})`);
  }
  apply(img: Image, rng: Rng): Image {
    const s = rng.randint(this.minSize, this.maxSize + 1);
    const [h, w] = shorterSideSize(img.height, img.width, s);
    const scaled = resize(img, h, w, { antialias: this.opts.antialias });
    const [th, tw] = this.cropSize;
    check(h >= th && w >= tw, 'ScaleJitter', `crop ${th}x${tw} does not fit the ${h}x${w} image rescaled to shorter side ${s}`, 'E_SHAPE');
    return crop(scaled, rng.randint(0, h - th + 1), rng.randint(0, w - tw + 1), th, tw);
  }
  toSpec(): TransformSpec {
    return { name: 'ScaleJitter', minSize: this.minSize, maxSize: this.maxSize, cropSize: this.cropSize, antialias: this.opts.antialias };
  }
}

/** Wraps a function. It runs on the main thread only (functions cannot cross into worker threads). */
export class Lambda implements Transform {
  constructor(readonly fn: (img: Image, rng: Rng) => Image) {}
  apply(img: Image, rng: Rng): Image {
    return this.fn(img, rng);
  }
}

/** Rebuilds a transform from `toSpec()` data (in worker threads). */
export function transformFromSpec(spec: TransformSpec): Transform {
  const s = spec as Record<string, any>;
  switch (spec.name) {
    case 'Compose':
      return new Compose((s.transforms as TransformSpec[]).map(transformFromSpec));
    case 'Resize':
      return new Resize(s.size, { antialias: s.antialias, maxSize: s.maxSize });
    case 'CenterCrop':
      return new CenterCrop(s.size);
    case 'Pad':
      return new Pad(s.padding, { fill: s.fill, mode: s.mode });
    case 'RandomCrop':
      return new RandomCrop(s.size, { padding: s.padding, padIfNeeded: s.padIfNeeded, fill: s.fill, paddingMode: s.paddingMode });
    case 'RandomResizedCrop':
      return new RandomResizedCrop(s.size, { scale: s.scale, ratio: s.ratio, antialias: s.antialias });
    case 'RandomHorizontalFlip':
      return new RandomHorizontalFlip(s.p);
    case 'RandomVerticalFlip':
      return new RandomVerticalFlip(s.p);
    case 'Normalize':
      return new Normalize(s.mean, s.std);
    case 'Lighting':
      return new Lighting(s.alphastd, s.eigval, s.eigvec);
    case 'ScaleJitter':
      return new ScaleJitter({ minSize: s.minSize, maxSize: s.maxSize, cropSize: s.cropSize, antialias: s.antialias });
    default:
      throw new ConvzooError(`transformFromSpec: unknown transform '${spec.name}'`, 'E_ARG', 'transformFromSpec');
  }
}

// ---- standard recipes
/** Fashion-MNIST's pixel mean and standard deviation (training set, [0, 1] scale). */
export const FASHION_MNIST_MEAN = [0.286] as const;
export const FASHION_MNIST_STD = [0.353] as const;

/** The CIFAR-style recipe on 28x28 Fashion-MNIST: random crop with padding 4, flip, normalize. */
export function fashionMnistTrain(): Compose {
  return new Compose([new RandomCrop(28, { padding: 4 }), new RandomHorizontalFlip(), new Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)]);
}
export function fashionMnistEval(): Compose {
  return new Compose([new Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)]);
}

/** torchvision's ImageNet training recipe: RandomResizedCrop, flip, normalize (plus PCA lighting if `lighting` > 0). */
export function imagenetTrain(opts: { size?: number; lighting?: number; mean?: readonly number[]; std?: readonly number[] } = {}): Compose {
  const ts: Transform[] = [new RandomResizedCrop(opts.size ?? 224), new RandomHorizontalFlip()];
  if (opts.lighting) ts.push(new Lighting(opts.lighting));
  ts.push(new Normalize(opts.mean ?? IMAGENET_MEAN, opts.std ?? IMAGENET_STD));
  return new Compose(ts);
}
/** torchvision's ImageNet evaluation recipe: resize the shorter side to `resize` (256), centre crop `size` (224), normalize. */
export function imagenetEval(opts: { size?: number; resize?: number; mean?: readonly number[]; std?: readonly number[] } = {}): Compose {
  return new Compose([new Resize(opts.resize ?? 256), new CenterCrop(opts.size ?? 224), new Normalize(opts.mean ?? IMAGENET_MEAN, opts.std ?? IMAGENET_STD)]);
}
