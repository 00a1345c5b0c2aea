// AlexNet.
// Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks"
// (NIPS 2012): `alexnet_original` is the paper's network, both GPU towers kept as groups=2 convolutions.
// `alexnet` is torchvision's single-tower variant (64-192-384-256-256 filters, after Krizhevsky's
// "One weird trick for parallelizing convolutional neural networks", 2014), key-for-key compatible
// with torchvision's weights.
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { Conv2d, Linear, MaxPool2d, AdaptiveAvgPool2d, LocalResponseNorm, Dropout, ReLU, Sequential } from '../nn/layers.js';
import { ClassifierHead } from '../nn/head.js';
import * as init from '../nn/init.js';
import { ClassifierModel } from './base.js';
import { registerModel, IMAGENET_DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, type ModelOptions } from './registry.js';
import { TORCHVISION_WEIGHTS } from './torchvision_weights.js';

// ---- the convolutional layers as data

interface ConvSpec {
  out: number;
  kernel: number;
  stride?: number;
  padding?: number;
  /** 2 in the paper's layers that only see the kernels on their own GPU. */
  groups?: number;
  /** Local response normalisation after the ReLU. */
  lrn?: boolean;
  /** Overlapping 3x3 / 2 max-pool after the layer. */
  pool?: boolean;
  /** The paper's initial bias (1 "to accelerate the early stages of learning" by feeding ReLUs positive inputs). */
  bias?: number;
}

/** What defines an AlexNet variant. */
export interface AlexNetConfig {
  convs: ConvSpec[];
  hidden: number;
  dropoutFirst: boolean;
}

/** torchvision's single-tower network: dropout before each hidden FC layer. */
const TORCHVISION: AlexNetConfig = {
  convs: [
    { out: 64, kernel: 11, stride: 4, padding: 2, pool: true },
    { out: 192, kernel: 5, padding: 2, pool: true },
    { out: 384, kernel: 3, padding: 1 },
    { out: 256, kernel: 3, padding: 1 },
    { out: 256, kernel: 3, padding: 1, pool: true },
  ],
  hidden: 4096,
  dropoutFirst: true,
};

/** Figure 2 and section 3 of the paper: conv1 on 227x227 inputs without padding gives 55x55. */
const PAPER: AlexNetConfig = {
  convs: [
    { out: 96, kernel: 11, stride: 4, lrn: true, pool: true, bias: 0 },
    { out: 256, kernel: 5, padding: 2, groups: 2, lrn: true, pool: true, bias: 1 },
    { out: 384, kernel: 3, padding: 1, bias: 0 }, // conv3 connects to all kernels of conv2 (across GPUs)
    { out: 384, kernel: 3, padding: 1, groups: 2, bias: 1 },
    { out: 256, kernel: 3, padding: 1, groups: 2, pool: true, bias: 1 },
  ],
  // "We use dropout in the first two fully-connected layers": on the outputs of fc6 and fc7.
  hidden: 4096,
  dropoutFirst: false,
};

// Section 3.3: b = a / (k + alpha * sum_{n neighbouring maps} a^2)^beta with k = 2, n = 5, alpha = 1e-4,
// beta = 0.75. torch's LocalResponseNorm divides alpha by n, so alpha * n reproduces the paper's formula.
const LRN_SIZE = 5;
const LRN = { k: 2, alpha: 1e-4 * LRN_SIZE, beta: 0.75 };

// ---- the network

export interface AlexNetOptions extends ModelOptions {
  /** Dropout of the two hidden FC layers (0.5). */
  dropRate?: number;
}

/**
 * AlexNet: `features` (convolutions, ReLU, LRN, max-pools as one Sequential, so that state-dict keys are
 * torchvision's `features.0.weight`, ...), an adaptive average pool to 6x6 (the identity on the
 * paper's 227x227 input) and a three-layer `classifier`.
 */
export class AlexNet extends ClassifierModel {
  features: Sequential;
  avgpool: AdaptiveAvgPool2d;
  classifier: Sequential;
  readonly numFeatures: number;
  readonly dropRate: number;
  protected readonly _head: ClassifierHead;
  private readonly _cfg: AlexNetConfig;

  constructor(cfg: AlexNetConfig, opts: AlexNetOptions = {}) {
    super();
    this._cfg = cfg;
    this.dropRate = opts.dropRate ?? 0.5;
    const layers: Module[] = [];
    let inC = opts.inChans ?? 3;
    for (const c of cfg.convs) {
      layers.push(new Conv2d(inC, c.out, c.kernel, { stride: c.stride ?? 1, padding: c.padding ?? 0, groups: c.groups ?? 1 }), new ReLU(true));
      if (c.lrn) layers.push(new LocalResponseNorm(LRN_SIZE, LRN));
      if (c.pool) layers.push(new MaxPool2d(3, { stride: 2 }));
      inC = c.out;
    }
    this.features = new Sequential(...layers);
    this.avgpool = new AdaptiveAvgPool2d(6);
    this.numFeatures = inC;
    // Dropout, FC, ReLU twice in torchvision's order (the paper's: dropout after each ReLU); the head appends the final FC (`classifier.6`).
    const h = cfg.hidden,
      p = this.dropRate,
      flat = this.numFeatures * 6 * 6;
    this.classifier = cfg.dropoutFirst
      ? new Sequential(new Dropout(p), new Linear(flat, h), new ReLU(true), new Dropout(p), new Linear(h, h), new ReLU(true))
      : new Sequential(new Linear(flat, h), new ReLU(true), new Dropout(p), new Linear(h, h), new ReLU(true), new Dropout(p));
    this._head = new ClassifierHead({ sequential: this.classifier }, this.numFeatures, opts.numClasses ?? 1000, { pool: this.avgpool, hiddenFeatures: h });
  }

  forwardFeatures(x: Tensor): Tensor {
    return this.features.forward(x);
  }
  /** Re-draws every weight: the paper's scheme for alexnet_original, PyTorch's layer defaults for torchvision's variant. */
  initWeights(): void {
    if (this._cfg === PAPER) initPaperWeights(this);
    else for (const m of this.modules()) if (m instanceof Conv2d || m instanceof Linear) m.resetParameters();
  }
}

/** The paper's initialisation (section 5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere. */
function initPaperWeights(model: AlexNet): void {
  const convs = [...model.features].filter((m): m is Conv2d => m instanceof Conv2d);
  const fcs = [...model.classifier].filter((m): m is Linear => m instanceof Linear);
  convs.forEach((c, i) => {
    init.normal_(c.weight, 0, 0.01);
    if (c.bias) init.constant_(c.bias, PAPER.convs[i].bias ?? 0);
  });
  fcs.forEach((l, i) => {
    init.normal_(l.weight, 0, 0.01);
    if (l.bias) init.constant_(l.bias, i < 2 ? 1 : 0);
  });
}

// ---- registration

const PAPER_REF = {
  title: 'ImageNet Classification with Deep Convolutional Neural Networks',
  year: 2012,
  url: 'https://papers.nips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html',
};

registerModel(
  {
    id: 'alexnet',
    family: 'alexnet',
    paper: PAPER_REF,
    ...IMAGENET_DEFAULTS,
    params: 61100840,
    gmacs: 0.714,
    torchvision: 'alexnet',
    firstConv: 'features.0',
    classifier: 'classifier.6',
    weights: TORCHVISION_WEIGHTS.alexnet ?? [],
    notes:
      'torchvision\'s single-tower variant ("One weird trick for parallelizing convolutional neural networks", ' +
      "https://arxiv.org/abs/1404.5997): 64-192-384-256-256 filters, no LRN, PyTorch's default initialisation.",
  },
  { options: {}, fixed: TORCHVISION },
  (opts: AlexNetOptions, config) => new AlexNet(config, opts),
);

// 60,965,224 parameters: the paper's "60 million". 0.724 GMACs at 227x227 (our count: conv 0.666, FC 0.059).
registerModel(
  {
    id: 'alexnet_original',
    family: 'alexnet',
    paper: PAPER_REF,
    inputSize: [3, 227, 227],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bilinear',
    numClasses: 1000,
    params: 60965224,
    gmacs: 0.724,
    firstConv: 'features.0',
    classifier: 'classifier.6',
    weights: [],
    notes:
      'The 2012 paper: 96-256-384-384-256 filters, conv2/4/5 grouped in two (the two-GPU split), LRN (k=2, n=5, ' +
      'alpha=1e-4, beta=0.75) after conv1 and conv2, overlapping 3x3/2 max-pools, FC 4096-4096-1000 with dropout 0.5 ' +
      'on the hidden layers, N(0, 0.01) weights and unit biases in conv2, conv4, conv5 and fc6, fc7. ' +
      'The paper subtracts the mean image instead of normalising; ImageNet mean/std are used here.',
  },
  { options: {}, fixed: PAPER },
  (opts: AlexNetOptions, config) => {
    const m = new AlexNet(config, opts);
    m.initWeights();
    return m;
  },
);
