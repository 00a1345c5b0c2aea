// Optimizers and LR schedulers: cz.optim.SGD, Adam, AdamW, RMSprop, adaptive gradient clipping (AGC) and torch's schedulers
// (also under cz.optim.lrScheduler, mirroring torch.optim.lr_scheduler).
export {
  Optimizer,
  type Hyperparameters,
  type ParamGroup,
  type ParamGroupInput,
  type ParamsInput,
  type ParamGroupState,
  type OptimizerStateDict,
} from './optimizer.js';
export { SGD, type SGDHyperparameters, type SGDOptions } from './sgd.js';
export { Adam, AdamW, type AdamHyperparameters, type AdamOptions } from './adam.js';
export { RMSprop, type RMSpropHyperparameters, type RMSpropOptions } from './rmsprop.js';
export { AGC, adaptiveClipGrad_, unitwiseNorm, AGC_DEFAULTS, type AGCOptions } from './agc.js';
export * from './lr_scheduler.js';
export * as lrScheduler from './lr_scheduler.js';
