// cz.nn.functional (cz.F): PyTorch's torch.nn.functional names in camelCase. Required tensors and a
// pool's kernel size are positional; everything else is an options object.
import { ops } from '../native.js';
import { check, checkInt } from '../errors.js';
import { Tensor, _wrap as wrap, _wrapAll as wrapAll, isHalfDType } from '../tensor/tensor.js';
import { empty, cat } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { sameConvPadding } from './padding.js';
import { runChain } from './module.js';

export type Pair = number | readonly [number, number];
const pair = (v: Pair): number[] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const groups = opts.groups ?? 1;
  checkInt(groups, 'conv2d', 'groups', 1);
  const padding = opts.padding ?? 0;
  return wrap(
    ops.conv2d(
      x?.handle,
      weight?.handle,
      bias?.handle,
      pair(opts.stride ?? 1),
      typeof padding === 'string' ? padding : pair(padding),
      pair(opts.dilation ?? 1),
      groups,
    ),
  );
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

/** 1-d convolution over (N, C, L) (ECA attention's channel conv). */
export function conv1d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv1dOptions = {}): Tensor {
  const groups = opts.groups ?? 1;
  checkInt(groups, 'conv1d', 'groups', 1);
  return wrap(ops.conv1d(x?.handle, weight?.handle, bias?.handle, [opts.stride ?? 1], [opts.padding ?? 0], [opts.dilation ?? 1], groups));
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return wrap(ops.linear(x?.handle, weight?.handle, bias?.handle));
}

export interface MaxPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

export function maxPool2d(x: Tensor, kernelSize: Pair, opts: MaxPool2dOptions = {}): Tensor {
  return wrap(
    ops.max_pool2d(x?.handle, pair(kernelSize), pair(opts.stride ?? kernelSize), pair(opts.padding ?? 0), pair(opts.dilation ?? 1), opts.ceilMode ?? false),
  );
}
/** Max pooling that also returns the flat index of each maximum. */
export function maxPool2dWithIndices(x: Tensor, kernelSize: Pair, opts: MaxPool2dOptions = {}): { output: Tensor; indices: Tensor } {
  const [output, indices] = wrapAll(
    ops.max_pool2d_with_indices(
      x?.handle,
      pair(kernelSize),
      pair(opts.stride ?? kernelSize),
      pair(opts.padding ?? 0),
      pair(opts.dilation ?? 1),
      opts.ceilMode ?? false,
    ),
  );
  return { output, indices };
}

export interface AvgPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
  divisorOverride?: number;
}

export function avgPool2d(x: Tensor, kernelSize: Pair, opts: AvgPool2dOptions = {}): Tensor {
  return wrap(
    ops.avg_pool2d(
      x?.handle,
      pair(kernelSize),
      pair(opts.stride ?? kernelSize),
      pair(opts.padding ?? 0),
      opts.ceilMode ?? false,
      opts.countIncludePad ?? true,
      opts.divisorOverride,
    ),
  );
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return wrap(ops.adaptive_avg_pool2d(x?.handle, pair(outputSize)));
}
export function adaptiveMaxPool2d(x: Tensor, outputSize: Pair): Tensor {
  const [out, idx] = wrapAll(ops.adaptive_max_pool2d(x?.handle, pair(outputSize)));
  idx.dispose();
  return out;
}

/** timm's adaptive_avgmax_pool2d: the mean of average and max pooling (an avg+max classifier head). */
export function adaptiveAvgMaxPool2d(x: Tensor, outputSize: Pair = 1): Tensor {
  const avg = adaptiveAvgPool2d(x, outputSize);
  const max = adaptiveMaxPool2d(x, outputSize);
  const sum = avg.add(max);
  avg.dispose();
  max.dispose();
  const out = sum.mul(0.5);
  sum.dispose();
  return out;
}
/** timm's adaptive_catavgmax_pool2d: average and max pooling concatenated along channels (2C outputs). */
export function adaptiveCatAvgMaxPool2d(x: Tensor, outputSize: Pair = 1): Tensor {
  const avg = adaptiveAvgPool2d(x, outputSize);
  const max = adaptiveMaxPool2d(x, outputSize);
  const out = cat([avg, max], 1);
  avg.dispose();
  max.dispose();
  return out;
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
/** Batch norm; in training mode the running statistics (when given) are updated in place. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  if (opts.training && x instanceof Tensor) {
    // As torch.nn.functional: batch statistics of a single value per channel are meaningless.
    const s = x.shape;
    let perChannel = s[0] ?? 1;
    for (let i = 2; i < s.length; i++) perChannel *= s[i];
    check(perChannel > 1, 'batchNorm', `expected more than 1 value per channel when training, got input of shape [${s.join(', ')}]`, 'E_SHAPE');
  }
  return wrap(
    ops.batch_norm(
      x?.handle,
      opts.weight?.handle,
      opts.bias?.handle,
      runningMean?.handle,
      runningVar?.handle,
      opts.training ?? false,
      opts.momentum ?? 0.1,
      opts.eps ?? 1e-5,
    ),
  );
}
export function layerNorm(x: Tensor, normalizedShape: readonly number[], opts: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  return wrap(ops.layer_norm(x?.handle, [...normalizedShape], opts.weight?.handle, opts.bias?.handle, opts.eps ?? 1e-5));
}
export function groupNorm(x: Tensor, numGroups: number, opts: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  return wrap(ops.group_norm(x?.handle, numGroups, opts.weight?.handle, opts.bias?.handle, opts.eps ?? 1e-5));
}

/**
 * Local response normalisation across channels (AlexNet, section 3.3):
 * b = a / (k + alpha/n * sum over n neighbouring channels of a^2)^beta, as torch.nn.functional computes it.
 */
export function localResponseNorm(x: Tensor, size: number, opts: { alpha?: number; beta?: number; k?: number } = {}): Tensor {
  const { alpha = 1e-4, beta = 0.75, k = 1 } = opts;
  check(x.ndim >= 3, 'localResponseNorm', `expected a 3-d or more input, got ${x.ndim}-d`, 'E_SHAPE');
  // Each intermediate is freed as soon as the next op has consumed it: at most two input-sized
  // temporaries live at once, which keeps the memory reported to V8 (and so its GC runs) down; with
  // all six alive until the end, alexnet_original ran 6% slower at batch 16 (bench/models.mjs).
  // libtorch's CPU avg_pool3d has no bfloat16/float16 kernel: compute in float32 and cast back.
  if (isHalfDType(x?.dtype)) return tidy(() => localResponseNorm(x.to('float32'), size, opts).to(x.dtype));
  const s = x.shape;
  return runChain(x, [
    (t: Tensor) => t.mul(t),
    // Sum over a channel window with zero padding: average-pool the squares over (channels, 1, 1).
    (sq: Tensor) => sq.view(s[0], 1, s[1], s[2], -1),
    (five: Tensor) => wrap(ops.constant_pad_nd(five.handle, [0, 0, 0, 0, Math.floor(size / 2), Math.floor((size - 1) / 2)], 0)),
    (padded: Tensor) => wrap(ops.avg_pool3d(padded.handle, [size, 1, 1], [1, 1, 1], [0, 0, 0], false, true, undefined)),
    (pooled: Tensor) => pooled.view(...s),
    (sum: Tensor) => sum.mul(alpha),
    (scaled: Tensor) => scaled.add(k),
    (shifted: Tensor) => shifted.pow(beta),
    (denom: Tensor) => x.div(denom),
  ]);
}

export function dropout(x: Tensor, opts: { p?: number; training?: boolean } = {}): Tensor {
  const p = opts.p ?? 0.5;
  check(p >= 0 && p <= 1, 'dropout', `p must be in [0, 1], got ${p}`);
  return wrap(ops.dropout(x?.handle, p, opts.training ?? true));
}
/** Zeroes whole channels (torch's dropout2d / feature dropout). */
export function dropout2d(x: Tensor, opts: { p?: number; training?: boolean } = {}): Tensor {
  const p = opts.p ?? 0.5;
  check(p >= 0 && p <= 1, 'dropout2d', `p must be in [0, 1], got ${p}`);
  return wrap(ops.feature_dropout(x?.handle, p, opts.training ?? true));
}

/**
 * Stochastic depth (timm's drop_path, torchvision's stochastic_depth with mode 'row'): each sample
 * of the batch is zeroed with probability p, the survivors are scaled by 1/(1-p) (unless
 * scaleByKeep is false) so the expectation is unchanged. Outside training or at p = 0 it is the
 * identity; it still returns a new handle (a view of x), so the caller owns what it gets.
 */
export function dropPath(x: Tensor, p: number, opts: { training?: boolean; scaleByKeep?: boolean } = {}): Tensor {
  check(typeof p === 'number' && p >= 0 && p <= 1, 'dropPath', `p must be in [0, 1], got ${String(p)}`);
  if (p === 0 || !(opts.training ?? true)) return x.view(...x.shape);
  const keep = 1 - p;
  // One Bernoulli draw per sample, broadcast over the other dims: the same generator calls as torch's
  // x.new_empty(shape).bernoulli_(keep), so a seeded run draws the same mask.
  const mask = empty([x.shape[0], ...Array<number>(x.ndim - 1).fill(1)], { dtype: x.dtype, device: x.device }).bernoulli_(keep);
  if (keep > 0 && (opts.scaleByKeep ?? true)) mask.div_(keep);
  const out = x.mul(mask);
  mask.dispose();
  return out;
}

export const relu = (x: Tensor): Tensor => wrap(ops.relu(x?.handle));
export const relu6 = (x: Tensor): Tensor => hardtanh(x, { min: 0, max: 6 });
export const hardtanh = (x: Tensor, opts: { min?: number; max?: number } = {}): Tensor => {
  const min = opts.min ?? -1;
  const max = opts.max ?? 1;
  if (!isHalfDType(x?.dtype) || !x.requiresGrad) return wrap(ops.hardtanh(x?.handle, min, max));
  // libtorch 1.13's CPU hardtanh backward has no bfloat16 kernel (PyTorch's own bf16 training of mobilenet_v2
  // stops there; its forward has one, which inference keeps using: one pass instead of four).
  // Two thresholds compute the same values and gradients (zero at the bounds, as hardtanh's):
  // max(x, min), then min(., max) as -max(-., -max). clamp would too, but its backward's comparisons and
  // where() are slow in bf16: mobilenet_v2's bf16 training step took 0.59 s with clamp, 0.35 s with this.
  return tidy(() => {
    const atLeastMin = wrap(ops.threshold(x.handle, min, min));
    return wrap(ops.threshold(atLeastMin.neg_().handle, -max, -max)).neg_();
  });
};
export const leakyRelu = (x: Tensor, opts: { negativeSlope?: number } = {}): Tensor => wrap(ops.leaky_relu(x?.handle, opts.negativeSlope ?? 0.01));
export const elu = (x: Tensor, opts: { alpha?: number } = {}): Tensor => wrap(ops.elu(x?.handle, opts.alpha ?? 1));
export const gelu = (x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor => wrap(ops.gelu(x?.handle, opts.approximate ?? 'none'));
export const silu = (x: Tensor): Tensor => wrap(ops.silu(x?.handle));
// libtorch 1.13's CPU mish has no bfloat16 kernel: compute in float32 and cast back.
export const mish = (x: Tensor): Tensor => (isHalfDType(x?.dtype) ? tidy(() => mish(x.to('float32')).to(x.dtype)) : wrap(ops.mish(x?.handle)));
export const hardswish = (x: Tensor): Tensor => wrap(ops.hardswish(x?.handle));
export const hardsigmoid = (x: Tensor): Tensor => wrap(ops.hardsigmoid(x?.handle));
export const sigmoid = (x: Tensor): Tensor => wrap(ops.sigmoid(x?.handle));
export const tanh = (x: Tensor): Tensor => wrap(ops.tanh(x?.handle));
export const softplus = (x: Tensor, opts: { beta?: number; threshold?: number } = {}): Tensor =>
  wrap(ops.softplus(x?.handle, opts.beta ?? 1, opts.threshold ?? 20));
export const softmax = (x: Tensor, opts: { dim?: number } = {}): Tensor => wrap(ops.softmax(x?.handle, opts.dim ?? -1));
export const logSoftmax = (x: Tensor, opts: { dim?: number } = {}): Tensor => wrap(ops.log_softmax(x?.handle, opts.dim ?? -1));
/**
 * The two channel permutations that ShuffleNet code uses. For C = g*k channels:
 * - 'torchvision' (torchvision's and the paper's): view (N, g, k, ...), transpose -> output channel
 *   i*g + j is input channel j*k + i;
 * - 'megvii' (Megvii's official ShuffleNet v1, blocks.py): reshape (N, k, g, ...), permute -> output
 *   channel j*k + i is input channel i*g + j, the inverse permutation (the same as 'torchvision' with
 *   k groups). Its weights only work with its own order.
 */
export type ChannelShuffleVariant = 'torchvision' | 'megvii';

/**
 * ShuffleNet's channel shuffle, by default torchvision's permutation (see ChannelShuffleVariant).
 * Built from view/transpose rather than at::channel_shuffle, which has no derivative in libtorch 1.13.
 */
export function channelShuffle(x: Tensor, groups: number, opts: { variant?: ChannelShuffleVariant } = {}): Tensor {
  checkInt(groups, 'channelShuffle', 'groups', 1);
  const variant = opts.variant ?? 'torchvision';
  check(variant === 'torchvision' || variant === 'megvii', 'channelShuffle', `unknown variant '${String(variant)}' (expected torchvision or megvii)`);
  const s = x.shape;
  check(s.length >= 3, 'channelShuffle', `expected a 3-d or more input, got ${s.length}-d`, 'E_SHAPE');
  check(s[1] % groups === 0, 'channelShuffle', `expected groups to divide the channels (${s[1]}), got ${groups}`, 'E_SHAPE');
  const perGroup = s[1] / groups;
  const [outer, inner] = variant === 'torchvision' ? [groups, perGroup] : [perGroup, groups];
  const grouped = x.view(s[0], outer, inner, ...s.slice(2));
  const swapped = grouped.transpose(1, 2);
  const out = swapped.reshape(...s);
  grouped.dispose();
  swapped.dispose();
  return out;
}

export type Reduction = 'mean' | 'sum' | 'none';
export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}

/** Cross-entropy from logits and class indices (int64) or class probabilities (float). */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ls = opts.labelSmoothing ?? 0;
  check(ls >= 0 && ls <= 1, 'crossEntropy', `labelSmoothing must be in [0, 1], got ${ls}`);
  return wrap(ops.cross_entropy(logits?.handle, target?.handle, opts.weight?.handle, opts.reduction ?? 'mean', opts.ignoreIndex ?? -100, ls));
}
export function nllLoss(logProbs: Tensor, target: Tensor, opts: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return wrap(ops.nll_loss(logProbs?.handle, target?.handle, opts.weight?.handle, opts.reduction ?? 'mean', opts.ignoreIndex ?? -100));
}
export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  return wrap(ops.mse_loss(input?.handle, target?.handle, opts.reduction ?? 'mean'));
}
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, opts: { weight?: Tensor | null; reduction?: Reduction } = {}): Tensor {
  return wrap(ops.bce_with_logits(input?.handle, target?.handle, opts.weight?.handle, opts.reduction ?? 'mean'));
}

/** Pads the last dimensions: `pad` lists (left, right, top, bottom, ...) as in torch. */
export function pad(x: Tensor, padding: readonly number[], opts: { mode?: 'constant' | 'reflect' | 'replicate'; value?: number } = {}): Tensor {
  const mode = opts.mode ?? 'constant';
  if (mode === 'constant') return wrap(ops.constant_pad_nd(x?.handle, [...padding], opts.value ?? 0));
  check(padding.length === 4 && x.ndim === 4, 'pad', `${mode} padding takes 4 values for a 4-d input`);
  return wrap(mode === 'reflect' ? ops.reflection_pad2d(x?.handle, [...padding]) : ops.replication_pad2d(x?.handle, [...padding]));
}

/**
 * TensorFlow's 'SAME' padding for a convolution or pooling window, computed from the input's size:
 * total = max((ceil(i/s) - 1)*s + (k - 1)*d + 1 - i, 0) per spatial dim, the extra odd pixel going
 * to the right/bottom as TF does (timm's pad_same). `value` fills the border (-Infinity for max pooling).
 */
export function padSame(x: Tensor, kernelSize: Pair, opts: { stride?: Pair; dilation?: Pair; value?: number } = {}): Tensor {
  check(x.ndim >= 2, 'padSame', `expected a 2-d or more input, got ${x.ndim}-d`, 'E_SHAPE');
  const [k, st, d] = [pair(kernelSize), pair(opts.stride ?? 1), pair(opts.dilation ?? 1)];
  const s = x.shape;
  const [top, bottom] = sameConvPadding(s[s.length - 2], k[0], st[0], d[0]);
  const [left, right] = sameConvPadding(s[s.length - 1], k[1], st[1], d[1]);
  return wrap(ops.constant_pad_nd(x?.handle, [left, right, top, bottom], opts.value ?? 0));
}

export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number | readonly [number, number];
  mode?: 'nearest' | 'bilinear';
  alignCorners?: boolean;
}
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  check(x.ndim === 4, 'interpolate', `expected a 4-d (N, C, H, W) input, got ${x.ndim}-d`, 'E_SHAPE');
  check((opts.size === undefined) !== (opts.scaleFactor === undefined), 'interpolate', 'give exactly one of size and scaleFactor');
  const [h, w] = [x.shape[2], x.shape[3]];
  let size: number[];
  // With a scale factor, torch passes the scales to the kernel, which maps output to input
  // coordinates by 1/scale (not inSize/outSize): the results differ for non-integer factors.
  let scales: [number | undefined, number | undefined] = [undefined, undefined];
  if (opts.size !== undefined) size = pair(opts.size);
  else {
    const [sh, sw] = typeof opts.scaleFactor === 'number' ? [opts.scaleFactor, opts.scaleFactor] : opts.scaleFactor!;
    check(sh > 0 && sw > 0, 'interpolate', `expected positive scale factors, got [${sh}, ${sw}]`);
    size = [Math.floor(h * sh), Math.floor(w * sw)];
    scales = [sh, sw];
  }
  const mode = opts.mode ?? 'nearest';
  if (mode === 'nearest') return wrap(ops.upsample_nearest2d(x?.handle, size, ...scales));
  check(mode === 'bilinear', 'interpolate', `unknown mode '${String(mode)}' (expected nearest or bilinear)`);
  return wrap(ops.upsample_bilinear2d(x?.handle, size, opts.alignCorners ?? false, ...scales));
}
