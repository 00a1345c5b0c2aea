// The one surface every classifier shares (timm's): forward() always returns logits;
// forwardFeatures() gives the last feature map, forwardHead() pools and classifies, resetClassifier()
// swaps the head. Extra outputs (GoogLeNet's auxiliary logits) come from separate calls.
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from '../nn/module.js';
import type { Sequential } from '../nn/layers.js';
import type { ModelMeta } from './registry.js';
import type { EvalTransform } from '../vision/preprocess.js';

export abstract class ClassifierModel extends Module {
  /** Set by the builder: the registry entry this model was made from. */
  _meta?: ModelMeta;
  /** Set by the builder: the weights' evaluation transform, when pretrained weights were loaded. */
  _weightsTag?: string;
  /**
   * Set by the builder from a convzoo checkpoint: the preprocessing its training data used for
   * evaluation (resize, crop, mean/std, channels), which predict then applies.
   */
  _evalTransform?: EvalTransform;
  /** Class names, when the weights came with them (a convzoo checkpoint); index i is logit i. */
  classes?: string[];

  abstract readonly numClasses: number;
  /** Channels of the features that the head consumes. */
  abstract readonly numFeatures: number;

  abstract forwardFeatures(x: Tensor): Tensor;
  /** Pools and classifies features; with `preLogits` returns the pooled features instead. */
  abstract forwardHead(x: Tensor, opts?: { preLogits?: boolean }): Tensor;
  /** Replaces the classifier with a new one for `numClasses` outputs (0: identity, features out). */
  abstract resetClassifier(numClasses: number): void;

  /**
   * Whether a weights file's key is left out when loading pretrained weights (checked before any data
   * is read). GoogLeNet skips the auxiliary heads it was built without, as torchvision does.
   */
  skipWeightsKey(_name: string, _fileShape: number[]): boolean { return false; }

  forward(x: Tensor): Tensor {
    return tidy(() => this.forwardHead(this.forwardFeatures(x)));
  }

  get meta(): ModelMeta | undefined { return this._meta; }
}

/**
 * The head of the VGG-style networks: pooled features flattened into a Sequential classifier; with
 * `preLogits`, every layer but the last (the penultimate features, e.g. AlexNet's fc7).
 */
export function sequentialHead(pool: Module, classifier: Sequential, x: Tensor, preLogits: boolean): Tensor {
  return tidy(() => {
    const flat = pool.forward(x).flatten(1);
    if (!preLogits) return classifier.forward(flat);
    let out = flat;
    for (let i = 0; i < classifier.length - 1; i++) out = classifier[i].forward(out);
    return out;
  });
}
