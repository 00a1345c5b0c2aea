// Stochastic gradient descent with momentum (torch.optim.SGD's update, step for step):
//   d = g + weightDecay * p
//   buf = d (first step), else momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
import type { Tensor } from '../tensor/tensor.js';
import { check } from '../errors.js';
import { Optimizer, checkOptionKeys, checkRange, type Hyperparameters, type ParamGroup, type ParamsInput } from './optimizer.js';

export interface SGDHyperparameters extends Hyperparameters {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  /** L2 penalty added to the gradient. */
  weightDecay: number;
}

/** SGD's options: `lr` is required (as in torch), the rest default to plain SGD. */
export type SGDOptions = Pick<SGDHyperparameters, 'lr'> & Partial<SGDHyperparameters>;

const SGD_KEYS = ['lr', 'momentum', 'dampening', 'nesterov', 'weightDecay'] as const;

export class SGD extends Optimizer<SGDHyperparameters> {
  /** `new SGD(model.parameters(), {lr: 0.1, momentum: 0.9, weightDecay: 1e-4})`, or parameter groups. */
  constructor(params: ParamsInput<SGDHyperparameters>, opts: SGDOptions) {
    checkOptionKeys('SGD', opts ?? {}, SGD_KEYS);
    check(opts !== undefined && opts.lr !== undefined, 'SGD', 'expected an lr option (SGD has no default learning rate)');
    super('SGD', params, { lr: opts.lr, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...definedOnly(opts) });
  }

  protected validate(h: SGDHyperparameters): void {
    checkRange('SGD', 'lr', h.lr, 0);
    checkRange('SGD', 'momentum', h.momentum, 0);
    checkRange('SGD', 'dampening', h.dampening, -Infinity);
    checkRange('SGD', 'weightDecay', h.weightDecay, 0);
    check(typeof h.nesterov === 'boolean', 'SGD', `expected nesterov to be a boolean, got ${String(h.nesterov)}`);
    check(!h.nesterov || (h.momentum > 0 && h.dampening === 0), 'SGD', 'nesterov momentum needs momentum > 0 and dampening 0');
  }

  protected update(p: Tensor, grad: Tensor, g: ParamGroup<SGDHyperparameters>): void {
    let d = g.weightDecay !== 0 ? grad.add(p, { alpha: g.weightDecay }) : grad;
    if (g.momentum !== 0) {
      const s = this.stateOf(p);
      s.step += 1;
      let buf = s.buffers.momentum_buffer;
      if (buf === undefined) buf = this.setBuffer(s, 'momentum_buffer', d.clone());
      else buf.mul_(g.momentum).add_(d, { alpha: 1 - g.dampening });
      d = g.nesterov ? d.add(buf, { alpha: g.momentum }) : buf;
    }
    p.add_(d, { alpha: -g.lr });
  }
}

/** @internal Drops keys whose value is undefined, so that they do not override defaults. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
