// EfficientNet B0-B7.
// Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (2019): Table 1's
// stages (the B0 baseline) and the compound scaling of each variant (width, depth, resolution, dropout)
// as one table of data, built twice:
//  - efficientnet_b0 ... b7: torchvision's networks, key for key (`features.<stage>.<i>.block.<j>...`),
//    SiLU, stochastic depth 0.2, torchvision's per-variant dropout; B5-B7 use BN eps 1e-3, momentum 0.01.
//  - tf_efficientnet_b0 ... b7: timm's ports of the TensorFlow checkpoints (timm's keys `conv_stem`,
//    `blocks.<stage>.<i>.conv_pw` ...), TF "same" padding computed from the input size, BN eps 1e-3,
//    built from the same rows by timm's block builder (src/nn/efficientnet_blocks.ts).
// TimmEfficientNet is timm's generic EfficientNet class (stem, builder stages, 1x1 head conv), which
// timm's MnasNet ids (mnasnet.ts) use too.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, Dropout, Sequential, type BatchNormOptions } from '../nn/layers.js';
import { ConvNormAct } from '../nn/conv_norm_act.js';
import { SqueezeExcite } from '../nn/squeeze_excite.js';
import { DropPath, dropPathRates } from '../nn/drop_path.js';
import { makeDivisible } from '../nn/make_divisible.js';
import { createConv2d } from '../nn/conv2d_same.js';
import { getActivation, type ActName } from '../nn/activations.js';
import { ClassifierHead } from '../nn/head.js';
import {
  buildEfficientNetStages,
  initEfficientNetWeights,
  initEfficientNetLinear,
  roundChannels,
  type BlockDef,
  type PadType,
} from '../nn/efficientnet_blocks.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta, type WeightsEntry } from './registry.js';
import { opt, type OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- the paper's tables as data

/** One row of Table 1 (the B0 baseline): MBConv expansion, kernel, first stride, input and output channels, layers. */
export interface EfficientNetStage {
  expand: number;
  kernel: number;
  stride: number;
  in: number;
  out: number;
  layers: number;
}
const row = (expand: number, kernel: number, stride: number, inC: number, out: number, layers: number): EfficientNetStage => ({
  expand,
  kernel,
  stride,
  in: inC,
  out,
  layers,
});

/** Table 1 after the 3x3 stem (32 channels): MBConv1 k3x3 ... MBConv6 k3x3, each with squeeze-excitation (ratio 0.25 of the input). */
export const EFFICIENTNET_STAGES: readonly EfficientNetStage[] = [
  row(1, 3, 1, 32, 16, 1),
  row(6, 3, 2, 16, 24, 2),
  row(6, 5, 2, 24, 40, 2),
  row(6, 3, 2, 40, 80, 3),
  row(6, 5, 1, 80, 112, 3),
  row(6, 5, 2, 112, 192, 4),
  row(6, 3, 1, 192, 320, 1),
];
const STEM = 32;
const HEAD = 1280;
/** The SE ratio of every block, relative to its input width. */
const SE_RATIO = 0.25;

/** Compound scaling of one variant: width and depth multipliers, resolution, dropout before the classifier. */
export interface CompoundScaling {
  width: number;
  depth: number;
  resolution: number;
  dropout: number;
}

/** The compound scaling of B0-B7 (the authors' efficientnet_builder.py params; both torchvision and timm use it). */
export const EFFICIENTNET_SCALING: Record<'b0' | 'b1' | 'b2' | 'b3' | 'b4' | 'b5' | 'b6' | 'b7', CompoundScaling> = {
  b0: { width: 1.0, depth: 1.0, resolution: 224, dropout: 0.2 },
  b1: { width: 1.0, depth: 1.1, resolution: 240, dropout: 0.2 },
  b2: { width: 1.1, depth: 1.2, resolution: 260, dropout: 0.3 },
  b3: { width: 1.2, depth: 1.4, resolution: 300, dropout: 0.3 },
  b4: { width: 1.4, depth: 1.8, resolution: 380, dropout: 0.4 },
  b5: { width: 1.6, depth: 2.2, resolution: 456, dropout: 0.4 },
  b6: { width: 1.8, depth: 2.6, resolution: 528, dropout: 0.5 },
  b7: { width: 2.0, depth: 3.1, resolution: 600, dropout: 0.5 },
};
export type EfficientNetVariant = keyof typeof EFFICIENTNET_SCALING;

/** Widths scale by makeDivisible(c * width, 8) (torchvision's adjust_channels, timm's round_channels); depths by ceil(n * depth). */
export const scaleWidth = (c: number, width: number): number => makeDivisible(c * width, 8);
export const scaleDepth = (n: number, depth: number): number => Math.ceil(n * depth);

/** Table 1 as timm's block rows: MBConv1 is a depthwise-separable block, the rest inverted residuals, all with SE 0.25. */
export function efficientNetBlockDefs(depth: number): BlockDef[][] {
  return EFFICIENTNET_STAGES.map((s, i) =>
    Array.from({ length: scaleDepth(s.layers, depth) }, () => ({
      type: i === 0 ? ('ds' as const) : ('ir' as const),
      repeats: 1,
      kernel: s.kernel,
      stride: s.stride,
      expRatio: s.expand,
      outChannels: s.out,
      seRatio: SE_RATIO,
      noskip: false,
    })),
  );
}

// ---- torchvision

/** torchvision's Conv2dNormActivation: keys `<i>.0` (conv), `<i>.1` (norm). */
function convBnAct(inC: number, outC: number, k: number, o: { stride?: number; groups?: number; act: ActName; bn?: BatchNormOptions }): ConvNormAct {
  return new ConvNormAct(inC, outC, k, {
    stride: o.stride ?? 1,
    padding: Math.floor((k - 1) / 2),
    groups: o.groups ?? 1,
    norm: o.bn ?? true,
    act: o.act,
    names: { conv: '0', norm: '1', act: '2' },
  });
}

/** torchvision's MBConv: [1x1 expand], depthwise kxk, SE (input // 4 wide, SiLU), 1x1 project (`block.<j>`); stochastic depth on the residual. */
export class MBConv extends Module {
  block: Sequential;
  stochastic_depth: DropPath;
  readonly useResConnect: boolean;
  constructor(inC: number, outC: number, o: { expand: number; kernel: number; stride: number; dropPath: number; bn?: BatchNormOptions }) {
    super();
    this.useResConnect = o.stride === 1 && inC === outC;
    const exp = makeDivisible(inC * o.expand, 8);
    const layers: Module[] = [];
    if (exp !== inC) layers.push(convBnAct(inC, exp, 1, { act: 'silu', bn: o.bn }));
    layers.push(
      convBnAct(exp, exp, o.kernel, { stride: o.stride, groups: exp, act: 'silu', bn: o.bn }),
      SqueezeExcite.torchvision(exp, Math.max(1, Math.floor(inC / 4)), { act: 'silu' }),
      convBnAct(exp, outC, 1, { act: 'none', bn: o.bn }),
    );
    this.block = new Sequential(...layers);
    this.stochastic_depth = new DropPath(o.dropPath);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.block.forward(x);
      return this.useResConnect ? runChain(out, [this.stochastic_depth]).add_(x) : out;
    });
  }
}

export interface EfficientNetOptions extends ModelOptions {
  /** Stochastic depth: block i of n drops its residual branch with probability dropPathRate * i / n (default 0.2). */
  dropPathRate?: number;
}
export const EFFICIENTNET_OPTIONS: OptionTable<EfficientNetOptions> = { dropPathRate: opt.rate() };

/** torchvision's BN for B5-B7 (the TF checkpoints' eps, momentum 1 - 0.99). */
const TV_BN_LARGE: BatchNormOptions = { eps: 1e-3, momentum: 0.01 };

/** torchvision's EfficientNet (v1): `features` (stem, seven stages, 1x1 head conv), `classifier` (Dropout, Linear). */
export class EfficientNet extends ClassifierModel {
  features: Sequential;
  classifier: Sequential;
  readonly numFeatures: number;
  readonly dropRate: number;
  readonly dropPathRate: number;
  protected readonly _head: ClassifierHead;
  constructor(variant: EfficientNetVariant, opts: EfficientNetOptions = {}) {
    super();
    const sc = EFFICIENTNET_SCALING[variant];
    const bn = ['b5', 'b6', 'b7'].includes(variant) ? TV_BN_LARGE : undefined;
    this.dropRate = opts.dropRate ?? sc.dropout;
    this.dropPathRate = opts.dropPathRate ?? 0.2;
    const stages = EFFICIENTNET_STAGES.map((s) => ({
      ...s,
      in: scaleWidth(s.in, sc.width),
      out: scaleWidth(s.out, sc.width),
      layers: scaleDepth(s.layers, sc.depth),
    }));
    const total = stages.reduce((a, s) => a + s.layers, 0);
    const rates = dropPathRates(total, this.dropPathRate, { includeEnd: false });
    const layers: Module[] = [convBnAct(opts.inChans ?? 3, stages[0].in, 3, { stride: 2, act: 'silu', bn })];
    let id = 0;
    for (const s of stages) {
      const blocks: Module[] = [];
      for (let i = 0; i < s.layers; i++)
        blocks.push(
          new MBConv(i === 0 ? s.in : s.out, s.out, { expand: s.expand, kernel: s.kernel, stride: i === 0 ? s.stride : 1, dropPath: rates[id++], bn }),
        );
      layers.push(new Sequential(...blocks));
    }
    const last = stages[stages.length - 1].out;
    this.numFeatures = 4 * last;
    layers.push(convBnAct(last, this.numFeatures, 1, { act: 'silu', bn }));
    this.features = new Sequential(...layers);
    this.classifier = new Sequential(new Dropout(this.dropRate));
    this._head = new ClassifierHead({ sequential: this.classifier }, this.numFeatures, opts.numClasses ?? 1000, { initLayer: initEfficientNetLinear });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return this.features.forward(x);
  }
  /** torchvision's initialisation: He normal (fan out) convs, BN to identity, U(+-1/sqrt(out)) linear layers. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        init.kaimingNormal_(m.weight, { mode: 'fanOut' });
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof Linear) initEfficientNetLinear(m);
    }
  }
}

// ---- timm's EfficientNet class

/** What defines a network built by timm's EfficientNet class. */
export interface TimmEfficientNetConfig {
  /** One BlockDef per block, by stage (decodeArchDef / efficientNetBlockDefs). */
  blocks: BlockDef[][];
  /** Width multiplier of every block (timm's round_chs_fn), also of the stem and head unless fixed. */
  width: number;
  /** Stem channels before scaling (32). */
  stem: number;
  /** Channels of the 1x1 head conv before scaling (1280). */
  head: number;
  /** Whether the head width is scaled (EfficientNet: round_chs_fn(1280); MnasNet: a fixed 1280). */
  scaleHead: boolean;
  act: ActName;
  bn?: BatchNormOptions;
  padding?: PadType;
}

export interface TimmEfficientNetOptions extends ModelOptions {
  /** Stochastic depth: block i of n drops its residual branch with probability dropPathRate * i / n. */
  dropPathRate?: number;
}

/** timm's EfficientNet: `conv_stem`, `bn1`, `blocks.<stage>.<i>`, `conv_head`, `bn2`, `classifier`. */
export class TimmEfficientNet extends ClassifierModel {
  conv_stem: Conv2d;
  bn1: BatchNorm2d;
  act1: AnyModule;
  blocks: Sequential;
  conv_head: Conv2d;
  bn2: BatchNorm2d;
  act2: AnyModule;
  classifier!: AnyModule;
  readonly numFeatures: number;
  readonly dropRate: number;
  readonly dropPathRate: number;
  protected readonly _head: ClassifierHead;
  constructor(cfg: TimmEfficientNetConfig, opts: TimmEfficientNetOptions & { defaultDropRate?: number; defaultDropPathRate?: number } = {}) {
    super();
    const round = (c: number): number => roundChannels(c, cfg.width);
    this.dropRate = opts.dropRate ?? opts.defaultDropRate ?? 0;
    this.dropPathRate = opts.dropPathRate ?? opts.defaultDropPathRate ?? 0;
    const stem = round(cfg.stem);
    this.conv_stem = createConv2d(opts.inChans ?? 3, stem, 3, { stride: 2, padding: cfg.padding, bias: false });
    this.bn1 = new BatchNorm2d(stem, cfg.bn);
    this.act1 = getActivation(cfg.act, { inplace: true });
    const built = buildEfficientNetStages(stem, cfg.blocks, {
      roundChannels: round,
      act: cfg.act,
      norm: cfg.bn,
      padding: cfg.padding,
      dropPathRate: this.dropPathRate,
    });
    this.blocks = new Sequential(...built.stages);
    this.numFeatures = cfg.scaleHead ? round(cfg.head) : cfg.head;
    this.conv_head = createConv2d(built.outChannels, this.numFeatures, 1, { padding: cfg.padding, bias: false });
    this.bn2 = new BatchNorm2d(this.numFeatures, cfg.bn);
    this.act2 = getActivation(cfg.act, { inplace: true });
    this._head = new ClassifierHead({ owner: this, field: 'classifier' }, this.numFeatures, opts.numClasses ?? 1000, {
      dropRate: this.dropRate,
      initLayer: initEfficientNetLinear,
    });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv_stem, this.bn1, this.act1, this.blocks, this.conv_head, this.bn2, this.act2]));
  }
  /** timm's efficientnet_init_weights (_init_weight_goog). */
  initWeights(): void {
    initEfficientNetWeights(this);
  }
}

// ---- weights and registration

export const EFFICIENTNET_PAPER = {
  title: 'EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks',
  year: 2019,
  url: 'https://arxiv.org/abs/1905.11946',
};

/** timm's weights entry: the Hugging Face hub file of `<id>.<tag>`; crop_pct gives resizeSize = floor(crop / crop_pct). */
export function timmWeights(
  id: string,
  numParams: number,
  w: { tag: string; cropPct: number; crop: number; acc1: number; acc5: number; mean?: [number, number, number]; std?: [number, number, number] },
): WeightsEntry {
  return {
    tag: w.tag,
    url: `https://huggingface.co/timm/${id}.${w.tag}/resolve/main/model.safetensors`,
    sha256Prefix: null,
    default: true,
    numParams,
    acc1: w.acc1,
    acc5: w.acc5,
    resizeSize: Math.floor(w.crop / w.cropPct),
    cropSize: w.crop,
    interpolation: 'bicubic',
    mean: w.mean ?? IMAGENET_MEAN,
    std: w.std ?? IMAGENET_STD,
    recipe: 'https://huggingface.co/timm',
  };
}

interface Variant {
  v: EfficientNetVariant;
  /** torchvision's num_params (timm's tf_ ports have the same network and count). */
  params: number;
  /** torchvision's published GFLOPS (0.39 ... 37.75) to three places as its later metadata has them, at its weights' crop (B2 at 288, not the paper's 260). */
  tvGmacs: number;
  tvCrop: number;
  /** Multiply-adds of the same network at the paper's resolution (convzoo's count, cz.summary). */
  gmacs: number;
  /** The paper's FLOPs (Table 2, billions: multiply-adds). */
  paperGmacs: number;
  /** timm's default pretrained tag for tf_efficientnet_<v> (ns_jft_in1k), its crop_pct and ImageNet top-1/top-5 (results-imagenet.csv). */
  timm: { cropPct: number; acc1: number; acc5: number };
}

const VARIANTS: Variant[] = [
  { v: 'b0', params: 5288548, tvGmacs: 0.386, tvCrop: 224, gmacs: 0.386, paperGmacs: 0.39, timm: { cropPct: 0.875, acc1: 78.68, acc5: 94.372 } },
  { v: 'b1', params: 7794184, tvGmacs: 0.687, tvCrop: 240, gmacs: 0.687, paperGmacs: 0.7, timm: { cropPct: 0.882, acc1: 81.388, acc5: 95.756 } },
  { v: 'b2', params: 9109994, tvGmacs: 1.088, tvCrop: 288, gmacs: 0.994, paperGmacs: 1.0, timm: { cropPct: 0.89, acc1: 82.412, acc5: 96.238 } },
  { v: 'b3', params: 12233232, tvGmacs: 1.827, tvCrop: 300, gmacs: 1.827, paperGmacs: 1.8, timm: { cropPct: 0.904, acc1: 84.054, acc5: 96.926 } },
  { v: 'b4', params: 19341616, tvGmacs: 4.394, tvCrop: 380, gmacs: 4.394, paperGmacs: 4.2, timm: { cropPct: 0.922, acc1: 85.156, acc5: 97.482 } },
  { v: 'b5', params: 30389784, tvGmacs: 10.266, tvCrop: 456, gmacs: 10.266, paperGmacs: 9.9, timm: { cropPct: 0.934, acc1: 86.096, acc5: 97.744 } },
  { v: 'b6', params: 43040704, tvGmacs: 19.068, tvCrop: 528, gmacs: 19.068, paperGmacs: 19, timm: { cropPct: 0.942, acc1: 86.476, acc5: 97.864 } },
  { v: 'b7', params: 66347960, tvGmacs: 37.746, tvCrop: 600, gmacs: 37.746, paperGmacs: 37, timm: { cropPct: 0.949, acc1: 86.85, acc5: 98.08 } },
];
export const EFFICIENTNET_REFERENCE: readonly Readonly<Variant>[] = VARIANTS;

const TF_OPTIONS: OptionTable<TimmEfficientNetOptions> = { dropPathRate: opt.rate() };

for (const x of VARIANTS) {
  const sc = EFFICIENTNET_SCALING[x.v];
  const tvId = `efficientnet_${x.v}`;
  const tvMeta: ModelMeta = {
    id: tvId,
    family: 'efficientnet',
    paper: EFFICIENTNET_PAPER,
    inputSize: [3, x.tvCrop, x.tvCrop],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bicubic',
    numClasses: 1000,
    params: x.params,
    gmacs: x.tvGmacs,
    torchvision: tvId,
    firstConv: 'features.0.0',
    classifier: 'classifier.1',
    weights: TORCHVISION_WEIGHTS[tvId] ?? [],
    notes:
      `torchvision's EfficientNet-${x.v.toUpperCase()}: width ${sc.width}, depth ${sc.depth}, dropout ${sc.dropout}, stochastic depth 0.2` +
      (['b5', 'b6', 'b7'].includes(x.v) ? ', BN eps 1e-3 / momentum 0.01' : '') +
      `. Input size and GMACs are torchvision's (its weights' crop ${x.tvCrop}${x.tvCrop !== sc.resolution ? `; the paper's resolution is ${sc.resolution}` : ''}).` +
      (Math.abs(x.gmacs / x.paperGmacs - 1) > 0.02
        ? ` The paper's Table 2 gives ${x.paperGmacs}B FLOPs; this network (as torchvision's and timm's) counts ${x.gmacs} GMACs at ${sc.resolution}.`
        : ''),
  };
  registerModel(tvMeta, { options: EFFICIENTNET_OPTIONS, fixed: { variant: x.v } }, (opts: EfficientNetOptions, c) => new EfficientNet(c.variant, opts));

  const tfId = `tf_efficientnet_${x.v}`;
  registerModel(
    {
      id: tfId,
      family: 'efficientnet',
      paper: EFFICIENTNET_PAPER,
      inputSize: [3, sc.resolution, sc.resolution],
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      interpolation: 'bicubic',
      numClasses: 1000,
      params: x.params,
      gmacs: x.gmacs,
      firstConv: 'conv_stem',
      classifier: 'classifier',
      weights: [timmWeights(tfId, x.params, { tag: 'ns_jft_in1k', crop: sc.resolution, ...x.timm })],
      notes:
        `timm's port of the TensorFlow EfficientNet-${x.v.toUpperCase()} (timm's keys, TF 'same' padding from the input size, BN eps 1e-3). ` +
        `Defaults: dropout ${sc.dropout} and drop path 0.2 (the paper's training); timm's create_model defaults both to 0. ` +
        `GMACs counted at ${sc.resolution}` +
        (Math.abs(x.gmacs / x.paperGmacs - 1) > 0.02 ? `; the paper's Table 2 says ${x.paperGmacs}B FLOPs.` : ` (the paper: ${x.paperGmacs}B).`),
    },
    {
      options: TF_OPTIONS,
      fixed: {
        variant: x.v,
        config: {
          blocks: efficientNetBlockDefs(sc.depth),
          width: sc.width,
          stem: STEM,
          head: HEAD,
          scaleHead: true,
          act: 'swish',
          bn: { eps: 1e-3 },
          padding: 'same',
        } satisfies TimmEfficientNetConfig,
      },
    },
    (opts: TimmEfficientNetOptions, c) => new TimmEfficientNet(c.config, { ...opts, defaultDropRate: sc.dropout, defaultDropPathRate: 0.2 }),
  );
}
