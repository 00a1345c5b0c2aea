// One training step: forward, loss (with auxiliary classifiers where the model has them), backward,
// optimizer step. The trainer, the ModelWorker and the benches all call this, so they train alike.
import { tidy } from '../tensor/scope.js';
import { autocast } from '../tensor/creation.js';
import { isHalfDType, type Tensor } from '../tensor/tensor.js';
import * as F from '../nn/functional.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { DistributedDataParallel } from '../distributed/ddp.js';
import { allReduce } from '../distributed/process_group.js';
import { tensor } from '../tensor/creation.js';

export interface TrainStepOptions {
  labelSmoothing?: number;
  /** Loss weight of auxiliary classifiers (GoogLeNet: 0.3, the paper's). */
  auxWeight?: number;
  /**
   * 'bfloat16': the forward under autocast (convolutions and matrix products in bf16, float32 master
   * weights and batch-norm statistics) on channels-last images; the loss is computed in float32.
   */
  precision?: 'float32' | 'bfloat16';
  /**
   * Distributed training: the model's DistributedDataParallel. Gradients are averaged over the ranks
   * during backward, and the result's loss and counts are the whole global batch's (every rank gets the same).
   */
  ddp?: DistributedDataParallel;
}

export interface TrainStepResult {
  /** The batch's mean loss; not finite means the step was skipped (no backward, no update). */
  loss: number;
  /** Correct top-1 predictions in the batch. */
  correct: number;
  /** Images in the batch (with ddp: in the global batch, every rank's). */
  count: number;
}

/** Models with auxiliary classifiers expose their logits through this call (GoogLeNet). */
interface AuxModel {
  forwardWithAux(x: Tensor): { logits: Tensor; aux: Tensor[] };
}
const hasAux = (m: unknown): m is AuxModel => typeof (m as AuxModel).forwardWithAux === 'function';

/**
 * Runs one step on a batch in train mode (the caller sets model.train()). The batch's tensors stay the
 * caller's; every intermediate is freed. A non-finite loss is returned without updating anything, so
 * the caller can stop with a message that names the step.
 */
export function trainStep(model: Module, optimizer: Optimizer<any>, batch: { images: Tensor; labels: Tensor }, opts: TrainStepOptions = {}): TrainStepResult {
  const labelSmoothing = opts.labelSmoothing ?? 0;
  const bf16 = opts.precision === 'bfloat16';
  // Half-precision logits (autocast) are lifted to float32 for the loss; float64 stays float64.
  const lossOf = (out: Tensor) => F.crossEntropy(isHalfDType(out.dtype) ? out.to('float32') : out, batch.labels, { labelSmoothing });
  return tidy(() => {
    const images = bf16 && batch.images.ndim === 4 ? batch.images.contiguous('channels_last') : batch.images;
    const precisionScope = <T>(fn: () => T): T => (bf16 ? autocast(fn, { dtype: 'bfloat16' }) : fn());
    const forward = <T>(fn: () => T): T => (opts.ddp ? opts.ddp.run(() => precisionScope(fn)) : precisionScope(fn));
    let logits: Tensor, loss: Tensor;
    if (hasAux(model)) {
      const o = forward(() => model.forwardWithAux(images));
      logits = o.logits;
      loss = lossOf(logits);
      for (const a of o.aux) loss = loss.add(lossOf(a).mul(opts.auxWeight ?? 0.3));
    } else {
      logits = forward(() => (model as unknown as { forward(x: Tensor): Tensor }).forward(images));
      loss = lossOf(logits);
    }
    const n = batch.labels.shape[0];
    let value = loss.item();
    let correct = logits.argmax(1).eq(batch.labels).sum().item();
    let count = n;
    if (opts.ddp) {
      // The global batch's numbers, and one decision for all ranks: a non-finite loss anywhere skips the step everywhere.
      const totals = allReduce(tensor([Number.isFinite(value) ? value * n : 0, correct, n, Number.isFinite(value) ? 0 : 1], undefined, { dtype: 'float64' }));
      const [lossSum, correctSum, countSum, nonFinite] = totals.toArray() as number[];
      if (nonFinite > 0) return { loss: Number.isFinite(value) ? Number.NaN : value, correct: 0, count: countSum };
      value = lossSum / countSum;
      correct = correctSum;
      count = countSum;
    } else if (!Number.isFinite(value)) return { loss: value, correct: 0, count };
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    return { loss: value, correct, count };
  });
}
