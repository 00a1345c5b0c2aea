// GoogLeNet (Inception v1).
// Szegedy et al., "Going Deeper with Convolutions" (2014). `googlenet` is torchvision's variant (batch
// norm after every convolution, 3x3 convolutions in the "5x5" branch, 2x2 final max-pool), key-for-key
// compatible with torchvision's weights. `googlenet_original` is the paper's network: no batch norm,
// LRN in the stem, true 5x5 branches, 3x3/2 max-pools throughout, auxiliary heads with a 5x5/3 average pool.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { tensor, cat } from '../tensor/creation.js';
import { Module, runChain, type AnyModule, type LoadStateDictOptions, type LoadStateDictResult } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, MaxPool2d, LocalResponseNorm, Sequential } from '../nn/layers.js';
import { ConvBnAct } from '../nn/blocks.js';
import { ClassifierHead } from '../nn/head.js';
import * as F from '../nn/functional.js';
import * as init from '../nn/init.js';
import { check } from '../errors.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions } from './registry.js';
import { opt, type OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- Table 1 as data

/** One inception module's row of Table 1: output channels of each branch. */
interface InceptionRow {
  ch1x1: number;
  ch3x3red: number;
  ch3x3: number;
  ch5x5red: number;
  ch5x5: number;
  poolProj: number;
}
const row = (ch1x1: number, ch3x3red: number, ch3x3: number, ch5x5red: number, ch5x5: number, poolProj: number): InceptionRow => ({
  ch1x1,
  ch3x3red,
  ch3x3,
  ch5x5red,
  ch5x5,
  poolProj,
});

const INCEPTION_ROWS = {
  inception3a: row(64, 96, 128, 16, 32, 32),
  inception3b: row(128, 128, 192, 32, 96, 64),
  inception4a: row(192, 96, 208, 16, 48, 64),
  inception4b: row(160, 112, 224, 24, 64, 64),
  inception4c: row(128, 128, 256, 24, 64, 64),
  inception4d: row(112, 144, 288, 32, 64, 64),
  inception4e: row(256, 160, 320, 32, 128, 128),
  inception5a: row(256, 160, 320, 32, 128, 128),
  inception5b: row(384, 192, 384, 48, 128, 128),
};
type InceptionName = keyof typeof INCEPTION_ROWS;
const outChannels = (r: InceptionRow): number => r.ch1x1 + r.ch3x3 + r.ch5x5 + r.poolProj;

/** What differs between torchvision's network and the paper's (fixed by each registration). */
export interface GoogLeNetConfig {
  batchNorm: boolean;
  /** LRN after the first max-pool and after conv3 (the paper's stem). */
  lrn: boolean;
  /** Kernel of the "5x5" branch: torchvision uses 3 (a bug kept for weight compatibility), the paper 5. */
  branch3Kernel: 3 | 5;
  /** The max-pool between stages 4 and 5: torchvision's 2x2/2, the paper's 3x3/2. */
  maxpool4Kernel: 2 | 3;
  /** Auxiliary heads' pooling: torchvision's adaptive 4x4, or the paper's 5x5 / 3 average pool (14x14 -> 4x4). */
  auxPool: 'adaptive' | 'avg5s3';
  /** Dropout before the classifier unless the options say otherwise: torchvision's 0.2, the paper's 0.4. */
  defaultDropRate: number;
}

const TORCHVISION: GoogLeNetConfig = { batchNorm: true, lrn: false, branch3Kernel: 3, maxpool4Kernel: 2, auxPool: 'adaptive', defaultDropRate: 0.2 };
const PAPER: GoogLeNetConfig = { batchNorm: false, lrn: true, branch3Kernel: 5, maxpool4Kernel: 3, auxPool: 'avg5s3', defaultDropRate: 0.4 };

/** Dropout in the auxiliary heads (section 5: "a dropout layer with 70% ratio of dropped outputs"), unless the options say otherwise. */
const AUX_DROP_RATE = 0.7;

/** The paper: "the losses of the auxiliary classifiers were weighted by 0.3" during training. */
export const GOOGLENET_AUX_LOSS_WEIGHT = 0.3;

// ---- blocks

/** Conv (+ BN with torchvision's eps 1e-3) + ReLU; without BN the convolution carries a bias. */
const convBlock = (cfg: GoogLeNetConfig, inC: number, outC: number, k: number, opts: { stride?: number; padding?: number } = {}): ConvBnAct =>
  new ConvBnAct(inC, outC, k, { ...opts, norm: cfg.batchNorm, eps: 1e-3 });

/** Figure 2(b): 1x1, 1x1 -> 3x3, 1x1 -> 5x5 and 3x3 max-pool -> 1x1 branches, concatenated. */
export class Inception extends Module {
  branch1: ConvBnAct;
  branch2: Sequential;
  branch3: Sequential;
  branch4: Sequential;
  constructor(inC: number, r: InceptionRow, cfg: GoogLeNetConfig) {
    super();
    const k = cfg.branch3Kernel;
    this.branch1 = convBlock(cfg, inC, r.ch1x1, 1);
    this.branch2 = new Sequential(convBlock(cfg, inC, r.ch3x3red, 1), convBlock(cfg, r.ch3x3red, r.ch3x3, 3, { padding: 1 }));
    this.branch3 = new Sequential(convBlock(cfg, inC, r.ch5x5red, 1), convBlock(cfg, r.ch5x5red, r.ch5x5, k, { padding: (k - 1) / 2 }));
    this.branch4 = new Sequential(new MaxPool2d(3, { stride: 1, padding: 1, ceilMode: true }), convBlock(cfg, inC, r.poolProj, 1));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => cat([this.branch1.forward(x), this.branch2.forward(x), this.branch3.forward(x), this.branch4.forward(x)], 1));
  }
}

/** Auxiliary classifier (section 5): average pool, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout 0.7, FC. */
export class InceptionAux extends Module {
  conv: ConvBnAct;
  fc1: Linear;
  fc2!: AnyModule;
  /** The last FC (`fc2`): the part resetClassifier replaces. */
  readonly _head: ClassifierHead;
  constructor(
    inC: number,
    numClasses: number,
    private readonly _cfg: GoogLeNetConfig,
    private readonly _dropRate: number,
  ) {
    super();
    this.conv = convBlock(_cfg, inC, 128, 1);
    this.fc1 = new Linear(2048, 1024);
    this._head = new ClassifierHead({ owner: this, field: 'fc2' }, 1024, numClasses, { pool: 'none' });
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const pooled = this._cfg.auxPool === 'adaptive' ? F.adaptiveAvgPool2d(x, 4) : F.avgPool2d(x, 5, { stride: 3 });
      const h = this.fc1.forward(this.conv.forward(pooled).flatten(1)).relu_();
      return this._head.forward(F.dropout(h, { p: this._dropRate, training: this.training }), { training: this.training });
    });
  }
}

// ---- the network

export interface GoogLeNetOptions extends ModelOptions {
  /** Dropout before the classifier: torchvision's 0.2, the paper's 0.4. */
  dropRate?: number;
  /** Dropout in the auxiliary heads (0.7). */
  auxDropRate?: number;
  /**
   * Build the auxiliary heads `aux1` (after inception4a) and `aux2` (after inception4d). Default true,
   * as torchvision's GoogLeNet class and `googlenet()` without weights: the state dict then holds their keys.
   */
  auxLogits?: boolean;
  /**
   * Map ImageNet-normalised input to the (x - 0.5) / 0.5 normalisation the original weights were
   * trained with. Default: true when pretrained weights were loaded through createModel(), false
   * otherwise (torchvision's rule: `transform_input` defaults to True when `weights` is given).
   */
  transformInput?: boolean;
}

export const GOOGLENET_OPTIONS: OptionTable<GoogLeNetOptions> = {
  auxDropRate: opt.rate(),
  auxLogits: opt.boolean(),
  transformInput: opt.boolean(),
};

/** Auxiliary outputs next to the main logits; see GoogLeNet.forwardWithAux. */
export interface GoogLeNetOutputs {
  logits: Tensor;
  aux: Tensor[];
}

/**
 * GoogLeNet. `forward()` returns the main logits in every mode. The auxiliary classifiers are run by
 * `forwardWithAux(x)`, which returns `{ logits, aux: [aux1, aux2] }` (aux1 is the head after
 * inception4a, aux2 the one after inception4d), or `aux: []` for a model built without heads. Training
 * adds the auxiliary losses weighted by `auxLossWeight` (0.3). The heads run in eval mode too, with
 * their dropout off.
 */
export class GoogLeNet extends ClassifierModel {
  conv1: ConvBnAct;
  maxpool1: MaxPool2d;
  lrn1: LocalResponseNorm | null;
  conv2: ConvBnAct;
  conv3: ConvBnAct;
  lrn2: LocalResponseNorm | null;
  maxpool2: MaxPool2d;
  inception3a: Inception;
  inception3b: Inception;
  maxpool3: MaxPool2d;
  inception4a: Inception;
  inception4b: Inception;
  inception4c: Inception;
  inception4d: Inception;
  inception4e: Inception;
  maxpool4: MaxPool2d;
  inception5a: Inception;
  inception5b: Inception;
  aux1: InceptionAux | null;
  aux2: InceptionAux | null;
  fc!: AnyModule;
  readonly numFeatures = 1024;
  readonly dropRate: number;
  readonly auxLossWeight = GOOGLENET_AUX_LOSS_WEIGHT;
  protected readonly _head: ClassifierHead;
  private readonly _transformInput: boolean | undefined;
  private readonly _cfg: GoogLeNetConfig;

  constructor(cfg: GoogLeNetConfig, opts: GoogLeNetOptions = {}) {
    super();
    this._cfg = cfg;
    const numClasses = opts.numClasses ?? 1000;
    this.dropRate = opts.dropRate ?? cfg.defaultDropRate;
    this._transformInput = opts.transformInput;
    const inChans = opts.inChans ?? 3;
    check(!(opts.transformInput && inChans !== 3), 'GoogLeNet', `transformInput needs 3 input channels, got inChans=${inChans}`);
    const pool = (k: number, stride: number) => new MaxPool2d(k, { stride, ceilMode: true });
    // Caffe's LRN (local_size 5, alpha 1e-4, beta 0.75) divides alpha by the size, as torch's does.
    const lrn = () => (cfg.lrn ? new LocalResponseNorm(5, { alpha: 1e-4, beta: 0.75, k: 1 }) : null);
    this.conv1 = convBlock(cfg, inChans, 64, 7, { stride: 2, padding: 3 });
    this.maxpool1 = pool(3, 2);
    this.lrn1 = lrn();
    this.conv2 = convBlock(cfg, 64, 64, 1);
    this.conv3 = convBlock(cfg, 64, 192, 3, { padding: 1 });
    this.lrn2 = lrn();
    this.maxpool2 = pool(3, 2);
    let inC = 192;
    const inception = (name: InceptionName): Inception => {
      const m = new Inception(inC, INCEPTION_ROWS[name], cfg);
      inC = outChannels(INCEPTION_ROWS[name]);
      return m;
    };
    this.inception3a = inception('inception3a');
    this.inception3b = inception('inception3b');
    this.maxpool3 = pool(3, 2);
    this.inception4a = inception('inception4a');
    this.inception4b = inception('inception4b');
    this.inception4c = inception('inception4c');
    this.inception4d = inception('inception4d');
    this.inception4e = inception('inception4e');
    this.maxpool4 = pool(cfg.maxpool4Kernel, 2);
    this.inception5a = inception('inception5a');
    this.inception5b = inception('inception5b');
    const aux = opts.auxLogits ?? true,
      auxDropRate = opts.auxDropRate ?? AUX_DROP_RATE;
    this.aux1 = aux ? new InceptionAux(outChannels(INCEPTION_ROWS.inception4a), numClasses, cfg, auxDropRate) : null;
    this.aux2 = aux ? new InceptionAux(outChannels(INCEPTION_ROWS.inception4d), numClasses, cfg, auxDropRate) : null;
    this._head = new ClassifierHead({ owner: this, field: 'fc' }, this.numFeatures, numClasses, { dropRate: this.dropRate });
    this.initWeights();
  }

  /** Re-draws every weight: torchvision's scheme for googlenet, Caffe's reference fillers for googlenet_original. */
  initWeights(): void {
    if (this._cfg.batchNorm) initTorchvisionWeights(this);
    else initCaffeWeights(this);
  }

  /** Whether forward re-normalises its input (see GoogLeNetOptions.transformInput). */
  get transformInput(): boolean {
    return this._transformInput ?? this._weightsTag !== undefined;
  }

  /** x * std / 0.5 + (mean - 0.5) / 0.5 per channel: ImageNet normalisation to the [-1, 1] one. */
  private transform(x: Tensor): Tensor {
    return tidy(() => {
      const scale = tensor(
        IMAGENET_STD.map((s) => s / 0.5),
        [1, 3, 1, 1],
      );
      const shift = tensor(
        IMAGENET_MEAN.map((m) => (m - 0.5) / 0.5),
        [1, 3, 1, 1],
      );
      return x.mul(scale).add_(shift);
    });
  }

  /** The stem and inception stages (Table 1's rows in order); with `withAux`, also the auxiliary heads' logits where they branch off. */
  private trunk(x: Tensor, withAux: boolean): GoogLeNetOutputs {
    return tidy(() => {
      const aux: Tensor[] = [];
      // A tap passes the features on unchanged (runChain keeps them) after running an auxiliary head on them.
      const tap = (head: InceptionAux | null) =>
        withAux && head
          ? (t: Tensor) => {
              aux.push(head.forward(t));
              return t;
            }
          : null;
      const features = runChain(x, [
        this.transformInput && x.shape[1] === 3 ? (t: Tensor) => this.transform(t) : null,
        this.conv1,
        this.maxpool1,
        this.lrn1,
        this.conv2,
        this.conv3,
        this.lrn2,
        this.maxpool2,
        this.inception3a,
        this.inception3b,
        this.maxpool3,
        this.inception4a,
        tap(this.aux1),
        this.inception4b,
        this.inception4c,
        this.inception4d,
        tap(this.aux2),
        this.inception4e,
        this.maxpool4,
        this.inception5a,
        this.inception5b,
      ]);
      return { logits: features, aux };
    });
  }

  forwardFeatures(x: Tensor): Tensor {
    return this.trunk(x, false).logits;
  }

  /** Main logits and the auxiliary heads' logits ([aux1, aux2], or [] when built without them). */
  forwardWithAux(x: Tensor): GoogLeNetOutputs {
    return tidy(() => {
      const { logits: features, aux } = this.trunk(x, true);
      return { logits: this.forwardHead(features), aux };
    });
  }

  /** Replaces the main classifier and the auxiliary heads' last FC. */
  override resetClassifier(numClasses: number): void {
    super.resetClassifier(numClasses);
    for (const head of [this.aux1, this.aux2]) head?._head.reset(numClasses);
  }

  /**
   * As Module.loadStateDict, with torchvision's handling of the auxiliary heads: a checkpoint's aux1/aux2
   * keys are ignored when this model was built without heads (torchvision's pretrained file carries
   * them, untrained), and aux heads' last FC is left as initialised when its class count differs from
   * the checkpoint's (not reported missing: loadPretrained replaces the classifier in that case).
   */
  override skipWeightsKey(name: string, fileShape: number[]): boolean {
    const head = name.startsWith('aux1.') ? this.aux1 : name.startsWith('aux2.') ? this.aux2 : undefined;
    if (head === null) return true;
    return !!head && name.slice(5).startsWith('fc2.') && head.fc2 instanceof Linear && fileShape[0] !== head.fc2.outFeatures;
  }

  override loadStateDict(sd: Record<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const kept: Record<string, Tensor> = {};
    const skipped = new Set<string>();
    for (const [k, t] of Object.entries(sd)) {
      const head = k.startsWith('aux1.') ? this.aux1 : k.startsWith('aux2.') ? this.aux2 : undefined;
      if (head === null) continue;
      if (head && k.slice(5).startsWith('fc2.') && head.fc2 instanceof Linear && t.shape[0] !== head.fc2.outFeatures) {
        skipped.add(k);
        continue;
      }
      kept[k] = t;
    }
    const r = super.loadStateDict(kept, opts);
    return { missingKeys: r.missingKeys.filter((k) => !skipped.has(k)), unexpectedKeys: r.unexpectedKeys };
  }
}

/** torchvision's initialisation: truncated N(0, 0.01) in [-2, 2] for conv and linear weights, BN to identity. */
function initTorchvisionWeights(model: Module): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d || m instanceof Linear) init.truncNormal_(m.weight, { std: 0.01, a: -2, b: 2 });
    else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    }
  }
}

/**
 * The paper gives no initialisation; this follows Caffe's reference reproduction (bvlc_googlenet):
 * "xavier" filler (uniform, variance 1 / fan_in) for every weight, biases 0.2 except in the classifiers (0).
 */
function initCaffeWeights(model: GoogLeNet): void {
  for (const m of model.modules()) {
    if (!(m instanceof Conv2d || m instanceof Linear)) continue;
    const bound = Math.sqrt(3 / init.calculateFanInAndFanOut(m.weight).fanIn);
    init.uniform_(m.weight, -bound, bound);
    if (m.bias) init.constant_(m.bias, 0.2);
  }
  for (const fc of [model.fc, model.aux1?.fc2, model.aux2?.fc2]) if (fc instanceof Linear && fc.bias) init.zeros_(fc.bias);
}

// ---- registration

const PAPER_REF = { title: 'Going Deeper with Convolutions', year: 2014, url: 'https://arxiv.org/abs/1409.4842' };

registerModel(
  {
    id: 'googlenet',
    family: 'googlenet',
    paper: PAPER_REF,
    ...IMAGENET_DEFAULTS,
    params: 6624904,
    gmacs: 1.498,
    torchvision: 'googlenet',
    firstConv: 'conv1.conv',
    classifier: 'fc',
    weights: TORCHVISION_WEIGHTS.googlenet ?? [],
    // As torchvision: pretrained weights come without the (untrained) auxiliary heads unless asked for.
    pretrainedOptions: { auxLogits: false },
    notes:
      'torchvision\'s variant: batch norm (eps 1e-3) after every convolution, 3x3 convolutions in the "5x5" branch, ' +
      "2x2 final max-pool, dropout 0.2. params excludes the auxiliary heads (torchvision's figure); built with " +
      'auxLogits (the default) they add 6,379,984. Auxiliary loss weight 0.3 (GoogLeNet.auxLossWeight).',
  },
  { options: GOOGLENET_OPTIONS, fixed: TORCHVISION },
  (opts: GoogLeNetOptions, config) => new GoogLeNet(config, opts),
);

registerModel(
  {
    id: 'googlenet_original',
    family: 'googlenet',
    paper: PAPER_REF,
    ...IMAGENET_DEFAULTS,
    params: 6998552,
    gmacs: 1.583,
    firstConv: 'conv1.conv',
    classifier: 'fc',
    weights: [],
    notes:
      "The paper's network (Table 1, Figure 3): no batch norm, LRN after the first max-pool and after conv3, 5x5 " +
      'branches, 3x3/2 max-pools, dropout 0.4; auxiliary heads after inception4a and 4d (5x5/3 average pool, 1x1 conv 128, ' +
      'FC 1024, dropout 0.7), their losses weighted by 0.3 (GoogLeNet.auxLossWeight). params excludes the auxiliary heads ' +
      "(they add 6,379,728); Table 1 sums to about 6.8M. No initialisation in the paper: Caffe's bvlc_googlenet fillers.",
  },
  { options: GOOGLENET_OPTIONS, fixed: PAPER },
  (opts: GoogLeNetOptions, config) => new GoogLeNet(config, opts),
);
