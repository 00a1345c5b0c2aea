// One batch's work, the same on the main thread and in a worker: load the samples, apply the
// transform with each sample's own seeded Rng, and collate into one Float32Array (N x C x H x W) and
// one BigInt64Array of labels. Samples that cannot be decoded (E_IMAGE) are left out and listed.
import { ConvzooError } from '../errors.js';
import { type Dataset, type DatasetSpec, ArrayImageDataset, Subset } from './dataset.js';
import { ImageFolder } from './folder.js';
import type { Image } from './image.js';
import { Rng, mixSeed } from './rng.js';
import type { Transform } from './transforms.js';

export interface BatchTask {
  indices: number[];
  seed: number;
  epoch: number;
}

export interface BatchResult {
  images: Float32Array;
  labels: BigInt64Array;
  /** [C, H, W] of each image ([0, 0, 0] when every sample was skipped). */
  shape: [number, number, number];
  /** The dataset indices that made it into the batch, in order. */
  indices: number[];
  skipped: { index: number; message: string }[];
}

/** The Rng for dataset sample `index` in `epoch`: a pure function of the three, whatever thread asks. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(mixSeed(seed, epoch, index));
}

export async function loadBatch(ds: Dataset, transform: Transform | undefined, task: BatchTask): Promise<BatchResult> {
  // Start every load at once (async datasets decode in parallel), then transform in order.
  const loads = task.indices.map(async (i) => {
    try {
      return await ds.get(i);
    } catch (e) {
      if (e instanceof ConvzooError && e.code === 'E_IMAGE') return e;
      throw e;
    }
  });
  for (const p of loads) p.catch(() => {}); // a failure is rethrown below when its turn comes
  const images: Image[] = [];
  const labels: number[] = [];
  const kept: number[] = [];
  const skipped: { index: number; message: string }[] = [];
  for (let k = 0; k < loads.length; k++) {
    const index = task.indices[k];
    const sample = await loads[k];
    if (sample instanceof ConvzooError) {
      skipped.push({ index, message: sample.message });
      continue;
    }
    const img = transform ? transform.apply(sample.image, sampleRng(task.seed, task.epoch, index)) : sample.image;
    if (images.length) {
      const first = images[0];
      if (img.channels !== first.channels || img.height !== first.height || img.width !== first.width) {
        throw new ConvzooError(
          `DataLoader: sample ${index} is ${img.channels}x${img.height}x${img.width} but sample ${kept[0]} is ` +
            `${first.channels}x${first.height}x${first.width}; add a Resize/CenterCrop (or RandomResizedCrop) transform so that every sample has one size`,
          'E_SHAPE',
          'DataLoader',
        );
      }
    }
    images.push(img);
    labels.push(sample.label);
    kept.push(index);
  }
  const shape: [number, number, number] = images.length ? [images[0].channels, images[0].height, images[0].width] : [0, 0, 0];
  const per = shape[0] * shape[1] * shape[2];
  const out = new Float32Array(per * images.length);
  images.forEach((img, k) => out.set(img.data, k * per));
  return { images: out, labels: BigInt64Array.from(labels, (l) => BigInt(l)), shape, indices: kept, skipped };
}

/** Rebuilds a dataset from `workerSpec()` data. */
export function datasetFromSpec(spec: DatasetSpec): Dataset {
  switch (spec.kind) {
    case 'uint8':
      return new ArrayImageDataset(spec.images, spec.labels, spec.shape, spec.classes);
    case 'folder':
      return ImageFolder.fromList(spec.files, spec.targets, spec.classes, spec.mode);
    case 'subset':
      return new Subset(datasetFromSpec(spec.base), spec.indices);
    default:
      throw new ConvzooError(`datasetFromSpec: unknown dataset kind '${(spec as { kind: string }).kind}'`, 'E_ARG', 'datasetFromSpec');
  }
}
