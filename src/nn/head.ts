// The classifier head every family shares (timm's create_classifier / ClassifierHead): global pooling,
// flatten, dropout, optional hidden layers, and a final Linear or 1x1 conv. The final layer stays in
// the model's own field (`fc`, `last_linear`, `classifier.6`, `head.fc`, an aux head's `fc2`), so the
// state-dict keys are the family's; the head only knows where it lives, and swaps it on reset().
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { cat } from '../tensor/creation.js';
import { check, checkInt, checkNumber } from '../errors.js';
import { Module, runChain, type AnyModule } from './module.js';
import { Conv2d, Linear, Identity, type Sequential } from './layers.js';
import * as F from './functional.js';

/**
 * Global pooling of the feature map: average, max, or both concatenated (twice the features);
 * 'none' when the input is already pooled (or flat).
 */
export type GlobalPool = 'avg' | 'max' | 'catavgmax' | 'none';

/** Where the final layer lives in the model: a field of a module, or the last entry of a Sequential classifier. */
export type ClassifierSlot = { owner: object; field: string } | { sequential: Sequential };

export interface ClassifierHeadOptions {
  /** Global pooling (default 'avg'), or the model's own pooling module (VGG's adaptive 7x7 `avgpool`). */
  pool?: GlobalPool | AnyModule;
  /** Dropout on the pooled features before the hidden layers and the final layer (default 0: none). */
  dropRate?: number;
  /** The final layer is a 1x1 convolution on the (unflattened) pooled map, as SqueezeNet's and timm's use_conv. */
  useConv?: boolean;
  /** Whether the final layer has a bias (default true; ShuffleNet v1's official classifier has none). */
  bias?: boolean;
  /** Features into the final layer when a Sequential's hidden layers come first (VGG's 4096); default: the pooled width. */
  hiddenFeatures?: number;
  /** Initialises each new final layer (VGG's N(0, 0.01)); default: the layer's own (PyTorch's) initialisation. */
  initLayer?: (layer: AnyModule) => void;
}

/** The width after pooling `numFeatures` channels: catavgmax doubles it. */
export function pooledFeatures(numFeatures: number, pool: GlobalPool | AnyModule = 'avg'): number {
  return pool === 'catavgmax' ? 2 * numFeatures : numFeatures;
}

/** Pools an (N, C, H, W) map to (N, C', 1, 1); `none` returns x itself. */
export function globalPool(x: Tensor, pool: GlobalPool): Tensor {
  switch (pool) {
    case 'avg':
      return F.adaptiveAvgPool2d(x, 1);
    case 'max':
      return F.adaptiveMaxPool2d(x, 1);
    case 'catavgmax':
      return tidy(() => cat([F.adaptiveAvgPool2d(x, 1), F.adaptiveMaxPool2d(x, 1)], 1));
    case 'none':
      return x;
  }
}

/**
 * Pools, flattens, drops out, runs any hidden layers, then the final layer. Not a Module itself: a
 * model keeps it in a private field (`_head`), while the final layer stays in the field that names its
 * keys. Construction puts a new final layer in the slot (appends it to a Sequential classifier).
 */
export class ClassifierHead {
  /** Outputs of the final layer (0: none, the head returns the pre-logit features). */
  numClasses: number;
  /** Features into the final layer. */
  readonly inFeatures: number;
  readonly pool: GlobalPool | AnyModule;
  readonly dropRate: number;
  readonly useConv: boolean;
  readonly bias: boolean;
  private readonly slot: ClassifierSlot;
  private readonly initLayer?: (layer: AnyModule) => void;

  constructor(slot: ClassifierSlot, numFeatures: number, numClasses: number, opts: ClassifierHeadOptions = {}) {
    checkInt(numFeatures, 'ClassifierHead', 'numFeatures', 1);
    checkInt(numClasses, 'ClassifierHead', 'numClasses', 0);
    this.pool = opts.pool ?? 'avg';
    this.dropRate = opts.dropRate ?? 0;
    checkNumber(this.dropRate, 'ClassifierHead', 'dropRate', 0, 1);
    this.useConv = opts.useConv ?? false;
    this.bias = opts.bias ?? true;
    check(!(this.useConv && opts.hiddenFeatures !== undefined), 'ClassifierHead', 'a 1x1 conv head has no hidden layers');
    this.inFeatures = opts.hiddenFeatures ?? pooledFeatures(numFeatures, this.pool);
    this.slot = slot;
    this.initLayer = opts.initLayer;
    this.numClasses = numClasses;
    const layer = this.makeLayer(numClasses);
    if ('sequential' in slot) slot.sequential.append(layer);
    else (slot.owner as Record<string, unknown>)[slot.field] = layer;
  }

  /** The final layer (Identity when numClasses is 0). */
  get layer(): AnyModule {
    const s = this.slot;
    return 'sequential' in s ? s.sequential[s.sequential.length - 1] : (s.owner as Record<string, AnyModule>)[s.field];
  }

  /** The hidden layers before the final one (a Sequential classifier's other entries). */
  private *hidden(): Generator<AnyModule> {
    const s = this.slot;
    if ('sequential' in s) for (let i = 0; i < s.sequential.length - 1; i++) yield s.sequential[i];
  }

  private makeLayer(numClasses: number): AnyModule {
    if (numClasses === 0) return new Identity();
    const bias = this.bias;
    const layer = this.useConv ? new Conv2d(this.inFeatures, numClasses, 1, { bias }) : new Linear(this.inFeatures, numClasses, { bias });
    this.initLayer?.(layer);
    return layer;
  }

  /**
   * Logits of a feature map, or with `preLogits` the features the final layer would see (flattened).
   * `training` switches the dropout.
   */
  forward(x: Tensor, opts: { preLogits?: boolean; training: boolean }): Tensor {
    return tidy(() => {
      const pool = this.pool;
      const flatten = (t: Tensor): Tensor => (t.ndim > 2 ? t.flatten(1) : t);
      return runChain<Tensor>(x, [
        pool instanceof Module ? pool : (t: Tensor) => globalPool(t, pool),
        this.useConv ? null : flatten,
        this.dropRate > 0 ? (t: Tensor) => F.dropout(t, { p: this.dropRate, training: opts.training }) : null,
        ...this.hidden(),
        opts.preLogits ? (this.useConv ? flatten : null) : this.layer,
        this.useConv && !opts.preLogits ? flatten : null,
      ]);
    });
  }

  /** Replaces the final layer with a new one for `numClasses` outputs (0: identity, features out); frees the old one's parameters. */
  reset(numClasses: number): void {
    checkInt(numClasses, 'resetClassifier', 'numClasses', 0);
    const old = this.layer;
    const layer = this.makeLayer(numClasses);
    const s = this.slot;
    if ('sequential' in s) s.sequential[s.sequential.length - 1] = layer;
    else (s.owner as Record<string, unknown>)[s.field] = layer;
    old.dispose(); // modules own their parameters
    this.numClasses = numClasses;
  }
}

/**
 * A head that is a submodule of its own, for families whose keys are `head.fc.*` (timm's
 * ClassifierHead): store it as the model's `head` field.
 */
export class HeadModule extends Module {
  fc!: AnyModule;
  private readonly _head: ClassifierHead;
  constructor(numFeatures: number, numClasses: number, opts: Omit<ClassifierHeadOptions, 'hiddenFeatures'> = {}) {
    super();
    this._head = new ClassifierHead({ owner: this, field: 'fc' }, numFeatures, numClasses, opts);
  }
  get numClasses(): number {
    return this._head.numClasses;
  }
  /** The head's logic, for a ClassifierModel's `_head` (forwardHead, resetClassifier, numClasses). */
  get classifierHead(): ClassifierHead {
    return this._head;
  }
  forward(x: Tensor, opts: { preLogits?: boolean } = {}): Tensor {
    return this._head.forward(x, { preLogits: opts.preLogits, training: this.training });
  }
  reset(numClasses: number): void {
    this._head.reset(numClasses);
  }
}
