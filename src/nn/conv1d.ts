// Conv1d, for the channel convolution of ECA attention (state-dict keys and default initialisation
// as torch.nn.Conv1d: weight [out, in/groups, k], bias [out]).
import type { Tensor } from '../tensor/tensor.js';
import { empty } from '../tensor/creation.js';
import { check, checkInt } from '../errors.js';
import { Module, Parameter } from './module.js';
import * as F from './functional.js';
import * as init from './init.js';

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv1d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number, opts: Conv1dOptions = {}) {
    super();
    checkInt(inChannels, 'Conv1d', 'inChannels', 1);
    checkInt(outChannels, 'Conv1d', 'outChannels', 1);
    checkInt(kernelSize, 'Conv1d', 'kernelSize', 1);
    const groups = opts.groups ?? 1;
    checkInt(groups, 'Conv1d', 'groups', 1);
    check(
      inChannels % groups === 0 && outChannels % groups === 0,
      'Conv1d',
      `expected groups to divide inChannels (${inChannels}) and outChannels (${outChannels}), got ${groups}`,
    );
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.groups = groups;
    this.weight = new Parameter(empty([outChannels, inChannels / groups, kernelSize]));
    this.bias = (opts.bias ?? true) ? new Parameter(empty([outChannels])) : null;
    this.resetParameters();
  }

  /** torch's default: kaiming_uniform(a=sqrt(5)) weights, bias uniform(+-1/sqrt(fan_in)). */
  resetParameters(): void {
    init.torchDefault_(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.conv1d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernelSize=${this.kernelSize}`, `stride=${this.stride}`];
    if (this.padding) parts.push(`padding=${this.padding}`);
    if (this.dilation !== 1) parts.push(`dilation=${this.dilation}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (!this.bias) parts.push('bias=false');
    return parts.join(', ');
  }
}
