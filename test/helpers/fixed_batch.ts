// Training steps on one fixed Fashion-MNIST-sized batch (1 channel, 28x28, labels i % 10): what each
// zoo family's "the smallest model learns" test runs. The caller seeds and builds the model.
import * as cz from '../../src/index.js';

export interface FixedBatchOptions {
  batch: number;
  steps: number;
  /** The optimizer (default: SGD, lr 0.05, momentum 0.9). */
  optimizer?: (params: cz.nn.Parameter[]) => cz.optim.Optimizer<any>;
}

/** Trains `model` (in train mode) on one random batch and returns the loss of every step; frees what it made. */
export function lossesOnFixedBatch(model: cz.ClassifierModel, o: FixedBatchOptions): number[] {
  const images = cz.randn([o.batch, 1, 28, 28]);
  const labels = cz.tensor(
    Array.from({ length: o.batch }, (_, i) => i % 10),
    [o.batch],
    { dtype: 'int64' },
  );
  const opt = o.optimizer ? o.optimizer(model.parameters()) : new cz.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  try {
    model.train();
    return Array.from({ length: o.steps }, () => cz.trainStep(model, opt, { images, labels }).loss);
  } finally {
    images.dispose();
    labels.dispose();
    opt.zeroGrad();
    opt.dispose();
  }
}
