// The data of a training run, from the CLI's names: Fashion-MNIST (Debian's files, or a folder holding
// the IDX files) or an image folder (one sub-folder per class; `train/` and `val/` sub-folders are used
// as they are, otherwise a seeded stratified split holds out --val-split).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { runDataConfig, DEFAULT_CROP_PCT } from '../vision/data_config.js';
import type { EvalTransform } from '../vision/preprocess.js';
import { ConvzooError } from '../errors.js';
import {
  FashionMNIST,
  FASHION_MNIST_DIR,
  ImageFolder,
  DataLoader,
  trainValSplit,
  Compose,
  Resize,
  CenterCrop,
  RandomCrop,
  RandomResizedCrop,
  RandomHorizontalFlip,
  Normalize,
  Lighting,
  ScaleJitter,
  Rng,
  mixSeed,
  type Dataset,
  type Transform,
} from '../data/index.js';
import { loadSharp } from '../data/folder.js';

/**
 * none: resize and center crop. crop-flip: random crop (after resize) and flip. imagenet: torchvision's
 * RandomResizedCrop and flip. alexnet: the 2012 paper's random 224 crops of 256 images, flips and PCA
 * lighting noise (alphastd 0.1). vgg: the VGG paper's scale jittering (shorter side S in [256, 512],
 * random 224 crop) and flips.
 */
export type Augment = 'none' | 'crop-flip' | 'imagenet' | 'alexnet' | 'vgg';
export const AUGMENTS: Augment[] = ['none', 'crop-flip', 'imagenet', 'alexnet', 'vgg'];

export interface DataOptions {
  /** 'fashion-mnist' (default), a folder of Fashion-MNIST IDX files, or an image folder. */
  data?: string;
  batchSize?: number;
  /** Train on the first N training images only. */
  subset?: number;
  numWorkers?: number;
  augment?: Augment;
  /** Resize images to inputSize x inputSize (default: 28 for Fashion-MNIST, 224 for folders). */
  inputSize?: number;
  /**
   * The preprocessing of the pretrained weights the model starts from (see vision/data_config.ts):
   * image folders are normalised with their mean/std, and evaluated at their resize and crop unless
   * inputSize is given.
   */
  pretrained?: EvalTransform | null;
  /** Called with each problem that does not stop the run (an unreadable image is skipped, say). */
  onWarning?: (message: string) => void;
  /** Image folders without train/ and val/: the fraction held out for testing (default 0.2). */
  valSplit?: number;
  seed?: number;
  /**
   * Distributed training: this rank's share. batchSize stays the global batch; each rank loads
   * batchSize / worldSize images of each step's batch, and its share of the test set.
   */
  shard?: { rank: number; worldSize: number };
}

export interface RunData {
  train: DataLoader;
  test: DataLoader;
  classes: string[];
  channels: number;
  trainSize: number;
  testSize: number;
  close(): Promise<void>;
}

const isIdxFolder = (dir: string) => ['train-images-idx3-ubyte', 'train-images-idx3-ubyte.gz'].some((f) => existsSync(path.join(dir, f)));

function fashionTransforms(o: DataOptions): { train: Transform; test: Transform } {
  const cfg = runDataConfig({ channels: 1, inputSize: o.inputSize });
  const size = cfg.cropSize;
  const resize: Transform[] = size !== 28 ? [new Resize(size)] : [];
  const norm = new Normalize(cfg.mean, cfg.std);
  // Grayscale 28x28 images: every augmentation but 'none' is the CIFAR recipe (padded random crop, flip).
  const aug: Transform[] = (o.augment ?? 'crop-flip') === 'none' ? [] : [new RandomCrop(size, { padding: Math.round(size / 7) }), new RandomHorizontalFlip()];
  return { train: new Compose([...resize, ...aug, norm]), test: new Compose([...resize, norm]) };
}

function folderTransforms(o: DataOptions): { train: Transform; test: Transform } {
  const cfg = runDataConfig({ channels: 3, inputSize: o.inputSize, pretrained: o.pretrained });
  const size = cfg.cropSize;
  const norm = new Normalize(cfg.mean, cfg.std);
  const evalT = new Compose([new Resize(cfg.resizeSize), new CenterCrop(size), norm]);
  const resized = Math.round(size / DEFAULT_CROP_PCT);
  const trainBy: Record<Augment, Transform> = {
    none: evalT,
    'crop-flip': new Compose([new Resize(resized), new RandomCrop(size), new RandomHorizontalFlip(), norm]),
    imagenet: new Compose([new RandomResizedCrop(size), new RandomHorizontalFlip(), norm]),
    alexnet: new Compose([new Resize(resized), new RandomCrop(size), new RandomHorizontalFlip(), new Lighting(0.1), norm]),
    vgg: new Compose([new ScaleJitter({ minSize: resized, maxSize: 2 * resized, cropSize: size }), new RandomHorizontalFlip(), norm]),
  };
  const train = trainBy[o.augment ?? 'imagenet'];
  return { train, test: evalT };
}

/** Folders up to this many images have every image's header checked before training; larger ones a sample. */
export const VERIFY_ALL_LIMIT = 20_000;
const VERIFY_SAMPLE = 1000;
/** More than this fraction of undecodable images stops the run before training. */
export const MAX_CORRUPT_FRACTION = 0.5;

const listNames = (names: readonly string[], max = 8) =>
  names
    .slice(0, max)
    .map((n) => `'${n}'`)
    .join(', ') + (names.length > max ? `, ... (${names.length} in all)` : '');

/**
 * Checks the images of a folder before any training: every header when the folder is small (the
 * unreadable ones are dropped and reported), a seeded sample otherwise. Fails when none can be
 * decoded, when more than half cannot, or when a class is left without images.
 */
async function checkFolderImages(ds: ImageFolder, dir: string, seed: number): Promise<void> {
  const n = ds.length;
  if (n <= VERIFY_ALL_LIMIT) {
    const bad = await ds.verify();
    if (ds.length === 0) {
      throw new ConvzooError(`--data ${dir}: none of the ${n} images in ${dir} could be decoded (the first: ${bad[0]?.message ?? '?'})`, 'E_DATA');
    }
    if (bad.length > MAX_CORRUPT_FRACTION * n) {
      throw new ConvzooError(
        `--data ${dir}: ${bad.length} of the ${n} images in ${dir} could not be decoded (the first: ${bad[0].message}); ` +
          'fix or remove them before training',
        'E_DATA',
      );
    }
    const counts = new Array<number>(ds.classes.length).fill(0);
    for (const t of ds.targets) counts[t]++;
    const empty = ds.classes.filter((_, i) => counts[i] === 0);
    if (empty.length) throw new ConvzooError(`--data ${dir}: no image of class ${listNames(empty)} could be decoded`, 'E_DATA');
    return;
  }
  const sharp = await loadSharp();
  const pick = new Rng(mixSeed(seed, 0x5eed)).permutation(n).subarray(0, VERIFY_SAMPLE);
  let bad = 0;
  let first = '';
  for (const i of pick) {
    try {
      const meta = await sharp(ds.files[i]).metadata();
      if (!meta.width || !meta.height) throw new Error('no image size in the header');
    } catch (e) {
      bad++;
      first ||= `${ds.files[i]}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  if (bad > MAX_CORRUPT_FRACTION * pick.length) {
    throw new ConvzooError(
      `--data ${dir}: ${bad === pick.length ? 'none' : `${pick.length - bad}`} of ${pick.length} images sampled from the ${n} in ${dir} could be decoded (the first failure: ${first})`,
      'E_DATA',
    );
  }
}

/** The first differences between two class lists, for messages. */
export function classDifference(a: readonly string[], b: readonly string[]): string {
  const diffs: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && diffs.length < 3; i++) {
    if (a[i] !== b[i]) diffs.push(`class ${i} is ${a[i] === undefined ? '(none)' : `'${a[i]}'`} vs ${b[i] === undefined ? '(none)' : `'${b[i]}'`}`);
  }
  return `${a.length} classes [${listNames(a)}] vs ${b.length} classes [${listNames(b)}]; ${diffs.join(', ')}`;
}

export async function makeData(o: DataOptions): Promise<RunData> {
  const name = o.data ?? 'fashion-mnist';
  const seed = o.seed ?? 0;
  let trainSet: Dataset, testSet: Dataset, channels: number, t: { train: Transform; test: Transform };
  if (name === 'fashion-mnist' || (existsSync(name) && statSync(name).isDirectory() && isIdxFolder(name))) {
    const root = name === 'fashion-mnist' ? FASHION_MNIST_DIR : name;
    trainSet = new FashionMNIST({ root, train: true });
    testSet = new FashionMNIST({ root, train: false });
    channels = 1;
    t = fashionTransforms(o);
  } else {
    if (!existsSync(name) || !statSync(name).isDirectory()) {
      throw new ConvzooError(
        `--data ${name}: not 'fashion-mnist' and not a folder (expected one sub-folder of images per class, or train/ and val/ folders of such)`,
        'E_DATA',
      );
    }
    const warn = o.onWarning ?? (() => {});
    if (existsSync(path.join(name, 'train')) && existsSync(path.join(name, 'val'))) {
      const tr = new ImageFolder(path.join(name, 'train'), { onWarning: warn });
      const va = new ImageFolder(path.join(name, 'val'), { onWarning: warn });
      if (tr.classes.join('\0') !== va.classes.join('\0')) {
        throw new ConvzooError(`--data ${name}: train/ and val/ have different classes: ${classDifference(tr.classes, va.classes)}`, 'E_DATA');
      }
      await checkFolderImages(tr, path.join(name, 'train'), seed);
      await checkFolderImages(va, path.join(name, 'val'), seed);
      trainSet = tr;
      testSet = va;
    } else {
      const all = new ImageFolder(name, { onWarning: warn });
      await checkFolderImages(all, name, seed);
      const valSplit = o.valSplit ?? 0.2;
      const split = trainValSplit(all, { valFraction: valSplit, seed });
      trainSet = split.train;
      testSet = split.val;
      if (testSet.length === 0 || trainSet.length === 0) {
        throw new ConvzooError(
          `--data ${name}: the ${testSet.length === 0 ? 'test' : 'training'} split is empty: --val-split ${valSplit} of ` +
            `${all.length} images in ${all.classes.length} classes (round(${valSplit} x each class's count) held out) leaves none; ` +
            `${testSet.length === 0 ? 'raise --val-split or add images' : 'lower --val-split or add images'}, or give train/ and val/ folders`,
          'E_DATA',
        );
      }
    }
    if (trainSet.length === 0) throw new ConvzooError(`--data ${name}: no images found (expected ${name}/<class>/<image>.jpg|png|webp)`, 'E_DATA');
    channels = 3;
    t = folderTransforms(o);
  }
  if (trainSet.classes.length < 2) {
    throw new ConvzooError(
      `--data ${name}: ${trainSet.classes.length === 1 ? `only one class ('${trainSet.classes[0]}')` : 'no classes'}; ` +
        'a classifier needs at least 2 (one sub-folder per class)',
      'E_DATA',
    );
  }
  if (testSet.length === 0) throw new ConvzooError(`--data ${name}: the test split is empty (no images to measure accuracy on)`, 'E_DATA');
  const batchSize = o.batchSize ?? 128;
  const numWorkers = o.numWorkers ?? 1;
  // Training drops a last partial batch (as timm does): a batch of one breaks batch norm.
  const trainCount = o.subset ? Math.min(o.subset, trainSet.length) : trainSet.length;
  if (trainCount < 2) {
    throw new ConvzooError(
      `--data ${name}: ${trainCount} training image${trainCount === 1 ? '' : 's'}${o.subset ? ` (--subset ${o.subset})` : ''}; training needs at least 2`,
      'E_DATA',
    );
  }
  const worldSize = o.shard?.worldSize ?? 1;
  if (batchSize % worldSize !== 0) {
    throw new ConvzooError(`--batch-size ${batchSize} (the global batch) must be a multiple of the ${worldSize} processes`, 'E_ARG');
  }
  const train = new DataLoader(trainSet, {
    batchSize: batchSize / worldSize,
    shard: o.shard,
    shuffle: true,
    seed,
    transform: t.train,
    numWorkers,
    subset: o.subset,
    dropLast: trainCount > batchSize,
  });
  const test = new DataLoader(testSet, {
    batchSize: Math.max(batchSize / worldSize, 256),
    shuffle: false,
    seed,
    transform: t.test,
    numWorkers,
    shard: o.shard ? { ...o.shard, pad: false } : undefined,
  });
  return {
    train,
    test,
    classes: [...trainSet.classes],
    channels,
    trainSize: trainCount,
    testSize: testSet.length,
    async close() {
      await train.close();
      await test.close();
    },
  };
}

/** The first `n` Fashion-MNIST test images, normalised, for showing predictions. */
export async function fashionMnistSamples(o: DataOptions, n: number): Promise<{ images: Float32Array; labels: number[]; shape: number[] }> {
  const root = !o.data || o.data === 'fashion-mnist' ? FASHION_MNIST_DIR : o.data;
  const ds = new FashionMNIST({ root, train: false });
  const t = fashionTransforms(o).test;
  const size = o.inputSize ?? 28;
  const images = new Float32Array(n * size * size);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = await ds.get(i);
    const img = t.apply(s.image, new Rng(0));
    images.set(img.data, i * size * size);
    labels.push(s.label);
  }
  return { images, labels, shape: [n, 1, size, size] };
}
