// Residual Attention Network.
// Wang et al., "Residual Attention Network for Image Classification" (CVPR 2017). A network of stacked
// Attention Modules: each splits into a trunk of residual units and a soft mask branch, an hourglass of
// max-pools, residual units, skip units and bilinear upsampling that ends in a sigmoid, and computes
// (1 + mask) * trunk ("attention residual learning", eq. 3) before one more unit.
//
// - resattnet56, resattnet92: the authors' released Caffe deploy prototxts
//   (github.com/fwang91/residual-attention-network, imagenet_model/Attention-{56,92}-deploy.prototxt), not the
//   popular PyTorch port (which adds terms to the mask, pads its max-pools and hard-codes sizes).
// - resattnet92_cifar, resattnet236_cifar, resattnet452_cifar: the CIFAR networks of section 4.1, which have
//   no released code, written with the same module templates (see cifar() below).
//
// The prototxts are flat graphs of Caffe layers named like paths (`AttentionA_1/trunk/res1/branch1/conv1_1x1`),
// so the modules are too: every parametric layer is a field of the network under its Caffe layer name, and
// a state-dict key is that name plus the tensor (`conv1/bn.running_var`), in prototxt order, so a converted
// caffemodel maps one to one. Module keys may hold '/' (fields are found by Object.entries; only '.'
// separates levels). The residual units and Attention Modules are private views that wire the layers.
//
// Caffe semantics kept: a pre-activation unit's input BN-ReLU is a layer named after the blob it reads
// (`pre_res_1/bn`), written just before the unit; the authors' BN layer (slope * (x - mean) * inv_std + shift)
// is a batch norm with eps 1e-5; max-pools are 3x3/2 without padding and with ceil rounding; the mask's
// Interp layers are bilinear with aligned corners, to the size of the map they are added to.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { ConvzooError, check } from '../errors.js';
import { Module, runChain, type AnyModule } from '../nn/module.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, ReLU, Sigmoid } from '../nn/layers.js';
import { registerAs } from '../nn/conv_norm_act.js';
import { ClassifierHead } from '../nn/head.js';
import * as F from '../nn/functional.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_DEFAULTS, type ModelMeta, type ModelOptions, CIFAR10_MEAN, CIFAR10_STD } from './registry.js';
import type { OptionTable } from './options.js';

// ---- configuration

/** One attention stage: the unit that enters it (`pre_res_<s>`), then its Attention Modules. */
export interface RanStage {
  /** Channels of the stage's units (bottleneck width a quarter of it). */
  width: number;
  /** Attention Modules in the stage (the paper's m; Attention-92 has 1, 2, 3). */
  modules: number;
  /** Max-pools on the mask's way down (modules A, B, C: 3, 2, 1), so the lowest mask map is the same size in every stage. */
  pools: number;
  /** Stride of the entering unit. */
  stride: number;
}

/** What defines a Residual Attention network (fixed by each registration). */
export interface ResAttnConfig {
  /**
   * 'imagenet': conv 7x7/2 (64), BN-ReLU and max-pool 3x3/2; after the stages, 3 units of 2048 channels
   * (`post_res_4_1..3`, the first with stride 2); a 7x7 average pool. 'cifar': conv 3x3 (16); each stage
   * closes with one more unit (`post_res_<s>`); a global average pool.
   */
  layout: 'imagenet' | 'cifar';
  stemWidth: number;
  stages: RanStage[];
  /** The paper's p: units before the trunk/mask split, and after the fusion. */
  p: number;
  /** The paper's t: trunk units after the split. */
  t: number;
  /** The paper's r: units per mask level (2r at the lowest level). */
  r: number;
}

/** The official ImageNet layout with `modules` Attention Modules per stage (Attention-56: 1, 1, 1; Attention-92: 1, 2, 3). */
function imagenet(modules: [number, number, number]): ResAttnConfig {
  return {
    layout: 'imagenet',
    stemWidth: 64,
    stages: [256, 512, 1024].map((width, i) => ({ width, modules: modules[i], pools: 3 - i, stride: i === 0 ? 1 : 2 })),
    p: 1,
    t: 2,
    r: 1,
  };
}

/**
 * Section 4.1's CIFAR networks: three stages like pre-activation ResNet-164 (3x3 stem of 16 channels,
 * widths 64, 128, 256 at 32, 16 and 8 pixels), m modules per stage with the official templates (3, 2 and
 * 1 mask pools, so the lowest mask map is 4x4 at 32 pixels), one more unit per stage, global average pool.
 */
function cifar(m: number, [p, t, r]: [number, number, number]): ResAttnConfig {
  return {
    layout: 'cifar',
    stemWidth: 16,
    stages: [64, 128, 256].map((width, i) => ({ width, modules: m, pools: 3 - i, stride: i === 0 ? 1 : 2 })),
    p,
    t,
    r,
  };
}

/** The BN of the authors' Caffe (BNParameter's default eps). */
const BN_EPS = 1e-5;
/** The ImageNet head's average pool (its kernel is the final map's size at 195..226 pixels). */
const HEAD_POOL = 7;

// ---- blocks (private views over the network's layers; they own no state)

/** A blob's BN and in-place ReLU (Caffe `<blob>/bn` and `<blob>/bn/relu`). */
function bnRelu(bn: BatchNorm2d): AnyModule[] {
  return [bn, new ReLU(true)];
}

/**
 * The pre-activation bottleneck unit: BN-ReLU of the input, conv1_1x1 (C/4), BN-ReLU, conv2_3x3 (C/4,
 * carrying the stride), BN-ReLU, conv3_1x1 (C); plus the raw input, or on a change of width or stride a
 * 1x1 projection (branch2) of the activated input.
 */
class ResidualUnit extends Module {
  constructor(
    private readonly _preact: AnyModule[],
    private readonly _branch: AnyModule[],
    private readonly _proj: Conv2d | null,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const a = runChain(x, this._preact);
      const y = runChain(a, this._branch);
      return y.add_(this._proj ? this._proj.forward(a) : x);
    });
  }
}

/** The soft mask branch: down (max-pool + units per level), up (bilinear + skip unit + units), then BN-ReLU-1x1 twice and a sigmoid. */
class MaskBranch extends Module {
  constructor(
    /** Per level: the max-pool, then its units. */
    private readonly _down: AnyModule[][],
    /** Per upper level i (1 .. pools-1): the skip unit on level i's output, and the units after the sum. */
    private readonly _skip: ResidualUnit[],
    private readonly _up: AnyModule[][],
    /** From the upsampled mask to its sigmoid. */
    private readonly _out: AnyModule[],
  ) {
    super();
  }
  /** The mask in (0, 1), from the trunk's map after p units (`x`), at `x`'s size. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const downs: Tensor[] = [];
      for (const level of this._down) downs.push(runChain(downs.length ? downs[downs.length - 1] : x, level));
      let y = downs[downs.length - 1];
      for (let i = downs.length - 2; i >= 0; i--) {
        const skip = downs[i];
        y = tidy(() => {
          const up = F.interpolate(y, { size: [skip.shape[2], skip.shape[3]], mode: 'bilinear', alignCorners: true });
          return runChain(this._skip[i].forward(skip).add_(up), this._up[i]);
        });
      }
      const top = F.interpolate(y, { size: [x.shape[2], x.shape[3]], mode: 'bilinear', alignCorners: true });
      return runChain(top, this._out);
    });
  }
}

/** An Attention Module: p units, then t trunk units beside the mask, (1 + mask) * trunk, and p more units. */
class AttentionModule extends Module {
  constructor(
    private readonly _pre: ResidualUnit[],
    private readonly _trunk: ResidualUnit[],
    private readonly _mask: MaskBranch,
    private readonly _post: ResidualUnit[],
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const split = runChain(x, this._pre);
      const trunk = runChain(split, this._trunk);
      const mask = this._mask.forward(split);
      // Caffe's `<mod>_residual` (trunk * mask) and `<mod>/fusion` (+ trunk).
      const fused = trunk.mul(mask).add_(trunk);
      return runChain(fused, this._post);
    });
  }
}

// ---- the network

export type ResAttnOptions = ModelOptions;
export const RESATTN_OPTIONS: OptionTable<ResAttnOptions> = {};

/**
 * A Residual Attention network. Its layers are fields named by their Caffe layer names; the final
 * layer is `classifier` (Caffe's InnerProduct).
 */
export class ResidualAttentionNet extends ClassifierModel {
  readonly numFeatures: number;
  readonly dropRate: number;
  readonly config: ResAttnConfig;
  protected readonly _head: ClassifierHead;
  private readonly _steps: AnyModule[] = [];

  constructor(cfg: ResAttnConfig, opts: ResAttnOptions = {}) {
    super();
    this.config = cfg;
    this.dropRate = opts.dropRate ?? 0;
    const { p, t, r } = cfg;
    check(p >= 1 && t >= 1 && r >= 1, 'ResidualAttentionNet', `expected p, t, r >= 1, got ${p}, ${t}, ${r}`);

    // Layers are fields in the prototxt's order, which is the state dict's.
    const layer = <M extends AnyModule>(name: string, m: M): M => {
      if (name in this) throw new ConvzooError(`ResidualAttentionNet: layer '${name}' defined twice`, 'E_ARG');
      return registerAs(this, name, m);
    };
    const conv = (name: string, cin: number, cout: number, k: number, stride = 1): Conv2d =>
      layer(name, new Conv2d(cin, cout, k, { stride, padding: (k - 1) / 2, bias: false }));
    const bn = (blob: string, c: number): BatchNorm2d => layer(`${blob}/bn`, new BatchNorm2d(c, { eps: BN_EPS }));
    const maxPool = (): MaxPool2d => new MaxPool2d(3, { stride: 2, ceilMode: true });

    /** The unit `name` reading the blob `input`; its output blob is `name`. */
    const unit = (name: string, input: string, cin: number, cout: number, stride = 1): ResidualUnit => {
      const preact = bnRelu(bn(input, cin));
      const b = `${name}/branch1`,
        w = cout / 4;
      const branch = [
        conv(`${b}/conv1_1x1`, cin, w, 1),
        ...bnRelu(bn(`${b}/conv1_1x1`, w)),
        conv(`${b}/conv2_3x3`, w, w, 3, stride),
        ...bnRelu(bn(`${b}/conv2_3x3`, w)),
        conv(`${b}/conv3_1x1`, w, cout, 1),
      ];
      const proj = cin !== cout || stride !== 1 ? conv(`${name}/branch2/conv1_1x1`, cin, cout, 1, stride) : null;
      return new ResidualUnit(preact, branch, proj);
    };
    /** Units named `names` in a row on `input`; returns them and the last blob. */
    const chain = (names: string[], input: string, c: number): [ResidualUnit[], string] => {
      const units = names.map((name, k) => unit(name, k === 0 ? input : names[k - 1], c, c));
      return [units, names.length ? names[names.length - 1] : input];
    };
    const range = (n: number, f: (k: number) => string): string[] => Array.from({ length: n }, (_, k) => f(k + 1));

    /** The Attention Module `mod` on the blob `input` (C channels, `pools` mask levels); its output blob is `mod`. */
    const attention = (mod: string, input: string, C: number, pools: number): AttentionModule => {
      const [pre, split] = chain(
        range(p, (k) => `${mod}/trunk/res${k}`),
        input,
        C,
      );
      const [trunk] = chain(
        range(t, (k) => `${mod}/trunk/res${p + k}`),
        split,
        C,
      );
      const down: AnyModule[][] = [];
      const levelOut: string[] = [];
      for (let i = 1; i <= pools; i++) {
        const pool = `${mod}/mask/down_sample/pool${i}_3x3_s2`;
        const [units, last] = chain(
          range(i < pools ? r : 2 * r, (j) => `${mod}/mask/down_sample/res${i}_${j}`),
          pool,
          C,
        );
        down.push([maxPool(), ...units]);
        levelOut.push(last);
      }
      const skip: ResidualUnit[] = [];
      const up: AnyModule[][] = [];
      for (let i = pools - 1; i >= 1; i--) {
        skip[i - 1] = unit(`${mod}/mask/skip/res${i}`, levelOut[i - 1], C, C);
        [up[i - 1]] = chain(
          range(r, (j) => `${mod}/mask/up_sample/res${i}_${j}`),
          `${mod}/mask/up_sample${i}`,
          C,
        );
      }
      const out = [
        ...bnRelu(bn(`${mod}/mask/up_sample/interp_1`, C)),
        conv(`${mod}/mask/linear_1`, C, C, 1),
        ...bnRelu(bn(`${mod}/mask/linear_1`, C)),
        conv(`${mod}/mask/linear_2`, C, C, 1),
        new Sigmoid(),
      ];
      const mask = new MaskBranch(down, skip, up, out);
      const postNames = [...range(p - 1, (k) => `${mod}/post_res${k}`), mod];
      const [post] = chain(postNames, `${mod}/fusion`, C);
      return new AttentionModule(pre, trunk, mask, post);
    };

    // Stem.
    const imagenetLayout = cfg.layout === 'imagenet';
    let blob = 'conv1';
    this._steps.push(conv('conv1', opts.inChans ?? 3, cfg.stemWidth, imagenetLayout ? 7 : 3, imagenetLayout ? 2 : 1));
    if (imagenetLayout) {
      this._steps.push(...bnRelu(bn('conv1', cfg.stemWidth)), maxPool());
      blob = 'pool1_3x3_s2';
    }
    // Attention stages.
    let cin = cfg.stemWidth;
    cfg.stages.forEach((stage, s) => {
      const letter = 'ABC'[s];
      this._steps.push(unit(`pre_res_${s + 1}`, blob, cin, stage.width, stage.stride));
      blob = `pre_res_${s + 1}`;
      cin = stage.width;
      for (let k = 1; k <= stage.modules; k++) {
        const mod = `Attention${letter}_${k}`;
        this._steps.push(attention(mod, blob, cin, stage.pools));
        blob = mod;
      }
      if (!imagenetLayout) {
        this._steps.push(unit(`post_res_${s + 1}`, blob, cin, cin));
        blob = `post_res_${s + 1}`;
      }
    });
    if (imagenetLayout) {
      for (let k = 1; k <= 3; k++) {
        this._steps.push(unit(`post_res_4_${k}`, blob, cin, 2048, k === 1 ? 2 : 1));
        blob = `post_res_4_${k}`;
        cin = 2048;
      }
    }
    this._steps.push(...bnRelu(bn(blob, cin)));
    this.numFeatures = cin;
    this._head = new ClassifierHead({ owner: this, field: 'classifier' }, cin, opts.numClasses ?? (imagenetLayout ? 1000 : 10), {
      pool: imagenetLayout ? new AvgPool2d(HEAD_POOL, { stride: 1 }) : 'avg',
      dropRate: this.dropRate,
    });
    this.initWeights();
  }

  /** Caffe's MSRA filler for the convolutions (N(0, 2 / fan_in)), BN to identity, torch's default Linear. */
  initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) init.kaimingNormal_(m.weight, { mode: 'fanIn', nonlinearity: 'relu' });
      else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof Linear) m.resetParameters();
    }
  }

  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => runChain(x, this._steps));
  }

  /** The ImageNet head's 7x7 average pool must see a 7x7 map (inputs of 195 to 226 pixels), as Caffe's InnerProduct fixes its input size. */
  override forwardHead(x: Tensor, opts: { preLogits?: boolean } = {}): Tensor {
    if (this.config.layout === 'imagenet') {
      const [h, w] = [x.shape[2], x.shape[3]];
      check(
        h === HEAD_POOL && w === HEAD_POOL,
        'ResidualAttentionNet',
        `the head's ${HEAD_POOL}x${HEAD_POOL} average pool needs a ${HEAD_POOL}x${HEAD_POOL} feature map (inputs of 195 to 226 pixels), got ${h}x${w}`,
        'E_SHAPE',
      );
    }
    return super.forwardHead(x, opts);
  }
}

// ---- registration

const PAPER = { title: 'Residual Attention Network for Image Classification', year: 2017, url: 'https://arxiv.org/abs/1704.06904' };
const REPO = 'https://github.com/fwang91/residual-attention-network';

/** Why there are no weights, and how a caffemodel trained with the prototxts would convert. */
const NO_WEIGHTS =
  `No weights: the authors' repository (${REPO}) has only the deploy prototxts, its README says the trained ` +
  'models "will be released soon", and the issues asking for them (#1, #12, #18) are open; no zoo ships them. ' +
  'A caffemodel made with these prototxts converts one to one: each layer name is a key prefix; Convolution and ' +
  'InnerProduct blobs 0, 1 are weight, bias; BN blobs [slope, shift, mean, inv_std] are weight, bias, running_mean ' +
  'and running_var = inv_std^-2 - 1e-5.';

interface Variant {
  id: string;
  config: ResAttnConfig;
  params: number;
  gmacs?: number;
  notes: string;
}

const IMAGENET_VARIANTS: Variant[] = [
  {
    id: 'resattnet56',
    config: imagenet([1, 1, 1]),
    params: 31810728,
    gmacs: 6.27,
    notes:
      "imagenet_model/Attention-56-deploy.prototxt layer for layer: one Attention Module per stage. The paper's " +
      'Table 3 gives 31.9M parameters and 6.2 GFLOPs; the prototxt has 31,810,728 parameters and 6.27 GMACs at 224 ' +
      '(convolutions and the classifier).',
  },
  {
    id: 'resattnet92',
    config: imagenet([1, 2, 3]),
    params: 52466344,
    gmacs: 10.53,
    notes:
      "imagenet_model/Attention-92-deploy.prototxt layer for layer: 1, 2 and 3 Attention Modules per stage. The paper's " +
      'Table 3 gives 51.3M parameters and 10.4 GFLOPs; the prototxt has 52,466,344 parameters (1.17M more) and 10.53 ' +
      'GMACs at 224 (convolutions and the classifier). The README reports its accuracy at 320x320 test crops, which ' +
      "this head (as the prototxt's) does not accept.",
  },
];

for (const v of IMAGENET_VARIANTS) {
  const meta: ModelMeta = {
    ...IMAGENET_DEFAULTS,
    id: v.id,
    family: 'resattnet',
    paper: PAPER,
    params: v.params,
    gmacs: v.gmacs,
    firstConv: 'conv1',
    classifier: 'classifier',
    weights: [],
    notes:
      `${v.notes} Keys are the Caffe layer names (${REPO}, commit bc207a8). The head is the prototxt's 7x7/1 ` +
      'average pool and a 2048-input InnerProduct, so inputs of 195 to 226 pixels work (a 7x7 final map). ' +
      'The repository does not state its preprocessing; mean/std here are the usual ImageNet ones. ' +
      NO_WEIGHTS,
  };
  registerModel(meta, { options: RESATTN_OPTIONS, fixed: v.config }, (opts: ResAttnOptions, config) => new ResidualAttentionNet(config, opts));
}

// The CIFAR networks of section 4.1 (depth 36m + 20 in the paper's count). Parameters are this
// transcription's; the paper's table gives 1.9M, 5.1M and 8.6M.
const CIFAR_VARIANTS: (Variant & { paperParams: string })[] = [
  { id: 'resattnet92_cifar', config: cifar(2, [1, 2, 1]), params: 1841242, paperParams: '1.9M', notes: 'Attention-92: m = 2, p, t, r = 1, 2, 1.' },
  { id: 'resattnet236_cifar', config: cifar(6, [1, 2, 1]), params: 5084762, paperParams: '5.1M', notes: 'Attention-236: m = 6, p, t, r = 1, 2, 1.' },
  {
    id: 'resattnet452_cifar',
    config: cifar(6, [2, 4, 3]),
    params: 10181210,
    paperParams: '8.6M',
    notes:
      'Attention-452: m = 6, p, t, r = 2, 4, 3 as section 4.1 states them (the text is ambiguous: these give more ' +
      'parameters than its table). Units after the fusion beyond the first are named <mod>/post_res<k>.',
  },
];

for (const v of CIFAR_VARIANTS) {
  const meta: ModelMeta = {
    id: v.id,
    family: 'resattnet_cifar',
    paper: PAPER,
    inputSize: [3, 32, 32],
    mean: CIFAR10_MEAN,
    std: CIFAR10_STD,
    interpolation: 'bilinear',
    numClasses: 10,
    params: v.params,
    firstConv: 'conv1',
    classifier: 'classifier',
    weights: [],
    notes:
      `${v.notes} Section 4.1's CIFAR network; no code was released, so this is a transcription with the official ` +
      "module templates (the prototxts' layers and names): a 3x3 stem of 16 channels; stages at widths 64, 128, 256, " +
      'each a residual unit (pre_res_s), m Attention Modules (3, 2, 1 mask pools) and one more unit (post_res_s); ' +
      `BN-ReLU and a global average pool. ${v.params.toLocaleString('en-US')} parameters (the paper: ${v.paperParams}). ` +
      'Any input of at least 8 pixels works (28x28 Fashion-MNIST included). Per-channel mean/std normalisation as the ' +
      'paper (the usual CIFAR-10 figures). No weights were released.',
  };
  registerModel(meta, { options: RESATTN_OPTIONS, fixed: v.config }, (opts: ResAttnOptions, config) => new ResidualAttentionNet(config, opts));
}
