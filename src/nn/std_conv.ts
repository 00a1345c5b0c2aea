// Weight-standardised convolutions (timm's std_conv.py): StdConv2d (BiT's ResNet-V2) and
// ScaledStdConv2d (NF-ResNets and NFNets, Brock et al. 2021).
//
// The weight is standardised per output channel over (in, kh, kw) with one batch-norm call on
// weight.reshape(1, out, -1), exactly as timm does, so values and gradients match its checkpoints.
//
// Eval-mode cache: standardising costs a pass over the weights on every forward. In eval mode, when
// no gradient to the weights is being recorded (noGrad or inferenceMode, or weights that do not
// require grad), the standardised weight is computed once and kept as the non-persistent buffer
// `cached_weight` (not in the state dict; freed by dispose(), moved by to()). It is recomputed when
// - the module is in training mode (the cache is dropped on the first training-mode forward),
// - weight or gain is replaced (to(), a new handle) or changed in place (loadStateDict, an optimizer
//   step, nn.init: libtorch's version counter of the tensor moves),
// - eps is changed.
// Code that edits the weights some other way should call clearCache().
import type { Tensor } from '../tensor/tensor.js';
import { tidy, keep } from '../tensor/scope.js';
import { full, noGrad, isGradEnabled } from '../tensor/creation.js';
import { ops } from '../native.js';
import { Conv2d } from './layers.js';
import { Parameter } from './module.js';
import * as F from './functional.js';
import { getPadding, isStaticPad } from './padding.js';
import type { Pair } from './functional.js';

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface StdConv2dOptions {
  stride?: Pair;
  /** A number or pair; 'same' is TensorFlow's (dynamic when the stride or kernel needs it); default getPadding(). */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
  /** StdConv2d: default false; ScaledStdConv2d: default true (timm's defaults). */
  bias?: boolean;
  /** Added to the variance; default 1e-6 (timm's; its NFNets pass 1e-5, NfCfg.std_conv_eps). */
  eps?: number;
}

/** Static padding for the conv, and whether TF 'SAME' must be computed per input instead. */
function resolvePadding(kernelSize: Pair, opts: StdConv2dOptions): { padding: [number, number]; dynamic: boolean } {
  const [k, s, d] = [pair(kernelSize), pair(opts.stride ?? 1), pair(opts.dilation ?? 1)];
  const symmetric = (): [number, number] => [getPadding(k[0], { stride: s[0], dilation: d[0] }), getPadding(k[1], { stride: s[1], dilation: d[1] })];
  const p = opts.padding;
  if (p === 'same') {
    const isStatic = [0, 1].every((i) => isStaticPad(k[i], { stride: s[i], dilation: d[i] }));
    return isStatic ? { padding: symmetric(), dynamic: false } : { padding: [0, 0], dynamic: true };
  }
  if (p === 'valid') return { padding: [0, 0], dynamic: false };
  return { padding: p === undefined ? symmetric() : pair(p), dynamic: false };
}

/** Conv2d whose weight is standardised to zero mean and unit variance per output channel. */
export class StdConv2d extends Conv2d {
  eps: number;
  /** Whether TF 'SAME' padding is applied per input (padding: 'same' with a stride or an even kernel). */
  readonly samePad: boolean;
  /** Non-persistent buffer: the eval-mode standardised weight (see the file comment). */
  cached_weight: Tensor | null = null;
  private _cacheKey: unknown[] | null = null;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: StdConv2dOptions = {}) {
    const { padding, dynamic } = resolvePadding(kernelSize, opts);
    super(inChannels, outChannels, kernelSize, { stride: opts.stride, dilation: opts.dilation, groups: opts.groups, bias: opts.bias ?? false, padding });
    this.eps = opts.eps ?? 1e-6;
    this.samePad = dynamic;
  }

  override isStateKey(field: string): boolean {
    return field !== 'cached_weight';
  }

  /** The per-channel affine of the standardised weight (ScaledStdConv2d's gain * scale), or null. */
  protected weightScale(): Tensor | null {
    return null;
  }
  /** The tensors whose identity and version decide whether the cache is current. */
  protected cacheSources(): Tensor[] {
    return [this.weight];
  }

  /** The weight the convolution uses, computed now (with autograd, when recording). */
  standardizedWeight(): Tensor {
    return tidy(() => {
      const w = this.weight;
      const flat = w.reshape(1, this.outChannels, -1);
      return F.batchNorm(flat, null, null, { weight: this.weightScale(), training: true, momentum: 0, eps: this.eps }).reshape(...w.shape);
    });
  }

  /** Drops the eval-mode cache (it is rebuilt on the next eligible forward). */
  clearCache(): void {
    this.cached_weight?.dispose();
    this.cached_weight = null;
    this._cacheKey = null;
  }

  private currentKey(): unknown[] {
    const key: unknown[] = [this.eps];
    for (const t of this.cacheSources()) key.push(t.handle, ops.tensor_version(t.handle));
    return key;
  }

  /** The weight for this forward: cached in eval mode when no weight gradient is being recorded. */
  private weightForForward(): Tensor {
    const recordsWeightGrad = isGradEnabled() && this.cacheSources().some((t) => t.requiresGrad);
    if (this.training || recordsWeightGrad) {
      if (this.training && this.cached_weight) this.clearCache();
      return this.standardizedWeight();
    }
    const key = this.currentKey();
    const current =
      this._cacheKey &&
      this.cached_weight &&
      !this.cached_weight.isDisposed &&
      key.length === this._cacheKey.length &&
      key.every((v, i) => v === this._cacheKey![i]);
    if (!current) {
      this.clearCache();
      this.cached_weight = keep(noGrad(() => this.standardizedWeight()));
      this._cacheKey = key;
    }
    return this.cached_weight!.view(...this.weight.shape); // a handle that the caller's tidy may free
  }

  override forward(x: Tensor): Tensor {
    return tidy(() => {
      const input = this.samePad ? F.padSame(x, this.kernelSize, { stride: this.stride, dilation: this.dilation }) : x;
      return F.conv2d(input, this.weightForForward(), this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
    });
  }

  override dispose(): void {
    this.clearCache();
    super.dispose();
  }

  override extraRepr(): string {
    return `${super.extraRepr()}${this.samePad ? ', padding=tf_same' : ''}, eps=${this.eps}`;
  }
}

export interface ScaledStdConv2dOptions extends StdConv2dOptions {
  /** Multiplies the fan-in scale: scale = gamma / sqrt(fan_in); the activation's gamma in NF nets. Default 1. */
  gamma?: number;
  /** Initial value of `gain`; default 1. */
  gainInit?: number;
}

/**
 * Scaled weight standardisation: standardised weight * gain * gamma / sqrt(fan_in), with a learnable
 * per-output-channel `gain` of shape [out, 1, 1, 1]. Keys: weight, bias, gain.
 */
export class ScaledStdConv2d extends StdConv2d {
  gain: Parameter;
  readonly gamma: number;
  /** gamma * fan_in^-0.5, fan_in = in/groups * kh * kw. */
  readonly scale: number;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: ScaledStdConv2dOptions = {}) {
    super(inChannels, outChannels, kernelSize, { ...opts, bias: opts.bias ?? true });
    this.gamma = opts.gamma ?? 1;
    const [kh, kw] = this.kernelSize;
    this.scale = this.gamma / Math.sqrt((inChannels / this.groups) * kh * kw);
    this.gain = new Parameter(full([outChannels, 1, 1, 1], opts.gainInit ?? 1, { dtype: this.weight.dtype }));
  }

  protected override weightScale(): Tensor {
    return this.gain.mul(this.scale).view(-1);
  }
  protected override cacheSources(): Tensor[] {
    return [this.weight, this.gain];
  }

  override extraRepr(): string {
    return `${super.extraRepr()}, gamma=${this.gamma}`;
  }
}
