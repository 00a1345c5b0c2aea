// RMSprop, in two flavours.
//
// PyTorch's (torch.optim.RMSprop, step for step):
//   g += weightDecay * p
//   v = alpha * v + (1 - alpha) * g^2                      (v starts at zeros)
//   centered: a = alpha * a + (1 - alpha) * g;  denom = sqrt(v - a^2) + eps,  else denom = sqrt(v) + eps
//   momentum > 0: buf = momentum * buf + g / denom;  p -= lr * buf,   else p -= lr * g / denom
//
// TensorFlow's (`tfStyle: true`, the optimizer MnasNet and EfficientNet were trained with; the same
// update as timm's RMSpropTF with its defaults):
//   v starts at ones and moves as v += (1 - alpha) * (g^2 - v)   (a likewise: a += (1 - alpha) * (g - a))
//   denom = sqrt(v + eps) or sqrt(v - a^2 + eps)           (eps inside the square root)
//   momentum > 0: buf = momentum * buf + lr * g / denom;  p -= buf   (the lr is accumulated in the buffer)
//   else p -= lr * g / denom
// Because eps sits inside the root, TF's eps values (1e-3 for EfficientNet) are much larger than torch's.
import type { Tensor } from '../tensor/tensor.js';
import { zerosLike, onesLike } from '../tensor/creation.js';
import { check } from '../errors.js';
import { Optimizer, checkOptionKeys, checkRange, type Hyperparameters, type ParamGroup, type ParamsInput } from './optimizer.js';
import { definedOnly } from './sgd.js';

export interface RMSpropHyperparameters extends Hyperparameters {
  /** Smoothing constant of the squared-gradient average (TF calls it rho or decay). */
  alpha: number;
  eps: number;
  /** L2 penalty added to the gradient. */
  weightDecay: number;
  momentum: number;
  /** Normalize by the estimated variance of the gradient instead of its second moment. */
  centered: boolean;
  /** TensorFlow's RMSprop: eps inside the square root, averages starting at ones, lr inside the momentum buffer. */
  tfStyle: boolean;
}

export type RMSpropOptions = Partial<RMSpropHyperparameters>;

const RMSPROP_KEYS = ['lr', 'alpha', 'eps', 'weightDecay', 'momentum', 'centered', 'tfStyle'] as const;

export class RMSprop extends Optimizer<RMSpropHyperparameters> {
  /**
   * `new RMSprop(params, {lr: 0.016, alpha: 0.9, eps: 1e-3, momentum: 0.9, tfStyle: true})`.
   * Defaults are torch's: lr 1e-2, alpha 0.99, eps 1e-8, no momentum, not centered, torch style.
   */
  constructor(params: ParamsInput<RMSpropHyperparameters>, opts: RMSpropOptions = {}) {
    checkOptionKeys('RMSprop', opts ?? {}, RMSPROP_KEYS);
    super('RMSprop', params, { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, tfStyle: false, ...definedOnly(opts ?? {}) });
  }

  protected validate(h: RMSpropHyperparameters): void {
    checkRange('RMSprop', 'lr', h.lr, 0);
    checkRange('RMSprop', 'alpha', h.alpha, 0);
    checkRange('RMSprop', 'eps', h.eps, 0);
    checkRange('RMSprop', 'weightDecay', h.weightDecay, 0);
    checkRange('RMSprop', 'momentum', h.momentum, 0);
    check(typeof h.centered === 'boolean', 'RMSprop', `expected centered to be a boolean, got ${String(h.centered)}`);
    check(typeof h.tfStyle === 'boolean', 'RMSprop', `expected tfStyle to be a boolean, got ${String(h.tfStyle)}`);
  }

  protected update(p: Tensor, grad: Tensor, g: ParamGroup<RMSpropHyperparameters>): void {
    const s = this.stateOf(p);
    const tf = g.tfStyle;
    const v = s.buffers.square_avg ?? this.setBuffer(s, 'square_avg', tf ? onesLike(p) : zerosLike(p));
    s.step += 1;
    if (g.weightDecay !== 0) grad = grad.add(p, { alpha: g.weightDecay });
    const rate = 1 - g.alpha;
    let denom: Tensor;
    if (tf) {
      v.add_(grad.square().sub_(v), { alpha: rate });
      if (g.centered) {
        const a = s.buffers.grad_avg ?? this.setBuffer(s, 'grad_avg', zerosLike(p));
        a.add_(grad.sub(a), { alpha: rate });
        denom = v.clone().addcmul_(a, a, { value: -1 }).add_(g.eps).sqrt_();
      } else {
        denom = v.add(g.eps).sqrt_();
      }
    } else {
      v.mul_(g.alpha).addcmul_(grad, grad, { value: rate });
      if (g.centered) {
        const a = s.buffers.grad_avg ?? this.setBuffer(s, 'grad_avg', zerosLike(p));
        a.mul_(g.alpha).add_(grad, { alpha: rate });
        denom = v.clone().addcmul_(a, a, { value: -1 }).sqrt_();
      } else {
        denom = v.sqrt();
      }
      denom.add_(g.eps);
    }
    if (g.momentum > 0) {
      const buf = s.buffers.momentum_buffer ?? this.setBuffer(s, 'momentum_buffer', zerosLike(p));
      if (tf) {
        buf.mul_(g.momentum).addcdiv_(grad, denom, { value: g.lr });
        p.sub_(buf);
      } else {
        buf.mul_(g.momentum).addcdiv_(grad, denom);
        p.add_(buf, { alpha: -g.lr });
      }
    } else {
      p.addcdiv_(grad, denom, { value: -g.lr });
    }
  }
}
