// The dataset contract, in-memory uint8 image arrays, subsets and train/val splits. Pure JS: this
// module is loaded by worker threads too.
import { ConvzooError, check } from '../errors.js';
import { type Image, fromUint8 } from './image.js';
import { Rng, mixSeed } from './rng.js';

export interface Sample {
  image: Image;
  label: number;
}

/**
 * A map-style dataset: `get(i)` returns sample i's image (CHW, values in [0, 1]) and label.
 * Datasets that can be rebuilt from plain data implement `workerSpec()`, which the DataLoader needs
 * for `numWorkers > 0`.
 */
export interface Dataset {
  readonly length: number;
  readonly classes: readonly string[];
  /** Every sample's label, without loading images (for stratified splits and statistics). */
  readonly targets: ArrayLike<number>;
  get(index: number): Sample | Promise<Sample>;
  /** A plain-data recipe (structured-cloneable) that rebuilds this dataset in a worker thread. */
  workerSpec?(): DatasetSpec | undefined;
  /** Called with a message when a sample cannot be read and is skipped (the DataLoader reports worker skips here). */
  reportSkipped?(index: number, message: string): void;
}

export type DatasetSpec =
  | { kind: 'uint8'; images: Uint8Array; labels: Uint8Array | Int32Array; shape: [number, number, number]; classes: string[] }
  | { kind: 'folder'; files: string[]; targets: Int32Array; classes: string[]; mode: 'RGB' | 'L' }
  | { kind: 'subset'; base: DatasetSpec; indices: Int32Array };

export function checkIndex(ds: { length: number }, index: number, who: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= ds.length) {
    throw new ConvzooError(`${who}: index ${index} out of range for ${ds.length} samples`, 'E_ARG', who);
  }
}

/** Allocates a Uint8Array that worker threads can share without copying. */
export function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

/**
 * Images held in memory as uint8, N x C x H x W (channel-planar), with integer labels. Fashion-MNIST
 * is one; the storage is a SharedArrayBuffer when possible, so workers read it without a copy.
 */
export class ArrayImageDataset implements Dataset {
  readonly images: Uint8Array;
  readonly labels: Uint8Array | Int32Array;
  readonly shape: [number, number, number];
  readonly classes: readonly string[];

  constructor(images: Uint8Array, labels: Uint8Array | Int32Array, shape: readonly [number, number, number], classes: readonly string[]) {
    const [c, h, w] = shape;
    check(
      images.length === labels.length * c * h * w,
      'ArrayImageDataset',
      `${images.length} pixel bytes do not hold ${labels.length} images of ${c}x${h}x${w}`,
      'E_DATA',
    );
    this.images = images;
    this.labels = labels;
    this.shape = [c, h, w];
    this.classes = [...classes];
  }
  get length(): number {
    return this.labels.length;
  }
  get targets(): ArrayLike<number> {
    return this.labels;
  }
  get(index: number): Sample {
    checkIndex(this, index, 'dataset.get');
    const [c, h, w] = this.shape;
    const n = c * h * w;
    return { image: fromUint8(this.images.subarray(index * n, (index + 1) * n), c, h, w, 'chw'), label: this.labels[index] };
  }
  workerSpec(): DatasetSpec {
    return { kind: 'uint8', images: this.images, labels: this.labels, shape: this.shape, classes: [...this.classes] };
  }
}

/** The samples of `base` at `indices`, in that order. */
export class Subset implements Dataset {
  readonly indices: Int32Array;
  constructor(
    readonly base: Dataset,
    indices: ArrayLike<number>,
  ) {
    this.indices = Int32Array.from(indices);
    for (const i of this.indices) checkIndex(base, i, 'Subset');
  }
  get length(): number {
    return this.indices.length;
  }
  get classes(): readonly string[] {
    return this.base.classes;
  }
  get targets(): ArrayLike<number> {
    const t = this.base.targets;
    return Int32Array.from(this.indices, (i) => t[i]);
  }
  get(index: number): Sample | Promise<Sample> {
    checkIndex(this, index, 'Subset.get');
    return this.base.get(this.indices[index]);
  }
  workerSpec(): DatasetSpec | undefined {
    const base = this.base.workerSpec?.();
    return base && { kind: 'subset', base, indices: this.indices };
  }
  reportSkipped(index: number, message: string): void {
    this.base.reportSkipped?.(this.indices[index], message);
  }
}

export interface SplitOptions {
  /** Fraction of samples for validation (default 0.1), or give `valSize`. */
  valFraction?: number;
  valSize?: number;
  seed?: number;
  /** Keep each class's proportion in both parts (default true). */
  stratified?: boolean;
}

/**
 * A seeded train/validation split. Stratified (the default) takes round(valFraction * count) of every
 * class; simple takes a random valSize of all samples. Both parts keep the dataset's order.
 */
export function trainValSplit(ds: Dataset, opts: SplitOptions = {}): { train: Subset; val: Subset } {
  const n = ds.length;
  const frac = opts.valSize !== undefined ? opts.valSize / Math.max(n, 1) : (opts.valFraction ?? 0.1);
  check(frac >= 0 && frac <= 1, 'trainValSplit', `expected valFraction in [0, 1] (or valSize <= ${n}), got ${opts.valSize ?? opts.valFraction}`);
  const rng = new Rng(mixSeed(opts.seed ?? 0, 0x5717));
  const isVal = new Uint8Array(n);
  if (opts.stratified ?? true) {
    const byClass = new Map<number, number[]>();
    const t = ds.targets;
    for (let i = 0; i < n; i++) {
      const list = byClass.get(t[i]);
      if (list) list.push(i);
      else byClass.set(t[i], [i]);
    }
    for (const key of [...byClass.keys()].sort((a, b) => a - b)) {
      const members = byClass.get(key)!;
      rng.shuffle(members);
      const k = Math.round(frac * members.length);
      for (let j = 0; j < k; j++) isVal[members[j]] = 1;
    }
  } else {
    const k = opts.valSize ?? Math.round(frac * n);
    const perm = rng.permutation(n);
    for (let j = 0; j < k; j++) isVal[perm[j]] = 1;
  }
  const train: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < n; i++) (isVal[i] ? val : train).push(i);
  return { train: new Subset(ds, train), val: new Subset(ds, val) };
}
