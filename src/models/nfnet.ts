// NFNets: normaliser-free ResNets.
// Brock et al., "High-Performance Large-Scale Image Recognition Without Normalization" (2021), in
// timm's nfnet.py, key for key: `dm_nfnet_f0` ... `f6` (DeepMind's F-series, the layout of their
// released JAX weights) and timm's lighter `nfnet_l0` / `eca_nfnet_l0` (SiLU, a quarter-width bottleneck,
// groups of 64; SE or ECA attention).
//
// Each block is a pre-activation bottleneck without normalisation (Figure 6 of the paper):
//   h = act(x) * beta                    beta = 1 / sqrt(expected variance of x)
//   shortcut = x, or conv1x1(avgpool(h)) on the first block of a stage
//   out = conv1x1 -> act -> grouped conv3x3 -> act -> grouped conv3x3 -> act -> conv1x1 of h
//   out = 2 * attention(out), stochastic depth, times the skip-init gain (F-series)
//   return out * alpha + shortcut        alpha = 0.2; the expected variance grows by alpha^2 a block
//                                        and restarts at 1 after each transition block
// Every convolution is a ScaledStdConv2d: its weight standardised per output channel (eps 1e-5), scaled
// by gain / sqrt(fan_in), and by the activation's gamma (the constant that keeps an activation's output
// at unit variance for unit-Gaussian input). timm's F-series applies gamma in the activation instead
// (act(x) * gamma: the DeepMind weights' arithmetic) and pads like TensorFlow ("same"); the L-series
// folds gamma into the conv scale and pads symmetrically.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { scalarTensor } from '../tensor/creation.js';
import { Module, Parameter, runChain } from '../nn/module.js';
import { AvgPool2d, Conv2d, Linear, Sequential } from '../nn/layers.js';
import { Conv1d } from '../nn/conv1d.js';
import { ScaledStdConv2d } from '../nn/std_conv.js';
import { SqueezeExcite, EcaModule } from '../nn/squeeze_excite.js';
import { DropPath, dropPathRates } from '../nn/drop_path.js';
import { getActivation, getActivationFn } from '../nn/activations.js';
import { makeDivisible } from '../nn/make_divisible.js';
import { HeadModule, type ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type WeightsEntry } from './registry.js';
import { opt, type OptionTable } from './options.js';

// ---- constants and the variants

/**
 * The activations' gamma: 1 / std of act(z) for z ~ N(0, 1), so that act(x) * gamma keeps unit variance
 * (DeepMind's nfnets/base.py, as timm copies them).
 */
export const NONLIN_GAMMA = {
  identity: 1.0,
  celu: 1.270926833152771,
  elu: 1.2716004848480225,
  gelu: 1.7015043497085571,
  leaky_relu: 1.70590341091156,
  log_sigmoid: 1.9193484783172607,
  log_softmax: 1.0002083778381348,
  relu: 1.7139588594436646,
  relu6: 1.7131484746932983,
  selu: 1.0008515119552612,
  sigmoid: 4.803835391998291,
  silu: 1.7881293296813965,
  softsign: 2.338853120803833,
  softplus: 1.9203323125839233,
  tanh: 1.5939117670059204,
} as const;

/** The activations the NFNets here use (each has a gamma above and a convzoo activation). */
export type NfAct = 'gelu' | 'silu' | 'relu';

/** Residual branch scale (the paper's alpha). */
export const NF_ALPHA = 0.2;
/** The gain that undoes the attention's halving of the variance (sigmoid gates average 0.5). */
export const NF_ATTN_GAIN = 2.0;
/** Added to the weights' variance in every ScaledStdConv2d (timm's NfCfg.std_conv_eps). */
export const NF_STD_CONV_EPS = 1e-5;
/** Channel counts are rounded to multiples of this. */
const CH_DIV = 8;
/** Stem widths (the "deep_quad" stem: 3x3 convs of out/8, out/4, out/2, out; strides 2, 1, 1, 2). */
const STEM_CHS = 128;

export type NfAttention = { kind: 'se'; rdRatio: number } | { kind: 'eca' };

/** What defines an NFNet variant (fixed by each registration; timm's NfCfg, the parts that vary here). */
export interface NfNetConfig {
  /** Blocks per stage (F0 1/2/6/3, Fk = (k + 1) times F0). */
  depths: readonly [number, number, number, number];
  /** Output channels of the stages. */
  channels: readonly [number, number, number, number];
  /** Channels per group of the 3x3 convs. */
  groupSize: number;
  /** Bottleneck width / output width. */
  bottleRatio: number;
  /** The final 1x1 conv's width / the last stage's. */
  featMult: number;
  act: NfAct;
  attn: NfAttention;
  /** Gamma in the activations (act(x) * gamma) instead of the conv scale: DeepMind's arithmetic (F-series). */
  gammaInAct: boolean;
  /** TensorFlow "same" padding (computed per input for strided convs), as the DeepMind weights need. */
  samePadding: boolean;
  /** A learnable scalar `skipinit_gain` (initialised 0) on each residual branch; else conv3's gain starts at 0. */
  skipinit: boolean;
}

// ---- blocks

/** An activation whose output is multiplied by gamma (timm's GammaAct; no parameters). */
export class GammaAct extends Module {
  private readonly _fn: (x: Tensor) => Tensor;
  constructor(
    readonly act: NfAct,
    readonly gamma: number,
  ) {
    super();
    this._fn = getActivationFn(act);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this._fn(x).mul_(this.gamma));
  }
  override extraRepr(): string {
    return `${this.act}, gamma=${this.gamma}`;
  }
}

/** How a network makes its layers (the activation and the scaled conv of its variant). */
interface NfLayers {
  act: () => Module;
  conv: (inC: number, outC: number, k: number, o?: { stride?: number; groups?: number; gainInit?: number }) => ScaledStdConv2d;
}

/** The projection shortcut: 2x2 average pool (ceil mode, padding not counted) when strided, then a 1x1 conv. */
export class DownsampleAvg extends Module {
  pool: AvgPool2d | null;
  conv: ScaledStdConv2d;
  constructor(inC: number, outC: number, stride: number, layers: NfLayers) {
    super();
    this.pool = stride > 1 ? new AvgPool2d(2, { stride, ceilMode: true, countIncludePad: false }) : null;
    this.conv = layers.conv(inC, outC, 1);
  }
  forward(x: Tensor): Tensor {
    return runChain(x, [this.pool, this.conv]);
  }
}

export interface NormFreeBlockOptions {
  stride: number;
  alpha: number;
  /** 1 / sqrt(the expected variance of the input). */
  beta: number;
  bottleRatio: number;
  groupSize: number;
  attn: NfAttention;
  skipinit: boolean;
  dropPathRate: number;
}

/** The NFNet bottleneck (timm's NormFreeBlock with extra_conv, attention after conv3). Keys as timm's. */
export class NormFreeBlock extends Module {
  skipinit_gain: Parameter | null;
  downsample: DownsampleAvg | null;
  act1: Module;
  conv1: ScaledStdConv2d;
  act2: Module;
  conv2: ScaledStdConv2d;
  act2b: Module;
  conv2b: ScaledStdConv2d;
  act3: Module;
  conv3: ScaledStdConv2d;
  attn_last: Module;
  drop_path: DropPath | null;
  readonly alpha: number;
  readonly beta: number;
  readonly skipinit: boolean;

  constructor(inC: number, outC: number, o: NormFreeBlockOptions, layers: NfLayers) {
    super();
    let mid = makeDivisible(outC * o.bottleRatio, CH_DIV);
    const groups = Math.floor(mid / o.groupSize);
    if (o.groupSize % CH_DIV === 0) mid = o.groupSize * groups;
    this.alpha = o.alpha;
    this.beta = o.beta;
    this.skipinit = o.skipinit;
    this.skipinit_gain = o.skipinit ? new Parameter(scalarTensor(0)) : null;
    this.downsample = inC !== outC || o.stride !== 1 ? new DownsampleAvg(inC, outC, o.stride, layers) : null;
    this.act1 = layers.act();
    this.conv1 = layers.conv(inC, mid, 1);
    this.act2 = layers.act();
    this.conv2 = layers.conv(mid, mid, 3, { stride: o.stride, groups });
    this.act2b = layers.act();
    this.conv2b = layers.conv(mid, mid, 3, { groups });
    this.act3 = layers.act();
    this.conv3 = layers.conv(mid, outC, 1, { gainInit: o.skipinit ? 1 : 0 });
    this.attn_last = o.attn.kind === 'se' ? new SqueezeExcite(outC, { rdRatio: o.attn.rdRatio, rdDivisor: CH_DIV }) : new EcaModule(outC);
    this.drop_path = o.dropPathRate > 0 ? new DropPath(o.dropPathRate) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.act1.forward(x).mul_(this.beta);
      const shortcut = this.downsample ? this.downsample.forward(h) : x;
      const gain = this.skipinit_gain;
      const out = runChain<Tensor>(h, [
        this.conv1,
        this.act2,
        this.conv2,
        this.act2b,
        this.conv2b,
        this.act3,
        this.conv3,
        this.attn_last,
        (t: Tensor) => t.mul(NF_ATTN_GAIN),
        this.drop_path,
        gain ? (t: Tensor) => t.mul(gain) : null,
        (t: Tensor) => t.mul(this.alpha),
      ]);
      return out.add_(shortcut);
    });
  }

  /** The branch starts at zero: the skip-init gain when there is one, else conv3's gain. */
  zeroInitLast(): void {
    init.zeros_(this.skipinit_gain ?? this.conv3.gain);
  }
}

/** The "deep_quad" stem: four 3x3 convs (keys conv1..conv4) with activations between them (act2..act4). */
export class NfStem extends Module {
  conv1: ScaledStdConv2d;
  act2: Module;
  conv2: ScaledStdConv2d;
  act3: Module;
  conv3: ScaledStdConv2d;
  act4: Module;
  conv4: ScaledStdConv2d;
  constructor(inC: number, outC: number, layers: NfLayers) {
    super();
    const [c1, c2, c3] = [outC / 8, outC / 4, outC / 2];
    this.conv1 = layers.conv(inC, c1, 3, { stride: 2 });
    this.act2 = layers.act();
    this.conv2 = layers.conv(c1, c2, 3);
    this.act3 = layers.act();
    this.conv3 = layers.conv(c2, c3, 3);
    this.act4 = layers.act();
    this.conv4 = layers.conv(c3, outC, 3, { stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return runChain(x, [this.conv1, this.act2, this.conv2, this.act3, this.conv3, this.act4, this.conv4]);
  }
}

// ---- the network

export interface NfNetOptions extends ModelOptions {
  /** Stochastic depth: the last block's drop-path rate; earlier blocks' rise linearly from 0 (timm's rule). */
  dropPathRate?: number;
}

export const NFNET_OPTIONS: OptionTable<NfNetOptions> = {
  dropPathRate: opt.rate(),
};

export class NormFreeNet extends ClassifierModel {
  stem: NfStem;
  stages: Sequential;
  final_conv: ScaledStdConv2d;
  final_act: Module;
  head: HeadModule;
  readonly numFeatures: number;
  readonly dropRate: number;
  readonly dropPathRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: NfNetConfig, opts: NfNetOptions = {}) {
    super();
    this.dropRate = opts.dropRate ?? 0;
    this.dropPathRate = opts.dropPathRate ?? 0;
    const gamma = NONLIN_GAMMA[cfg.act];
    const layers: NfLayers = {
      act: () => (cfg.gammaInAct ? new GammaAct(cfg.act, gamma) : getActivation(cfg.act)),
      conv: (inC, outC, k, o = {}) =>
        new ScaledStdConv2d(inC, outC, k, {
          stride: o.stride,
          groups: o.groups,
          padding: cfg.samePadding ? 'same' : undefined,
          gamma: cfg.gammaInAct ? 1 : gamma,
          eps: NF_STD_CONV_EPS,
          gainInit: o.gainInit,
        }),
    };
    const stemChs = makeDivisible(STEM_CHS, CH_DIV);
    this.stem = new NfStem(opts.inChans ?? 3, stemChs, layers);
    const rates = dropPathRates(
      cfg.depths.reduce((a, b) => a + b, 0),
      this.dropPathRate,
    );
    let prev = stemChs,
      expectedVar = 1,
      blockIndex = 0;
    this.stages = new Sequential();
    for (let s = 0; s < 4; s++) {
      const outC = makeDivisible(cfg.channels[s], CH_DIV);
      const blocks: Module[] = [];
      for (let b = 0; b < cfg.depths[s]; b++) {
        const o: NormFreeBlockOptions = {
          stride: b === 0 && s > 0 ? 2 : 1, // the stem already reduces 4x: stage 1 keeps its resolution
          alpha: NF_ALPHA,
          beta: 1 / expectedVar ** 0.5,
          bottleRatio: cfg.bottleRatio,
          groupSize: cfg.groupSize,
          attn: cfg.attn,
          skipinit: cfg.skipinit,
          dropPathRate: rates[blockIndex++],
        };
        blocks.push(new NormFreeBlock(prev, outC, o, layers));
        if (b === 0) expectedVar = 1; // a transition block's output has unit variance again
        expectedVar += NF_ALPHA ** 2;
        prev = outC;
      }
      this.stages.append(new Sequential(...blocks));
    }
    this.numFeatures = makeDivisible(Math.trunc(cfg.channels[3] * cfg.featMult), CH_DIV);
    this.final_conv = layers.conv(prev, this.numFeatures, 1);
    this.final_act = layers.act();
    this.head = new HeadModule(this.numFeatures, opts.numClasses ?? 1000, { dropRate: this.dropRate });
    this._head = this.head.classifierHead;
    this.initWeights();
  }

  /**
   * timm's initialisation: convs (the SE's too) He-normal over fan-in with unit gain (nonlinearity
   * 'linear'), biases 0, gains 1 (conv3's 0 without skip-init), skip-init gains 0; the classifier N(0, 0.01),
   * bias 0. ECA's 1-d conv keeps PyTorch's default.
   */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        init.kaimingNormal_(m.weight, { mode: 'fanIn', nonlinearity: 'linear' });
        if (m.bias) init.zeros_(m.bias);
        if (m instanceof ScaledStdConv2d) init.ones_(m.gain);
      } else if (m instanceof Conv1d) m.resetParameters();
      else if (m instanceof Linear) {
        init.normal_(m.weight, 0, 0.01);
        if (m.bias) init.zeros_(m.bias);
      }
    }
    for (const m of this.modules()) if (m instanceof NormFreeBlock) m.zeroInitLast();
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [this.stem, this.stages, this.final_conv, this.final_act]));
  }
}

// ---- weights (timm's hub, https://huggingface.co/timm) and registration

const PAPER = { title: 'High-Performance Large-Scale Image Recognition Without Normalization', year: 2021, url: 'https://arxiv.org/abs/2102.06171' };

interface NfWeights {
  tag: string;
  /** Top-1 / top-5 at the test size (timm's results-imagenet.csv). */
  acc1: number;
  acc5: number;
  /** The crop fraction timm evaluates the test size with. */
  cropPct: number;
  recipe: string;
}

interface NfVariant {
  id: string;
  cfg: NfNetConfig;
  /** timm's input_size (training) and test_input_size (evaluation, the published accuracy's). */
  trainSize: number;
  testSize: number;
  params: number;
  /** Reference GMACs at the test size: the paper's Table 3 ("FLOPs") for the F-series, timm's benchmark for the L-series. */
  gmacs: number;
  weights: NfWeights;
  notes: string;
}

function timmWeights(v: NfVariant): WeightsEntry[] {
  const w = v.weights;
  return [
    {
      tag: w.tag,
      url: `https://huggingface.co/timm/${v.id}.${w.tag}/resolve/main/model.safetensors`,
      sha256Prefix: null,
      default: true,
      numParams: v.params,
      acc1: w.acc1,
      acc5: w.acc5,
      resizeSize: Math.floor(v.testSize / w.cropPct),
      cropSize: v.testSize,
      interpolation: 'bicubic',
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      recipe: w.recipe,
    },
  ];
}

/** DeepMind's F-series (timm's _dm_nfnet_cfg): GELU, SE at half width, groups of 128, gamma in the activations, TF padding, skip-init. */
const dmF = (k: number): NfNetConfig => ({
  depths: [k, 2 * k, 6 * k, 3 * k],
  channels: [256, 512, 1536, 1536],
  groupSize: 128,
  bottleRatio: 0.5,
  featMult: 2,
  act: 'gelu',
  attn: { kind: 'se', rdRatio: 0.5 },
  gammaInAct: true,
  samePadding: true,
  skipinit: true,
});

/** timm's L0 (its _nfnet_cfg with F0's depths): SiLU, a quarter-width bottleneck, groups of 64, a 1.5x final conv. */
const l0 = (attn: NfAttention): NfNetConfig => ({
  depths: [1, 2, 6, 3],
  channels: [256, 512, 1536, 1536],
  groupSize: 64,
  bottleRatio: 0.25,
  featMult: 1.5,
  act: 'silu',
  attn,
  gammaInAct: false,
  samePadding: false,
  skipinit: false,
});

const DM_RECIPE = "DeepMind's released F-series weights (JAX/Haiku, github.com/deepmind/deepmind-research/tree/master/nfnets), converted by timm";
const DM_NOTE =
  "timm evaluates these with crop_mode 'squash' (the image resized to a square of resizeSize, then centre-cropped); " +
  "convzoo's eval transform keeps the aspect ratio, so accuracy may differ slightly.";

/**
 * The F-series. The paper's Table 3: parameters (M), FLOPs at the test size (multiply-adds: convzoo's
 * count of conv and linear layers gives them to 0.01G) and dropout; timm's: train and test sizes, the
 * test crop, exact parameter counts (its published counts to 0.01M), its benchmark GMACs at the test size
 * (higher: it also counts elementwise work) and the accuracy of dm_in1k at the test size.
 */
const F_SERIES = [
  {
    k: 1,
    train: 192,
    test: 256,
    cropPct: 0.9,
    params: 71489284,
    paperParams: 71.5,
    paperGmacs: 12.38,
    timmGmacs: 12.62,
    dropout: 0.2,
    acc1: 83.468,
    acc5: 96.57,
  },
  {
    k: 2,
    train: 224,
    test: 320,
    cropPct: 0.91,
    params: 132634256,
    paperParams: 132.6,
    paperGmacs: 35.54,
    timmGmacs: 35.97,
    dropout: 0.3,
    acc1: 84.7,
    acc5: 97.178,
  },
  {
    k: 3,
    train: 256,
    test: 352,
    cropPct: 0.92,
    params: 193779228,
    paperParams: 193.8,
    paperGmacs: 62.59,
    timmGmacs: 63.22,
    dropout: 0.4,
    acc1: 85.184,
    acc5: 97.34,
  },
  {
    k: 4,
    train: 320,
    test: 416,
    cropPct: 0.94,
    params: 254924200,
    paperParams: 254.9,
    paperGmacs: 114.76,
    timmGmacs: 115.58,
    dropout: 0.4,
    acc1: 85.676,
    acc5: 97.576,
  },
  {
    k: 5,
    train: 384,
    test: 512,
    cropPct: 0.951,
    params: 316069172,
    paperParams: 316.1,
    paperGmacs: 215.24,
    timmGmacs: 216.26,
    dropout: 0.5,
    acc1: 85.838,
    acc5: 97.652,
  },
  {
    k: 6,
    train: 416,
    test: 544,
    cropPct: 0.954,
    params: 377214144,
    paperParams: 377.2,
    paperGmacs: 289.76,
    timmGmacs: 290.97,
    dropout: 0.5,
    acc1: 86.102,
    acc5: 97.688,
  },
  {
    k: 7,
    train: 448,
    test: 576,
    cropPct: 0.956,
    params: 438359116,
    paperParams: 438.4,
    paperGmacs: 377.28,
    timmGmacs: 378.69,
    dropout: 0.5,
    acc1: 86.364,
    acc5: 97.9,
  },
] as const;

const L0_NOTE =
  "Trained at 224, tested at 288 (inputSize) with crop 1.0. gmacs is timm's benchmark figure at 288; convzoo's count of conv and " +
  'linear layers is 1.5% lower (timm also counts elementwise work).';

const VARIANTS: NfVariant[] = [
  ...F_SERIES.map(
    (f): NfVariant => ({
      id: `dm_nfnet_f${f.k - 1}`,
      cfg: dmF(f.k),
      trainSize: f.train,
      testSize: f.test,
      params: f.params,
      gmacs: f.paperGmacs,
      weights: { tag: 'dm_in1k', acc1: f.acc1, acc5: f.acc5, cropPct: f.cropPct, recipe: DM_RECIPE },
      notes:
        `NFNet-F${f.k - 1}: blocks ${dmF(f.k).depths.join('/')}, widths 256/512/1536/1536, trained at ${f.train} px and tested at ${f.test} ` +
        `(inputSize is the test size). Parameters and gmacs as the paper's Table 3 (${f.paperParams}M, ${f.paperGmacs} GFLOPs at ${f.test}); ` +
        `timm's benchmark reports ${f.timmGmacs} GMACs (it also counts elementwise work). The paper trains with dropout ${f.dropout} and ` +
        `stochastic depth; timm's (and convzoo's) defaults are 0 for both (dropRate, dropPathRate). ${DM_NOTE}`,
    }),
  ),
  {
    id: 'nfnet_l0',
    cfg: l0({ kind: 'se', rdRatio: 0.25 }),
    trainSize: 224,
    testSize: 288,
    params: 35074488,
    gmacs: 7.13,
    weights: {
      tag: 'ra2_in1k',
      acc1: 82.766,
      acc5: 96.494,
      cropPct: 1.0,
      recipe: "timm's RandAugment recipe (ra2, Ross Wightman); 81.870 top-1 at 224 with crop_pct 0.9",
    },
    notes:
      "timm's light NFNet (not in the paper): F0's depths, SiLU, bottleneck ratio 0.25, groups of 64, SE at a quarter width, a 2304-wide " +
      `final conv; gamma folded into the conv scale, symmetric padding, no skip-init. ${L0_NOTE}`,
  },
  {
    id: 'eca_nfnet_l0',
    cfg: l0({ kind: 'eca' }),
    trainSize: 224,
    testSize: 288,
    params: 24143924,
    gmacs: 7.12,
    weights: {
      tag: 'ra2_in1k',
      acc1: 82.59,
      acc5: 96.486,
      cropPct: 1.0,
      recipe: "timm's RandAugment recipe (ra2, Ross Wightman); 81.762 top-1 at 224 with crop_pct 0.9",
    },
    notes: `nfnet_l0 with efficient channel attention (ECA, a 1-d conv across channels) instead of SE (not in the paper). ${L0_NOTE}`,
  },
];

/** The registered variants' configurations and sizes, by id (for tests and tools). */
export const NFNET_VARIANTS: Readonly<Record<string, Readonly<NfVariant>>> = Object.fromEntries(VARIANTS.map((v) => [v.id, v]));

for (const v of VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: 'nfnet',
      paper: PAPER,
      inputSize: [3, v.testSize, v.testSize],
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      interpolation: 'bicubic',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'stem.conv1',
      classifier: 'head.fc',
      weights: timmWeights(v),
      notes: v.notes,
    },
    { options: NFNET_OPTIONS, fixed: v.cfg },
    (opts: NfNetOptions, cfg) => new NormFreeNet(cfg, opts),
  );
}
