// The optimizer and learning-rate schedule of a training run, from the CLI's names.
import { ConvzooError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import { SGD } from '../optim/sgd.js';
import { Adam, AdamW } from '../optim/adam.js';
import { RMSprop } from '../optim/rmsprop.js';
import { CosineAnnealingLR, LinearLR, StepLR, SequentialLR, ReduceLROnPlateau, type Scheduler, type LRScheduler } from '../optim/lr_scheduler.js';

export type OptimizerName = 'sgd' | 'adam' | 'adamw' | 'rmsprop';
export type ScheduleName = 'cosine' | 'step' | 'plateau' | 'constant';
export const OPTIMIZERS: OptimizerName[] = ['sgd', 'adam', 'adamw', 'rmsprop'];
export const SCHEDULES: ScheduleName[] = ['cosine', 'step', 'plateau', 'constant'];

/**
 * Weight decay applies to conv and linear weights only, not to biases and batch-norm parameters
 * (1-d tensors), the common practice since Goyal et al. 2017.
 */
export function makeOptimizer(name: OptimizerName, model: Module, o: { lr: number; momentum: number; weightDecay: number }): Optimizer<any> {
  const decay = model.parameters().filter((p) => p.ndim > 1);
  const noDecay = model.parameters().filter((p) => p.ndim <= 1);
  const groups = [
    { params: decay, weightDecay: o.weightDecay },
    { params: noDecay, weightDecay: 0 },
  ];
  switch (name) {
    case 'sgd':
      return new SGD(groups, { lr: o.lr, momentum: o.momentum, nesterov: o.momentum > 0 });
    // Adam's weight decay is L2 added to the gradient (torch.optim.Adam); AdamW's is decoupled.
    case 'adam':
      return new Adam(groups, { lr: o.lr });
    case 'adamw':
      return new AdamW(groups, { lr: o.lr });
    // The TensorFlow-style RMSprop of MnasNet and EfficientNet (decay 0.9, eps 1e-3 inside the sqrt).
    case 'rmsprop':
      return new RMSprop(groups, { lr: o.lr, alpha: 0.9, eps: 1e-3, momentum: o.momentum, tfStyle: true } as ConstructorParameters<typeof RMSprop>[1]);
    default:
      throw new ConvzooError(`unknown optimizer '${String(name)}' (expected ${OPTIMIZERS.join(', ')})`, 'E_ARG');
  }
}

/** What the trainer calls: after each optimizer step, after each epoch (with test accuracy). */
export interface EpochScheduler {
  afterStep(): void;
  afterEpoch(accuracy: number): void;
  state(): unknown;
  loadState(s: unknown): void;
}

/**
 * cosine: per-step cosine decay to 0. step: divide by 10 at 1/3 and 2/3 of the run (per step, so
 * warm-up composes). plateau: divide by 10 when test accuracy stops improving for 2 epochs (AlexNet's
 * recipe). Each may start with a linear warm-up from lr/10 over `warmupEpochs`.
 */
export function makeScheduler(
  name: ScheduleName,
  optimizer: Optimizer<any>,
  o: { epochs: number; stepsPerEpoch: number; warmupEpochs: number },
): EpochScheduler {
  const total = o.epochs * o.stepsPerEpoch;
  const warm = Math.min(total, Math.round(o.warmupEpochs * o.stepsPerEpoch));
  const withWarmup = (main: LRScheduler): Scheduler =>
    warm > 0 ? new SequentialLR(optimizer, [new LinearLR(optimizer, { startFactor: 0.1, totalIters: warm }), main], [warm]) : main;
  let perStep: Scheduler | null = null;
  let plateau: ReduceLROnPlateau | null = null;
  let warmup: LinearLR | null = null;
  let steps = 0;
  switch (name) {
    case 'cosine':
      perStep = withWarmup(new CosineAnnealingLR(optimizer, Math.max(1, total - warm)));
      break;
    case 'step':
      perStep = withWarmup(new StepLR(optimizer, Math.max(1, Math.round(total / 3)), { gamma: 0.1 }));
      break;
    case 'constant':
      if (warm > 0) warmup = new LinearLR(optimizer, { startFactor: 0.1, totalIters: warm });
      break;
    case 'plateau':
      if (warm > 0) warmup = new LinearLR(optimizer, { startFactor: 0.1, totalIters: warm });
      plateau = new ReduceLROnPlateau(optimizer, { mode: 'max', factor: 0.1, patience: 2 });
      break;
    default:
      throw new ConvzooError(`unknown schedule '${String(name)}' (expected ${SCHEDULES.join(', ')})`, 'E_ARG');
  }
  return {
    afterStep() {
      steps++;
      if (perStep) perStep.step();
      else if (warmup && steps <= warm) warmup.step();
    },
    afterEpoch(accuracy) {
      if (plateau && steps >= warm) plateau.step(accuracy);
    },
    state() {
      return { steps, perStep: perStep?.stateDict(), plateau: plateau?.stateDict(), warmup: warmup?.stateDict() };
    },
    loadState(s) {
      if (!s) return;
      const st = s as { steps: number; perStep?: Record<string, unknown>; plateau?: Record<string, unknown>; warmup?: Record<string, unknown> };
      steps = st.steps;
      if (perStep && st.perStep) perStep.loadStateDict(st.perStep);
      if (plateau && st.plateau) plateau.loadStateDict(st.plateau);
      if (warmup && st.warmup) warmup.loadStateDict(st.warmup);
    },
  };
}
