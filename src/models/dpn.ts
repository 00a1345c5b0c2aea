// Dual Path Networks.
// Chen et al., "Dual Path Networks" (2017). Key-for-key compatible with timm's dpn.py (the port of the
// authors' MXNet models): a `features` chain of named blocks (`conv1_1`, `conv1_pool`, `conv2_1`, ...,
// `conv5_bn_ac`) and a 1x1-conv `classifier`. Every block after the stem passes a pair of tensors: the
// residual path (summed, fixed width) and the densely connected path (concatenated, growing by `inc`
// channels per block). All batch norms have eps 1e-3, as the MXNet originals.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { cat } from '../tensor/creation.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { BatchNorm2d, Conv2d, MaxPool2d } from '../nn/layers.js';
import { ConvNormAct, NormActConv } from '../nn/conv_norm_act.js';
import { getActivation, type ActLayer } from '../nn/activations.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { check } from '../errors.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions, type WeightsEntry } from './registry.js';
import type { OptionTable } from './options.js';

// ---- the variants (Table 1 as data, in timm's parameterisation)

/** What defines a DPN variant (fixed by each registration). */
export interface DpnConfig {
  /** DPN-68's stem and widths: a 3x3 stem conv and bottleneck widths a quarter of the large nets'. */
  small: boolean;
  /** Channels of the stem conv. */
  numInitFeatures: number;
  /** Width of the 1x1 and grouped 3x3 convs per 64 channels of the residual path ("k_R"). */
  kR: number;
  /** Groups of the 3x3 convs ("G"). */
  groups: number;
  /** Blocks per stage conv2..conv5. */
  kSec: readonly [number, number, number, number];
  /** Dense-path growth per block in each stage. */
  incSec: readonly [number, number, number, number];
  /** The "b" variant: the last 1x1 conv is split in two (`c1x1_c1` for the residual path, `c1x1_c2` for the dense path), after a shared BN-ReLU. */
  b: boolean;
}

const EPS = 1e-3;
/** DPN's normalisation (the MXNet models'): mean (124, 117, 104) / 255, std 1 / (0.0167 * 255). */
export const DPN_MEAN: [number, number, number] = [124 / 255, 117 / 255, 104 / 255];
export const DPN_STD: [number, number, number] = [1 / (0.0167 * 255), 1 / (0.0167 * 255), 1 / (0.0167 * 255)];

/** The (residual, dense) pair that dual-path blocks pass on. */
export type DualPath = [Tensor, Tensor];

// ---- blocks

/** BN (eps 1e-3) + activation of a tensor, or of a pair concatenated first (timm's CatBnAct, key `bn`). */
export class CatBnAct extends Module<Tensor | DualPath, Tensor> {
  bn: BatchNorm2d;
  private readonly _act: Module;
  constructor(channels: number, act: ActLayer = 'relu') {
    super();
    this.bn = new BatchNorm2d(channels, { eps: EPS });
    this._act = getActivation(act, { inplace: true }); // on the BN's output, which nothing else reads
  }
  forward(x: Tensor | DualPath): Tensor {
    return tidy(() => this._act.forward(this.bn.forward(Array.isArray(x) ? cat(x, 1) : x)));
  }
}

/** Pre-activation BN (eps 1e-3)-ReLU-conv, keys `bn` and `conv` (timm's BnActConv2d). */
const bnActConv = (inC: number, outC: number, k: number, opts: { stride?: number; groups?: number } = {}): NormActConv =>
  new NormActConv(inC, outC, k, { ...opts, norm: { eps: EPS } });

type BlockType = 'proj' | 'down' | 'normal';

/**
 * Figure 2(e): a shared pre-activation bottleneck (1x1, grouped 3x3, 1x1) whose output is split into
 * `numC` channels added to the residual path and `inc` channels appended to the dense path. The first
 * block of a stage projects its input (stride 2 from conv3 on) to both paths' starting widths.
 */
export class DualPathBlock extends Module<Tensor | DualPath, DualPath> {
  c1x1_w_s1: NormActConv | null = null;
  c1x1_w_s2: NormActConv | null = null;
  c1x1_a: NormActConv;
  c3x3_b: NormActConv;
  c1x1_c: NormActConv | CatBnAct;
  c1x1_c1: Conv2d | null = null;
  c1x1_c2: Conv2d | null = null;
  constructor(
    inC: number,
    numA: number,
    num3x3: number,
    readonly numC: number,
    readonly inc: number,
    groups: number,
    blockType: BlockType,
    b: boolean,
  ) {
    super();
    const stride = blockType === 'down' ? 2 : 1;
    if (blockType === 'down') this.c1x1_w_s2 = bnActConv(inC, numC + 2 * inc, 1, { stride: 2 });
    else if (blockType === 'proj') this.c1x1_w_s1 = bnActConv(inC, numC + 2 * inc, 1);
    this.c1x1_a = bnActConv(inC, numA, 1);
    this.c3x3_b = bnActConv(numA, num3x3, 3, { stride, groups });
    if (b) {
      this.c1x1_c = new CatBnAct(num3x3);
      this.c1x1_c1 = new Conv2d(num3x3, numC, 1, { bias: false });
      this.c1x1_c2 = new Conv2d(num3x3, inc, 1, { bias: false });
    } else {
      this.c1x1_c = bnActConv(num3x3, numC + inc, 1);
    }
  }

  forward(x: Tensor | DualPath): DualPath {
    return tidy(() => {
      const xIn = Array.isArray(x) ? cat(x, 1) : x;
      const proj = this.c1x1_w_s1 ?? this.c1x1_w_s2;
      let resid: Tensor, dense: Tensor;
      if (proj) {
        const s = proj.forward(xIn);
        [resid, dense] = [s.narrow(1, 0, this.numC), s.narrow(1, this.numC, 2 * this.inc)];
      } else {
        check(Array.isArray(x), 'DualPathBlock', 'a block without projection takes a (residual, dense) pair, got one tensor');
        [resid, dense] = x;
      }
      const h = runChain<Tensor>(xIn, [this.c1x1_a, this.c3x3_b, this.c1x1_c]);
      const out1 = this.c1x1_c1 ? this.c1x1_c1.forward(h) : h.narrow(1, 0, this.numC);
      const out2 = this.c1x1_c2 ? this.c1x1_c2.forward(h) : h.narrow(1, this.numC, this.inc);
      return [resid.add(out1), cat([dense, out2], 1)];
    });
  }
}

/** timm's `features` Sequential: blocks under their names (`conv1_1`, `conv2_1`, ...), run in order. */
export class DpnFeatures extends Module {
  [name: string]: unknown;
  constructor(blocks: [string, AnyModule][]) {
    super();
    for (const [name, m] of blocks) this[name] = m;
  }
  forward(x: Tensor): Tensor {
    return runChain(x, this.children());
  }
}

// ---- the network

export type DpnOptions = ModelOptions;
export const DPN_OPTIONS: OptionTable<DpnOptions> = {};

export class DPN extends ClassifierModel {
  features: DpnFeatures;
  classifier!: AnyModule;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: DpnConfig, opts: DpnOptions = {}) {
    super();
    this.dropRate = opts.dropRate ?? 0;
    const bwFactor = cfg.small ? 1 : 4;
    const blocks: [string, AnyModule][] = [
      ['conv1_1', new ConvNormAct(opts.inChans ?? 3, cfg.numInitFeatures, cfg.small ? 3 : 7, { stride: 2, norm: { eps: EPS } })],
      ['conv1_pool', new MaxPool2d(3, { stride: 2, padding: 1 })],
    ];
    let inC = cfg.numInitFeatures;
    for (let stage = 0; stage < 4; stage++) {
      const bw = 64 * 2 ** stage * bwFactor; // residual-path width: 256, 512, 1024, 2048 (a quarter for DPN-68)
      const inc = cfg.incSec[stage];
      const r = Math.floor((cfg.kR * bw) / (64 * bwFactor)); // bottleneck width
      for (let i = 1; i <= cfg.kSec[stage]; i++) {
        const type: BlockType = i > 1 ? 'normal' : stage === 0 ? 'proj' : 'down';
        blocks.push([`conv${stage + 2}_${i}`, new DualPathBlock(inC, r, r, bw, inc, cfg.groups, type, cfg.b)]);
        inC = i === 1 ? bw + 3 * inc : inC + inc;
      }
    }
    // A ReLU after the final BN. timm's DPN declares fc_act_layer='elu', but builds that layer from the
    // norm layer it has already bound to act_layer, so its conv5_bn_ac runs a ReLU (printed by the model,
    // and what the oracle's logits need).
    blocks.push(['conv5_bn_ac', new CatBnAct(inC)]);
    this.features = new DpnFeatures(blocks);
    this.numFeatures = inC;
    this._head = new ClassifierHead({ owner: this, field: 'classifier' }, this.numFeatures, opts.numClasses ?? 1000, {
      useConv: true,
      dropRate: this.dropRate,
    });
    this.initWeights();
  }

  /** Re-draws every weight with PyTorch's layer defaults (timm's DPN has no init of its own): convs Kaiming-uniform, BN to identity. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) m.resetParameters();
      else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => this.features.forward(x));
  }
}

// ---- weights (timm's hub, https://huggingface.co/timm)

interface TimmWeights {
  tag: string;
  acc1: number;
  acc5: number;
  /** ImageNet mean/std instead of DPN's (Ross Wightman's retraining of dpn68b). */
  imagenetNorm?: boolean;
  cropPct?: number;
  recipe?: string;
}

function timmWeights(id: string, numParams: number, rows: TimmWeights[]): WeightsEntry[] {
  return rows.map((w, i) => ({
    tag: w.tag,
    url: `https://huggingface.co/timm/${id}.${w.tag}/resolve/main/model.safetensors`,
    sha256Prefix: null,
    default: i === 0,
    numParams,
    acc1: w.acc1,
    acc5: w.acc5,
    resizeSize: Math.floor(224 / (w.cropPct ?? 0.875)),
    cropSize: 224,
    interpolation: 'bicubic',
    mean: w.imagenetNorm ? IMAGENET_MEAN : DPN_MEAN,
    std: w.imagenetNorm ? IMAGENET_STD : DPN_STD,
    recipe: w.recipe ?? 'https://github.com/cypw/DPNs (MXNet weights, converted by timm)',
  }));
}

// ---- registration

const PAPER = { title: 'Dual Path Networks', year: 2017, url: 'https://arxiv.org/abs/1707.01629' };

interface DpnVariant {
  id: string;
  cfg: DpnConfig;
  params: number;
  /** The paper's multiply-adds (its "FLOPs"; DPN-68's for dpn68b), DPN-107's from the MXNet release's README. */
  gmacs: number;
  weights: TimmWeights[];
  notes: string;
}

const small = (b: boolean): DpnConfig => ({ small: true, numInitFeatures: 10, kR: 128, groups: 32, kSec: [3, 4, 12, 3], incSec: [16, 32, 32, 64], b });

const VARIANTS: DpnVariant[] = [
  {
    id: 'dpn68',
    cfg: small(false),
    params: 12611602,
    gmacs: 2.5,
    weights: [{ tag: 'mx_in1k', acc1: 76.304, acc5: 92.994 }],
    notes:
      'DPN-68: 3x3 stem of 10 channels, k_R 128, G 32, blocks 3/4/12/3, dense growth 16/32/32/64. gmacs is the ' +
      "paper's 2.5G; the released network measures 2.326G (the paper also gives 12.8M parameters against the release's 12.61M).",
  },
  {
    id: 'dpn68b',
    cfg: small(true),
    params: 12611602,
    gmacs: 2.5,
    weights: [
      {
        tag: 'ra_in1k',
        acc1: 78.546,
        acc5: 93.982,
        imagenetNorm: true,
        cropPct: 0.95,
        recipe: "timm's RandAugment recipe (Ross Wightman); ImageNet mean/std; 79.342 top-1 at 288 with crop_pct 1.0",
      },
      { tag: 'mx_in1k', acc1: 77.494, acc5: 93.834 },
    ],
    notes:
      "DPN-68 with the authors' 'b' block: the last 1x1 conv split into c1x1_c1 (residual path) and c1x1_c2 (dense path) " +
      "after a shared BN-ReLU. The default weights (ra_in1k) use ImageNet's mean/std, the MXNet ones (mx_in1k) DPN's.",
  },
  {
    id: 'dpn92',
    cfg: { small: false, numInitFeatures: 64, kR: 96, groups: 32, kSec: [3, 4, 20, 3], incSec: [16, 32, 24, 128], b: false },
    params: 37668392,
    gmacs: 6.5,
    weights: [{ tag: 'mx_in1k', acc1: 80.032, acc5: 94.876 }],
    notes:
      'DPN-92 (Table 1): 7x7 stem of 64 channels, k_R 96, G 32, blocks 3/4/20/3, dense growth 16/32/24/128. The mx_in1k ' +
      "weights' accuracy is that of the release's ImageNet-5k-pretrained, 1k-fine-tuned DPN-92.",
  },
  {
    id: 'dpn98',
    cfg: { small: false, numInitFeatures: 96, kR: 160, groups: 40, kSec: [3, 6, 20, 3], incSec: [16, 32, 32, 128], b: false },
    params: 61570728,
    gmacs: 11.7,
    weights: [{ tag: 'mx_in1k', acc1: 79.664, acc5: 94.644 }],
    notes: 'DPN-98 (Table 1): 7x7 stem of 96 channels, k_R 160, G 40, blocks 3/6/20/3, dense growth 16/32/32/128.',
  },
  {
    id: 'dpn107',
    cfg: { small: false, numInitFeatures: 128, kR: 200, groups: 50, kSec: [4, 8, 20, 3], incSec: [20, 64, 64, 128], b: false },
    params: 86917800,
    gmacs: 18.3,
    weights: [{ tag: 'mx_in1k', acc1: 80.166, acc5: 94.932 }],
    notes:
      "DPN-107 (the authors' MXNet release, github.com/cypw/DPNs; pretrained on ImageNet-5k, fine-tuned on ImageNet-1k; " +
      'gmacs from its README): 7x7 stem of 128 channels, k_R 200, G 50, blocks 4/8/20/3, dense growth 20/64/64/128.',
  },
  {
    id: 'dpn131',
    cfg: { small: false, numInitFeatures: 128, kR: 160, groups: 40, kSec: [4, 8, 28, 3], incSec: [16, 32, 32, 128], b: false },
    params: 79254504,
    gmacs: 16.0,
    weights: [{ tag: 'mx_in1k', acc1: 79.836, acc5: 94.708 }],
    notes: 'DPN-131 (Table 1): 7x7 stem of 128 channels, k_R 160, G 40, blocks 4/8/28/3, dense growth 16/32/32/128.',
  },
];

for (const v of VARIANTS) {
  const defaultWeights = v.weights[0];
  registerModel(
    {
      id: v.id,
      family: 'dpn',
      paper: PAPER,
      inputSize: [3, 224, 224],
      mean: defaultWeights.imagenetNorm ? IMAGENET_MEAN : DPN_MEAN,
      std: defaultWeights.imagenetNorm ? IMAGENET_STD : DPN_STD,
      interpolation: 'bicubic',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      firstConv: 'features.conv1_1.conv',
      classifier: 'classifier',
      weights: timmWeights(v.id, v.params, v.weights),
      notes: `${v.notes} BN eps 1e-3; ReLU after the final BN (as timm's conv5_bn_ac runs); 1x1-conv classifier.`,
    },
    { options: DPN_OPTIONS, fixed: v.cfg },
    (opts: DpnOptions, cfg) => new DPN(cfg, opts),
  );
}
