// MnasNet.
// Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile" (2019):
//  - B1 as torchvision's mnasnet0_5, 0_75, 1_0, 1_3 (keys `layers.<i>`, stacks `layers.<8..13>.<j>.layers.<k>`;
//    BN momentum 1 - 0.9997; widths rounded by torchvision's _round_to_multiple_of; head fixed at 1280).
//  - A1 (Figure 7(a), with squeeze-excitation) as timm's semnasnet_050 ... _140, and B1 as timm's
//    mnasnet_100 (timm's keys), built with timm's block builder from the TF reference's block strings.
// Aliases: mnasnet_a1 -> semnasnet_100, mnasnet_b1 -> mnasnet1_0.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { Module } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, Dropout, ReLU, Sequential } from '../nn/layers.js';
import { ClassifierHead } from '../nn/head.js';
import { makeDivisible } from '../nn/make_divisible.js';
import { decodeArchDef } from '../nn/efficientnet_blocks.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, registerAlias, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type ModelMeta } from './registry.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';
import { TimmEfficientNet, timmWeights, type TimmEfficientNetConfig, type TimmEfficientNetOptions } from './efficientnet.js';
import { opt, type OptionTable } from './options.js';

// ---- torchvision's MnasNet (B1)

/** torchvision's BN momentum (TF's decay 0.9997). */
const TV_BN = { momentum: 1 - 0.9997 };

/** B1's stacks after the stem's separable conv (Figure 7(b)): kernel, first stride, expansion, repeats; widths in MNASNET_B1_DEPTHS. */
export const MNASNET_B1_STACKS: readonly { kernel: number; stride: number; expand: number; repeats: number }[] = [
  { kernel: 3, stride: 2, expand: 3, repeats: 3 },
  { kernel: 5, stride: 2, expand: 3, repeats: 3 },
  { kernel: 5, stride: 2, expand: 6, repeats: 3 },
  { kernel: 3, stride: 1, expand: 6, repeats: 2 },
  { kernel: 5, stride: 2, expand: 6, repeats: 4 },
  { kernel: 3, stride: 1, expand: 6, repeats: 1 },
];
/** Stem, separable conv, and the six stacks' widths at depth multiplier 1. */
export const MNASNET_B1_DEPTHS = [32, 16, 24, 40, 80, 96, 192, 320] as const;

/** torchvision's _round_to_multiple_of(val, 8, 0.9): makeDivisible with its 10% rule. */
export const mnasnetDepths = (alpha: number): number[] => MNASNET_B1_DEPTHS.map((d) => makeDivisible(d * alpha, 8));

/** torchvision's _InvertedResidual: `layers` = 1x1 expand, BN, ReLU, depthwise kxk, BN, ReLU, 1x1 project, BN. */
export class MnasInvertedResidual extends Module {
  layers: Sequential;
  readonly applyResidual: boolean;
  constructor(inC: number, outC: number, kernel: number, stride: number, expand: number) {
    super();
    const mid = inC * expand;
    this.applyResidual = inC === outC && stride === 1;
    this.layers = new Sequential(
      new Conv2d(inC, mid, 1, { bias: false }),
      new BatchNorm2d(mid, TV_BN),
      new ReLU(true),
      new Conv2d(mid, mid, kernel, { padding: Math.floor(kernel / 2), stride, groups: mid, bias: false }),
      new BatchNorm2d(mid, TV_BN),
      new ReLU(true),
      new Conv2d(mid, outC, 1, { bias: false }),
      new BatchNorm2d(outC, TV_BN),
    );
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.layers.forward(x);
      return this.applyResidual ? y.add_(x) : y;
    });
  }
}

export interface MNASNetOptions extends ModelOptions {}

/** torchvision's MNASNet(alpha): `layers` (stem, separable conv, six stacks, 1x1 conv to 1280), `classifier` (Dropout, Linear). */
export class MNASNet extends ClassifierModel {
  layers: Sequential;
  classifier: Sequential;
  readonly numFeatures = 1280;
  readonly dropRate: number;
  readonly alpha: number;
  protected readonly _head: ClassifierHead;
  constructor(alpha: number, opts: MNASNetOptions = {}) {
    super();
    this.alpha = alpha;
    this.dropRate = opts.dropRate ?? 0.2;
    const d = mnasnetDepths(alpha);
    const mods: Module[] = [
      new Conv2d(opts.inChans ?? 3, d[0], 3, { padding: 1, stride: 2, bias: false }),
      new BatchNorm2d(d[0], TV_BN),
      new ReLU(true),
      new Conv2d(d[0], d[0], 3, { padding: 1, groups: d[0], bias: false }),
      new BatchNorm2d(d[0], TV_BN),
      new ReLU(true),
      new Conv2d(d[0], d[1], 1, { bias: false }),
      new BatchNorm2d(d[1], TV_BN),
    ];
    MNASNET_B1_STACKS.forEach((s, i) => {
      const [inC, outC] = [d[i + 1], d[i + 2]];
      mods.push(
        new Sequential(
          ...Array.from({ length: s.repeats }, (_, j) => new MnasInvertedResidual(j === 0 ? inC : outC, outC, s.kernel, j === 0 ? s.stride : 1, s.expand)),
        ),
      );
    });
    mods.push(new Conv2d(d[7], 1280, 1, { bias: false }), new BatchNorm2d(1280, TV_BN), new ReLU(true));
    this.layers = new Sequential(...mods);
    this.classifier = new Sequential(new Dropout(this.dropRate));
    this._head = new ClassifierHead({ sequential: this.classifier }, 1280, opts.numClasses ?? 1000, { initLayer: initTvLinear });
    this.initWeights();
  }
  forwardFeatures(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
  /** torchvision's: He normal (fan out, ReLU) convs, BN to identity, He uniform (fan out, gain 1) linear layers. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) {
        init.kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof Linear) initTvLinear(m);
    }
  }
}

function initTvLinear(m: Module | unknown): void {
  if (!(m instanceof Linear)) return;
  init.kaimingUniform_(m.weight, { mode: 'fanOut', nonlinearity: 'sigmoid' });
  if (m.bias) init.zeros_(m.bias);
}

// ---- timm's MnasNet A1 / B1 (the TF reference's block strings)

/** A1 (Figure 7(a)): SepConv, then MBConv stages; SE 0.25 in the 5x5 stages and the 112 stage. */
export const MNASNET_A1_ARCH: readonly (readonly string[])[] = [
  ['ds_r1_k3_s1_e1_c16_noskip'],
  ['ir_r2_k3_s2_e6_c24'],
  ['ir_r3_k5_s2_e3_c40_se0.25'],
  ['ir_r4_k3_s2_e6_c80'],
  ['ir_r2_k3_s1_e6_c112_se0.25'],
  ['ir_r3_k5_s2_e6_c160_se0.25'],
  ['ir_r1_k3_s1_e6_c320'],
];
/** B1 (Figure 7(b)) as timm writes it: the stacks above, the last without a skip. */
export const MNASNET_B1_ARCH: readonly (readonly string[])[] = [
  ['ds_r1_k3_s1_c16_noskip'],
  ['ir_r3_k3_s2_e3_c24'],
  ['ir_r3_k5_s2_e3_c40'],
  ['ir_r3_k5_s2_e6_c80'],
  ['ir_r2_k3_s1_e6_c96'],
  ['ir_r4_k5_s2_e6_c192'],
  ['ir_r1_k3_s1_e6_c320_noskip'],
];

const timmConfig = (arch: readonly (readonly string[])[], width: number): TimmEfficientNetConfig => ({
  blocks: decodeArchDef(arch),
  width,
  stem: 32,
  head: 1280,
  scaleHead: false,
  act: 'relu',
});

// ---- registration

const PAPER = { title: 'MnasNet: Platform-Aware Neural Architecture Search for Mobile', year: 2019, url: 'https://arxiv.org/abs/1807.11626' };

interface TvVariant {
  id: string;
  alpha: number;
  params: number;
  /** torchvision's published GFLOPS (0.10, 0.21, 0.31, 0.53) to three places, as its later metadata has them. */
  gmacs: number;
}
const TV_VARIANTS: TvVariant[] = [
  { id: 'mnasnet0_5', alpha: 0.5, params: 2218512, gmacs: 0.104 },
  { id: 'mnasnet0_75', alpha: 0.75, params: 3170208, gmacs: 0.215 },
  { id: 'mnasnet1_0', alpha: 1.0, params: 4383312, gmacs: 0.314 },
  { id: 'mnasnet1_3', alpha: 1.3, params: 6282256, gmacs: 0.526 },
];

for (const v of TV_VARIANTS) {
  const meta: ModelMeta = {
    id: v.id,
    family: 'mnasnet',
    paper: PAPER,
    inputSize: [3, 224, 224],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bilinear',
    numClasses: 1000,
    params: v.params,
    gmacs: v.gmacs,
    torchvision: v.id,
    firstConv: 'layers.0',
    classifier: 'classifier.1',
    weights: TORCHVISION_WEIGHTS[v.id] ?? [],
    notes: `torchvision's MnasNet-B1 at depth multiplier ${v.alpha} (the head stays 1280 wide).`,
  };
  registerModel(meta, { options: {}, fixed: { alpha: v.alpha } }, (opts: MNASNetOptions, c) => new MNASNet(c.alpha, opts));
}

interface TimmVariant {
  id: string;
  arch: 'a1' | 'b1';
  width: number;
  /** timm's count (results-imagenet.csv, millions to 2 places) where it publishes one; else convzoo's exact count of timm's network. */
  params: number;
  /** Multiply-adds at 224: the paper's 312M for A1 at 1.0 (Table 1); torchvision's 0.314 for B1 (the same network); counted (cz.summary) for the other widths. */
  gmacs: number;
  timm?: { tag: string; acc1: number; acc5: number };
}
const TIMM_VARIANTS: TimmVariant[] = [
  { id: 'semnasnet_050', arch: 'a1', width: 0.5, params: 2082006, gmacs: 0.103 },
  { id: 'semnasnet_075', arch: 'a1', width: 0.75, params: 2912278, gmacs: 0.223, timm: { tag: 'rmsp_in1k', acc1: 73.0, acc5: 91.124 } },
  { id: 'semnasnet_100', arch: 'a1', width: 1.0, params: 3887038, gmacs: 0.312, timm: { tag: 'rmsp_in1k', acc1: 75.452, acc5: 92.608 } },
  { id: 'semnasnet_140', arch: 'a1', width: 1.4, params: 6105992, gmacs: 0.586 },
  { id: 'mnasnet_100', arch: 'b1', width: 1.0, params: 4383312, gmacs: 0.314, timm: { tag: 'rmsp_in1k', acc1: 74.672, acc5: 92.108 } },
];
export const MNASNET_TIMM_REFERENCE: readonly Readonly<TimmVariant>[] = TIMM_VARIANTS;

const TIMM_OPTIONS: OptionTable<TimmEfficientNetOptions> = { dropPathRate: opt.rate() };

for (const v of TIMM_VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: 'mnasnet',
      paper: PAPER,
      inputSize: [3, 224, 224],
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      interpolation: 'bicubic',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'conv_stem',
      classifier: 'classifier',
      weights: v.timm ? [timmWeights(v.id, v.params, { ...v.timm, crop: 224, cropPct: 0.875 })] : [],
      notes:
        `timm's MnasNet-${v.arch.toUpperCase()} at width ${v.width}${v.arch === 'a1' ? ' (with squeeze-excitation)' : ''}: ReLU, timm's keys. ` +
        'Default dropout 0.2 (the TF reference); timm defaults to 0.',
    },
    { options: TIMM_OPTIONS, fixed: { config: timmConfig(v.arch === 'a1' ? MNASNET_A1_ARCH : MNASNET_B1_ARCH, v.width) } },
    (opts: TimmEfficientNetOptions, c) => new TimmEfficientNet(c.config, { ...opts, defaultDropRate: 0.2 }),
  );
}

registerAlias('mnasnet_a1', 'semnasnet_100');
registerAlias('mnasnet_b1', 'mnasnet1_0');
