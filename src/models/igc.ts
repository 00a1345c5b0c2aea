// IGC V1: interleaved group convolutions.
// Zhang, Qi, Xiao & Wang, "Interleaved Group Convolutions for Deep Neural Networks" (ICCV 2017).
// An interleaved group convolution (Figure 1) replaces a regular convolution: a primary group
// convolution (spatial, L partitions of M channels), a permutation, a secondary group convolution
// (1x1, M partitions of L channels), and the permutation back.
//
// The networks are the authors' (github.com/hellozting/InterleavedGroupConvolutions, MXNet):
// - igc_l4m32, igc_l16m16, igc_l100m2: the released ImageNet graphs (models/IGC-L*_ImageNet/*-symbol.json),
//   ResNet-18 layouts whose every 3x3 convolution is an interleaved group convolution.
// - igc_l24m2, igc_l32m26: network/resnet_igc.py's CIFAR networks at depth 20, 10 classes.
// The graphs are flat, so the modules are too: every layer is a field of the network under its MXNet
// node name (`g1_b1_conv1_conv1`), and the state-dict keys are the released parameter names with a
// dot (`g1_b1_conv1_conv1_weight` -> `g1_b1_conv1_conv1.weight`, BN gamma/beta/moving_mean/moving_var ->
// weight/bias/running_mean/running_var). Blocks are private views that only wire the residual sum.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { check } from '../errors.js';
import { Module, runChain } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, MaxPool2d, ReLU } from '../nn/layers.js';
import { ChannelShuffle } from '../nn/channel_shuffle.js';
import { registerAs } from '../nn/conv_norm_act.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, type ModelOptions, type ModelMeta } from './registry.js';
import type { OptionTable } from './options.js';

// ---- configuration

/** One stage: its blocks' output width, primary partitions (groups of the 3x3 convolution) and stride. */
export interface IgcStage {
  width: number;
  blocks: number;
  /** L: groups of the primary (spatial) group convolution, and of the shortcut's 1x1 projection. */
  primary: number;
  stride: number;
}

/** What defines an IGC network (fixed by its registration). */
export interface IgcConfig {
  /** 'imagenet': 7x7/2 conv and 3x3/2 max pool (resnet_gcwf_noshare_imagenet_d18); 'cifar': one 3x3 conv (resnet_igc.py). */
  stem: 'imagenet' | 'cifar';
  stemWidth: number;
  stages: IgcStage[];
  /**
   * How a block's first interleaved group convolution picks its secondary partitions. Every unit
   * has M = C / L secondary groups; C is its output width in the released ImageNet graphs, and the
   * block's input width in resnet_igc.py (`secondary_partition=kin/primary_partition`).
   */
  firstSecondaryFrom: 'out' | 'in';
  /** Node names inside a block: the two units and the shortcut projection. */
  names: { units: [string, string]; shortcut: string };
  /** The classifier's node name. */
  classifier: 'fc_score' | 'fc';
}

/** BN epsilon of every BatchNorm in the official code (MXNet's `eps=2e-5`). */
const BN_EPS = 2e-5;

/**
 * The released ImageNet graphs. L4M32 and L16M16 keep L and double M per stage; L100M2 keeps M = 2
 * and doubles L (the README: "we double the channel number by doubling L and keeping M unchanged"),
 * and projects its stem's 100 channels to 200 in the first block.
 */
function imagenet(stemWidth: number, widths: number[], primary: number[]): IgcConfig {
  return {
    stem: 'imagenet',
    stemWidth,
    stages: widths.map((width, i) => ({ width, blocks: 2, primary: primary[i], stride: i === 0 ? 1 : 2 })),
    firstSecondaryFrom: 'out',
    names: { units: ['conv1', 'conv2'], shortcut: 'proj' },
    classifier: 'fc_score',
  };
}

/** network/resnet_igc.py's get_symbol(num_classes, depth, L, M): 3 stages of (depth - 2) / 6 blocks, widths LM, 2LM, 4LM. */
function cifar(depth: number, L: number, M: number): IgcConfig {
  check((depth - 2) % 6 === 0, 'igc', `CIFAR depth must be 6n+2, got ${depth}`);
  const n = (depth - 2) / 6,
    c = L * M;
  return {
    stem: 'cifar',
    stemWidth: c,
    stages: [c, 2 * c, 4 * c].map((width, i) => ({ width, blocks: n, primary: L, stride: i === 0 ? 1 : 2 })),
    firstSecondaryFrom: 'in',
    names: { units: ['p2_two1', 'p2_two2'], shortcut: 'p0_line' },
    classifier: 'fc',
  };
}

// ---- the network

/** A residual block's wiring: the branch's layers, the shortcut's (empty: identity), the ReLU after the sum. */
class IgcBlock extends Module {
  constructor(
    private readonly _branch: Module[],
    private readonly _shortcut: Module[],
    private readonly _act: Module,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = runChain(x, this._branch);
      const identity = this._shortcut.length ? runChain(x, this._shortcut) : x;
      out.add_(identity);
      if (identity !== x) identity.dispose();
      return runChain(out, [this._act]);
    });
  }
}

export type IgcOptions = ModelOptions;
export const IGC_OPTIONS: OptionTable<IgcOptions> = {};

export class IGC extends ClassifierModel {
  g0_conv: Conv2d;
  g0_bn: BatchNorm2d;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  private readonly _stem: Module[];
  private readonly _blocks: IgcBlock[] = [];

  constructor(cfg: IgcConfig, opts: IgcOptions = {}) {
    super();
    this.dropRate = opts.dropRate ?? 0;
    const add = <M extends Module>(name: string, m: M): M => registerAs(this, name, m);
    const imagenetStem = cfg.stem === 'imagenet';
    this.g0_conv = new Conv2d(opts.inChans ?? 3, cfg.stemWidth, imagenetStem ? 7 : 3, {
      stride: imagenetStem ? 2 : 1,
      padding: imagenetStem ? 3 : 1,
      bias: false,
    });
    this.g0_bn = new BatchNorm2d(cfg.stemWidth, { eps: BN_EPS });
    this._stem = [this.g0_conv, this.g0_bn, add('g0_relu', new ReLU(true))];
    if (imagenetStem) this._stem.push(add('g0_pool', new MaxPool2d(3, { stride: 2, padding: 1 })));

    /** get_igc: primary group conv, Reorder(L), secondary 1x1 group conv, Reorder(M), BN, optional ReLU. */
    const igc = (name: string, cin: number, cout: number, stride: number, L: number, M: number, relu: boolean): Module[] => {
      const steps: Module[] = [
        add(`${name}_conv1`, new Conv2d(cin, cout, 3, { stride, padding: 1, groups: L, bias: false })),
        add(`${name}_reorder1`, new ChannelShuffle(L)),
        add(`${name}_conv2`, new Conv2d(cout, cout, 1, { groups: M, bias: false })),
        add(`${name}_reorder2`, new ChannelShuffle(M)),
        add(`${name}_bn`, new BatchNorm2d(cout, { eps: BN_EPS })),
      ];
      if (relu) steps.push(add(`${name}_relu`, new ReLU(true)));
      return steps;
    };

    let cin = cfg.stemWidth;
    cfg.stages.forEach((stage, s) => {
      const { width: cout, primary: L } = stage;
      for (let b = 0; b < stage.blocks; b++) {
        const name = `g${s + 1}_b${b + 1}`;
        const stride = b === 0 ? stage.stride : 1;
        const [u1, u2] = cfg.names.units;
        // The shortcut's nodes come first in the graphs (and so in the parameter files).
        const shortcut =
          stride !== 1 || cin !== cout
            ? [
                add(`${name}_${cfg.names.shortcut}_conv`, new Conv2d(cin, cout, 1, { stride, groups: L, bias: false })),
                add(`${name}_${cfg.names.shortcut}_bn`, new BatchNorm2d(cout, { eps: BN_EPS })),
              ]
            : [];
        const M1 = (cfg.firstSecondaryFrom === 'in' ? cin : cout) / L;
        const branch = [...igc(`${name}_${u1}`, cin, cout, stride, L, M1, true), ...igc(`${name}_${u2}`, cout, cout, 1, L, cout / L, false)];
        this._blocks.push(new IgcBlock(branch, shortcut, add(`${name}_relu`, new ReLU(true))));
        cin = cout;
      }
    });
    this.numFeatures = cin;
    this._head = new ClassifierHead({ owner: this, field: cfg.classifier }, this.numFeatures, opts.numClasses ?? (imagenetStem ? 1000 : 10), {
      dropRate: this.dropRate,
    });
    this.initWeights();
  }

  /** The official scripts' initialiser: Xavier uniform (MXNet's magnitude 3, factor "avg") weights, zero biases, BN to identity. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d || m instanceof Linear) {
        init.xavierUniform_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, [...this._stem, ...this._blocks]));
  }
}

// ---- registration

const PAPER = { title: 'Interleaved Group Convolutions for Deep Neural Networks', year: 2017, url: 'https://arxiv.org/abs/1707.02725' };
const REPO = 'https://github.com/hellozting/InterleavedGroupConvolutions';

/**
 * MXNet parameter names (`arg:g1_b1_conv1_conv1_weight`, `aux:g0_bn_moving_var`) to convzoo's keys, so
 * that a released .params file converted to a state dict without renaming loads; convzoo's own keys pass.
 */
export function mxnetKey(key: string): string {
  if (key.includes('.')) return key;
  const k = key.replace(/^(arg|aux):/, '');
  const m = /^(.*)_(weight|bias|gamma|beta|moving_mean|moving_var)$/.exec(k);
  if (!m) return k;
  const leaf = { weight: 'weight', bias: 'bias', gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_var: 'running_var' }[m[2]];
  return `${m[1]}.${leaf}`;
}

// train_imagenet.py's normalisation (its default, --fb-mean off): mean and std of the authors' resized
// training images on 0-255, here on 0-1 inputs. Evaluation: short side 256, centre crop 224.
const IMAGENET_IGC_MEAN: [number, number, number] = [123.37 / 255, 112.757 / 255, 99.406 / 255];
const IMAGENET_IGC_STD: [number, number, number] = [68.998 / 255, 66.093 / 255, 68.292 / 255];
// options.py's CIFAR-10 figures (0-255), on 0-1 inputs.
const CIFAR_IGC_MEAN: [number, number, number] = [125.307 / 255, 122.95 / 255, 113.865 / 255];
const CIFAR_IGC_STD: [number, number, number] = [62.993 / 255, 62.089 / 255, 66.705 / 255];

interface ImageNetVariant {
  id: string;
  config: IgcConfig;
  /** The released graph (its .params file sits next to it, epoch 95). */
  file: string;
  params: number;
  paperParams: string;
  gmacs: number;
}

// Parameter counts are the released graphs'; the paper's table (and the README) gives 11.205M, 11.329M
// and 8.61M, and its own ResNet-18 baseline is off from torchvision's the same way. Multiply-adds
// (1.9G, 2.2G, 1.3G) are the paper's, and match the graphs.
const IMAGENET_VARIANTS: ImageNetVariant[] = [
  {
    id: 'igc_l4m32',
    config: imagenet(128, [128, 256, 512, 1024], [4, 4, 4, 4]),
    file: 'models/IGC-L4M32_ImageNet/resnet_gcwf_noshare_imagenet_d18b4',
    params: 12251240,
    paperParams: '11.205M',
    gmacs: 1.9,
  },
  {
    id: 'igc_l16m16',
    config: imagenet(256, [256, 512, 1024, 2048], [16, 16, 16, 16]),
    file: 'models/IGC-L16M16_ImageNet/resnet_gcwf_noshare_imagenet_d18b16',
    params: 13528296,
    paperParams: '11.329M',
    gmacs: 2.2,
  },
  {
    id: 'igc_l100m2',
    config: imagenet(100, [200, 400, 800, 1600], [100, 200, 400, 800]),
    file: 'models/IGC-L100M2_ImageNet/resnet_gcwf_noshare_imagenet_d18b100',
    params: 8637900,
    paperParams: '8.61M',
    gmacs: 1.3,
  },
];

const commonMeta = { family: 'igc', paper: PAPER, firstConv: 'g0_conv', weights: [], remapWeightsKey: mxnetKey } satisfies Partial<ModelMeta>;

for (const v of IMAGENET_VARIANTS) {
  registerModel(
    {
      ...commonMeta,
      id: v.id,
      inputSize: [3, 224, 224],
      mean: IMAGENET_IGC_MEAN,
      std: IMAGENET_IGC_STD,
      interpolation: 'bilinear',
      numClasses: 1000,
      params: v.params,
      gmacs: v.gmacs,
      classifier: 'fc_score',
      notes:
        `The released graph ${v.file}-symbol.json, node for node (${REPO}). Parameters: ${v.params} as released; ` +
        `the paper's table says ${v.paperParams}. Weights: ${v.file}-0095.params in that repository, MXNet's format ` +
        '(not downloadable through a zoo; its names map one to one: `arg:X_weight` -> `X.weight`, gamma/beta -> ' +
        'weight/bias, `aux:X_moving_mean`/`_moving_var` -> running_mean/running_var). The graph pools with a 7x7 ' +
        'average pool, the same as global average pooling for inputs of 193 to 224; convzoo pools globally. ' +
        'Preprocessing of train_imagenet.py: pixels minus (123.37, 112.757, 99.406), divided by (68.998, 66.093, 68.292) ' +
        "on 0-255, shown here on 0-1; short side 256 and centre crop 224; MXNet's inter_method 9 (auto) resizing.",
    },
    { options: IGC_OPTIONS, fixed: v.config },
    (opts: IgcOptions, config) => new IGC(config, opts),
  );
}

// The CIFAR-10 networks of the paper's experiments, from network/resnet_igc.py at depth 20.
const CIFAR_VARIANTS: { id: string; L: number; M: number; params: number }[] = [
  { id: 'igc_l24m2', L: 24, M: 2, params: 164410 },
  { id: 'igc_l32m26', L: 32, M: 26, params: 24215370 },
];
for (const v of CIFAR_VARIANTS) {
  registerModel(
    {
      ...commonMeta,
      id: v.id,
      inputSize: [3, 32, 32],
      mean: CIFAR_IGC_MEAN,
      std: CIFAR_IGC_STD,
      interpolation: 'bilinear',
      numClasses: 10,
      params: v.params,
      classifier: 'fc',
      notes:
        `network/resnet_igc.py get_symbol(10, 20, ${v.L}, ${v.M}) (${REPO}): 3 stages of 3 blocks, ` +
        `${v.L * v.M}/${2 * v.L * v.M}/${4 * v.L * v.M} channels, L = ${v.L} primary partitions throughout. ` +
        'Parameters counted from that code (no weights released). Normalisation of options.py for CIFAR-10 ' +
        '(mean (125.307, 122.95, 113.865), std (62.993, 62.089, 66.705) on 0-255, shown here on 0-1).',
    },
    { options: IGC_OPTIONS, fixed: cifar(20, v.L, v.M) },
    (opts: IgcOptions, config) => new IGC(config, opts),
  );
}
