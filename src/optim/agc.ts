// Adaptive gradient clipping (Brock et al. 2021, "High-Performance Large-Scale Image Recognition Without
// Normalization", section 4.1), unit-wise: for each unit i of a parameter W (a row of a Linear weight,
// an output channel of a conv, its slice of every other tensor whose first dim is the unit's),
//   G_i <- G_i * lambda * max(||W_i||, eps) / ||G_i||   where ||G_i|| >= lambda * max(||W_i||, eps),
// with Frobenius norms over all dims but the first; tensors of rank 0 or 1 (biases, scalar gains) are
// one unit. lambda (the clip factor) is 0.01 and eps 1e-3 by default, the paper's values for its large
// batches. As in the paper, the final linear layer is not clipped (AGC.forModel leaves it out).
// The arithmetic is timm's adaptive_clip_grad (timm/utils/agc.py), a ||G_i|| floor of 1e-6 included.
//
// Use: `new AGC(params).clip()` between backward and step, or `AGC.forModel(model).attach(optimizer)`
// so that every optimizer.step() clips first (what `convzoo train --agc 0.01` does).
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, where } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { check, ConvzooError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { checkOptionKeys, type Optimizer } from './optimizer.js';

export interface AGCOptions {
  /** lambda: the largest gradient norm per unit, as a fraction of the unit's weight norm (default 0.01). */
  clipFactor?: number;
  /** The floor of a unit's weight norm, so that zero-initialised units can move (default 1e-3). */
  eps?: number;
}

export const AGC_DEFAULTS: Readonly<Required<AGCOptions>> = Object.freeze({ clipFactor: 0.01, eps: 1e-3 });

/** The floor of a unit's gradient norm in the clipped ratio (timm's), against division by zero. */
const GRAD_NORM_FLOOR = 1e-6;

/** L2 norms per unit: over all dims but the first (kept, for broadcasting) at rank >= 2; of the whole tensor at rank <= 1. */
export function unitwiseNorm(x: Tensor): Tensor {
  if (x.ndim <= 1) return x.norm(2);
  return x.norm(
    2,
    Array.from({ length: x.ndim - 1 }, (_, i) => i + 1),
    { keepdim: true },
  );
}

function resolveOptions(fn: string, opts: AGCOptions): Required<AGCOptions> {
  check(opts !== null && typeof opts === 'object', fn, 'expected an options object');
  checkOptionKeys(fn, opts, ['clipFactor', 'eps']);
  const o = { ...AGC_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const positive = (name: string, v: unknown) =>
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, fn, `expected ${name} to be a finite number > 0, got ${String(v)}`);
  positive('clipFactor', o.clipFactor);
  positive('eps', o.eps);
  return o;
}

/**
 * Clips the gradient of each tensor in `params` in place, unit-wise (see the file comment). Tensors
 * without a gradient are skipped.
 */
export function adaptiveClipGrad_(params: Iterable<Tensor>, opts: AGCOptions = {}): void {
  const { clipFactor, eps } = resolveOptions('adaptiveClipGrad_', opts);
  noGrad(() => {
    for (const p of params) {
      tidy(() => {
        const g = p.grad;
        if (g === null) return;
        const maxNorm = unitwiseNorm(p).clamp_({ min: eps }).mul_(clipFactor);
        const gradNorm = unitwiseNorm(g);
        const clipped = g.mul(maxNorm.div(gradNorm.clamp({ min: GRAD_NORM_FLOOR })));
        g.copy_(where(gradNorm.lt(maxNorm), g, clipped));
      });
    }
  });
}

const ATTACHED = Symbol('convzoo.agc');

/** Adaptive gradient clipping of a fixed set of parameters. */
export class AGC {
  readonly params: Tensor[];
  readonly clipFactor: number;
  readonly eps: number;

  constructor(params: Iterable<Tensor>, opts: AGCOptions = {}) {
    const o = resolveOptions('AGC', opts);
    this.params = [...params];
    this.clipFactor = o.clipFactor;
    this.eps = o.eps;
  }

  /**
   * Every parameter of `model` except its final linear layer's (the paper's rule): those under the
   * registry's classifier key (`fc`, `head.fc`, `classifier.6`, ...), or under `opts.exclude`.
   */
  static forModel(model: Module, opts: AGCOptions & { exclude?: string } = {}): AGC {
    const { exclude, ...agc } = opts;
    const prefix = exclude ?? (model as { meta?: { classifier?: string } }).meta?.classifier;
    if (!prefix) {
      throw new ConvzooError(
        'AGC.forModel: the model has no registry metadata naming its classifier; pass {exclude: <its state-dict prefix>} or use new AGC(params)',
        'E_ARG',
        'AGC',
      );
    }
    const params = [...model.namedParameters()].filter(([name]) => !(name === prefix || name.startsWith(`${prefix}.`))).map(([, p]) => p);
    return new AGC(params, agc);
  }

  /** Clips the current gradients in place. */
  clip(): void {
    adaptiveClipGrad_(this.params, { clipFactor: this.clipFactor, eps: this.eps });
  }

  /** Makes every later `optimizer.step()` clip first (a step pre-hook); returns the optimizer. An optimizer takes one AGC. */
  attach<O extends Optimizer<any>>(optimizer: O): O {
    const target = optimizer as O & { [ATTACHED]?: AGC };
    check(target[ATTACHED] === undefined, 'AGC.attach', 'the optimizer already clips with an AGC');
    target[ATTACHED] = this;
    optimizer.registerStepPreHook(() => this.clip());
    return optimizer;
  }

  toString(): string {
    return `AGC(${this.params.length} params, clipFactor=${this.clipFactor}, eps=${this.eps})`;
  }
}
