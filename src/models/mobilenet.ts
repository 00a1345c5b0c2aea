// MobileNet v1, v2 and v3.
// Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
// (2017): Table 1 as data, at the paper's width multipliers (Table 6) and as timm's mobilenetv1_100 /
// mobilenetv1_125 (timm's efficientnet-builder keys: `conv_stem`, `bn1`, `blocks.<stage>.<i>.conv_dw`,
// `bn1`, `conv_pw`, `bn2`, `classifier`). The paper's ids use the same keys.
// Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (2018) and Howard et al.,
// "Searching for MobileNetV3" (2019): torchvision's networks, key for key (`features.0.0.weight` is the
// stem's conv: the toolkit's ConvNormAct with index names).
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, Dropout, Hardswish, Sequential, type BatchNormOptions } from '../nn/layers.js';
import { ConvNormAct } from '../nn/conv_norm_act.js';
import { DepthwiseSeparableConv, initEfficientNetWeights, initEfficientNetLinear } from '../nn/efficientnet_blocks.js';
import { SqueezeExcite } from '../nn/squeeze_excite.js';
import { makeDivisible } from '../nn/make_divisible.js';
import { getActivation, type ActName } from '../nn/activations.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta, type WeightsEntry } from './registry.js';
import { opt, type OptionTable } from './options.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- shared

/** torchvision's Conv2dNormActivation: keys `<i>.0` (conv), `<i>.1` (norm); padding (k - 1) / 2 * dilation. */

function convBnAct(
  inC: number,
  outC: number,
  k: number,
  o: { stride?: number; groups?: number; dilation?: number; act: ActName; bn?: BatchNormOptions },
): ConvNormAct {
  const dilation = o.dilation ?? 1;
  return new ConvNormAct(inC, outC, k, {
    stride: o.stride ?? 1,
    padding: Math.floor((k - 1) / 2) * dilation,
    dilation,
    groups: o.groups ?? 1,
    norm: o.bn ?? true,
    act: o.act,
    names: { conv: '0', norm: '1', act: '2' },
  });
}

/** torchvision's MobileNet initialisation: He normal (fan out) convs, BN to identity, N(0, 0.01) linear layers, zero biases. */
function initTorchvision(model: AnyModule): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) {
      init.kaimingNormal_(m.weight, { mode: 'fanOut' });
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof Linear) initTorchvisionLinear(m);
  }
}
function initTorchvisionLinear(m: AnyModule): void {
  if (!(m instanceof Linear)) return;
  init.normal_(m.weight, 0, 0.01);
  if (m.bias) init.zeros_(m.bias);
}

// ---- MobileNet v1: Table 1 as data

/** A run of Table 1's rows: `n` depthwise separable layers (3x3 depthwise + 1x1 pointwise) to `out` channels, the first with `stride`. */
export interface MobileNetV1Stage {
  out: number;
  n: number;
  stride: number;
}

/**
 * Table 1 after the stem (conv 3x3/2, 32): its 13 depthwise separable layers, grouped as timm's stages
 * (`blocks.0` ... `blocks.4`). The table's second-to-last "Conv dw / s2" runs on a 7x7 input and
 * outputs 7x7, so it is stride 1 (as in the authors' TF-slim code).
 */
export const MOBILENET_V1_STAGES: readonly MobileNetV1Stage[] = [
  { out: 64, n: 1, stride: 1 },
  { out: 128, n: 2, stride: 2 },
  { out: 256, n: 2, stride: 2 },
  { out: 512, n: 6, stride: 2 },
  { out: 1024, n: 2, stride: 2 },
];
const V1_STEM = 32;

/** What defines a MobileNet v1 variant. */
export interface MobileNetV1Config {
  /** The width multiplier alpha. */
  widthMult: number;
  /**
   * How alpha * channels is rounded: 'timm' makeDivisible(c * alpha, 8) (timm's round_channels);
   * 'paper' floor(c * alpha), at least 8 (TF-slim's depth(), the authors' code).
   */
  rounding: 'timm' | 'paper';
  /** 'relu' (the paper's Figure 3) or 'relu6' (timm's and TF-slim's). */
  act: 'relu' | 'relu6';
}

export class MobileNetV1 extends ClassifierModel {
  conv_stem: Conv2d;
  bn1: BatchNorm2d;
  act1: Module;
  blocks: Sequential;
  classifier!: Module;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: MobileNetV1Config, opts: ModelOptions = {}) {
    super();
    const ch = (c: number): number => (cfg.rounding === 'timm' ? makeDivisible(c * cfg.widthMult, 8) : Math.max(8, Math.floor(c * cfg.widthMult)));
    this.dropRate = opts.dropRate ?? 0;
    let inC = ch(V1_STEM);
    this.conv_stem = new Conv2d(opts.inChans ?? 3, inC, 3, { stride: 2, padding: 1, bias: false });
    this.bn1 = new BatchNorm2d(inC);
    this.act1 = getActivation(cfg.act, { inplace: true });
    this.blocks = new Sequential(
      ...MOBILENET_V1_STAGES.map((s) => {
        const out = ch(s.out);
        const layers: Module[] = [];
        for (let i = 0; i < s.n; i++) {
          // Figure 3 right: 3x3 depthwise conv, BN, act, 1x1 conv, BN, act; no skip (timm's 'dsa' block, noskip).
          layers.push(new DepthwiseSeparableConv(inC, out, { kernel: 3, stride: i === 0 ? s.stride : 1, act: cfg.act, pwAct: true, noskip: true }));
          inC = out;
        }
        return new Sequential(...layers);
      }),
    );
    this.numFeatures = inC;
    this._head = new ClassifierHead({ owner: this, field: 'classifier' }, this.numFeatures, opts.numClasses ?? 1000, {
      dropRate: this.dropRate,
      initLayer: initEfficientNetLinear,
    });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.conv_stem, this.bn1, this.act1, this.blocks]));
  }
  /** Re-draws every weight with timm's scheme. */
  initWeights(): void {
    initEfficientNetWeights(this); // timm's efficientnet-builder scheme (_init_weight_goog)
  }
}

// ---- MobileNet v2 (torchvision)

/** Table 2's rows: expansion t, output channels c, repeats n, first stride s. */
export const MOBILENET_V2_SETTING: readonly { t: number; c: number; n: number; s: number }[] = [
  { t: 1, c: 16, n: 1, s: 1 },
  { t: 6, c: 24, n: 2, s: 2 },
  { t: 6, c: 32, n: 3, s: 2 },
  { t: 6, c: 64, n: 4, s: 2 },
  { t: 6, c: 96, n: 3, s: 1 },
  { t: 6, c: 160, n: 3, s: 2 },
  { t: 6, c: 320, n: 1, s: 1 },
];

/** Figure 2d / Table 1 of the v2 paper: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 project; a residual when shapes allow. */
export class InvertedResidual extends Module {
  conv: Sequential;
  readonly useResConnect: boolean;
  constructor(inp: number, oup: number, stride: number, expandRatio: number) {
    super();
    const hidden = Math.round(inp * expandRatio);
    this.useResConnect = stride === 1 && inp === oup;
    const layers: Module[] = [];
    if (expandRatio !== 1) layers.push(convBnAct(inp, hidden, 1, { act: 'relu6' }));
    layers.push(convBnAct(hidden, hidden, 3, { stride, groups: hidden, act: 'relu6' }), new Conv2d(hidden, oup, 1, { bias: false }), new BatchNorm2d(oup));
    this.conv = new Sequential(...layers);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.conv.forward(x);
      return this.useResConnect ? out.add_(x) : out;
    });
  }
}

export interface MobileNetV2Options extends ModelOptions {
  /** torchvision's width_mult: every width (and the last conv's, when above 1) times this, rounded to a multiple of 8. */
  widthMult?: number;
}
export const MOBILENET_V2_OPTIONS: OptionTable<MobileNetV2Options> = { widthMult: opt.number(0.01, 10) };

export class MobileNetV2 extends ClassifierModel {
  features: Sequential;
  classifier: Sequential;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  constructor(opts: MobileNetV2Options = {}) {
    super();
    const w = opts.widthMult ?? 1;
    this.dropRate = opts.dropRate ?? 0.2;
    let inC = makeDivisible(32 * w, 8);
    const last = makeDivisible(1280 * Math.max(1, w), 8);
    const layers: Module[] = [convBnAct(opts.inChans ?? 3, inC, 3, { stride: 2, act: 'relu6' })];
    for (const { t, c, n, s } of MOBILENET_V2_SETTING) {
      const out = makeDivisible(c * w, 8);
      for (let i = 0; i < n; i++) {
        layers.push(new InvertedResidual(inC, out, i === 0 ? s : 1, t));
        inC = out;
      }
    }
    layers.push(convBnAct(inC, last, 1, { act: 'relu6' }));
    this.features = new Sequential(...layers);
    this.numFeatures = last;
    this.classifier = new Sequential(new Dropout(this.dropRate));
    this._head = new ClassifierHead({ sequential: this.classifier }, last, opts.numClasses ?? 1000, { initLayer: initTorchvisionLinear });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return this.features.forward(x);
  }
  /** Re-draws every weight with torchvision's scheme. */
  initWeights(): void {
    initTorchvision(this);
  }
}

// ---- MobileNet v3 (torchvision)

/**
 * One row of the v3 paper's Tables 1 and 2 (torchvision's InvertedResidualConfig): input, kernel,
 * expanded ("exp size") and output channels, squeeze-excite, activation (RE: ReLU, HS: hard-swish),
 * stride. `tail` marks the last stage (C4): 'first' has its output halved by reducedTail, 'rest' all
 * its widths; both are dilated by `dilated`.
 */
export interface MobileNetV3Row {
  in: number;
  k: number;
  exp: number;
  out: number;
  se: boolean;
  act: 'RE' | 'HS';
  s: number;
  tail?: 'first' | 'rest';
}
const r3 = (i: number, k: number, exp: number, out: number, se: boolean, act: 'RE' | 'HS', s: number, tail?: 'first' | 'rest'): MobileNetV3Row => ({
  in: i,
  k,
  exp,
  out,
  se,
  act,
  s,
  tail,
});

export const MOBILENET_V3_CONFIGS: Record<'large' | 'small', { rows: readonly MobileNetV3Row[]; lastChannel: number }> = {
  // Table 1
  large: {
    rows: [
      r3(16, 3, 16, 16, false, 'RE', 1),
      r3(16, 3, 64, 24, false, 'RE', 2),
      r3(24, 3, 72, 24, false, 'RE', 1),
      r3(24, 5, 72, 40, true, 'RE', 2),
      r3(40, 5, 120, 40, true, 'RE', 1),
      r3(40, 5, 120, 40, true, 'RE', 1),
      r3(40, 3, 240, 80, false, 'HS', 2),
      r3(80, 3, 200, 80, false, 'HS', 1),
      r3(80, 3, 184, 80, false, 'HS', 1),
      r3(80, 3, 184, 80, false, 'HS', 1),
      r3(80, 3, 480, 112, true, 'HS', 1),
      r3(112, 3, 672, 112, true, 'HS', 1),
      r3(112, 5, 672, 160, true, 'HS', 2, 'first'),
      r3(160, 5, 960, 160, true, 'HS', 1, 'rest'),
      r3(160, 5, 960, 160, true, 'HS', 1, 'rest'),
    ],
    lastChannel: 1280,
  },
  // Table 2
  small: {
    rows: [
      r3(16, 3, 16, 16, true, 'RE', 2),
      r3(16, 3, 72, 24, false, 'RE', 2),
      r3(24, 3, 88, 24, false, 'RE', 1),
      r3(24, 5, 96, 40, true, 'HS', 2),
      r3(40, 5, 240, 40, true, 'HS', 1),
      r3(40, 5, 240, 40, true, 'HS', 1),
      r3(40, 5, 120, 48, true, 'HS', 1),
      r3(48, 5, 144, 48, true, 'HS', 1),
      r3(48, 5, 288, 96, true, 'HS', 2, 'first'),
      r3(96, 5, 576, 96, true, 'HS', 1, 'rest'),
      r3(96, 5, 576, 96, true, 'HS', 1, 'rest'),
    ],
    lastChannel: 1024,
  },
};

/** torchvision's BatchNorm2d for v3: eps 1e-3, momentum 0.01. */
const V3_BN: BatchNormOptions = { eps: 0.001, momentum: 0.01 };

/** A v3 bottleneck (section 5): expand, depthwise, squeeze-excite (hard-sigmoid gate), linear project; keys `block.<i>`. */
export class InvertedResidualV3 extends Module {
  block: Sequential;
  readonly useResConnect: boolean;
  constructor(inC: number, k: number, exp: number, out: number, se: boolean, act: ActName, stride: number, dilation: number) {
    super();
    this.useResConnect = stride === 1 && inC === out;
    const layers: Module[] = [];
    if (exp !== inC) layers.push(convBnAct(inC, exp, 1, { act, bn: V3_BN }));
    layers.push(convBnAct(exp, exp, k, { stride: dilation > 1 ? 1 : stride, dilation, groups: exp, act, bn: V3_BN }));
    if (se) layers.push(SqueezeExcite.torchvision(exp, makeDivisible(Math.floor(exp / 4), 8), { gate: 'hardsigmoid' }));
    layers.push(convBnAct(exp, out, 1, { act: 'none', bn: V3_BN }));
    this.block = new Sequential(...layers);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.block.forward(x);
      return this.useResConnect ? out.add_(x) : out;
    });
  }
}

export interface MobileNetV3Options extends ModelOptions {
  /** torchvision's width_mult: every width times this, rounded to a multiple of 8. */
  widthMult?: number;
  /** torchvision's reduced_tail: the last stage and the penultimate layer at half width (for detection backbones). */
  reducedTail?: boolean;
  /** torchvision's dilated: the last stage's depthwise convs dilated by 2 instead of strided. */
  dilated?: boolean;
}
export const MOBILENET_V3_OPTIONS: OptionTable<MobileNetV3Options> = { widthMult: opt.number(0.01, 10), reducedTail: opt.boolean(), dilated: opt.boolean() };

export class MobileNetV3 extends ClassifierModel {
  features: Sequential;
  classifier: Sequential;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  constructor(arch: 'large' | 'small', opts: MobileNetV3Options = {}) {
    super();
    const w = opts.widthMult ?? 1;
    const rd = opts.reducedTail ? 2 : 1;
    const dilation = opts.dilated ? 2 : 1;
    const adjust = (c: number): number => makeDivisible(c * w, 8);
    this.dropRate = opts.dropRate ?? 0.2;
    const { rows, lastChannel } = MOBILENET_V3_CONFIGS[arch];
    const cfg = rows.map((r) => {
      const rest = r.tail === 'rest' ? rd : 1;
      return {
        in: adjust(Math.floor(r.in / rest)),
        exp: adjust(Math.floor(r.exp / rest)),
        out: adjust(Math.floor(r.out / (r.tail ? rd : 1))),
        dilation: r.tail ? dilation : 1,
        row: r,
      };
    });
    const layers: Module[] = [convBnAct(opts.inChans ?? 3, cfg[0].in, 3, { stride: 2, act: 'hardswish', bn: V3_BN })];
    for (const c of cfg)
      layers.push(new InvertedResidualV3(c.in, c.row.k, c.exp, c.out, c.row.se, c.row.act === 'HS' ? 'hardswish' : 'relu', c.row.s, c.dilation));
    const lastIn = cfg[cfg.length - 1].out;
    const lastConv = 6 * lastIn;
    layers.push(convBnAct(lastIn, lastConv, 1, { act: 'hardswish', bn: V3_BN }));
    this.features = new Sequential(...layers);
    this.numFeatures = lastConv;
    const hidden = adjust(Math.floor(lastChannel / rd));
    this.classifier = new Sequential(new Linear(lastConv, hidden), new Hardswish(true), new Dropout(this.dropRate));
    this._head = new ClassifierHead({ sequential: this.classifier }, lastConv, opts.numClasses ?? 1000, {
      hiddenFeatures: hidden,
      initLayer: initTorchvisionLinear,
    });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return this.features.forward(x);
  }
  /** Re-draws every weight with torchvision's scheme. */
  initWeights(): void {
    initTorchvision(this);
  }
}

// ---- registration

const V1_PAPER = {
  title: 'MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications',
  year: 2017,
  url: 'https://arxiv.org/abs/1704.04861',
};
const V2_PAPER = { title: 'MobileNetV2: Inverted Residuals and Linear Bottlenecks', year: 2018, url: 'https://arxiv.org/abs/1801.04381' };
const V3_PAPER = { title: 'Searching for MobileNetV3', year: 2019, url: 'https://arxiv.org/abs/1905.02244' };

/** IMAGENET_INCEPTION_MEAN / _STD: timm's ra4 recipe normalises to [-1, 1]. */
const INCEPTION_MEAN: [number, number, number] = [0.5, 0.5, 0.5];
const INCEPTION_STD: [number, number, number] = [0.5, 0.5, 0.5];

/** A timm weights entry: the Hugging Face hub file of `<id>.<tag>`; crop_pct gives resizeSize = floor(crop / crop_pct). */
function timmWeights(id: string, numParams: number, w: { tag: string; cropPct: number; acc1: number; acc5: number }): WeightsEntry {
  const { tag, cropPct } = w;
  return {
    tag,
    url: `https://huggingface.co/timm/${id}.${tag}/resolve/main/model.safetensors`,
    sha256Prefix: null,
    default: true,
    numParams,
    acc1: w.acc1,
    acc5: w.acc5,
    resizeSize: Math.floor(224 / cropPct),
    cropSize: 224,
    interpolation: 'bicubic',
    mean: INCEPTION_MEAN,
    std: INCEPTION_STD,
    recipe: 'https://huggingface.co/timm',
  };
}

interface V1Variant {
  id: string;
  config: MobileNetV1Config;
  /** timm's count (4.23M, 6.27M) for timm's ids; ours for the paper's, which Table 6 rounds to 4.2M, 2.6M, 1.3M, 0.5M. */
  params: number;
  /** Table 6's multiply-adds (569M at 1.0) for the paper's ids and mobilenetv1_100; counted for mobilenetv1_125 (timm publishes none). */
  gmacs: number;
  /** timm's default pretrained tag, its crop_pct, and its ImageNet top-1/top-5 at 224 (timm's README, July 2024). */
  timm?: { tag: string; cropPct: number; acc1: number; acc5: number };
  notes: string;
}

const V1_VARIANTS: V1Variant[] = [
  {
    id: 'mobilenetv1_100',
    config: { widthMult: 1, rounding: 'timm', act: 'relu6' },
    params: 4231976,
    gmacs: 0.569,
    timm: { tag: 'ra4_e3600_r224_in1k', cropPct: 0.875, acc1: 75.382, acc5: 92.312 },
    notes: "timm's MobileNet v1 (efficientnet builder): ReLU6, widths makeDivisible(c * alpha, 8).",
  },
  {
    id: 'mobilenetv1_125',
    config: { widthMult: 1.25, rounding: 'timm', act: 'relu6' },
    params: 6270840,
    gmacs: 0.88,
    timm: { tag: 'ra4_e3600_r224_in1k', cropPct: 0.9, acc1: 76.924, acc5: 93.234 },
    notes: "timm's MobileNet v1 at width 1.25: ReLU6, widths makeDivisible(c * 1.25, 8) (stem 40).",
  },
  ...(
    [
      ['1_0', 1, 4231976, 0.569],
      ['0_75', 0.75, 2585560, 0.325],
      ['0_5', 0.5, 1331592, 0.149],
      ['0_25', 0.25, 470072, 0.041],
    ] as const
  ).map(([suffix, alpha, params, gmacs]) => ({
    id: `mobilenet_v1_${suffix}`,
    config: { widthMult: alpha, rounding: 'paper', act: 'relu' } satisfies MobileNetV1Config,
    params,
    gmacs,
    notes: `Table 1 at width multiplier ${alpha} (Table 6), with the paper's ReLU; timm's key layout.`,
  })),
];

for (const v of V1_VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: 'mobilenet_v1',
      paper: V1_PAPER,
      inputSize: [3, 224, 224],
      mean: v.timm ? INCEPTION_MEAN : IMAGENET_MEAN,
      std: v.timm ? INCEPTION_STD : IMAGENET_STD,
      interpolation: v.timm ? 'bicubic' : 'bilinear',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'conv_stem',
      classifier: 'classifier',
      weights: v.timm ? [timmWeights(v.id, v.params, v.timm)] : [],
      notes: v.notes,
    },
    { options: {}, fixed: v.config },
    (opts: ModelOptions, config) => new MobileNetV1(config, opts),
  );
}

const tvMeta = (id: string, paper: ModelMeta['paper'], params: number, gmacs: number, notes: string): ModelMeta => ({
  id,
  family: id.startsWith('mobilenet_v2') ? 'mobilenet_v2' : 'mobilenet_v3',
  paper,
  inputSize: [3, 224, 224],
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  interpolation: 'bilinear',
  numClasses: 1000,
  params,
  gmacs,
  torchvision: id,
  firstConv: 'features.0.0',
  classifier: id.startsWith('mobilenet_v2') ? 'classifier.1' : 'classifier.3',
  weights: TORCHVISION_WEIGHTS[id] ?? [],
  notes,
});

// GMACs: torchvision's published GFLOPS (0.30, 0.22, 0.06) to three places, as its later metadata has them.
registerModel(
  tvMeta('mobilenet_v2', V2_PAPER, 3504872, 0.301, "torchvision's MobileNetV2 (Table 2), with its widthMult option."),
  { options: MOBILENET_V2_OPTIONS, fixed: {} },
  (opts: MobileNetV2Options) => new MobileNetV2(opts),
);
registerModel(
  tvMeta('mobilenet_v3_large', V3_PAPER, 5483032, 0.217, "torchvision's MobileNetV3-Large (Table 1)."),
  { options: MOBILENET_V3_OPTIONS, fixed: { arch: 'large' as const } },
  (opts: MobileNetV3Options, c) => new MobileNetV3(c.arch, opts),
);
registerModel(
  tvMeta('mobilenet_v3_small', V3_PAPER, 2542856, 0.057, "torchvision's MobileNetV3-Small (Table 2)."),
  { options: MOBILENET_V3_OPTIONS, fixed: { arch: 'small' as const } },
  (opts: MobileNetV3Options, c) => new MobileNetV3(c.arch, opts),
);
