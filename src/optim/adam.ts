// Adam and AdamW (torch.optim.Adam / AdamW's single-tensor update, step for step). With t the step:
//   Adam:  g += weightDecay * p            AdamW: p *= 1 - lr * weightDecay   (decoupled decay)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;  (amsgrad: vmax = max(vmax, v))
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
import type { Tensor } from '../tensor/tensor.js';
import { zerosLike } from '../tensor/creation.js';
import { check } from '../errors.js';
import { Optimizer, checkOptionKeys, checkRange, type Hyperparameters, type ParamGroup, type ParamsInput } from './optimizer.js';
import { definedOnly } from './sgd.js';

export interface AdamHyperparameters extends Hyperparameters {
  /** Decay rates of the first and second moment estimates. */
  betas: [number, number];
  eps: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay, p *= 1 - lr * weightDecay. */
  weightDecay: number;
  amsgrad: boolean;
}

export type AdamOptions = Partial<AdamHyperparameters>;

const ADAM_KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'amsgrad'] as const;

/** @internal Adam's update, shared by Adam and AdamW. */
export abstract class AdamBase extends Optimizer<AdamHyperparameters> {
  /** AdamW decays weights directly instead of through the gradient. */
  private readonly decoupled: boolean;

  protected constructor(name: 'Adam' | 'AdamW', params: ParamsInput<AdamHyperparameters>, opts: AdamOptions, defaultWeightDecay: number) {
    checkOptionKeys(name, opts ?? {}, ADAM_KEYS);
    super(name, params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: defaultWeightDecay, amsgrad: false, ...definedOnly(opts ?? {}) });
    this.decoupled = name === 'AdamW';
  }
  protected validate(h: AdamHyperparameters): void {
    checkRange(this.name, 'lr', h.lr, 0);
    checkRange(this.name, 'eps', h.eps, 0);
    checkRange(this.name, 'weightDecay', h.weightDecay, 0);
    check(Array.isArray(h.betas) && h.betas.length === 2, this.name, `expected betas to be [beta1, beta2], got ${String(h.betas)}`);
    checkRange(this.name, 'betas[0]', h.betas[0], 0, 1);
    checkRange(this.name, 'betas[1]', h.betas[1], 0, 1);
    check(typeof h.amsgrad === 'boolean', this.name, `expected amsgrad to be a boolean, got ${String(h.amsgrad)}`);
  }

  protected update(p: Tensor, grad: Tensor, g: ParamGroup<AdamHyperparameters>): void {
    const [beta1, beta2] = g.betas;
    const s = this.stateOf(p);
    const m = s.buffers.exp_avg ?? this.setBuffer(s, 'exp_avg', zerosLike(p));
    const v = s.buffers.exp_avg_sq ?? this.setBuffer(s, 'exp_avg_sq', zerosLike(p));
    s.step += 1;
    if (this.decoupled) {
      if (g.weightDecay !== 0) p.mul_(1 - g.lr * g.weightDecay);
    } else if (g.weightDecay !== 0) {
      grad = grad.add(p, { alpha: g.weightDecay });
    }
    m.mul_(beta1).add_(grad, { alpha: 1 - beta1 });
    v.mul_(beta2).addcmul_(grad, grad, { value: 1 - beta2 });
    const stepSize = g.lr / (1 - beta1 ** s.step);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** s.step);
    let second = v;
    if (g.amsgrad) {
      second = s.buffers.max_exp_avg_sq ?? this.setBuffer(s, 'max_exp_avg_sq', zerosLike(p));
      second.maximum_(v);
    }
    const denom = second.sqrt().div_(bc2Sqrt).add_(g.eps);
    p.addcdiv_(m, denom, { value: -stepSize });
  }
}

/** Adam (Kingma & Ba). Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0 (an L2 penalty). */
export class Adam extends AdamBase {
  /** `new Adam(model.parameters(), {lr: 1e-3})`, or parameter groups. */
  constructor(params: ParamsInput<AdamHyperparameters>, opts: AdamOptions = {}) {
    super('Adam', params, opts, 0);
  }
}

/** Adam with decoupled weight decay (Loshchilov & Hutter). Same defaults as Adam but weightDecay 1e-2. */
export class AdamW extends AdamBase {
  /** `new AdamW(model.parameters(), {lr: 1e-3, weightDecay: 0.05})`, or parameter groups. */
  constructor(params: ParamsInput<AdamHyperparameters>, opts: AdamOptions = {}) {
    super('AdamW', params, opts, 1e-2);
  }
}
