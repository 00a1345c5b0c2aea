// Conv-norm-act (post-activation, torchvision's Conv2dNormActivation / timm's ConvNormAct) and
// norm-act-conv (pre-activation: DenseNet, DPN's BnActConv2d, Residual Attention's units).
//
// Field names are state-dict keys, and families disagree on them (timm: `conv`/`bn`; DenseNet:
// `norm1`/`relu1`/`conv1`), so the three sub-module names are options. The block keeps typed
// references to them (convLayer, normLayer, actLayer) whatever they are called.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { ConvzooError } from '../errors.js';
import { Module } from './module.js';
import { BatchNorm2d, GroupNorm, LayerNorm, type BatchNormOptions, type Conv2d } from './layers.js';
import { createConv2d, type SameAwareConv2dOptions } from './conv2d_same.js';
import { getActivation, isIdentityAct, type ActLayer } from './activations.js';
import type { Pair } from './functional.js';

/**
 * A normalisation layer: true for BatchNorm2d, BatchNorm2d's options (eps, momentum), a factory
 * (numChannels -> Module, e.g. `(c) => new GroupNorm(32, c)`), or false for none.
 */
export type NormLayer = boolean | BatchNormOptions | ((numChannels: number) => Module);

/** The norm module that `norm` describes for `numChannels` channels, or null for none. */
export function createNorm(norm: NormLayer, numChannels: number): Module | null {
  if (norm === false) return null;
  if (norm === true) return new BatchNorm2d(numChannels);
  if (typeof norm === 'function') {
    const m = norm(numChannels);
    if (!(m instanceof Module))
      throw new ConvzooError(`createNorm: the factory returned ${m === null ? 'null' : typeof m}, not a Module`, 'E_ARG', 'createNorm');
    return m;
  }
  return new BatchNorm2d(numChannels, norm);
}

/**
 * Whether a norm's output is a new tensor that only the next layer reads, so that the activation after
 * it may work in place (as torchvision's and timm's ReLU(inplace=True) after BN). Not assumed of a
 * norm from a factory, which might return its input.
 */
export function makesFreshOutput(norm: Module | null): boolean {
  return norm instanceof BatchNorm2d || norm instanceof GroupNorm || norm instanceof LayerNorm;
}

/** Field names (state-dict keys) of a block's sub-modules. */
export interface BlockNames {
  conv?: string;
  norm?: string;
  act?: string;
}

/**
 * Checks that `names` can be state-dict keys of `owner` (letters, digits and _, not starting with _,
 * not an existing field, all different). Blocks call it before building anything, so a bad name
 * fails without leaving parameters behind.
 */
export function checkFieldNames(owner: Module, names: readonly string[], fn: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_]*$/.test(name) || name in owner || seen.has(name)) {
      throw new ConvzooError(
        `${fn}: '${String(name)}' cannot be a sub-module name (letters, digits and _, not starting with _, not already a field, no repeats)`,
        'E_ARG',
        fn,
      );
    }
    seen.add(name);
  }
}

/** Sets `owner[name] = m` (a sub-module under a chosen state-dict key) and returns m. */
export function registerAs<M extends Module>(owner: Module, name: string, m: M): M {
  (owner as unknown as Record<string, Module>)[name] = m;
  return m;
}

export interface ConvNormActOptions extends SameAwareConv2dOptions {
  /** Default true (BatchNorm2d). */
  norm?: NormLayer;
  /** Default 'relu'; 'none' leaves the activation out. */
  act?: ActLayer;
  /** The conv has a bias only when there is no norm, unless this says otherwise. */
  bias?: boolean;
  /** Default { conv: 'conv', norm: 'bn', act: 'act' }. */
  names?: BlockNames;
}

/**
 * Convolution, normalisation, activation. Padding defaults to getPadding(k, stride, dilation)
 * ((k - 1) / 2 * dilation for odd kernels); 'same' is TensorFlow's (see createConv2d).
 */
export class ConvNormAct extends Module {
  readonly _conv: Conv2d;
  readonly _norm: Module | null;
  readonly _act: Module | null;
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: ConvNormActOptions = {}) {
    super();
    const { norm = true, act = 'relu', bias, names: given = {}, ...conv } = opts;
    const names = { conv: given.conv ?? 'conv', norm: given.norm ?? 'bn', act: given.act ?? 'act' };
    checkFieldNames(this, [names.conv, names.norm, names.act], 'ConvNormAct');
    const normLayer = createNorm(norm, outChannels);
    this._conv = registerAs(this, names.conv, createConv2d(inChannels, outChannels, kernelSize, { ...conv, bias: bias ?? !normLayer }));
    this._norm = normLayer && registerAs(this, names.norm, normLayer);
    this._act = isIdentityAct(act) ? null : registerAs(this, names.act, getActivation(act, { inplace: makesFreshOutput(normLayer) }));
  }
  get convLayer(): Conv2d {
    return this._conv;
  }
  get normLayer(): Module | null {
    return this._norm;
  }
  get actLayer(): Module | null {
    return this._act;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = this._conv.forward(x);
      if (this._norm) y = this._norm.forward(y);
      return this._act ? this._act.forward(y) : y;
    });
  }
}

export interface NormActConvOptions extends ConvNormActOptions {
  /** Default false: pre-activation convs feed a norm or a sum, not a bias (DenseNet, DPN). */
  bias?: boolean;
}

/**
 * Pre-activation order: normalisation and activation of the input, then the convolution. The norm has
 * inChannels features. Default names { norm: 'bn', act: 'act', conv: 'conv' } (DPN's BnActConv2d);
 * DenseNet's layer is { norm: 'norm1', act: 'relu1', conv: 'conv1' }.
 */
export class NormActConv extends Module {
  readonly _norm: Module | null;
  readonly _act: Module | null;
  readonly _conv: Conv2d;
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: NormActConvOptions = {}) {
    super();
    const { norm = true, act = 'relu', bias = false, names: given = {}, ...conv } = opts;
    const names = { conv: given.conv ?? 'conv', norm: given.norm ?? 'bn', act: given.act ?? 'act' };
    checkFieldNames(this, [names.norm, names.act, names.conv], 'NormActConv');
    const normLayer = createNorm(norm, inChannels);
    // Registration order is state-dict order: norm before conv, as in the pre-activation families.
    this._norm = normLayer && registerAs(this, names.norm, normLayer);
    this._act = isIdentityAct(act) ? null : registerAs(this, names.act, getActivation(act, { inplace: makesFreshOutput(normLayer) }));
    this._conv = registerAs(this, names.conv, createConv2d(inChannels, outChannels, kernelSize, { ...conv, bias }));
  }
  get convLayer(): Conv2d {
    return this._conv;
  }
  get normLayer(): Module | null {
    return this._norm;
  }
  get actLayer(): Module | null {
    return this._act;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = this._norm ? this._norm.forward(x) : x;
      if (this._act) y = this._act.forward(y);
      return this._conv.forward(y);
    });
  }
}
