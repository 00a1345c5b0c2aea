// DenseNet.
// Huang et al., "Densely Connected Convolutional Networks" (2017). Each layer of a dense block reads
// the concatenation of every earlier feature map of its block and adds `growthRate` channels; layers
// are pre-activation (BN-ReLU-Conv) with a 1x1 bottleneck of bnSize * growthRate channels (the "B"),
// and transitions halve the channels (compression 0.5, the "C") before a 2x2 average pool.
// - densenet121/161/169/201: the ImageNet networks of Table 1 in torchvision's form (key for key, so
//   torchvision's weights load; its files' legacy `norm.1` keys are renamed on loading).
// - densenet_bc_100_k12, densenet_bc_250_k24, densenet_bc_190_k40: the paper's CIFAR DenseNet-BC
//   (section 3, Table 2): a 3x3 stem of 2k channels, three dense blocks of (L - 4) / 6 bottleneck
//   layers at 32, 16 and 8 pixels, BN-ReLU, global average pool.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { cat } from '../tensor/creation.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, MaxPool2d, AvgPool2d, ReLU } from '../nn/layers.js';
import { NormActConv, registerAs } from '../nn/conv_norm_act.js';
import { ClassifierHead } from '../nn/head.js';
import * as F from '../nn/functional.js';
import * as init from '../nn/init.js';
import { check } from '../errors.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta, CIFAR10_MEAN, CIFAR10_STD } from './registry.js';
import { opt, type OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- configurations as data

/** What defines a DenseNet variant (fixed by its registration). */
export interface DenseNetConfig {
  /** k: channels each dense layer adds. */
  growthRate: number;
  /** Dense layers in each block (Table 1's rows; the CIFAR nets' three equal blocks). */
  blockConfig: readonly number[];
  /** Channels of the stem's convolution (ImageNet: 2k, except densenet161's 96; CIFAR DenseNet-BC: 2k). */
  numInitFeatures: number;
  /** Bottleneck width in multiples of k (4: "each 1x1 convolution produce 4k feature-maps"). */
  bnSize: number;
  /** The fraction of channels a transition keeps (theta = 0.5), rounded down. */
  compression: number;
  /** 'imagenet': 7x7/2 conv, BN, ReLU, 3x3/2 max-pool. 'cifar': one 3x3 conv (no norm: the first layer's norm1 follows). */
  stem: 'imagenet' | 'cifar';
}

const imagenet = (growthRate: number, blockConfig: number[], numInitFeatures: number): DenseNetConfig => ({
  growthRate,
  blockConfig,
  numInitFeatures,
  bnSize: 4,
  compression: 0.5,
  stem: 'imagenet',
});

/** DenseNet-BC for CIFAR (section 3): depth L = 6n + 4, so n = (L - 4) / 6 bottleneck layers per block. */
const cifarBC = (depth: number, growthRate: number): DenseNetConfig => ({
  growthRate,
  blockConfig: Array(3).fill((depth - 4) / 6),
  numInitFeatures: 2 * growthRate,
  bnSize: 4,
  compression: 0.5,
  stem: 'cifar',
});

// ---- blocks

/**
 * One dense layer (Figure 1's H_l in its bottleneck form): concatenate the block's feature maps,
 * BN-ReLU-Conv1x1 to bnSize * k channels, BN-ReLU-Conv3x3 to k channels. The two pre-activation convs
 * are toolkit NormActConvs; their layers are this module's own fields, so the keys are torchvision's
 * (`norm1`, `relu1`, `conv1`, `norm2`, `relu2`, `conv2`). The NormActConvs sit in private fields (not
 * state, not walked by modules()); train()/eval() reach their layers through these fields, and the
 * NormActConv itself reads no mode.
 */
export class DenseLayer extends Module<Tensor[], Tensor> {
  norm1: Module;
  relu1: Module;
  conv1: Conv2d;
  norm2: Module;
  relu2: Module;
  conv2: Conv2d;
  readonly dropRate: number;
  private readonly _bottleneck: NormActConv;
  private readonly _conv: NormActConv;

  constructor(inChannels: number, growthRate: number, bnSize: number, dropRate = 0) {
    super();
    this.dropRate = dropRate;
    const width = bnSize * growthRate;
    this._bottleneck = new NormActConv(inChannels, width, 1, { names: { norm: 'norm1', act: 'relu1', conv: 'conv1' } });
    this._conv = new NormActConv(width, growthRate, 3, { padding: 1, names: { norm: 'norm2', act: 'relu2', conv: 'conv2' } });
    [this.norm1, this.relu1, this.conv1] = [this._bottleneck.normLayer!, this._bottleneck.actLayer!, this._bottleneck.convLayer];
    [this.norm2, this.relu2, this.conv2] = [this._conv.normLayer!, this._conv.actLayer!, this._conv.convLayer];
  }

  /** The block's feature maps so far (borrowed) -> the k new channels. One concatenation per layer, as torchvision's. */
  forward(features: Tensor[]): Tensor {
    return tidy(() =>
      runChain<Tensor, Tensor[]>(features, [
        (fs: Tensor[]) => (fs.length === 1 ? fs[0] : cat(fs, 1)),
        this._bottleneck,
        this._conv,
        this.dropRate > 0 ? (t: Tensor) => F.dropout(t, { p: this.dropRate, training: this.training }) : null,
      ]),
    );
  }
}

/** A dense block: `denselayer1..n`, each reading every earlier output; returns them all concatenated. */
export class DenseBlock extends Module {
  constructor(numLayers: number, inChannels: number, growthRate: number, bnSize: number, dropRate = 0) {
    super();
    // A dense layer takes a list, so it is set as a field directly (registerAs wants a Tensor -> Tensor module).
    const fields = this as unknown as Record<string, DenseLayer>;
    for (let i = 0; i < numLayers; i++) fields[`denselayer${i + 1}`] = new DenseLayer(inChannels + i * growthRate, growthRate, bnSize, dropRate);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const features = [x];
      for (const layer of this.children() as Generator<DenseLayer>) features.push(layer.forward(features));
      return cat(features, 1);
    });
  }
}

/** Between blocks: BN-ReLU-Conv1x1 (compression) and a 2x2 average pool; keys `norm`, `relu`, `conv`, `pool`. */
export class Transition extends NormActConv {
  pool: AvgPool2d;
  constructor(inChannels: number, outChannels: number) {
    super(inChannels, outChannels, 1, { names: { norm: 'norm', act: 'relu', conv: 'conv' } });
    this.pool = new AvgPool2d(2, { stride: 2 });
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => runChain(x, [(t: Tensor) => super.forward(t), this.pool]));
  }
}

/**
 * torchvision's `features`: the stem (`conv0`, `norm0`, `relu0`, `pool0`; the CIFAR stem only
 * `conv0`), `denseblock1`, `transition1`, ..., and the final `norm5`, run in that order.
 */
export class DenseNetFeatures extends Module {
  /** Channels out of norm5. */
  readonly numFeatures: number;
  constructor(cfg: DenseNetConfig, inChans: number, layerDropRate: number) {
    super();
    const add = (name: string, m: Module) => registerAs(this, name, m);
    const c0 = cfg.numInitFeatures;
    if (cfg.stem === 'imagenet') {
      add('conv0', new Conv2d(inChans, c0, 7, { stride: 2, padding: 3, bias: false }));
      add('norm0', new BatchNorm2d(c0));
      add('relu0', new ReLU(true)); // after norm0, whose output nothing else reads
      add('pool0', new MaxPool2d(3, { stride: 2, padding: 1 }));
    } else {
      add('conv0', new Conv2d(inChans, c0, 3, { padding: 1, bias: false }));
    }
    let channels = c0;
    cfg.blockConfig.forEach((n, i) => {
      add(`denseblock${i + 1}`, new DenseBlock(n, channels, cfg.growthRate, cfg.bnSize, layerDropRate));
      channels += n * cfg.growthRate;
      if (i < cfg.blockConfig.length - 1) {
        const out = Math.floor(channels * cfg.compression);
        add(`transition${i + 1}`, new Transition(channels, out));
        channels = out;
      }
    });
    // torchvision names the final norm `norm5` whatever the number of blocks.
    add('norm5', new BatchNorm2d(channels));
    this.numFeatures = channels;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => runChain(x, this.children()));
  }
}

// ---- the network

export interface DenseNetOptions extends ModelOptions {
  /** Dropout before the classifier (default 0; torchvision's DenseNet has none). */
  dropRate?: number;
  /**
   * Dropout on each dense layer's new features (torchvision's `drop_rate`, timm's `proj_drop_rate`;
   * default 0). The paper uses 0.2 on CIFAR and SVHN without augmentation.
   */
  layerDropRate?: number;
}

export const DENSENET_OPTIONS: OptionTable<DenseNetOptions> = {
  layerDropRate: opt.rate(),
};

/** DenseNet: `features` (ending with norm5), ReLU, global average pool and the `classifier` Linear. */
export class DenseNet extends ClassifierModel {
  features: DenseNetFeatures;
  classifier!: AnyModule;
  readonly numFeatures: number;
  readonly dropRate: number;
  readonly layerDropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: DenseNetConfig, opts: DenseNetOptions = {}, defaultNumClasses = 1000) {
    super();
    check(
      cfg.blockConfig.length >= 1 && cfg.blockConfig.every((n) => Number.isInteger(n) && n >= 1),
      'DenseNet',
      `blockConfig must be positive integers, got [${cfg.blockConfig}]`,
    );
    this.dropRate = opts.dropRate ?? 0;
    this.layerDropRate = opts.layerDropRate ?? 0;
    this.features = new DenseNetFeatures(cfg, opts.inChans ?? 3, this.layerDropRate);
    this.numFeatures = this.features.numFeatures;
    this._head = new ClassifierHead({ owner: this, field: 'classifier' }, this.numFeatures, opts.numClasses ?? defaultNumClasses, {
      dropRate: this.dropRate,
      initLayer: zeroBias,
    });
    this.initWeights();
  }

  /** torchvision's scheme: He normal (fan in) convs, BN to identity, zero classifier bias. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) init.kaimingNormal_(m.weight);
      else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof Linear) zeroBias(m);
    }
  }

  /** The features after norm5 and its ReLU (torchvision applies the ReLU in forward). */
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.features, (t: Tensor) => t.relu_()]));
  }
}

function zeroBias(layer: AnyModule): void {
  if (layer instanceof Linear && layer.bias) init.zeros_(layer.bias);
}

// ---- torchvision's legacy keys

/**
 * torchvision's released files name a dense layer's modules `norm.1`, `relu.1`, `conv.1`, ... (from an
 * old nn.Sequential); its _load_state_dict renames them with this pattern, and so do we.
 */
const LEGACY_KEY = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$/;

/** `features.denseblock1.denselayer1.norm.1.weight` -> `features.denseblock1.denselayer1.norm1.weight`; other keys unchanged. */
export function remapDenseNetKey(key: string): string {
  const m = LEGACY_KEY.exec(key);
  return m ? m[1] + m[2] : key;
}

// ---- registration

const PAPER = { title: 'Densely Connected Convolutional Networks', year: 2017, url: 'https://arxiv.org/abs/1608.06993' };

interface ImageNetVariant {
  id: string;
  config: DenseNetConfig;
  /** torchvision's published GFLOPS (multiply-adds) at 224. */
  gmacs: number;
}

// Table 1: k = 32 with blocks of 6-12-24-16, 6-12-32-32, 6-12-48-32; densenet161 is k = 48 with a 96-channel stem.
const IMAGENET_VARIANTS: ImageNetVariant[] = [
  { id: 'densenet121', config: imagenet(32, [6, 12, 24, 16], 64), gmacs: 2.83 },
  { id: 'densenet161', config: imagenet(48, [6, 12, 36, 24], 96), gmacs: 7.73 },
  { id: 'densenet169', config: imagenet(32, [6, 12, 32, 32], 64), gmacs: 3.36 },
  { id: 'densenet201', config: imagenet(32, [6, 12, 48, 32], 64), gmacs: 4.29 },
];

for (const v of IMAGENET_VARIANTS) {
  const weights = TORCHVISION_WEIGHTS[v.id] ?? [];
  registerModel(
    {
      id: v.id,
      family: 'densenet',
      paper: PAPER,
      inputSize: [3, 224, 224],
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      interpolation: 'bilinear',
      numClasses: 1000,
      params: weights[0]?.numParams ?? 0,
      gmacs: v.gmacs,
      torchvision: v.id,
      firstConv: 'features.conv0',
      classifier: 'classifier',
      weights,
      remapWeightsKey: remapDenseNetKey,
      notes:
        `DenseNet-BC, k = ${v.config.growthRate}, blocks ${v.config.blockConfig.join('-')} (Table 1), torchvision's keys. ` +
        "torchvision's files use the legacy `denselayerN.norm.1` names, renamed on loading.",
    },
    { options: DENSENET_OPTIONS, fixed: v.config },
    (opts: DenseNetOptions, config) => new DenseNet(config, opts),
  );
}

interface CifarVariant {
  id: string;
  depth: number;
  growthRate: number;
  /** Our count at 10 classes; Table 2 rounds it. */
  params: number;
  paperParams: string;
}

// Table 2's DenseNet-BC rows: (L = 100, k = 12) 0.8M, (L = 250, k = 24) 15.3M, (L = 190, k = 40) 25.6M.
const CIFAR_VARIANTS: CifarVariant[] = [
  { id: 'densenet_bc_100_k12', depth: 100, growthRate: 12, params: 769162, paperParams: '0.8M' },
  { id: 'densenet_bc_250_k24', depth: 250, growthRate: 24, params: 15324406, paperParams: '15.3M' },
  { id: 'densenet_bc_190_k40', depth: 190, growthRate: 40, params: 25624430, paperParams: '25.6M' },
];

for (const v of CIFAR_VARIANTS) {
  const config = cifarBC(v.depth, v.growthRate);
  const meta: ModelMeta = {
    id: v.id,
    family: 'densenet_cifar',
    paper: PAPER,
    inputSize: [3, 32, 32],
    mean: CIFAR10_MEAN,
    std: CIFAR10_STD,
    interpolation: 'bilinear',
    numClasses: 10,
    params: v.params,
    firstConv: 'features.conv0',
    classifier: 'classifier',
    weights: [],
    notes:
      `The paper's CIFAR DenseNet-BC (L = ${v.depth}, k = ${v.growthRate}; Table 2: ${v.paperParams} parameters): 3x3 stem of ${2 * v.growthRate} ` +
      `channels, three dense blocks of ${(v.depth - 4) / 6} bottleneck layers (4k-channel 1x1 convs) at 32, 16 and 8 pixels, ` +
      'compression 0.5, BN-ReLU and a global average pool; torchvision-style keys. Any input of at least 4 pixels works ' +
      "(28x28 Fashion-MNIST: 28, 14, 7). The paper's dropout 0.2 (no augmentation) is layerDropRate.",
  };
  registerModel(meta, { options: DENSENET_OPTIONS, fixed: config }, (opts: DenseNetOptions, c) => new DenseNet(c, opts, 10));
}
