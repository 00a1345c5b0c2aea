// The layers of torch.nn that the classic CNNs use, with PyTorch's default initialisation and
// state-dict names.
import type { Tensor } from '../tensor/tensor.js';
import { empty, zeros, ones, tensor } from '../tensor/creation.js';
import { ConvzooError, check, checkInt } from '../errors.js';
import { Module, Parameter, buffer, runChain, type AnyModule } from './module.js';
import * as F from './functional.js';
import * as init from './init.js';

type Pair = F.Pair;
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: Conv2dOptions = {}) {
    super();
    checkInt(inChannels, 'Conv2d', 'inChannels', 1);
    checkInt(outChannels, 'Conv2d', 'outChannels', 1);
    const groups = opts.groups ?? 1;
    check(inChannels % groups === 0, 'Conv2d', `expected groups to divide inChannels (${inChannels}), got ${groups}`);
    check(outChannels % groups === 0, 'Conv2d', `expected groups to divide outChannels (${outChannels}), got ${groups}`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.groups = groups;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.padding = typeof opts.padding === 'string' ? opts.padding : pair(opts.padding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    const [kh, kw] = this.kernelSize;
    this.weight = new Parameter(empty([outChannels, inChannels / groups, kh, kw]));
    this.bias = (opts.bias ?? true) ? new Parameter(empty([outChannels])) : null;
    this.resetParameters();
  }

  /** torch's default: kaiming_uniform(a=sqrt(5)) weights, bias uniform(+-1/sqrt(fan_in)). */
  resetParameters(): void {
    init.torchDefault_(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernelSize=[${this.kernelSize}]`, `stride=[${this.stride}]`];
    if (this.padding !== 'valid' && (typeof this.padding === 'string' || this.padding.some((p) => p)))
      parts.push(`padding=${typeof this.padding === 'string' ? this.padding : `[${this.padding}]`}`);
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=[${this.dilation}]`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (!this.bias) parts.push('bias=false');
    return parts.join(', ');
  }
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    checkInt(inFeatures, 'Linear', 'inFeatures', 1);
    checkInt(outFeatures, 'Linear', 'outFeatures', 1);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = new Parameter(empty([outFeatures, inFeatures]));
    this.bias = (opts.bias ?? true) ? new Parameter(empty([outFeatures])) : null;
    this.resetParameters();
  }
  /** torch's default: kaiming_uniform(a=sqrt(5)) weights, bias uniform(+-1/sqrt(fan_in)). */
  resetParameters(): void {
    init.torchDefault_(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}${this.bias ? '' : ', bias=false'}`;
  }
}

export interface BatchNormOptions {
  eps?: number;
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  running_mean: Tensor | null;
  running_var: Tensor | null;
  num_batches_tracked: Tensor | null;
  readonly numFeatures: number;
  eps: number;
  /** null: a cumulative moving average (torch's momentum=None). */
  momentum: number | null;
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super();
    checkInt(numFeatures, 'BatchNorm2d', 'numFeatures', 1);
    this.numFeatures = numFeatures;
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(ones([numFeatures])) : null;
    this.bias = affine ? new Parameter(zeros([numFeatures])) : null;
    const track = opts.trackRunningStats ?? true;
    this.running_mean = track ? buffer(zeros([numFeatures])) : null;
    this.running_var = track ? buffer(ones([numFeatures])) : null;
    this.num_batches_tracked = track ? buffer(tensor(0, undefined, { dtype: 'int64' })) : null;
  }
  /** Set by optimizeForInference once the preceding convolution has absorbed this normalisation. */
  _folded = false;
  /**
   * Set by distributed.convertSyncBatchNorm: computes a training forward from statistics over every
   * rank's batch (and updates the running statistics), or returns null to leave it to this layer.
   */
  _batchStats: ((x: Tensor, momentum: number) => Tensor | null) | null = null;
  forward(x: Tensor): Tensor {
    if (this._folded) return x;
    check(x.ndim === 4, 'BatchNorm2d', `expected a 4-d (N, C, H, W) input, got ${x.ndim}-d`, 'E_SHAPE');
    check(x.shape[1] === this.numFeatures, 'BatchNorm2d', `expected ${this.numFeatures} channels, got ${x.shape[1]}`, 'E_SHAPE');
    let momentum = this.momentum ?? 0;
    if (this.training && this.num_batches_tracked) {
      this.num_batches_tracked.add_(1);
      if (this.momentum === null) momentum = 1 / this.num_batches_tracked.item();
    }
    if (this.training && this._batchStats) {
      const y = this._batchStats(x, momentum);
      if (y) return y;
    }
    const useBatchStats = this.training || !this.running_mean;
    return F.batchNorm(x, this.running_mean, this.running_var, { weight: this.weight, bias: this.bias, training: useBatchStats, momentum, eps: this.eps });
  }
  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}`;
  }
}

export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  eps: number;
  constructor(normalizedShape: number | number[], opts: { eps?: number; elementwiseAffine?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape)) : null;
    this.bias = affine ? new Parameter(zeros(this.normalizedShape)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
  override extraRepr(): string {
    return `[${this.normalizedShape}], eps=${this.eps}`;
  }
}

export class GroupNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly opts: { eps?: number; affine?: boolean } = {},
  ) {
    super();
    check(numChannels % numGroups === 0, 'GroupNorm', `expected numGroups to divide numChannels (${numChannels}), got ${numGroups}`);
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(ones([numChannels])) : null;
    this.bias = affine ? new Parameter(zeros([numChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.opts.eps ?? 1e-5 });
  }
  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}`;
  }
}

export class LocalResponseNorm extends Module {
  constructor(
    readonly size: number,
    readonly opts: { alpha?: number; beta?: number; k?: number } = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.localResponseNorm(x, this.size, this.opts);
  }
  override extraRepr(): string {
    return `${this.size}, alpha=${this.opts.alpha ?? 1e-4}, beta=${this.opts.beta ?? 0.75}, k=${this.opts.k ?? 1}`;
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly opts: F.MaxPool2dOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.opts);
  }
  override extraRepr(): string {
    return `kernelSize=${this.kernelSize}, stride=${this.opts.stride ?? this.kernelSize}, padding=${this.opts.padding ?? 0}${this.opts.ceilMode ? ', ceilMode=true' : ''}`;
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly opts: F.AvgPool2dOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.opts);
  }
  override extraRepr(): string {
    return `kernelSize=${this.kernelSize}, stride=${this.opts.stride ?? this.kernelSize}, padding=${this.opts.padding ?? 0}`;
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    return `outputSize=${this.outputSize}`;
  }
}

export class AdaptiveMaxPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveMaxPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    return `outputSize=${this.outputSize}`;
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    check(p >= 0 && p <= 1, 'Dropout', `p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, { p: this.p, training: this.training });
  }
  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

export class Dropout2d extends Module {
  constructor(readonly p = 0.5) {
    super();
    check(p >= 0 && p <= 1, 'Dropout2d', `p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout2d(x, { p: this.p, training: this.training });
  }
  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

// Activations without options.
/** With `inplace`, forward overwrites and returns its input (torch's ReLU(inplace=True)): one activation less. */
export class ReLU extends Module {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? x.relu_() : F.relu(x);
  }
  override extraRepr(): string {
    return this.inplace ? 'inplace=true' : '';
  }
}
/** min(max(x, 0), 6); in place after a norm, as torchvision's and timm's MobileNets use it. */
export class ReLU6 extends Module {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? x.relu6_() : F.relu6(x);
  }
  override extraRepr(): string {
    return this.inplace ? 'inplace=true' : '';
  }
}
/** hardswish; in place (after a norm, as torchvision's MobileNetV3) it needs no new buffer. */
export class Hardswish extends Module {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? x.hardswish_() : F.hardswish(x);
  }
  override extraRepr(): string {
    return this.inplace ? 'inplace=true' : '';
  }
}
export class Hardsigmoid extends Module {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.inplace ? x.hardsigmoid_() : F.hardsigmoid(x);
  }
  override extraRepr(): string {
    return this.inplace ? 'inplace=true' : '';
  }
}
/** A module that applies one parameter-free elementwise function (the activations below). */
function elementwise(fn: (x: Tensor) => Tensor) {
  return class extends Module {
    forward(x: Tensor): Tensor {
      return fn(x);
    }
  };
}
export class SiLU extends elementwise(F.silu) {}
export class Sigmoid extends elementwise(F.sigmoid) {}
export class Tanh extends elementwise(F.tanh) {}
export class Mish extends elementwise(F.mish) {}
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, { negativeSlope: this.negativeSlope });
  }
}
export class ELU extends Module {
  constructor(readonly alpha = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.elu(x, { alpha: this.alpha });
  }
}
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
}
export class Softplus extends Module {
  constructor(readonly opts: { beta?: number; threshold?: number } = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softplus(x, this.opts);
  }
}
export class Softmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softmax(x, { dim: this.dim });
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

/**
 * Modules applied in order, each one's output the next one's input (`In` is the first's input type,
 * `Out` the last's output type). Intermediate results are freed as soon as the next module has used
 * them (runChain), so a deep Sequential does not hold every activation's handle.
 */
export class Sequential<In = Tensor, Out = Tensor> extends Module<In, Out> {
  [index: number]: AnyModule;
  private _length = 0;
  constructor(...modules: AnyModule[]) {
    super();
    for (const m of modules) this.append(m);
  }
  get length(): number {
    return this._length;
  }
  /** Adds a module at the end (its key is the next index). */
  append(m: AnyModule): this {
    this[this._length++] = m;
    return this;
  }
  forward(x: In): Out {
    return runChain<Out, In>(x, this);
  }
  *[Symbol.iterator](): Generator<AnyModule> {
    for (let i = 0; i < this._length; i++) yield this[i];
  }
}

/** A list of modules registered under "0", "1", ...; forward is not defined. */
export class ModuleList extends Module {
  [index: number]: AnyModule;
  length = 0;
  constructor(modules: AnyModule[] = []) {
    super();
    for (const m of modules) this.push(m);
  }
  push(m: AnyModule): this {
    this[this.length++] = m;
    return this;
  }
  forward(_x: Tensor): Tensor {
    throw new ConvzooError('ModuleList: has no forward; iterate over it', 'E_ARG', 'ModuleList');
  }
  *[Symbol.iterator](): Generator<AnyModule> {
    for (let i = 0; i < this.length; i++) yield this[i];
  }
}

/** Modules under string keys (the keys become state-dict prefixes). */
export class ModuleDict extends Module {
  [key: string]: unknown;
  constructor(modules: Record<string, AnyModule> = {}) {
    super();
    Object.assign(this, modules);
  }
  forward(_x: Tensor): Tensor {
    throw new ConvzooError('ModuleDict: has no forward; index it', 'E_ARG', 'ModuleDict');
  }
}
