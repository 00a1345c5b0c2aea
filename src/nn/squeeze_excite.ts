// Channel attention: squeeze-and-excitation (Hu et al.) and efficient channel attention (ECA, Wang et al.).
//
// One SqueezeExcite covers the three layouts that published weights use; their keys agree on
// `fc1`/`fc2`, the parameter-free parts differ only in name:
//   torchvision.ops.SqueezeExcitation  fc1, fc2 (1x1 convs with bias), activation, scale_activation
//   timm SEModule                      fc1, bn (optional), act, fc2, gate
//   legacy SENet (timm legacy_senet)   fc1, relu, fc2, sigmoid, with channels // reduction
// SqueezeExcite.torchvision() and SqueezeExcite.legacySenet() give the latter two; the defaults are timm's.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { check, checkInt, checkNumber } from '../errors.js';
import { Module } from './module.js';
import { Conv2d, Linear } from './layers.js';
import { Conv1d } from './conv1d.js';
import { getActivation, isIdentityAct, type ActLayer } from './activations.js';
import { createNorm, registerAs, checkFieldNames, type NormLayer } from './conv_norm_act.js';
import { makeDivisible } from './make_divisible.js';

/** Field names (state-dict keys) of a SqueezeExcite's sub-modules. */
export interface SqueezeExciteNames {
  fc1?: string;
  norm?: string;
  act?: string;
  fc2?: string;
  gate?: string;
}

export interface SqueezeExciteOptions {
  /** Reduced width = makeDivisible(channels * rdRatio, rdDivisor, undefined, rdRoundLimit); default 1/16. */
  rdRatio?: number;
  /** A fixed reduced width (overrides rdRatio). */
  rdChannels?: number;
  /** Default 8. */
  rdDivisor?: number;
  /** Default 0 (timm's SE: nearest multiple, no 10% rule). */
  rdRoundLimit?: number;
  /** Between fc1 and fc2; default 'relu'. */
  act?: ActLayer;
  /** The gate on the channel weights; default 'sigmoid' ('hardsigmoid' for MobileNetV3). */
  gate?: ActLayer;
  /** Normalisation after fc1 (timm's optional `bn`); default none. */
  norm?: NormLayer;
  /** Biases on fc1 and fc2; default true. */
  bias?: boolean;
  /** 'conv': fc1/fc2 are 1x1 convs on (N, C, 1, 1) (default); 'linear': Linear layers on (N, C). */
  form?: 'conv' | 'linear';
  /** Default { fc1: 'fc1', norm: 'bn', act: 'act', fc2: 'fc2', gate: 'gate' } (timm's). */
  names?: SqueezeExciteNames;
}

/** x * gate(fc2(act(norm(fc1(mean over H, W of x))))). */
export class SqueezeExcite extends Module {
  readonly _fc1: Conv2d | Linear;
  readonly _norm: Module | null;
  readonly _act: Module | null;
  readonly _fc2: Conv2d | Linear;
  readonly _gate: Module;
  readonly channels: number;
  readonly rdChannels: number;
  readonly form: 'conv' | 'linear';

  constructor(channels: number, opts: SqueezeExciteOptions = {}) {
    super();
    checkInt(channels, 'SqueezeExcite', 'channels', 1);
    const {
      rdRatio = 1 / 16,
      rdDivisor = 8,
      rdRoundLimit = 0,
      act = 'relu',
      gate = 'sigmoid',
      norm = false,
      bias = true,
      form = 'conv',
      names: given = {},
    } = opts;
    const names = { fc1: given.fc1 ?? 'fc1', norm: given.norm ?? 'bn', act: given.act ?? 'act', fc2: given.fc2 ?? 'fc2', gate: given.gate ?? 'gate' };
    checkFieldNames(this, Object.values(names), 'SqueezeExcite');
    check(form === 'conv' || form === 'linear', 'SqueezeExcite', `form must be 'conv' or 'linear', got '${String(form)}'`);
    check(form === 'conv' || norm === false, 'SqueezeExcite', "a norm needs form 'conv' (BatchNorm2d works on (N, C, 1, 1))");
    let rd = opts.rdChannels;
    if (rd === undefined) {
      checkNumber(rdRatio, 'SqueezeExcite', 'rdRatio', 0);
      rd = makeDivisible(channels * rdRatio, rdDivisor, undefined, rdRoundLimit);
    }
    checkInt(rd, 'SqueezeExcite', 'rdChannels', 1);
    this.channels = channels;
    this.rdChannels = rd;
    this.form = form;
    const fc = (inC: number, outC: number) => (form === 'conv' ? new Conv2d(inC, outC, 1, { bias }) : new Linear(inC, outC, { bias }));
    const normLayer = createNorm(norm, rd);
    this._fc1 = registerAs(this, names.fc1, fc(channels, rd));
    this._norm = normLayer && registerAs(this, names.norm, normLayer);
    this._act = isIdentityAct(act) ? null : registerAs(this, names.act, getActivation(act));
    this._fc2 = registerAs(this, names.fc2, fc(rd, channels));
    this._gate = registerAs(this, names.gate, getActivation(gate));
  }

  /**
   * torchvision.ops.SqueezeExcitation(input_channels, squeeze_channels, activation, scale_activation):
   * a fixed squeeze width and torchvision's names (`activation`, `scale_activation`).
   */
  static torchvision(inputChannels: number, squeezeChannels: number, opts: { act?: ActLayer; gate?: ActLayer } = {}): SqueezeExcite {
    return new SqueezeExcite(inputChannels, {
      rdChannels: squeezeChannels,
      act: opts.act ?? 'relu',
      gate: opts.gate ?? 'sigmoid',
      names: { act: 'activation', gate: 'scale_activation' },
    });
  }

  /** The SENet release's SEModule(channels, reduction): channels // reduction wide, `relu` and `sigmoid`. */
  static legacySenet(channels: number, reduction = 16): SqueezeExcite {
    checkInt(reduction, 'SqueezeExcite.legacySenet', 'reduction', 1);
    return new SqueezeExcite(channels, { rdChannels: Math.floor(channels / reduction), names: { act: 'relu', gate: 'sigmoid' } });
  }

  get fc1Layer(): Conv2d | Linear {
    return this._fc1;
  }
  get fc2Layer(): Conv2d | Linear {
    return this._fc2;
  }

  forward(x: Tensor): Tensor {
    check(x.ndim === 4 && x.shape[1] === this.channels, 'SqueezeExcite', `expected (N, ${this.channels}, H, W), got [${x.shape.join(', ')}]`, 'E_SHAPE');
    return tidy(() => {
      const linear = this.form === 'linear';
      let s = x.mean([2, 3], { keepdim: !linear });
      s = this._fc1.forward(s);
      if (this._norm) s = this._norm.forward(s);
      if (this._act) s = this._act.forward(s);
      s = this._gate.forward(this._fc2.forward(s));
      return x.mul(linear ? s.view(x.shape[0], this.channels, 1, 1) : s);
    });
  }
  override extraRepr(): string {
    return `${this.channels}, rdChannels=${this.rdChannels}${this.form === 'linear' ? ', form=linear' : ''}`;
  }
}

/** ECA's kernel size for `channels`: t = int(|log2(C) + beta| / gamma), plus 1 when even, at least 3. */
export function ecaKernelSize(channels: number, gamma = 2, beta = 1): number {
  // log(C)/log(2) as Python's math.log(C, 2) computes it: t truncates, so at powers of two (where
  // log2(C) + beta can be an exact multiple of gamma) one ulp would change the kernel size.
  const t = Math.trunc(Math.abs(Math.log(channels) / Math.log(2) + beta) / gamma);
  return Math.max(t % 2 ? t : t + 1, 3);
}

export interface EcaOptions {
  /** A fixed odd kernel size; default ecaKernelSize(channels, gamma, beta). */
  kernelSize?: number;
  gamma?: number;
  beta?: number;
  /** Default 'sigmoid'. */
  gate?: ActLayer;
}

/**
 * Efficient channel attention (timm's EcaModule, used by eca_nfnet and ECA-ResNet): the channel means,
 * a 1-d convolution across neighbouring channels (`conv`, no bias), a gate. Keys: `conv.weight` [1, 1, k].
 */
export class EcaModule extends Module {
  conv: Conv1d;
  gate: Module;
  readonly channels: number;
  constructor(channels: number, opts: EcaOptions = {}) {
    super();
    checkInt(channels, 'EcaModule', 'channels', 1);
    const k = opts.kernelSize ?? ecaKernelSize(channels, opts.gamma, opts.beta);
    check(Number.isInteger(k) && k % 2 === 1, 'EcaModule', `expected an odd kernelSize, got ${k}`);
    this.channels = channels;
    this.conv = new Conv1d(1, 1, k, { padding: (k - 1) / 2, bias: false });
    this.gate = getActivation(opts.gate ?? 'sigmoid');
  }
  forward(x: Tensor): Tensor {
    check(x.ndim === 4 && x.shape[1] === this.channels, 'EcaModule', `expected (N, ${this.channels}, H, W), got [${x.shape.join(', ')}]`, 'E_SHAPE');
    return tidy(() => {
      const n = x.shape[0];
      const y = this.conv.forward(x.mean([2, 3]).view(n, 1, -1));
      return x.mul(this.gate.forward(y).view(n, -1, 1, 1));
    });
  }
  override extraRepr(): string {
    return `${this.channels}, kernelSize=${this.conv.kernelSize}`;
  }
}
