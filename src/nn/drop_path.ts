// Stochastic depth as a module (timm's DropPath), and the per-block rate schedule that families use.
import type { Tensor } from '../tensor/tensor.js';
import { check, checkInt } from '../errors.js';
import { Module } from './module.js';
import * as F from './functional.js';

/** F.dropPath in training mode, the identity in eval mode or at p = 0. */
export class DropPath extends Module {
  readonly p: number;
  readonly scaleByKeep: boolean;
  constructor(p = 0, opts: { scaleByKeep?: boolean } = {}) {
    super();
    check(typeof p === 'number' && p >= 0 && p <= 1, 'DropPath', `p must be in [0, 1], got ${String(p)}`);
    this.p = p;
    this.scaleByKeep = opts.scaleByKeep ?? true;
  }
  forward(x: Tensor): Tensor {
    return F.dropPath(x, this.p, { training: this.training, scaleByKeep: this.scaleByKeep });
  }
  override extraRepr(): string {
    return `p=${this.p}${this.scaleByKeep ? '' : ', scaleByKeep=false'}`;
  }
}

/**
 * Drop-path rates rising linearly over a network's blocks, from 0 for the first to `maxRate`
 * for the last: maxRate * i / (n - 1), as timm's ResNet and torch.linspace-based families. With
 * `includeEnd: false` the last block gets maxRate * (n - 1) / n (maxRate * i / n, EfficientNet's rule).
 */
export function dropPathRates(numBlocks: number, maxRate: number, opts: { includeEnd?: boolean } = {}): number[] {
  checkInt(numBlocks, 'dropPathRates', 'numBlocks', 0);
  check(typeof maxRate === 'number' && maxRate >= 0 && maxRate <= 1, 'dropPathRates', `maxRate must be in [0, 1], got ${String(maxRate)}`);
  const denom = (opts.includeEnd ?? true) ? numBlocks - 1 : numBlocks;
  return Array.from({ length: numBlocks }, (_, i) => (denom > 0 ? (maxRate * i) / denom : 0));
}
