// Reusable blocks made of layers. Field names follow torchvision's BasicConv2d (`conv`, `bn`), so a
// block stored as `conv1` gives the state-dict keys `conv1.conv.weight`, `conv1.bn.running_mean`.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from './module.js';
import { Conv2d, BatchNorm2d, type Conv2dOptions } from './layers.js';
import type { Pair } from './functional.js';

export interface ConvBnActOptions extends Conv2dOptions {
  /** Batch norm after the convolution (default true). Without it the convolution has a bias unless `bias` says otherwise. */
  norm?: boolean;
  /** Batch norm epsilon (torch's 1e-5; GoogLeNet and Inception use 1e-3). */
  eps?: number;
  /** Activation after the norm (default 'relu'). */
  act?: 'relu' | 'none';
}

/** Convolution, optional batch norm, optional ReLU: torchvision's BasicConv2d and its bias-carrying, norm-free form. */
export class ConvBnAct extends Module {
  conv: Conv2d;
  bn: BatchNorm2d | null;
  readonly act: 'relu' | 'none';
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: ConvBnActOptions = {}) {
    super();
    const { norm = true, eps, act = 'relu', bias, ...conv } = opts;
    this.conv = new Conv2d(inChannels, outChannels, kernelSize, { ...conv, bias: bias ?? !norm });
    this.bn = norm ? new BatchNorm2d(outChannels, eps === undefined ? {} : { eps }) : null;
    this.act = act;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.conv.forward(x);
      const z = this.bn ? this.bn.forward(y) : y;
      return this.act === 'relu' ? z.relu_() : z;
    });
  }
  override extraRepr(): string {
    return this.act === 'none' ? 'act=none' : '';
  }
}
