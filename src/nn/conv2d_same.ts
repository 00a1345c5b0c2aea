// TensorFlow 'SAME' padding as layers (timm's Conv2dSame, MaxPool2dSame): the padding is computed
// from each input's size and may be asymmetric, so weights ported from TensorFlow (EfficientNet's tf_*,
// DeepMind's NFNets) see the same borders they were trained with. State-dict keys are Conv2d's.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from './module.js';
import { Conv2d } from './layers.js';
import * as F from './functional.js';
import { getPadding, isStaticPad } from './padding.js';
import type { Pair } from './functional.js';

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface Conv2dSameOptions {
  stride?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** Conv2d whose input is padded to TF 'SAME' on every call (no padding option: the input size decides). */
export class Conv2dSame extends Conv2d {
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: Conv2dSameOptions = {}) {
    super(inChannels, outChannels, kernelSize, { ...opts, padding: 0 });
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => super.forward(F.padSame(x, this.kernelSize, { stride: this.stride, dilation: this.dilation })));
  }
  override extraRepr(): string {
    return `${super.extraRepr()}, padding=tf_same`;
  }
}

/**
 * TF 'SAME' max pooling: the border is padded with -Infinity, so it is never the maximum (TF ignores
 * padded pixels). Stride defaults to the kernel size, as torch's.
 */
export class MaxPool2dSame extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly ceilMode: boolean;
  constructor(kernelSize: Pair, opts: { stride?: Pair; ceilMode?: boolean } = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? kernelSize);
    this.ceilMode = opts.ceilMode ?? false;
  }
  forward(x: Tensor): Tensor {
    return tidy(() =>
      F.maxPool2d(F.padSame(x, this.kernelSize, { stride: this.stride, value: -Infinity }), this.kernelSize, { stride: this.stride, ceilMode: this.ceilMode }),
    );
  }
  override extraRepr(): string {
    return `kernelSize=[${this.kernelSize}], stride=[${this.stride}], padding=tf_same${this.ceilMode ? ', ceilMode=true' : ''}`;
  }
}

export interface SameAwareConv2dOptions extends Conv2dSameOptions {
  /** A number or pair as torch's; 'same' as TensorFlow's (any stride); 'valid' is 0; default getPadding(). */
  padding?: Pair | 'same' | 'valid';
}

/**
 * A Conv2d with the padding resolved as timm's create_conv2d does: TF 'SAME' becomes a fixed symmetric
 * padding when that is exact (isStaticPad), and a Conv2dSame otherwise; no padding means getPadding().
 */
export function createConv2d(inChannels: number, outChannels: number, kernelSize: Pair, opts: SameAwareConv2dOptions = {}): Conv2d {
  const { padding, ...rest } = opts;
  const [k, s, d] = [pair(kernelSize), pair(opts.stride ?? 1), pair(opts.dilation ?? 1)];
  const symmetric = (): [number, number] => [getPadding(k[0], { stride: s[0], dilation: d[0] }), getPadding(k[1], { stride: s[1], dilation: d[1] })];
  if (padding === 'same') {
    const isStatic = [0, 1].every((i) => isStaticPad(k[i], { stride: s[i], dilation: d[i] }));
    return isStatic
      ? new Conv2d(inChannels, outChannels, kernelSize, { ...rest, padding: symmetric() })
      : new Conv2dSame(inChannels, outChannels, kernelSize, rest);
  }
  return new Conv2d(inChannels, outChannels, kernelSize, { ...rest, padding: padding === 'valid' ? 0 : (padding ?? symmetric()) });
}
