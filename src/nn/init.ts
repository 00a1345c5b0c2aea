// cz.nn.init: in-place initialisers with PyTorch's names, fan conventions and gains.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/creation.js';
import { ConvzooError } from '../errors.js';

export type FanMode = 'fanIn' | 'fanOut';
export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** fan_in = in_channels * receptive field, fan_out = out_channels * receptive field (torch's convention). */
export function calculateFanInAndFanOut(t: Tensor): { fanIn: number; fanOut: number } {
  const s = t.shape;
  if (s.length < 2) throw new ConvzooError(`init: fan in and fan out need a tensor of 2 or more dims, got [${s.join(', ')}]`, 'E_SHAPE');
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: s[1] * receptive, fanOut: s[0] * receptive };
}

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'conv2d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
  }
}

export interface KaimingOptions {
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, opts: KaimingOptions): number {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const fan = (opts.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  return calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0) / Math.sqrt(fan);
}

export const uniform_ = (t: Tensor, a = 0, b = 1): Tensor => noGrad(() => t.uniform_(a, b));
export const normal_ = (t: Tensor, mean = 0, std = 1): Tensor => noGrad(() => t.normal_(mean, std));
export const constant_ = (t: Tensor, value: number): Tensor => noGrad(() => t.fill_(value));
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, opts);
  return uniform_(t, -bound, bound);
}
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, opts));
}
export function xavierUniform_(t: Tensor, opts: { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  const a = (opts.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a);
}
export function xavierNormal_(t: Tensor, opts: { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  return normal_(t, 0, (opts.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)));
}

/**
 * Normal(mean, std) truncated to [a, b], by inverse-CDF sampling as torch.nn.init.trunc_normal_ does
 * (uniform on the truncated CDF range, then erfinv).
 */
export function truncNormal_(t: Tensor, opts: { mean?: number; std?: number; a?: number; b?: number } = {}): Tensor {
  const { mean = 0, std = 1, a = -2, b = 2 } = opts;
  const cdf = (x: number) => (1 + erf(x / Math.SQRT2)) / 2;
  const l = cdf((a - mean) / std),
    u = cdf((b - mean) / std);
  return noGrad(() =>
    t
      .uniform_(2 * l - 1, 2 * u - 1)
      .erfinv_()
      .mul_(std * Math.SQRT2)
      .add_(mean)
      .clamp_({ min: a, max: b }),
  );
}

// Abramowitz-Stegun 7.1.26 is too coarse for the CDF bounds; use a series/continued-fraction erf.
function erf(x: number): number {
  const sign = Math.sign(x);
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax,
      term = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return ((sign * 2) / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  return sign * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f));
}

/**
 * PyTorch's default initialisation of Linear and ConvNd: kaiming_uniform(a=sqrt(5)) weights, and a bias
 * uniform in +-1/sqrt(fan_in).
 */
export function torchDefault_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const bound = 1 / Math.sqrt(calculateFanInAndFanOut(weight).fanIn);
    uniform_(bias, -bound, bound);
  }
}
