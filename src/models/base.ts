// The one surface every classifier shares (timm's): forward() always returns logits;
// forwardFeatures() gives the last feature map, forwardHead() pools and classifies, resetClassifier()
// swaps the head. Extra outputs (GoogLeNet's auxiliary logits) come from separate calls.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from '../nn/module.js';
import type { ClassifierHead } from '../nn/head.js';
import type { ModelMeta } from './registry.js';
import type { EvalTransform } from '../vision/preprocess.js';
import { ConvzooError } from '../errors.js';
import { describe, optimizeModelForInference, type InferenceOptimization, type OptimizeForInferenceOptions } from './optimize.js';

export abstract class ClassifierModel extends Module {
  /** Set by the builder: the registry entry this model was made from. */
  _meta?: ModelMeta;
  /** Set by buildModel: the architecture options it was built with (a worker thread rebuilds the same network from them). */
  _buildOptions?: Readonly<Record<string, unknown>>;
  /** Set by createModel: the tag (or file) of the weights it loaded; undefined for a randomly initialised model. */
  _weightsTag?: string;
  /**
   * Set by the builder from a convzoo checkpoint: the preprocessing its training data used for
   * evaluation (resize, crop, mean/std, channels), which predict then applies.
   */
  _evalTransform?: EvalTransform;
  /** Class names, when the weights came with them (a convzoo checkpoint); index i is logit i. */
  classes?: string[];

  /** Channels of the features that the head consumes. */
  abstract readonly numFeatures: number;
  /** The classifier head (made by the family's constructor; its final layer lives in the family's own field). */
  protected abstract readonly _head: ClassifierHead;

  /** Outputs of the classifier (0 after resetClassifier(0): forward returns features). */
  get numClasses(): number {
    return this._head.numClasses;
  }

  abstract forwardFeatures(x: Tensor): Tensor;
  /** Re-draws every weight with the family's initialisation. */
  abstract initWeights(): void;

  /** Pools and classifies features; with `preLogits` returns the features the final layer would see. */
  forwardHead(x: Tensor, opts: { preLogits?: boolean } = {}): Tensor {
    return this._head.forward(x, { preLogits: opts.preLogits, training: this.training });
  }
  /** Replaces the final layer with a new one for `numClasses` outputs (0: identity, features out), freeing the old one. */
  resetClassifier(numClasses: number): void {
    this._head.reset(numClasses);
  }

  /**
   * Whether a weights file's key is left out when loading pretrained weights (checked before any data
   * is read). GoogLeNet skips the auxiliary heads it was built without, as torchvision does.
   */
  skipWeightsKey(_name: string, _fileShape: number[]): boolean {
    return false;
  }

  forward(x: Tensor): Tensor {
    const fast = this._inference;
    if (!fast) return tidy(() => this.forwardHead(this.forwardFeatures(x)));
    return tidy(() => {
      let input = x.dtype === fast.dtype ? x : x.to(fast.dtype);
      if (fast.channelsLast && input.ndim === 4) input = input.contiguous('channels_last');
      const logits = this.forwardHead(this.forwardFeatures(input));
      return logits.dtype === 'float32' ? logits : logits.to('float32');
    });
  }

  /** Set by optimizeForInference: what the fast path did; undefined for a trainable model. */
  _inference?: InferenceOptimization;

  /**
   * Turns this model into an inference-only one, in place (torch.jit.optimize_for_inference's role):
   * batch norms folded into the convolutions before them, 4-d weights and activations channels-last, and
   * with `dtype: 'bfloat16'` weights and activations in bf16 (forward still takes and returns float32).
   * Eval mode only: train() throws afterwards. Returns what it did.
   */
  optimizeForInference(opts: OptimizeForInferenceOptions = {}): InferenceOptimization {
    return optimizeModelForInference(this, opts);
  }

  override train(mode = true): this {
    if (mode && this._inference)
      throw new ConvzooError(
        `train: this model was optimized for inference (${describe(this._inference)}); it only runs forward. Build or load a new model to train`,
        'E_UNSUPPORTED',
        'train',
      );
    return super.train(mode);
  }

  get meta(): ModelMeta | undefined {
    return this._meta;
  }
}
