// An exponential moving average of a model's weights (timm's ModelEmaV2): after every optimizer step,
// ema = decay * ema + (1 - decay) * weights, for the parameters and the floating-point buffers (batch-norm
// statistics); integer buffers (num_batches_tracked) are copied. timm trains its best models this way
// (EfficientNet, NFNet: decay 0.9999); the average is evaluated and checkpointed beside the raw weights.
import { check } from '../errors.js';
import { noGrad } from '../tensor/creation.js';
import { isFloatingDType, type Tensor } from '../tensor/tensor.js';
import { buildModel } from '../models/builder.js';
import type { ClassifierModel } from '../models/base.js';

export class ModelEma {
  /** The averaged model (eval mode, no gradients): evaluate or save it like any model. */
  readonly module: ClassifierModel;
  readonly decay: number;
  private readonly pairs: [average: Tensor, live: Tensor][];

  /** Starts the average at `model`'s current weights; `model` must come from buildModel/createModel. */
  constructor(model: ClassifierModel, opts: { decay: number }) {
    const { decay } = opts;
    check(typeof decay === 'number' && decay > 0 && decay < 1, 'ModelEma', `decay must be a number in (0, 1), got ${decay}`);
    check(model.meta !== undefined, 'ModelEma', 'the model has no registry entry (build it with buildModel or createModel)');
    this.decay = decay;
    this.module = buildModel(model.meta!.id, { ...model._buildOptions, numClasses: model.numClasses });
    const live = [...model.parameters(), ...model.buffers()];
    const average = [...this.module.parameters(), ...this.module.buffers()];
    check(live.length === average.length, 'ModelEma', 'the model does not rebuild to the same structure from its id and options');
    this.pairs = average.map((t, i) => [t, live[i]]);
    for (const p of this.module.parameters()) p.requiresGrad = false;
    noGrad(() => {
      for (const [a, m] of this.pairs) a.copy_(m);
    });
    this.module.eval();
  }

  /** Moves the average one step towards `model`'s weights (call after each optimizer step). */
  update(): void {
    const keep = this.decay;
    noGrad(() => {
      for (const [a, m] of this.pairs) {
        if (isFloatingDType(a.dtype)) a.mul_(keep).add_(m, { alpha: 1 - keep });
        else a.copy_(m);
      }
    });
  }

  dispose(): void {
    this.module.dispose();
  }
}
