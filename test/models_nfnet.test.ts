// NFNet against timm through the numerical oracle (dm_nfnet_f0, nfnet_l0, eca_nfnet_l0); every id's
// parameter count against timm's published one and its MACs against the paper's Table 3 (F-series) or
// timm's benchmark (L-series); timm's weights configs; the blocks' constants; a few training steps of
// the smallest model, with adaptive gradient clipping.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { type NormFreeNet, NormFreeBlock, GammaAct, NONLIN_GAMMA, NFNET_VARIANTS } from '../src/models/nfnet.js';
import { oracleTests } from './oracle.js';
import { checkLeaks, build, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

oracleTests('NFNet: the oracle (timm at the fixtures commit, float64)', ['dm_nfnet_f0', 'nfnet_l0', 'eca_nfnet_l0']);

/**
 * Multiply-adds at `size` from one forward at 64: every layer's output map scales by (size / 64)^2 when
 * size is a multiple of 32 (all strides divide it: SAME and symmetric padding give size / stride), except
 * the 1x1 maps of the attention and the classifier.
 */
function macsAt(m: cz.ClassifierModel, size: number): number {
  const s = cz.summary(m, [3, 64, 64]);
  let spatial = 0,
    fixed = 0;
  for (const r of s.rows) {
    if (r.outputShape.length === 4 && r.outputShape[2] > 1) spatial += r.macs;
    else fixed += r.macs;
  }
  return spatial * (size / 64) ** 2 + fixed;
}

describe('NFNet: parameters (timm) and MACs at the test size (the paper, timm)', () => {
  // timm's published counts (results-imagenet.csv at the oracle's commit, millions to 2 decimals) and
  // the exact counts of the models (the fixtures' for f0 and the L-series); the paper's Table 3:
  // 71.5M/12.38G, 132.6M/35.54G, 193.8M/62.59G, 254.9M/114.76G, 316.1M/215.24G, 377.2M/289.76G, 438.4M/377.28G.
  test.each([
    ['dm_nfnet_f0', 71.49, 71489284, 256, 12.38],
    ['dm_nfnet_f1', 132.63, 132634256, 320, 35.54],
    ['dm_nfnet_f2', 193.78, 193779228, 352, 62.59],
    ['dm_nfnet_f3', 254.92, 254924200, 416, 114.76],
    ['dm_nfnet_f4', 316.07, 316069172, 512, 215.24],
    ['dm_nfnet_f5', 377.21, 377214144, 544, 289.76],
    ['dm_nfnet_f6', 438.36, 438359116, 576, 377.28],
    // timm's benchmark GMACs at 288 (its count adds elementwise work; convs and linears are 1.5% lower)
    ['nfnet_l0', 35.07, 35074488, 288, 7.13],
    ['eca_nfnet_l0', 24.14, 24143924, 288, 7.12],
  ] as [string, number, number, number, number][])(
    '%s: %fM parameters as timm publishes; MACs at %i px within 2%% of %f G',
    (id, millions, exact, size, gmacs) => {
      const m = build(id);
      try {
        expect(m.numParameters()).toBe(exact);
        expect(cz.modelMeta(id).params).toBe(exact);
        expect(Math.round(m.numParameters() / 1e4) / 100).toBe(millions);
        expect(cz.modelMeta(id).inputSize).toEqual([3, size, size]);
        expect(cz.modelMeta(id).gmacs).toBe(gmacs);
        const macs = macsAt(m, size) / 1e9;
        console.log(`macs ${id}@${size}: ${macs.toFixed(3)}G (reference ${gmacs}G)`);
        expect(Math.abs(macs / gmacs - 1)).toBeLessThan(id.startsWith('dm_') ? 0.001 : 0.02);
      } finally {
        disposeModel(m);
      }
    },
    120_000,
  );

  test('the scaling rule of macsAt is exact: eca_nfnet_l0 counted at 288 directly', () => {
    const m = build('eca_nfnet_l0');
    try {
      expect(cz.summary(m).totalMacs).toBe(macsAt(m, 288));
    } finally {
      disposeModel(m);
    }
  }, 120_000);
});

describe("NFNet: weights and preprocessing (timm's pretrained configs)", () => {
  test('default tags, hub URLs, test sizes and crops, ImageNet mean/std, bicubic', () => {
    const expected: Record<string, [string, number, number]> = {
      dm_nfnet_f0: ['dm_in1k', 284, 256],
      dm_nfnet_f1: ['dm_in1k', 351, 320],
      dm_nfnet_f2: ['dm_in1k', 382, 352],
      dm_nfnet_f3: ['dm_in1k', 442, 416],
      dm_nfnet_f4: ['dm_in1k', 538, 512],
      dm_nfnet_f5: ['dm_in1k', 570, 544],
      dm_nfnet_f6: ['dm_in1k', 602, 576],
      nfnet_l0: ['ra2_in1k', 288, 288],
      eca_nfnet_l0: ['ra2_in1k', 288, 288],
    };
    expect(cz.listModels('nfnet').sort()).toEqual(Object.keys(expected).sort());
    for (const [id, [tag, resize, crop]] of Object.entries(expected)) {
      const meta = cz.modelMeta(id);
      expect([meta.mean, meta.std, meta.interpolation, meta.firstConv, meta.classifier, meta.family], id).toEqual([
        cz.IMAGENET_MEAN,
        cz.IMAGENET_STD,
        'bicubic',
        'stem.conv1',
        'head.fc',
        'nfnet',
      ]);
      expect(meta.weights.length).toBe(1);
      const w = meta.weights[0];
      expect([w.tag, w.default, w.url, w.resizeSize, w.cropSize, w.interpolation, w.numParams], id).toEqual([
        tag,
        true,
        `https://huggingface.co/timm/${id}.${tag}/resolve/main/model.safetensors`,
        resize,
        crop,
        'bicubic',
        meta.params,
      ]);
    }
    expect(cz.modelMeta('dm_nfnet_f0').weights[0].acc1).toBe(83.468);
    expect(cz.modelMeta('eca_nfnet_l0').weights[0].acc1).toBe(82.59);
    expect(NFNET_VARIANTS.dm_nfnet_f3.trainSize).toBe(320);
  });
});

describe('NFNet: the blocks and the model surface', () => {
  test('eca_nfnet_l0 (the smallest) trains on Fashion-MNIST-sized input (1 channel, 28x28, 10 classes) with AGC: the loss goes down', () => {
    cz.manualSeed(0);
    const m = build<NormFreeNet>('eca_nfnet_l0', { inChans: 1, numClasses: 10 });
    try {
      // The paper's clipping for small batches is looser than its 0.01 at 4096 (its Figure 3: lambda grows as the batch shrinks).
      const optimizer = (ps: cz.nn.Parameter[]) => cz.optim.AGC.forModel(m, { clipFactor: 0.16 }).attach(new cz.optim.SGD(ps, { lr: 0.05, momentum: 0.9 }));
      const losses = lossesOnFixedBatch(m, { batch: 16, steps: 8, optimizer });
      console.log(`losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[7]).toBeLessThan(0.5 * losses[0]);
    } finally {
      disposeModel(m);
    }
  }, 120_000);

  test('constants and structure: gammas, alpha, beta per block, skip-init, TF padding, SE/ECA, drop path', () => {
    expect([NONLIN_GAMMA.gelu, NONLIN_GAMMA.silu, NONLIN_GAMMA.relu]).toEqual([1.7015043497085571, 1.7881293296813965, 1.7139588594436646]);
    const f0 = build<NormFreeNet>('dm_nfnet_f0', { dropPathRate: 0.2 });
    const l0 = build<NormFreeNet>('eca_nfnet_l0', { numClasses: 7, dropRate: 0.3 });
    try {
      const blocks = [...f0.modules()].filter((b): b is NormFreeBlock => b instanceof NormFreeBlock);
      expect(blocks.length).toBe(12);
      // beta = 1/sqrt(expected variance): 1 into the first block; each block adds 0.2^2, and a stage's first block restarts it at 1.
      const betas = blocks.map((b) => 1 / b.beta ** 2);
      const want = [1, 1.04, 1.04, 1.08, 1.04, 1.08, 1.12, 1.16, 1.2, 1.24, 1.04, 1.08];
      betas.forEach((v, i) => expect(Math.abs(v - want[i]), `block ${i}`).toBeLessThan(1e-12));
      expect(blocks.every((b) => b.alpha === 0.2 && b.skipinit_gain !== null)).toBe(true);
      expect(blocks.map((b) => b.drop_path?.p ?? 0).at(-1)).toBeCloseTo(0.2, 12);
      expect(blocks[0].drop_path).toBeNull();
      const b1 = blocks[1];
      expect(b1.act1).toBeInstanceOf(GammaAct);
      expect([b1.conv2.samePad, b1.conv2.groups, b1.conv2.gamma, b1.conv2.eps, b1.conv3.gamma]).toEqual([true, 2, 1, 1e-5, 1]);
      expect(b1.attn_last).toBeInstanceOf(cz.nn.SqueezeExcite);
      cz.tidy(() => {
        expect(b1.skipinit_gain!.item()).toBe(0);
        expect(b1.conv3.gain.sum().item()).toBe(512); // gains start at 1; the branch is zeroed by skipinit_gain
      });
      const lb = [...l0.modules()].find((b): b is NormFreeBlock => b instanceof NormFreeBlock)!;
      expect(lb.act1).toBeInstanceOf(cz.nn.SiLU);
      expect([lb.conv2.samePad, lb.conv2.gamma, lb.skipinit_gain]).toEqual([false, NONLIN_GAMMA.silu, null]);
      expect(lb.attn_last).toBeInstanceOf(cz.nn.EcaModule);
      cz.tidy(() => expect(lb.conv3.gain.abs().sum().item()).toBe(0)); // no skip-init: conv3's gain starts at 0
      // The surface.
      expect([l0.numFeatures, l0.numClasses, l0.dropRate]).toEqual([2304, 7, 0.3]);
      cz.tidy(() => {
        l0.eval();
        const x = cz.randn([1, 3, 64, 64]);
        const f = cz.noGrad(() => l0.forwardFeatures(x));
        expect(f.shape).toEqual([1, 2304, 2, 2]);
        expect(cz.noGrad(() => l0.forwardHead(f, { preLogits: true })).shape).toEqual([1, 2304]);
        expect(cz.noGrad(() => l0.forward(x)).shape).toEqual([1, 7]);
        l0.resetClassifier(0);
        expect(cz.noGrad(() => l0.forward(x)).shape).toEqual([1, 2304]);
      });
      expect(() => build('nfnet_l0', { groupSize: 32 })).toThrow(/fixed by the variant/);
      expect(() => build('nfnet_l0', { dropPathRate: 1 })).toThrow(/dropPathRate/);
    } finally {
      disposeModel(f0);
      disposeModel(l0);
    }
  }, 120_000);
});
