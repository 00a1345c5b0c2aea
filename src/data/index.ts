// The data pipeline: datasets (Fashion-MNIST, ImageFolder, in-memory arrays, subsets and splits),
// seeded transforms on CHW Float32Array images, and the DataLoader with worker threads.
export { type Image, makeImage, fromUint8, crop, pad, hflip, vflip, resize, shorterSideSize, type PaddingMode } from './image.js';
export { Rng, mixSeed } from './rng.js';
export {
  type Transform,
  type TransformSpec,
  Compose,
  Resize,
  CenterCrop,
  centerCrop,
  Pad,
  type PadOptions,
  RandomCrop,
  type RandomCropOptions,
  RandomResizedCrop,
  type RandomResizedCropOptions,
  RandomHorizontalFlip,
  RandomVerticalFlip,
  Normalize,
  Lighting,
  ScaleJitter,
  Lambda,
  transformFromSpec,
  IMAGENET_MEAN,
  IMAGENET_STD,
  IMAGENET_PCA,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  fashionMnistTrain,
  fashionMnistEval,
  imagenetTrain,
  imagenetEval,
} from './transforms.js';
export { type Dataset, type DatasetSpec, type Sample, ArrayImageDataset, Subset, trainValSplit, type SplitOptions } from './dataset.js';
export { parseIdx, loadIdxDataset, type IdxArray, type IdxDatasetOptions, FashionMNIST, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR } from './idx.js';
export { ImageFolder, type ImageFolderOptions, type SkippedImage, decodeImage, IMAGE_EXTENSIONS } from './folder.js';
export { sampleRng } from './batch.js';
export { DataLoader, type DataLoaderOptions, type Batch } from './loader.js';
