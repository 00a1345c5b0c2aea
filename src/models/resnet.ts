// ResNet and ResNeXt.
// He et al., "Deep Residual Learning for Image Recognition" (2015): the ImageNet networks of Table 1 in
// torchvision's v1.5 form (stride on the 3x3 conv of the bottleneck), and the CIFAR-10 networks of
// section 4.2 (6n+2 layers, 16/32/64 channels, option A identity shortcuts).
// Xie et al., "Aggregated Residual Transformations for Deep Neural Networks" (2016): ResNeXt, grouped 3x3.
// Zagoruyko & Komodakis, "Wide Residual Networks" (2016): the wide_resnet variants (bottleneck x2 wide).
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../nn/functional.js';
import { Module, runChain, hasZeroInitLast } from '../nn/module.js';
import { Conv2d, BatchNorm2d, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { ClassifierHead } from '../nn/head.js';
import { DropPath, dropPathRates } from '../nn/drop_path.js';
import * as init from '../nn/init.js';
import { check } from '../errors.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_DEFAULTS, type ModelOptions, type ModelMeta, CIFAR10_MEAN, CIFAR10_STD } from './registry.js';
import { opt, type OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- blocks

/** The layers a residual block is built from; a variant injects its own (SE-ResNet: an attention layer). */
export interface BlockLayers {
  /** Attention on the branch's output, after its last norm and before the residual add (timm's SE slot, key `se`). */
  attnLayer?: (channels: number) => Module;
  /** The activation (default ReLU, in place). */
  act?: () => Module;
  /** The norm after each convolution, and in the downsample shortcut (default BatchNorm2d). */
  norm?: (channels: number) => Module;
}

export interface BlockOptions extends BlockLayers {
  stride: number;
  downsample: Module | null;
  groups: number;
  baseWidth: number;
  /** Stochastic depth on the residual branch, applied after the attention layer (key `drop_path`, no parameters). */
  dropPath?: Module | null;
}

const defaultAct = (): Module => new ReLU(true);
const defaultNorm = (channels: number): Module => new BatchNorm2d(channels);

/** Zeroes a norm's scale, so that its branch starts at zero (any norm with a `weight`). */
function zeroNormScale(norm: Module): void {
  const w = (norm as { weight?: unknown }).weight;
  if (w instanceof Tensor) init.zeros_(w);
}

/** The residual sum, then the activation; frees the shortcut's output. */
function addShortcut(out: Tensor, x: Tensor, downsample: Module | null, act: Module): Tensor {
  const identity = downsample ? downsample.forward(x) : x;
  out.add_(identity);
  if (identity !== x) identity.dispose();
  return runChain(out, [act]);
}

/** Two 3x3 convolutions (Figure 2 left). */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: Module;
  act1: Module;
  conv2: Conv2d;
  bn2: Module;
  se: Module | null;
  act2: Module;
  downsample: Module | null;
  drop_path: Module | null;
  constructor(inplanes: number, planes: number, o: BlockOptions) {
    super();
    check(o.groups === 1 && o.baseWidth === 64, 'BasicBlock', 'only supports groups=1 and baseWidth=64');
    const norm = o.norm ?? defaultNorm,
      act = o.act ?? defaultAct;
    this.conv1 = new Conv2d(inplanes, planes, 3, { stride: o.stride, padding: 1, bias: false });
    this.bn1 = norm(planes);
    this.act1 = act();
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1, bias: false });
    this.bn2 = norm(planes);
    this.se = o.attnLayer?.(planes) ?? null;
    this.act2 = act();
    this.downsample = o.downsample;
    this.drop_path = o.dropPath ?? null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = runChain(x, [this.conv1, this.bn1, this.act1, this.conv2, this.bn2, this.se, this.drop_path]);
      return addShortcut(out, x, this.downsample, this.act2);
    });
  }
  zeroInitLast(): void {
    zeroNormScale(this.bn2);
  }
}

/** 1x1 reduce, 3x3 (grouped for ResNeXt, strided here: v1.5), 1x1 expand x4 (Figure 5 right). */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  conv1: Conv2d;
  bn1: Module;
  act1: Module;
  conv2: Conv2d;
  bn2: Module;
  act2: Module;
  conv3: Conv2d;
  bn3: Module;
  se: Module | null;
  act3: Module;
  downsample: Module | null;
  drop_path: Module | null;
  constructor(inplanes: number, planes: number, o: BlockOptions) {
    super();
    const norm = o.norm ?? defaultNorm,
      act = o.act ?? defaultAct;
    const width = Math.floor(planes * (o.baseWidth / 64)) * o.groups;
    const outplanes = planes * Bottleneck.expansion;
    this.conv1 = new Conv2d(inplanes, width, 1, { bias: false });
    this.bn1 = norm(width);
    this.act1 = act();
    this.conv2 = new Conv2d(width, width, 3, { stride: o.stride, padding: 1, groups: o.groups, bias: false });
    this.bn2 = norm(width);
    this.act2 = act();
    this.conv3 = new Conv2d(width, outplanes, 1, { bias: false });
    this.bn3 = norm(outplanes);
    this.se = o.attnLayer?.(outplanes) ?? null;
    this.act3 = act();
    this.downsample = o.downsample;
    this.drop_path = o.dropPath ?? null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = runChain(x, [this.conv1, this.bn1, this.act1, this.conv2, this.bn2, this.act2, this.conv3, this.bn3, this.se, this.drop_path]);
      return addShortcut(out, x, this.downsample, this.act3);
    });
  }
  zeroInitLast(): void {
    zeroNormScale(this.bn3);
  }
}

/** A residual block class: BasicBlock, Bottleneck, or a variant's own with the same constructor. */
export interface BlockClass {
  new (inplanes: number, planes: number, o: BlockOptions): Module;
  /** Output channels per `planes`. */
  readonly expansion: number;
}

// ---- the ImageNet network

/** What defines an ImageNet ResNet variant (fixed by its registration). */
export interface ResNetConfig extends BlockLayers {
  block: BlockClass;
  /** Blocks in each of the four stages. */
  layers: [number, number, number, number];
  /** ResNeXt's cardinality: groups of the 3x3 convolution (default 1). */
  groups?: number;
  /** Channels per group of the 3x3 convolution per 64 planes (default 64; wide ResNets 128). */
  widthPerGroup?: number;
}

export interface ResNetOptions extends ModelOptions {
  /** Zero the last norm of each residual branch so that blocks start as identities (Goyal et al. 2017). */
  zeroInitResidual?: boolean;
  /** Stochastic depth: the last block's drop-path rate; earlier blocks' rise linearly from 0 (timm's rule). */
  dropPathRate?: number;
  /** Makes the drop-path module for a block's rate (default: nn.DropPath), placed at each block's `drop_path`. */
  dropPath?: (rate: number) => Module;
}

export const RESNET_OPTIONS: OptionTable<ResNetOptions> = {
  zeroInitResidual: opt.boolean(),
  dropPathRate: opt.rate(),
  dropPath: opt.function(),
};

/** Drop-path modules for `n` blocks at rates rising linearly to `rate` (timm's resnet.py: rate * i / (n - 1)); none at rate 0. */
function dropPathSchedule(n: number, opts: ResNetOptions): (i: number) => Module | null {
  const rate = opts.dropPathRate ?? 0;
  if (rate === 0) return () => null;
  const make = opts.dropPath ?? ((p: number) => new DropPath(p));
  const rates = dropPathRates(n, rate);
  return (i) => make(rates[i]);
}

/** Initialises a network's weights: He normal (fan out) convs, norms to identity, optionally zero-init residual branches. */
function initResNetWeights(model: Module, zeroInitResidual: boolean): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
    else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    }
  }
  if (zeroInitResidual) for (const m of model.modules()) if (hasZeroInitLast(m)) m.zeroInitLast();
}

export class ResNet extends ClassifierModel {
  conv1: Conv2d;
  bn1: Module;
  relu: Module;
  maxpool: MaxPool2d;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  layer4: Sequential;
  fc!: Module;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  private readonly _zeroInitResidual: boolean;

  constructor(cfg: ResNetConfig, opts: ResNetOptions = {}) {
    super();
    const { block, layers, groups = 1, widthPerGroup: baseWidth = 64, attnLayer } = cfg;
    const norm = cfg.norm ?? defaultNorm,
      act = cfg.act ?? defaultAct;
    const dropPath = dropPathSchedule(
      layers.reduce((a, b) => a + b, 0),
      opts,
    ); // checked before anything is allocated
    this.dropRate = opts.dropRate ?? 0;
    this._zeroInitResidual = opts.zeroInitResidual ?? false;
    this.conv1 = new Conv2d(opts.inChans ?? 3, 64, 7, { stride: 2, padding: 3, bias: false });
    this.bn1 = norm(64);
    this.relu = act();
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    let inplanes = 64,
      blockIndex = 0;
    const stage = (planes: number, blocks: number, stride: number): Sequential => {
      const out = planes * block.expansion;
      const list: Module[] = [];
      for (let i = 0; i < blocks; i++) {
        const s = i === 0 ? stride : 1;
        const downsample = s !== 1 || inplanes !== out ? new Sequential(new Conv2d(inplanes, out, 1, { stride: s, bias: false }), norm(out)) : null;
        list.push(new block(inplanes, planes, { stride: s, downsample, groups, baseWidth, attnLayer, act, norm, dropPath: dropPath(blockIndex++) }));
        inplanes = out;
      }
      return new Sequential(...list);
    };
    this.layer1 = stage(64, layers[0], 1);
    this.layer2 = stage(128, layers[1], 2);
    this.layer3 = stage(256, layers[2], 2);
    this.layer4 = stage(512, layers[3], 2);
    this.numFeatures = 512 * block.expansion;
    this._head = new ClassifierHead({ owner: this, field: 'fc' }, this.numFeatures, opts.numClasses ?? 1000, { dropRate: this.dropRate });
    this.initWeights();
  }

  /** Re-draws every weight with torchvision's scheme (and zero-init residual branches when built with zeroInitResidual). */
  initWeights(): void {
    initResNetWeights(this, this._zeroInitResidual);
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv1, this.bn1, this.relu, this.maxpool, this.layer1, this.layer2, this.layer3, this.layer4]));
  }
}

// ---- the CIFAR-10 networks of section 4.2

/** Option A shortcut: identity with stride-2 subsampling and zero channels appended (no parameters). */
export class PadShortcut extends Module {
  constructor(
    readonly outChannels: number,
    readonly stride: number,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const sub = this.stride > 1 ? x.slice(2, 0, undefined, this.stride).slice(3, 0, undefined, this.stride) : x;
      const c = sub.shape[1];
      if (c === this.outChannels) return sub.contiguous();
      // Zero channels appended by padding the channel dimension (no batch-sized constant: exports keep a free batch).
      return F.pad(sub, [0, 0, 0, 0, 0, this.outChannels - c]);
    });
  }
  override extraRepr(): string {
    return `outChannels=${this.outChannels}, stride=${this.stride}`;
  }
}

export class CifarResNet extends ClassifierModel {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu: Module;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  fc!: Module;
  readonly numFeatures = 64;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  private readonly _zeroInitResidual: boolean;
  constructor(depth: number, opts: ResNetOptions = {}) {
    super();
    check((depth - 2) % 6 === 0, 'CifarResNet', `depth must be 6n+2, got ${depth}`);
    const n = (depth - 2) / 6;
    const dropPath = dropPathSchedule(3 * n, opts); // checked before anything is allocated
    this.dropRate = opts.dropRate ?? 0;
    this._zeroInitResidual = opts.zeroInitResidual ?? false;
    this.conv1 = new Conv2d(opts.inChans ?? 3, 16, 3, { padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(16);
    this.relu = defaultAct();
    let inplanes = 16,
      blockIndex = 0;
    const stage = (planes: number, stride: number): Sequential => {
      const blocks: Module[] = [];
      for (let i = 0; i < n; i++) {
        const s = i === 0 ? stride : 1;
        const downsample = s !== 1 || inplanes !== planes ? new PadShortcut(planes, s) : null;
        blocks.push(new BasicBlock(inplanes, planes, { stride: s, downsample, groups: 1, baseWidth: 64, dropPath: dropPath(blockIndex++) }));
        inplanes = planes;
      }
      return new Sequential(...blocks);
    };
    this.layer1 = stage(16, 1);
    this.layer2 = stage(32, 2);
    this.layer3 = stage(64, 2);
    this._head = new ClassifierHead({ owner: this, field: 'fc' }, this.numFeatures, opts.numClasses ?? 10, { dropRate: this.dropRate });
    this.initWeights();
  }
  /** Re-draws every weight: He normal (fan out) convs, BN to identity (and zero-init residual branches when built with zeroInitResidual). */
  initWeights(): void {
    initResNetWeights(this, this._zeroInitResidual);
  }
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv1, this.bn1, this.relu, this.layer1, this.layer2, this.layer3]));
  }
}

// ---- registration: architecture as data

const RESNET_PAPER = { title: 'Deep Residual Learning for Image Recognition', year: 2015, url: 'https://arxiv.org/abs/1512.03385' };
const RESNEXT_PAPER = { title: 'Aggregated Residual Transformations for Deep Neural Networks', year: 2016, url: 'https://arxiv.org/abs/1611.05431' };
const WRN_PAPER = { title: 'Wide Residual Networks', year: 2016, url: 'https://arxiv.org/abs/1605.07146' };

/** One row of the variants table: what the network is (fixed by the id) and its published figures. */
interface ImageNetVariant {
  id: string;
  config: ResNetConfig;
  paper: ModelMeta['paper'];
  params: number;
  gmacs: number;
}

const basic = (layers: ResNetConfig['layers']): ResNetConfig => ({ block: BasicBlock, layers, groups: 1, widthPerGroup: 64 });
const bottleneck = (layers: ResNetConfig['layers'], groups = 1, widthPerGroup = 64): ResNetConfig => ({ block: Bottleneck, layers, groups, widthPerGroup });

// Parameter counts and GMACs are torchvision's published figures.
const IMAGENET_VARIANTS: ImageNetVariant[] = [
  { id: 'resnet18', config: basic([2, 2, 2, 2]), paper: RESNET_PAPER, params: 11689512, gmacs: 1.814 },
  { id: 'resnet34', config: basic([3, 4, 6, 3]), paper: RESNET_PAPER, params: 21797672, gmacs: 3.664 },
  { id: 'resnet50', config: bottleneck([3, 4, 6, 3]), paper: RESNET_PAPER, params: 25557032, gmacs: 4.089 },
  { id: 'resnet101', config: bottleneck([3, 4, 23, 3]), paper: RESNET_PAPER, params: 44549160, gmacs: 7.801 },
  { id: 'resnet152', config: bottleneck([3, 8, 36, 3]), paper: RESNET_PAPER, params: 60192808, gmacs: 11.514 },
  { id: 'resnext50_32x4d', config: bottleneck([3, 4, 6, 3], 32, 4), paper: RESNEXT_PAPER, params: 25028904, gmacs: 4.23 },
  { id: 'resnext101_32x8d', config: bottleneck([3, 4, 23, 3], 32, 8), paper: RESNEXT_PAPER, params: 88791336, gmacs: 16.414 },
  { id: 'resnext101_64x4d', config: bottleneck([3, 4, 23, 3], 64, 4), paper: RESNEXT_PAPER, params: 83455272, gmacs: 15.46 },
  { id: 'wide_resnet50_2', config: bottleneck([3, 4, 6, 3], 1, 128), paper: WRN_PAPER, params: 68883240, gmacs: 11.398 },
  { id: 'wide_resnet101_2', config: bottleneck([3, 4, 23, 3], 1, 128), paper: WRN_PAPER, params: 126886696, gmacs: 22.753 },
];

for (const v of IMAGENET_VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: v.id.startsWith('resnext') ? 'resnext' : 'resnet',
      paper: v.paper,
      ...IMAGENET_DEFAULTS,
      params: v.params,
      gmacs: v.gmacs,
      torchvision: v.id,
      firstConv: 'conv1',
      classifier: 'fc',
      weights: TORCHVISION_WEIGHTS[v.id] ?? [],
    },
    { options: RESNET_OPTIONS, fixed: v.config },
    (opts: ResNetOptions, config) => new ResNet(config, opts),
  );
}

// CIFAR-10 networks: parameter counts of the paper's Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M) at 10 classes.
const CIFAR_VARIANTS: [string, number, number][] = [
  ['resnet20', 20, 269722],
  ['resnet32', 32, 464154],
  ['resnet44', 44, 658586],
  ['resnet56', 56, 853018],
  ['resnet110', 110, 1727962],
];
for (const [id, depth, params] of CIFAR_VARIANTS) {
  registerModel(
    {
      id,
      family: 'resnet_cifar',
      paper: RESNET_PAPER,
      inputSize: [3, 32, 32],
      mean: CIFAR10_MEAN,
      std: CIFAR10_STD,
      interpolation: 'bilinear',
      numClasses: 10,
      params,
      firstConv: 'conv1',
      classifier: 'fc',
      weights: [],
      notes: 'Section 4.2: 3x3 convs on 32x32 inputs, 3 stages of 2n layers (16, 32, 64 filters), option A shortcuts.',
    },
    { options: RESNET_OPTIONS, fixed: { depth } },
    (opts: ResNetOptions, config) => new CifarResNet(config.depth, opts),
  );
}
