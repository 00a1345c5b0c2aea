// SENet: squeeze-and-excitation networks.
// Hu et al., "Squeeze-and-Excitation Networks" (CVPR 2018). Two forms, as timm has them:
// - the authors' Caffe release, converted (Cadene's pretrainedmodels, then timm's legacy/senet.py):
//   `legacy_seresnet*`, `legacy_seresnext*`, `legacy_senet154`, with keys `layer0.*`, `se_module.*` and
//   `last_linear`. Table 1's networks, with the release's details: SE-ResNet puts the stride on the
//   first 1x1 conv (Caffe's ResNet), SE-ResNeXt and SENet-154 on the 3x3; the stem max-pool has no
//   padding and rounds up; SENet-154 has a three-conv stem and 3x3 downsample shortcuts.
// - timm's ResNet with an SE module in each block (`seresnet50`, `seresnext50_32x4d`): ResNet's own
//   network (resnet.ts) with timm's SEModule injected at each block's `se`.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { SqueezeExcite } from '../nn/squeeze_excite.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, registerAlias, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta, type WeightsEntry } from './registry.js';
import type { OptionTable } from './options.js';
import { ResNet, Bottleneck, RESNET_OPTIONS, type ResNetConfig, type ResNetOptions } from './resnet.js';

// ---- the release's blocks

export interface LegacyBlockOptions {
  stride: number;
  downsample: Module | null;
  /** Groups of the 3x3 convolution. */
  groups: number;
  /** SE reduction ratio r (16 throughout the release). */
  reduction: number;
}

/** The residual sum after the SE module, then the (shared, in-place) ReLU. */
function seResidual(out: Tensor, x: Tensor, se: Module, downsample: Module | null, relu: Module): Tensor {
  const y = se.forward(out);
  const identity = downsample ? downsample.forward(x) : x;
  y.add_(identity);
  if (identity !== x) identity.dispose();
  return runChain(y, [relu]);
}

/** SE-ResNet-18/34's block: two 3x3 convs (stride on the first), ReLU, SE, add, ReLU. */
export class SEResNetBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  relu: ReLU;
  se_module: SqueezeExcite;
  downsample: Module | null;
  constructor(inplanes: number, planes: number, o: LegacyBlockOptions) {
    super();
    this.conv1 = new Conv2d(inplanes, planes, 3, { stride: o.stride, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1, groups: o.groups, bias: false });
    this.bn2 = new BatchNorm2d(planes);
    this.relu = new ReLU(true);
    this.se_module = SqueezeExcite.legacySenet(planes, o.reduction);
    this.downsample = o.downsample;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      // The release has a ReLU after bn2 too, before the SE module (unlike torchvision's BasicBlock).
      const out = runChain(x, [this.conv1, this.bn1, this.relu, this.conv2, this.bn2, this.relu]);
      return seResidual(out, x, this.se_module, this.downsample, this.relu);
    });
  }
}

/** Widths and stride placement of a bottleneck of the release. */
interface BottleneckLayout {
  /** Output channels of conv1. */
  mid: number;
  /** Channels of the 3x3 conv (and its output). */
  width: number;
  /** Caffe's ResNet strides the first 1x1 conv; ResNeXt and SENet-154 the 3x3. */
  strideOnConv1: boolean;
}

/** 1x1, 3x3 (grouped), 1x1 x4 expand, SE on the branch, add, ReLU: Figure 3 right. */
export abstract class LegacySEBottleneck extends Module {
  static readonly expansion = 4;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  conv3: Conv2d;
  bn3: BatchNorm2d;
  relu: ReLU;
  se_module: SqueezeExcite;
  downsample: Module | null;
  protected constructor(inplanes: number, planes: number, o: LegacyBlockOptions, l: BottleneckLayout) {
    super();
    const out = planes * LegacySEBottleneck.expansion;
    this.conv1 = new Conv2d(inplanes, l.mid, 1, { stride: l.strideOnConv1 ? o.stride : 1, bias: false });
    this.bn1 = new BatchNorm2d(l.mid);
    this.conv2 = new Conv2d(l.mid, l.width, 3, { stride: l.strideOnConv1 ? 1 : o.stride, padding: 1, groups: o.groups, bias: false });
    this.bn2 = new BatchNorm2d(l.width);
    this.conv3 = new Conv2d(l.width, out, 1, { bias: false });
    this.bn3 = new BatchNorm2d(out);
    this.relu = new ReLU(true);
    this.se_module = SqueezeExcite.legacySenet(out, o.reduction);
    this.downsample = o.downsample;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = runChain(x, [this.conv1, this.bn1, this.relu, this.conv2, this.bn2, this.relu, this.conv3, this.bn3]);
      return seResidual(out, x, this.se_module, this.downsample, this.relu);
    });
  }
}

/** SE-ResNet-50/101/152: planes wide, stride on conv1. */
export class SEResNetBottleneck extends LegacySEBottleneck {
  constructor(inplanes: number, planes: number, o: LegacyBlockOptions) {
    super(inplanes, planes, o, { mid: planes, width: planes, strideOnConv1: true });
  }
}

/** SE-ResNeXt (32x4d): floor(planes * 4 / 64) * groups wide, stride on the 3x3. */
export class SEResNeXtBottleneck extends LegacySEBottleneck {
  constructor(inplanes: number, planes: number, o: LegacyBlockOptions) {
    const width = Math.floor(planes * (4 / 64)) * o.groups;
    super(inplanes, planes, o, { mid: width, width, strideOnConv1: false });
  }
}

/** SENet-154 (64x4d): conv1 to planes * 2, the 3x3 to planes * 4, stride on the 3x3. */
export class SEBottleneck extends LegacySEBottleneck {
  constructor(inplanes: number, planes: number, o: LegacyBlockOptions) {
    super(inplanes, planes, o, { mid: planes * 2, width: planes * 4, strideOnConv1: false });
  }
}

export interface LegacyBlockClass {
  new (inplanes: number, planes: number, o: LegacyBlockOptions): Module;
  readonly expansion: number;
}

// ---- the release's network

/** What defines a network of the release (the arguments of timm's legacy SENet). */
export interface SENetConfig {
  block: LegacyBlockClass;
  layers: [number, number, number, number];
  groups: number;
  reduction: number;
  /** Channels out of the stem: 64, or SENet-154's 128. */
  inplanes: number;
  /** SENet-154's stem: three 3x3 convs (64, 64, inplanes) instead of one 7x7. */
  input3x3: boolean;
  /** Kernel and padding of the downsample shortcuts of layers 2-4 (SENet-154: 3 and 1; layer1's is always 1x1). */
  downsampleKernelSize: number;
  downsamplePadding: number;
}

/** `layer0`: conv-bn-relu once (7x7/2), or three times (3x3/2, 3x3, 3x3) for SENet-154. */
export class SENetStem extends Module {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  relu1: ReLU;
  conv2: Conv2d | null = null;
  bn2: BatchNorm2d | null = null;
  relu2: ReLU | null = null;
  conv3: Conv2d | null = null;
  bn3: BatchNorm2d | null = null;
  relu3: ReLU | null = null;
  constructor(inChans: number, inplanes: number, input3x3: boolean) {
    super();
    if (input3x3) {
      this.conv1 = new Conv2d(inChans, 64, 3, { stride: 2, padding: 1, bias: false });
      this.bn1 = new BatchNorm2d(64);
      this.relu1 = new ReLU(true);
      this.conv2 = new Conv2d(64, 64, 3, { padding: 1, bias: false });
      this.bn2 = new BatchNorm2d(64);
      this.relu2 = new ReLU(true);
      this.conv3 = new Conv2d(64, inplanes, 3, { padding: 1, bias: false });
      this.bn3 = new BatchNorm2d(inplanes);
      this.relu3 = new ReLU(true);
    } else {
      this.conv1 = new Conv2d(inChans, inplanes, 7, { stride: 2, padding: 3, bias: false });
      this.bn1 = new BatchNorm2d(inplanes);
      this.relu1 = new ReLU(true);
    }
  }
  forward(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv1, this.bn1, this.relu1, this.conv2, this.bn2, this.relu2, this.conv3, this.bn3, this.relu3]));
  }
}

export type SENetOptions = ModelOptions;
export const SENET_OPTIONS: OptionTable<SENetOptions> = {};

/** The release's default dropout before `last_linear` (timm's legacy SENet: drop_rate=0.2 for every variant). */
const LEGACY_DROP_RATE = 0.2;

export class SENet extends ClassifierModel {
  layer0: SENetStem;
  /** Max-pool 3x3/2 without padding, rounding up (Caffe's pooling, kept for the converted weights). */
  pool0: MaxPool2d;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  layer4: Sequential;
  last_linear!: AnyModule;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: SENetConfig, opts: SENetOptions = {}) {
    super();
    const { block, layers, groups, reduction } = cfg;
    this.dropRate = opts.dropRate ?? LEGACY_DROP_RATE;
    this.layer0 = new SENetStem(opts.inChans ?? 3, cfg.inplanes, cfg.input3x3);
    this.pool0 = new MaxPool2d(3, { stride: 2, ceilMode: true });
    let inplanes = cfg.inplanes;
    const stage = (planes: number, blocks: number, stride: number, kernel: number, padding: number): Sequential => {
      const out = planes * block.expansion;
      const downsample =
        stride !== 1 || inplanes !== out ? new Sequential(new Conv2d(inplanes, out, kernel, { stride, padding, bias: false }), new BatchNorm2d(out)) : null;
      const list: Module[] = [new block(inplanes, planes, { stride, downsample, groups, reduction })];
      inplanes = out;
      for (let i = 1; i < blocks; i++) list.push(new block(inplanes, planes, { stride: 1, downsample: null, groups, reduction }));
      return new Sequential(...list);
    };
    const [k, p] = [cfg.downsampleKernelSize, cfg.downsamplePadding];
    this.layer1 = stage(64, layers[0], 1, 1, 0);
    this.layer2 = stage(128, layers[1], 2, k, p);
    this.layer3 = stage(256, layers[2], 2, k, p);
    this.layer4 = stage(512, layers[3], 2, k, p);
    this.numFeatures = 512 * block.expansion;
    this._head = new ClassifierHead({ owner: this, field: 'last_linear' }, this.numFeatures, opts.numClasses ?? 1000, { dropRate: this.dropRate });
    this.initWeights();
  }

  /** timm's legacy scheme: He normal (fan out) conv weights, norms to identity; last_linear keeps PyTorch's default. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
      else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.layer0, this.pool0, this.layer1, this.layer2, this.layer3, this.layer4]));
  }
}

// ---- weights: timm's pretrained configs at the oracle's commit

const HF = (id: string, tag: string) => `https://huggingface.co/timm/${id}.${tag}/resolve/main/model.safetensors`;
// The legacy weights have no hf_hub_id in timm's configs: timm downloads them from these release files.
const RELEASE = 'https://github.com/rwightman/pytorch-image-models/releases/download';

/** A timm weights entry: crop 224 unless given, resize floor(crop / cropPct), ImageNet mean/std. */
function timmWeights(
  tag: string,
  url: string,
  numParams: number,
  acc: [number, number],
  o: { cropPct: number; interpolation: 'bilinear' | 'bicubic'; crop?: number; isDefault?: boolean },
): WeightsEntry {
  const crop = o.crop ?? 224;
  return {
    tag,
    url,
    sha256Prefix: null,
    default: o.isDefault ?? false,
    numParams,
    acc1: acc[0],
    acc5: acc[1],
    resizeSize: Math.floor(crop / o.cropPct),
    cropSize: crop,
    interpolation: o.interpolation,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    recipe: 'https://github.com/huggingface/pytorch-image-models',
  };
}

// ---- registration: architecture as data

const SE_PAPER = { title: 'Squeeze-and-Excitation Networks', year: 2018, url: 'https://arxiv.org/abs/1709.01507' };

interface LegacyVariant {
  id: string;
  config: SENetConfig;
  /** Parameter count (the fixtures' for the ids that have one; the others match timm's published counts, in millions to 2 decimals). */
  params: number;
  /** GMACs at 224: the paper's for SE-ResNet-50 (3.87) and SENet-154 (20.7), timm's benchmark tables for the rest. */
  gmacs: number;
  interpolation: 'bilinear' | 'bicubic';
  /** The release file (timm's `url`) and its top-1/top-5 in timm's results table. */
  file: string;
  acc: [number, number];
}

const legacy = (block: LegacyBlockClass, layers: SENetConfig['layers'], groups = 1): SENetConfig => ({
  block,
  layers,
  groups,
  reduction: 16,
  inplanes: 64,
  input3x3: false,
  downsampleKernelSize: 1,
  downsamplePadding: 0,
});

const LEGACY_VARIANTS: LegacyVariant[] = [
  {
    id: 'legacy_seresnet18',
    config: legacy(SEResNetBlock, [2, 2, 2, 2]),
    params: 11778592,
    gmacs: 1.82,
    interpolation: 'bicubic',
    file: `${RELEASE}/v0.1-weights/seresnet18-4bb0ce65.pth`,
    acc: [71.742, 90.34],
  },
  {
    id: 'legacy_seresnet34',
    config: legacy(SEResNetBlock, [3, 4, 6, 3]),
    params: 21958868,
    gmacs: 3.67,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-weights/seresnet34-a4004e63.pth`,
    acc: [74.788, 92.134],
  },
  {
    id: 'legacy_seresnet50',
    config: legacy(SEResNetBottleneck, [3, 4, 6, 3]),
    params: 28088024,
    gmacs: 3.87,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-cadene/se_resnet50-ce0d4300.pth`,
    acc: [77.65, 93.732],
  },
  {
    id: 'legacy_seresnet101',
    config: legacy(SEResNetBottleneck, [3, 4, 23, 3]),
    params: 49326872,
    gmacs: 7.61,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-cadene/se_resnet101-7e38fcc6.pth`,
    acc: [78.37, 94.264],
  },
  {
    id: 'legacy_seresnet152',
    config: legacy(SEResNetBottleneck, [3, 8, 36, 3]),
    params: 66821848,
    gmacs: 11.33,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-cadene/se_resnet152-d17c99b7.pth`,
    acc: [78.662, 94.37],
  },
  {
    id: 'legacy_seresnext26_32x4d',
    config: legacy(SEResNeXtBottleneck, [2, 2, 2, 2], 32),
    params: 16790280,
    gmacs: 2.49,
    interpolation: 'bicubic',
    file: `${RELEASE}/v0.1-weights/seresnext26_32x4d-65ebdb501.pth`,
    acc: [77.1, 93.332],
  },
  {
    id: 'legacy_seresnext50_32x4d',
    config: legacy(SEResNeXtBottleneck, [3, 4, 6, 3], 32),
    params: 27559896,
    gmacs: 4.26,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth`,
    acc: [79.08, 94.428],
  },
  {
    id: 'legacy_seresnext101_32x4d',
    config: legacy(SEResNeXtBottleneck, [3, 4, 23, 3], 32),
    params: 48955416,
    gmacs: 8.02,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth`,
    acc: [80.274, 95.032],
  },
  {
    id: 'legacy_senet154',
    config: {
      block: SEBottleneck,
      layers: [3, 8, 36, 3],
      groups: 64,
      reduction: 16,
      inplanes: 128,
      input3x3: true,
      downsampleKernelSize: 3,
      downsamplePadding: 1,
    },
    params: 115088984,
    gmacs: 20.7,
    interpolation: 'bilinear',
    file: `${RELEASE}/v0.1-weights/legacy_senet154-e9eb9fe6.pth`,
    acc: [81.32, 95.502],
  },
];

for (const v of LEGACY_VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: 'senet',
      paper: SE_PAPER,
      inputSize: [3, 224, 224],
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      interpolation: v.interpolation,
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'layer0.conv1',
      classifier: 'last_linear',
      weights: [timmWeights('in1k', v.file, v.params, v.acc, { cropPct: 0.875, interpolation: v.interpolation, isDefault: true })],
      notes: "The authors' Caffe release as converted by Cadene and timm (legacy/senet.py): timm's legacy keys and weights.",
    },
    { options: SENET_OPTIONS, fixed: v.config },
    (opts: SENetOptions, config) => new SENet(config, opts),
  );
}

// The release's names in Cadene's pretrainedmodels (and timm before the legacy_ prefix).
for (const [alias, id] of [
  ['senet154', 'legacy_senet154'],
  ['se_resnet50', 'legacy_seresnet50'],
  ['se_resnet101', 'legacy_seresnet101'],
  ['se_resnet152', 'legacy_seresnet152'],
  ['se_resnext50_32x4d', 'legacy_seresnext50_32x4d'],
  ['se_resnext101_32x4d', 'legacy_seresnext101_32x4d'],
]) {
  registerAlias(alias, id);
}

// ---- timm's ResNets with SE: resnet.ts's network with timm's SEModule at each block's `se`

/** timm's SEModule (create_attn('se')): 1x1 convs `fc1`/`fc2` with biases, makeDivisible(C / 16, 8) wide, ReLU, sigmoid. */
export const timmSE = (channels: number): Module => new SqueezeExcite(channels);

interface SEResNetVariant {
  id: string;
  family: string;
  config: ResNetConfig;
  params: number;
  gmacs: number;
  weights: (params: number) => WeightsEntry[];
}

const SE_RESNET_VARIANTS: SEResNetVariant[] = [
  {
    id: 'seresnet50',
    family: 'senet',
    config: { block: Bottleneck, layers: [3, 4, 6, 3], groups: 1, widthPerGroup: 64, attnLayer: timmSE },
    params: 28088024,
    gmacs: 4.11,
    weights: (n) => [
      timmWeights('a1_in1k', HF('seresnet50', 'a1_in1k'), n, [80.012, 94.704], { cropPct: 0.95, interpolation: 'bicubic', isDefault: true }),
      timmWeights('a2_in1k', HF('seresnet50', 'a2_in1k'), n, [80.102, 94.72], { cropPct: 0.95, interpolation: 'bicubic' }),
      timmWeights('a3_in1k', HF('seresnet50', 'a3_in1k'), n, [75.104, 92.096], { cropPct: 0.95, interpolation: 'bicubic', crop: 160 }),
      timmWeights('ra2_in1k', HF('seresnet50', 'ra2_in1k'), n, [80.26, 95.068], { cropPct: 0.875, interpolation: 'bicubic' }),
    ],
  },
  {
    id: 'seresnext50_32x4d',
    family: 'senet',
    config: { block: Bottleneck, layers: [3, 4, 6, 3], groups: 32, widthPerGroup: 4, attnLayer: timmSE },
    params: 27559896,
    gmacs: 4.26,
    weights: (n) => [
      timmWeights('racm_in1k', HF('seresnext50_32x4d', 'racm_in1k'), n, [81.268, 95.624], { cropPct: 0.875, interpolation: 'bicubic', isDefault: true }),
      timmWeights('gluon_in1k', HF('seresnext50_32x4d', 'gluon_in1k'), n, [79.916, 94.816], { cropPct: 0.875, interpolation: 'bicubic' }),
    ],
  },
];

for (const v of SE_RESNET_VARIANTS) {
  const weights = v.weights(v.params);
  const meta: ModelMeta = {
    id: v.id,
    family: v.family,
    paper: SE_PAPER,
    inputSize: [3, 224, 224],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bicubic',
    numClasses: 1000,
    params: v.params,
    gmacs: v.gmacs,
    firstConv: 'conv1',
    classifier: 'fc',
    weights,
    notes: "timm's ResNet (stride on the 3x3, padded stem pool) with an SE module after each block's last norm; zero-init last norms by default, as timm.",
  };
  registerModel(
    meta,
    { options: RESNET_OPTIONS, fixed: v.config },
    (opts: ResNetOptions, config) =>
      // timm's ResNet zero-initialises each block's last norm unless told otherwise (zero_init_last=True).
      new ResNet(config, { ...opts, zeroInitResidual: opts.zeroInitResidual ?? true }),
  );
}
