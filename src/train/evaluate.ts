// Evaluation: top-1, top-5, per-class accuracy and the confusion matrix, with center-crop (the batch as
// it comes) or the papers' ten-crop (four corners and the center, and their mirror images, softmax averaged).
import type { Tensor } from '../tensor/tensor.js';
import { inferenceMode, stack, tensor } from '../tensor/creation.js';
import { allReduce } from '../distributed/process_group.js';
import { tidy } from '../tensor/scope.js';
import { check } from '../errors.js';
import type { Module } from '../nn/module.js';

export interface Batch {
  images: Tensor;
  labels: Tensor;
}
export interface BatchSource {
  length: number;
  [Symbol.asyncIterator](): AsyncIterator<Batch>;
}

export interface EvalResult {
  top1: number;
  top5: number;
  loss: number;
  count: number;
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  seconds: number;
}

export interface EvaluateOptions {
  numClasses: number;
  /** Ten-crop evaluation with crops of this size (AlexNet/VGG protocol). */
  tenCrop?: number;
  onBatch?: (done: number, total: number) => void;
  /**
   * Distributed evaluation: data is this rank's shard of the test set, and the result is the whole
   * set's (losses, hits and the confusion matrix summed over the process group's ranks).
   */
  reduceOverRanks?: boolean;
}

/** The ten crops of a batch [N, C, H, W]: [10, N, C, s, s]. */
export function tenCrops(x: Tensor, size: number): Tensor {
  return tidy(() => {
    const [, , h, w] = x.shape;
    check(h >= size && w >= size, 'tenCrop', `crop ${size} is larger than the images (${h}x${w})`, 'E_SHAPE');
    const at = (top: number, left: number) => x.narrow(2, top, size).narrow(3, left, size);
    const c = [at(0, 0), at(0, w - size), at(h - size, 0), at(h - size, w - size), at(Math.round((h - size) / 2), Math.round((w - size) / 2))];
    return stack([...c, ...c.map((t) => t.flip(3))]);
  });
}

export async function evaluate(model: Module, data: BatchSource, opts: EvaluateOptions): Promise<EvalResult> {
  const start = performance.now();
  const k = opts.numClasses;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let top5 = 0,
    count = 0,
    lossSum = 0,
    done = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const { images, labels } of data) {
      const r = inferenceMode(() =>
        tidy(() => {
          let logProbs: Tensor;
          if (opts.tenCrop) {
            const crops = tenCrops(images, opts.tenCrop);
            let probs = model.forward(crops.select(0, 0)).softmax(1);
            for (let i = 1; i < 10; i++) probs = probs.add(model.forward(crops.select(0, i)).softmax(1));
            logProbs = probs.div(10).log();
          } else {
            logProbs = model.forward(images).logSoftmax(1);
          }
          const loss = logProbs.neg().gather(1, labels.unsqueeze(1)).sum().item();
          const kk = Math.min(5, k);
          const top = logProbs.topk(kk, { dim: 1 }).indices;
          return { loss, pred: top.data() as BigInt64Array, kk, y: labels.data() as BigInt64Array };
        }),
      );
      images.dispose();
      labels.dispose();
      for (let i = 0; i < r.y.length; i++) {
        const y = Number(r.y[i]);
        confusion[y][Number(r.pred[i * r.kk])]++;
        for (let j = 0; j < r.kk; j++)
          if (Number(r.pred[i * r.kk + j]) === y) {
            top5++;
            break;
          }
      }
      count += r.y.length;
      lossSum += r.loss;
      opts.onBatch?.(++done, data.length);
    }
  } finally {
    model.train(wasTraining);
  }
  if (opts.reduceOverRanks) {
    const totals = allReduce(tensor([lossSum, top5, count, ...confusion.flat()], undefined, { dtype: 'float64' }));
    const v = totals.toArray() as number[];
    totals.dispose();
    [lossSum, top5, count] = v;
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) confusion[i][j] = v[3 + i * k + j];
  }
  const correct = confusion.reduce((s, row, i) => s + row[i], 0);
  const perClass = confusion.map((row, i) => {
    const n = row.reduce((a, b) => a + b, 0);
    return n ? row[i] / n : 0;
  });
  return {
    top1: count ? correct / count : 0,
    top5: count ? top5 / count : 0,
    loss: count ? lossSum / count : 0,
    count,
    perClass,
    confusion,
    seconds: (performance.now() - start) / 1000,
  };
}
