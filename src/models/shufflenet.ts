// ShuffleNet v1 and v2.
// Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
// Devices" (CVPR 2018): Megvii's official PyTorch code (github megvii-model/ShuffleNet-Series,
// ShuffleNetV1/network.py + blocks.py), key for key (`first_conv.0`, `features.<i>.branch_main_1.<j>`,
// `branch_main_2.<j>`, `classifier.0`), so that its released checkpoints load. Its channel shuffle is
// the inverse of torchvision's permutation (F.channelShuffle's 'megvii' variant), its classifier has no
// bias, the first pointwise conv of stage 2 is not grouped and no ReLU follows the depthwise conv
// (section 3.2 of the paper). The official code has groups 3 and 8; groups 1, 2 and 4 take Table 1's
// channels in the same structure.
// Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"
// (ECCV 2018): torchvision's network, key for key (`conv1.0`, `stage2.0.branch1.0`, `conv5.0`, `fc`).
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { cat } from '../tensor/creation.js';
import { check } from '../errors.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, MaxPool2d, AvgPool2d, ReLU, Sequential } from '../nn/layers.js';
import { ConvNormAct } from '../nn/conv_norm_act.js';
import { ChannelShuffle } from '../nn/channel_shuffle.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta } from './registry.js';
import type { OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- shared

/** A conv-BN-ReLU under index keys (`<name>.0`, `<name>.1`): both networks' stems, v2's conv5. */
function convBnRelu(inC: number, outC: number, k: number, stride = 1): ConvNormAct {
  return new ConvNormAct(inC, outC, k, { stride, padding: Math.floor(k / 2), act: 'relu', names: { conv: '0', norm: '1', act: '2' } });
}

/** A depthwise 3x3 convolution without bias. */
function dwConv(c: number, stride: number): Conv2d {
  return new Conv2d(c, c, 3, { stride, padding: 1, groups: c, bias: false });
}

/** A 1x1 convolution without bias. */
function pwConv(inC: number, outC: number, groups = 1): Conv2d {
  return new Conv2d(inC, outC, 1, { groups, bias: false });
}

// ---- ShuffleNet v1: Table 1 as data

/** Units per stage (stages 2, 3, 4), the first of each with stride 2 (Table 1). */
export const SHUFFLENET_V1_REPEATS: readonly [number, number, number] = [4, 8, 4];

/** What defines a ShuffleNet v1 variant: groups g, the stem's width and the output widths of stages 2-4. */
export interface ShuffleNetV1Config {
  groups: 1 | 2 | 3 | 4 | 8;
  stem: number;
  widths: [number, number, number];
}

/**
 * network.py's stage_out_channels for groups 3 and 8 (Table 1 at 1.0x; the official widths at
 * 0.5x, 1.5x, 2.0x), and Table 1's 1.0x widths for groups 1, 2 and 4 (stem 24).
 */
export const SHUFFLENET_V1_CONFIGS: Record<string, ShuffleNetV1Config> = {
  g1: { groups: 1, stem: 24, widths: [144, 288, 576] },
  g2: { groups: 2, stem: 24, widths: [200, 400, 800] },
  g3: { groups: 3, stem: 24, widths: [240, 480, 960] },
  g4: { groups: 4, stem: 24, widths: [272, 544, 1088] },
  g8: { groups: 8, stem: 24, widths: [384, 768, 1536] },
  g3_0_5x: { groups: 3, stem: 12, widths: [120, 240, 480] },
  g3_1_5x: { groups: 3, stem: 24, widths: [360, 720, 1440] },
  g3_2_0x: { groups: 3, stem: 48, widths: [480, 960, 1920] },
};

/**
 * The ShuffleNet unit (Figure 2 b, c; blocks.py's ShuffleV1Block): 1x1 group conv (BN, ReLU),
 * channel shuffle, 3x3 depthwise conv (BN, no ReLU), 1x1 group conv (BN). Stride 1: ReLU(x + branch).
 * Stride 2: the branch makes out - in channels, concatenated after a 3x3/2 average pool of x, then ReLU
 * on the branch part. Bottleneck width out / 4; the first unit of stage 2 has an ungrouped first conv
 * (its input has only the stem's channels).
 */
export class ShuffleV1Block extends Module {
  branch_main_1: Sequential;
  shuffle: ChannelShuffle | null;
  branch_main_2: Sequential;
  branch_proj: AvgPool2d | null;
  readonly stride: number;
  constructor(inC: number, outC: number, o: { groups: number; firstGroup: boolean; stride: 1 | 2 }) {
    super();
    const mid = Math.floor(outC / 4);
    const branchOut = o.stride === 2 ? outC - inC : outC;
    check(mid % o.groups === 0 && branchOut % o.groups === 0, 'ShuffleV1Block', `expected the groups (${o.groups}) to divide ${mid} and ${branchOut}`);
    this.stride = o.stride;
    this.branch_main_1 = new Sequential(
      pwConv(inC, mid, o.firstGroup ? 1 : o.groups),
      new BatchNorm2d(mid),
      new ReLU(true),
      dwConv(mid, o.stride),
      new BatchNorm2d(mid),
    );
    // blocks.py's reshape(b, C / g, g, h, w) + permute: the inverse of torchvision's permutation.
    this.shuffle = o.groups > 1 ? new ChannelShuffle(o.groups, { variant: 'megvii' }) : null;
    this.branch_main_2 = new Sequential(pwConv(mid, branchOut, o.groups), new BatchNorm2d(branchOut));
    this.branch_proj = o.stride === 2 ? new AvgPool2d(3, { stride: 2, padding: 1 }) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const main = runChain(x, [this.branch_main_1, this.shuffle, this.branch_main_2]);
      if (!this.branch_proj) return main.add_(x).relu_();
      return cat([this.branch_proj.forward(x), main.relu_()], 1);
    });
  }
}

export type ShuffleNetOptions = ModelOptions;
export const SHUFFLENET_OPTIONS: OptionTable<ShuffleNetOptions> = {};

/** The official classifier's initialisation: N(0, 0.01) (it has no bias). */
function initV1Classifier(m: AnyModule): void {
  if (m instanceof Linear) init.normal_(m.weight, 0, 0.01);
}

export class ShuffleNetV1 extends ClassifierModel {
  first_conv: ConvNormAct;
  maxpool: MaxPool2d;
  features: Sequential;
  classifier: Sequential;
  readonly groups: number;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: ShuffleNetV1Config, opts: ShuffleNetOptions = {}) {
    super();
    this.groups = cfg.groups;
    this.dropRate = opts.dropRate ?? 0;
    this.first_conv = convBnRelu(opts.inChans ?? 3, cfg.stem, 3, 2);
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    const units: ShuffleV1Block[] = [];
    let inC = cfg.stem;
    cfg.widths.forEach((outC, s) => {
      for (let i = 0; i < SHUFFLENET_V1_REPEATS[s]; i++) {
        units.push(new ShuffleV1Block(inC, outC, { groups: cfg.groups, firstGroup: s === 0 && i === 0, stride: i === 0 ? 2 : 1 }));
        inC = outC;
      }
    });
    this.features = new Sequential(...units);
    this.numFeatures = inC;
    // network.py pools with AvgPool2d(7): the global average for inputs of 193 to 224 pixels.
    this.classifier = new Sequential();
    this._head = new ClassifierHead({ sequential: this.classifier }, inC, opts.numClasses ?? 1000, {
      dropRate: this.dropRate,
      bias: false,
      initLayer: initV1Classifier,
    });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.first_conv, this.maxpool, this.features]));
  }
  /**
   * network.py's _initialize_weights: the stem's conv N(0, 0.01), every other conv N(0, 1 / its input
   * channels per group), BN weight 1 and bias 1e-4, the classifier N(0, 0.01).
   */
  initWeights(): void {
    for (const [name, m] of this.namedModules()) {
      if (m instanceof Conv2d) {
        init.normal_(m.weight, 0, name.startsWith('first') ? 0.01 : 1 / m.weight.shape[1]);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.constant_(m.bias, 1e-4);
        if (m.running_mean) init.zeros_(m.running_mean);
      } else if (m instanceof Linear) {
        init.normal_(m.weight, 0, 0.01);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }
}

// ---- ShuffleNet v2 (torchvision)

/** Units per stage (stages 2, 3, 4), Table 5. */
export const SHUFFLENET_V2_REPEATS: readonly [number, number, number] = [4, 8, 4];

/** Table 5's output channels: conv1, stages 2-4, conv5 (torchvision's stages_out_channels). */
export const SHUFFLENET_V2_CHANNELS: Record<'x0_5' | 'x1_0' | 'x1_5' | 'x2_0', [number, number, number, number, number]> = {
  x0_5: [24, 48, 96, 192, 1024],
  x1_0: [24, 116, 232, 464, 1024],
  x1_5: [24, 176, 352, 704, 1024],
  x2_0: [24, 244, 488, 976, 2048],
};

/**
 * The v2 unit (Figure 3 c, d; torchvision's InvertedResidual). Stride 1: the channels split in two
 * halves, the second through 1x1 (BN, ReLU), 3x3 depthwise (BN), 1x1 (BN, ReLU), concatenated with the
 * first. Stride 2: both branches see all of x (branch1: 3x3/2 depthwise, BN, 1x1, BN, ReLU). Then a
 * channel shuffle with 2 groups.
 */
export class ShuffleV2Block extends Module {
  branch1: Sequential | null;
  branch2: Sequential;
  shuffle: ChannelShuffle;
  readonly stride: number;
  constructor(inC: number, outC: number, stride: 1 | 2) {
    super();
    const half = Math.floor(outC / 2);
    check(stride === 2 || inC === 2 * half, 'ShuffleV2Block', `a stride-1 unit needs inC = 2 * (outC / 2), got ${inC} and ${outC}`);
    this.stride = stride;
    this.branch1 = stride === 2 ? new Sequential(dwConv(inC, stride), new BatchNorm2d(inC), pwConv(inC, half), new BatchNorm2d(half), new ReLU(true)) : null;
    this.branch2 = new Sequential(
      pwConv(stride === 2 ? inC : half, half),
      new BatchNorm2d(half),
      new ReLU(true),
      dwConv(half, stride),
      new BatchNorm2d(half),
      pwConv(half, half),
      new BatchNorm2d(half),
      new ReLU(true),
    );
    this.shuffle = new ChannelShuffle(2);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out: Tensor;
      if (this.branch1) out = cat([this.branch1.forward(x), this.branch2.forward(x)], 1);
      else {
        const [x1, x2] = x.chunk(2, 1);
        out = cat([x1, this.branch2.forward(x2)], 1);
      }
      return this.shuffle.forward(out);
    });
  }
}

export class ShuffleNetV2 extends ClassifierModel {
  conv1: ConvNormAct;
  maxpool: MaxPool2d;
  stage2: Sequential;
  stage3: Sequential;
  stage4: Sequential;
  conv5: ConvNormAct;
  fc!: Module;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(channels: readonly number[], opts: ShuffleNetOptions = {}) {
    super();
    this.dropRate = opts.dropRate ?? 0;
    this.conv1 = convBnRelu(opts.inChans ?? 3, channels[0], 3, 2);
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    let inC = channels[0];
    const stage = (s: number): Sequential => {
      const outC = channels[s + 1];
      const units = [new ShuffleV2Block(inC, outC, 2)];
      for (let i = 1; i < SHUFFLENET_V2_REPEATS[s]; i++) units.push(new ShuffleV2Block(outC, outC, 1));
      inC = outC;
      return new Sequential(...units);
    };
    this.stage2 = stage(0);
    this.stage3 = stage(1);
    this.stage4 = stage(2);
    this.conv5 = convBnRelu(inC, channels[4], 1);
    this.numFeatures = channels[4];
    this._head = new ClassifierHead({ owner: this, field: 'fc' }, this.numFeatures, opts.numClasses ?? 1000, { dropRate: this.dropRate });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv1, this.maxpool, this.stage2, this.stage3, this.stage4, this.conv5]));
  }
  /** torchvision's ShuffleNetV2 keeps PyTorch's default initialisation of every layer. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d || m instanceof Linear) m.resetParameters();
      else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }
}

// ---- registration

const V1_PAPER = {
  title: 'ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices',
  year: 2018,
  url: 'https://arxiv.org/abs/1707.01083',
};
const V2_PAPER = { title: 'ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design', year: 2018, url: 'https://arxiv.org/abs/1807.11164' };
const V1_CODE = 'https://github.com/megvii-model/ShuffleNet-Series/tree/aa91feb71b01f28d0b8da3533d20a3edb11b1810/ShuffleNetV1';

/**
 * The official evaluation (ShuffleNetV1/train.py): OpenCV bilinear resize of the short side to 256,
 * centre crop 224, BGR pixels on 0-255 without mean or std. On convzoo's 0-1 RGB input that is mean 0,
 * std 1/255 (the channel order is in the notes).
 */
const V1_MEAN: [number, number, number] = [0, 0, 0];
const V1_STD: [number, number, number] = [1 / 255, 1 / 255, 1 / 255];

/** The released checkpoints were saved from nn.DataParallel: `module.first_conv.0.weight` -> `first_conv.0.weight`. */
export function megviiKey(key: string): string {
  return key.startsWith('module.') ? key.slice('module.'.length) : key;
}

interface V1Variant {
  id: string;
  config: ShuffleNetV1Config;
  /** Counted from the official code (with Table 1's widths for g1/g2/g4). */
  params: number;
  /** The paper's figure in millions, where it gives one (Table 8 and the official README). */
  paperParams?: number;
  /** Multiply-adds: the official README (g3, g8 at 1.0x) or Table 1's complexity (g1, g2, g4), in GMACs. */
  gmacs: number;
  size: string;
}

const V1_VARIANTS: V1Variant[] = [
  { id: 'shufflenet_v1_g1', config: SHUFFLENET_V1_CONFIGS.g1, params: 1530936, gmacs: 0.143, size: '1.0x' },
  { id: 'shufflenet_v1_g2', config: SHUFFLENET_V1_CONFIGS.g2, params: 1732848, gmacs: 0.14, size: '1.0x' },
  { id: 'shufflenet_v1_g3', config: SHUFFLENET_V1_CONFIGS.g3, params: 1864728, paperParams: 1.9, gmacs: 0.138, size: '1.0x' },
  { id: 'shufflenet_v1_g4', config: SHUFFLENET_V1_CONFIGS.g4, params: 1967344, gmacs: 0.133, size: '1.0x' },
  { id: 'shufflenet_v1_g8', config: SHUFFLENET_V1_CONFIGS.g8, params: 2433768, paperParams: 2.4, gmacs: 0.138, size: '1.0x' },
  { id: 'shufflenet_v1_g3_0_5x', config: SHUFFLENET_V1_CONFIGS.g3_0_5x, params: 717324, paperParams: 0.7, gmacs: 0.038, size: '0.5x' },
  { id: 'shufflenet_v1_g3_1_5x', config: SHUFFLENET_V1_CONFIGS.g3_1_5x, params: 3441168, paperParams: 3.4, gmacs: 0.292, size: '1.5x' },
  { id: 'shufflenet_v1_g3_2_0x', config: SHUFFLENET_V1_CONFIGS.g3_2_0x, params: 5449776, paperParams: 5.4, gmacs: 0.524, size: '2.0x' },
];

for (const v of V1_VARIANTS) {
  const { groups } = v.config;
  const official = groups === 3 || groups === 8;
  registerModel(
    {
      id: v.id,
      family: 'shufflenet_v1',
      paper: V1_PAPER,
      inputSize: [3, 224, 224],
      mean: V1_MEAN,
      std: V1_STD,
      interpolation: 'bilinear',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'first_conv.0',
      classifier: 'classifier.0',
      weights: [],
      remapWeightsKey: megviiKey,
      notes:
        (official
          ? `Megvii's ShuffleNetV1(model_size='${v.size}', group=${groups}) key for key (${V1_CODE}).`
          : `Megvii's ShuffleNetV1 structure (${V1_CODE}) with Table 1's 1.0x widths for g = ${groups} ` +
            '(the official code has g3 and g8 only); no released weights.') +
        ` ${v.params} parameters${v.paperParams ? ` (paper: ${v.paperParams}M)` : ''}; ${v.gmacs * 1000}M multiply-adds ` +
        `(${official ? "the official README's FLOPs" : "Table 1's complexity"}). ` +
        (official
          ? "Weights: Megvii's released checkpoints (g3 and g8 at 0.5x to 2.0x) are in the README's OneDrive folder " +
            '(https://1drv.ms/f/s!AgaP37NGYuEXhRfQxHRseR7eSxXo) and BaiduYun (https://pan.baidu.com/s/1EUQVoFPb74yZm0JWHKjFOw, ' +
            'code mc24), with no stable direct file URL; a downloaded checkpoint loads as a local file (its `module.` ' +
            'prefix is dropped). '
          : '') +
        'The official preprocessing: short side 256 (OpenCV bilinear), centre crop 224, BGR pixels on 0-255 with no mean ' +
        `or std (here mean 0, std 1/255 on 0-1 input${official ? '; reverse the input channels of first_conv.0.weight of a released checkpoint to feed RGB' : ''}). ` +
        'The network pools with AvgPool2d(7), the global average for inputs of 193 to 224; convzoo pools globally.',
    },
    { options: SHUFFLENET_OPTIONS, fixed: v.config },
    (opts: ShuffleNetOptions, config) => new ShuffleNetV1(config, opts),
  );
}

// GMACs: torchvision's published GFLOPS (its later metadata's _ops: 0.04, 0.145, 0.296, 0.583).
const V2_VARIANTS: { id: string; width: keyof typeof SHUFFLENET_V2_CHANNELS; params: number; gmacs: number }[] = [
  { id: 'shufflenet_v2_x0_5', width: 'x0_5', params: 1366792, gmacs: 0.04 },
  { id: 'shufflenet_v2_x1_0', width: 'x1_0', params: 2278604, gmacs: 0.145 },
  { id: 'shufflenet_v2_x1_5', width: 'x1_5', params: 3503624, gmacs: 0.296 },
  { id: 'shufflenet_v2_x2_0', width: 'x2_0', params: 7393996, gmacs: 0.583 },
];

for (const v of V2_VARIANTS) {
  const meta: ModelMeta = {
    id: v.id,
    family: 'shufflenet_v2',
    paper: V2_PAPER,
    inputSize: [3, 224, 224],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bilinear',
    numClasses: 1000,
    params: v.params,
    gmacs: v.gmacs,
    torchvision: v.id,
    firstConv: 'conv1.0',
    classifier: 'fc',
    weights: TORCHVISION_WEIGHTS[v.id] ?? [],
    notes: `torchvision's ShuffleNetV2 (Table 5, ${v.width.replace('x', '').replace('_', '.')}x).`,
  };
  registerModel(
    meta,
    { options: SHUFFLENET_OPTIONS, fixed: { channels: SHUFFLENET_V2_CHANNELS[v.width] } },
    (opts: ShuffleNetOptions, c) => new ShuffleNetV2(c.channels, opts),
  );
}
