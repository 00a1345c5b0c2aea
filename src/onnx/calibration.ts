// Calibration images for int8 export: the first N training images of a dataset, preprocessed by the same
// pipeline `convzoo train` and `eval` use (so a checkpoint is calibrated on what it was trained on).
import { ConvzooError, check, checkInt } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ClassifierModel } from '../models/base.js';
import { makeData } from '../train/datasets.js';
import { evalTransformFor } from '../vision/preprocess.js';

export interface CalibrationDataOptions {
  /** 'fashion-mnist', a folder of Fashion-MNIST IDX files, or an image folder (one sub-folder per class). */
  data: string;
  /** Images to calibrate on (default 512). */
  images?: number;
  /** Images per batch (default 32). */
  batchSize?: number;
  /** Square input size the images are resized to: the exported model's. */
  inputSize: number;
  /** Input channels of the model (1 for a Fashion-MNIST run, 3 for ImageNet weights). */
  channels: number;
  onWarning?: (message: string) => void;
}

/** Batches of [N, C, H, W] images; each is disposed when the next one is asked for. */
export async function* calibrationBatches(model: ClassifierModel, o: CalibrationDataOptions): AsyncGenerator<Tensor> {
  const fn = 'calibration';
  check(typeof o.data === 'string' && o.data.length > 0, fn, 'expected data to be a dataset name or folder');
  const images = o.images ?? 512;
  checkInt(images, fn, 'images', 1);
  const batchSize = Math.min(o.batchSize ?? 32, images);
  checkInt(batchSize, fn, 'batchSize', 1);
  const data = await makeData({
    data: o.data,
    batchSize,
    inputSize: o.inputSize,
    augment: 'none',
    numWorkers: 1,
    pretrained: evalTransformFor(model, o.channels),
    onWarning: o.onWarning,
  });
  let seen = 0;
  for await (const batch of data.train) {
    batch.labels.dispose();
    let x = batch.images;
    if (x.shape[1] !== o.channels) {
      x.dispose();
      throw new ConvzooError(`calibration: ${o.data} has ${x.shape[1]}-channel images but the model takes ${o.channels} channels`, 'E_DATA');
    }
    if (seen + x.shape[0] > images) {
      const cut = x.narrow(0, 0, images - seen).contiguous();
      x.dispose();
      x = cut;
    }
    seen += x.shape[0];
    try {
      yield x;
    } finally {
      x.dispose();
    }
    if (seen >= images) break;
  }
}
