// VGG.
// Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition" (2014):
// the six configurations of Table 1 (A, A-LRN, B, C, D, E) as data, with torchvision's head (adaptive
// average pool to 7x7, FC 4096-4096 with dropout) and state-dict keys. vgg11/13/16/19 are torchvision's
// names for A/B/D/E, and their `_bn` variants put a batch norm after every convolution.
import type { Tensor } from '../tensor/tensor.js';
import type { Module, AnyModule } from '../nn/module.js';
import { Conv2d, BatchNorm2d, Linear, MaxPool2d, AdaptiveAvgPool2d, LocalResponseNorm, Dropout, ReLU, Sequential } from '../nn/layers.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_DEFAULTS, type ModelOptions } from './registry.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- Table 1 as data

/** A 3x3 convolution (its output channels), a 1x1 convolution, a 2x2 max-pool, or LRN. */
export type VggLayer = number | { out: number; kernel: 1 } | 'M' | 'LRN';
export type VggConfigName = 'A' | 'A-LRN' | 'B' | 'C' | 'D' | 'E';

const c1 = (out: number): VggLayer => ({ out, kernel: 1 });

/** The columns of Table 1: conv3-n is n, conv1-n is c1(n), maxpool is 'M'. */
export const VGG_CONFIGS: Record<VggConfigName, VggLayer[]> = {
  A: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  'A-LRN': [64, 'LRN', 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  B: [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  C: [64, 64, 'M', 128, 128, 'M', 256, 256, c1(256), 'M', 512, 512, c1(512), 'M', 512, 512, c1(512), 'M'],
  D: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
  E: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
};

// "Where applicable, the parameters for the LRN layer are those of (Krizhevsky et al., 2012)": k = 2,
// n = 5, alpha = 1e-4, beta = 0.75 in the paper's formula. torch's LocalResponseNorm divides alpha by n,
// so alpha * n reproduces it.
const LRN_SIZE = 5;
const LRN = { k: 2, alpha: 1e-4 * LRN_SIZE, beta: 0.75 };

/** The `features` Sequential: conv (+ BN) + ReLU per entry, in torchvision's module order. */
export function makeVggLayers(cfg: readonly VggLayer[], opts: { batchNorm?: boolean; inChans?: number } = {}): Sequential {
  const layers: Module[] = [];
  let inC = opts.inChans ?? 3;
  for (const v of cfg) {
    if (v === 'M') {
      layers.push(new MaxPool2d(2, { stride: 2 }));
      continue;
    }
    if (v === 'LRN') {
      layers.push(new LocalResponseNorm(LRN_SIZE, LRN));
      continue;
    }
    const [out, kernel] = typeof v === 'number' ? [v, 3] : [v.out, v.kernel];
    layers.push(new Conv2d(inC, out, kernel, { padding: kernel === 3 ? 1 : 0 }));
    if (opts.batchNorm) layers.push(new BatchNorm2d(out));
    layers.push(new ReLU(true));
    inC = out;
  }
  return new Sequential(...layers);
}

// ---- the network

export interface VggOptions extends ModelOptions {
  /** Dropout after each of the two hidden FC layers (0.5). */
  dropRate?: number;
}

/** What defines a VGG variant: a column of Table 1, with or without batch norm. */
export interface VggConfig {
  cfg: VggConfigName;
  batchNorm: boolean;
}

/** VGG: `features`, an adaptive average pool to 7x7 (the identity at 224x224) and the 3-layer `classifier`. */
export class VGG extends ClassifierModel {
  features: Sequential;
  avgpool: AdaptiveAvgPool2d;
  classifier: Sequential;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;

  constructor(cfg: readonly VggLayer[], opts: VggOptions & { batchNorm?: boolean } = {}) {
    super();
    this.dropRate = opts.dropRate ?? 0.5;
    this.features = makeVggLayers(cfg, { batchNorm: opts.batchNorm, inChans: opts.inChans });
    this.avgpool = new AdaptiveAvgPool2d(7);
    const lastConv = [...cfg].reverse().find((v): v is Exclude<VggLayer, string> => typeof v !== 'string')!;
    this.numFeatures = typeof lastConv === 'number' ? lastConv : lastConv.out;
    const p = this.dropRate;
    // FC-4096, FC-4096 with dropout; the head appends the final FC (`classifier.6`).
    this.classifier = new Sequential(
      new Linear(this.numFeatures * 7 * 7, 4096),
      new ReLU(true),
      new Dropout(p),
      new Linear(4096, 4096),
      new ReLU(true),
      new Dropout(p),
    );
    this._head = new ClassifierHead({ sequential: this.classifier }, this.numFeatures, opts.numClasses ?? 1000, {
      pool: this.avgpool,
      hiddenFeatures: 4096,
      initLayer: initVggWeights,
    });
    this.initWeights();
  }

  forwardFeatures(x: Tensor): Tensor {
    return this.features.forward(x);
  }
  /** Re-draws every weight with torchvision's scheme. */
  initWeights(): void {
    initVggWeights(this);
  }
}

/** torchvision's initialisation: He normal (fan out) convs, BN to identity, N(0, 0.01) linear layers, zero biases. */
function initVggWeights(model: AnyModule): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) {
      init.kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof Linear) {
      init.normal_(m.weight, 0, 0.01);
      if (m.bias) init.zeros_(m.bias);
    }
  }
}

// ---- registration

const PAPER = { title: 'Very Deep Convolutional Networks for Large-Scale Image Recognition', year: 2014, url: 'https://arxiv.org/abs/1409.1556' };

interface VggVariant {
  id: string;
  cfg: VggConfigName;
  batchNorm: boolean;
  /** torchvision's count for A, B, D, E (and their _bn); ours for A-LRN and C. Table 2 rounds them to 133, 133, 133, 134, 138, 144 million. */
  params: number;
  /** torchvision's GFLOPS for A, B, D, E; C counted the same way (B + its three 1x1 convs). */
  gmacs: number;
  torchvision?: string;
}

const VARIANTS: VggVariant[] = [
  { id: 'vgg11', cfg: 'A', batchNorm: false, params: 132863336, gmacs: 7.609, torchvision: 'vgg11' },
  { id: 'vgg11_bn', cfg: 'A', batchNorm: true, params: 132868840, gmacs: 7.609, torchvision: 'vgg11_bn' },
  { id: 'vgg13', cfg: 'B', batchNorm: false, params: 133047848, gmacs: 11.308, torchvision: 'vgg13' },
  { id: 'vgg13_bn', cfg: 'B', batchNorm: true, params: 133053736, gmacs: 11.308, torchvision: 'vgg13_bn' },
  { id: 'vgg16', cfg: 'D', batchNorm: false, params: 138357544, gmacs: 15.47, torchvision: 'vgg16' },
  { id: 'vgg16_bn', cfg: 'D', batchNorm: true, params: 138365992, gmacs: 15.47, torchvision: 'vgg16_bn' },
  { id: 'vgg19', cfg: 'E', batchNorm: false, params: 143667240, gmacs: 19.632, torchvision: 'vgg19' },
  { id: 'vgg19_bn', cfg: 'E', batchNorm: true, params: 143678248, gmacs: 19.632, torchvision: 'vgg19_bn' },
  // The paper's column names. A, B, D, E are vgg11, vgg13, vgg16, vgg19 key for key (and load their weights).
  { id: 'vgg_a', cfg: 'A', batchNorm: false, params: 132863336, gmacs: 7.609, torchvision: 'vgg11' },
  { id: 'vgg_a_lrn', cfg: 'A-LRN', batchNorm: false, params: 132863336, gmacs: 7.609 },
  { id: 'vgg_b', cfg: 'B', batchNorm: false, params: 133047848, gmacs: 11.308, torchvision: 'vgg13' },
  { id: 'vgg_c', cfg: 'C', batchNorm: false, params: 133638952, gmacs: 11.77 },
  { id: 'vgg_d', cfg: 'D', batchNorm: false, params: 138357544, gmacs: 15.47, torchvision: 'vgg16' },
  { id: 'vgg_e', cfg: 'E', batchNorm: false, params: 143667240, gmacs: 19.632, torchvision: 'vgg19' },
];

for (const v of VARIANTS) {
  registerModel(
    {
      id: v.id,
      family: 'vgg',
      paper: PAPER,
      ...IMAGENET_DEFAULTS,
      params: v.params,
      gmacs: v.gmacs,
      torchvision: v.torchvision,
      firstConv: 'features.0',
      classifier: 'classifier.6',
      weights: v.torchvision ? (TORCHVISION_WEIGHTS[v.torchvision] ?? []) : [],
      notes: `Configuration ${v.cfg} of Table 1${v.batchNorm ? ' with batch norm after every convolution' : ''}.`,
    },
    { options: {}, fixed: { cfg: v.cfg, batchNorm: v.batchNorm } satisfies VggConfig },
    (opts: VggOptions, config) => new VGG(VGG_CONFIGS[config.cfg], { ...opts, batchNorm: config.batchNorm }),
  );
}
