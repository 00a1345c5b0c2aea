// ShuffleNet's channel shuffle as a module; see F.channelShuffle for the two permutations.
import type { Tensor } from '../tensor/tensor.js';
import { checkInt } from '../errors.js';
import { Module } from './module.js';
import * as F from './functional.js';

export class ChannelShuffle extends Module {
  readonly groups: number;
  readonly variant: F.ChannelShuffleVariant;
  constructor(groups: number, opts: { variant?: F.ChannelShuffleVariant } = {}) {
    super();
    checkInt(groups, 'ChannelShuffle', 'groups', 1);
    this.groups = groups;
    this.variant = opts.variant ?? 'torchvision';
  }
  forward(x: Tensor): Tensor {
    return F.channelShuffle(x, this.groups, { variant: this.variant });
  }
  override extraRepr(): string {
    return `groups=${this.groups}${this.variant === 'torchvision' ? '' : `, variant=${this.variant}`}`;
  }
}
