// The one surface every classifier shares (timm's): forward() always returns logits;
// forwardFeatures() gives the last feature map, forwardHead() pools and classifies, resetClassifier()
// swaps the head. Extra outputs (GoogLeNet's auxiliary logits) come from separate calls.
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from '../nn/module.js';
import type { ModelMeta } from './registry.js';

export abstract class ClassifierModel extends Module {
  /** Set by the builder: the registry entry this model was made from. */
  _meta?: ModelMeta;
  /** Set by the builder: the weights' evaluation transform, when pretrained weights were loaded. */
  _weightsTag?: string;

  abstract readonly numClasses: number;
  /** Channels of the features that the head consumes. */
  abstract readonly numFeatures: number;

  abstract forwardFeatures(x: Tensor): Tensor;
  /** Pools and classifies features; with `preLogits` returns the pooled features instead. */
  abstract forwardHead(x: Tensor, opts?: { preLogits?: boolean }): Tensor;
  /** Replaces the classifier with a new one for `numClasses` outputs (0: identity, features out). */
  abstract resetClassifier(numClasses: number): void;

  forward(x: Tensor): Tensor {
    return tidy(() => this.forwardHead(this.forwardFeatures(x)));
  }

  get meta(): ModelMeta | undefined { return this._meta; }
}
