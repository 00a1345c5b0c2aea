// DPN against timm through the numerical oracle (dpn68, dpn68b, dpn92, dpn131); dpn98 and dpn107's
// parameter counts against timm's published ones; MACs against the paper; timm's weights configs; the
// dual-path blocks; a few training steps of the smallest model.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { type DPN, type DualPathBlock, CatBnAct, DPN_MEAN, DPN_STD, type DualPath } from '../src/models/dpn.js';
import { oracleTests } from './oracle.js';
import { checkLeaks, build, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

oracleTests('DPN: the oracle (timm at the fixtures commit, float64)', ['dpn68', 'dpn68b', 'dpn92', 'dpn131']);

describe('DPN: the ids without a fixture', () => {
  // timm's published counts (results-imagenet.csv at the oracle's commit, param_count in millions to 2
  // decimals), and the exact counts of timm's models built from its source at that commit.
  test.each([
    ['dpn98', 61.57, 61570728],
    ['dpn107', 86.92, 86917800],
  ] as [string, number, number][])('%s: %fM parameters, as timm publishes', (id, millions, exact) => {
    const m = build(id);
    try {
      expect(m.numParameters()).toBe(exact);
      expect(cz.modelMeta(id).params).toBe(exact);
      expect(Math.round(m.numParameters() / 1e4) / 100).toBe(millions);
    } finally {
      disposeModel(m);
    }
  });
});

describe('DPN: MACs at 224 against the paper (DPN-92 6.5G, DPN-98 11.7G, DPN-131 16.0G; DPN-107 18.3G)', () => {
  test.each([
    ['dpn92', 6.5],
    ['dpn98', 11.7],
    ['dpn131', 16.0],
    ['dpn107', 18.3],
  ] as [string, number][])(
    '%s: %f GMACs, within 2%',
    (id, gmacs) => {
      const m = build(id);
      try {
        const macs = cz.summary(m, [3, 224, 224]).totalMacs / 1e9;
        console.log(`macs ${id}: ${macs.toFixed(3)}G`);
        expect(Math.abs(macs / gmacs - 1)).toBeLessThan(0.02);
        expect(cz.modelMeta(id).gmacs).toBe(gmacs);
      } finally {
        disposeModel(m);
      }
    },
    60_000,
  );

  test("dpn68 and dpn68b: 2.326G, 7% under the paper's 2.5G (see the notes)", () => {
    // The same count that gives the larger nets within 0.3% gives the released DPN-68 2.326G; the split
    // 1x1 of the b variant changes nothing. The paper's DPN-68 (12.8M parameters against the release's
    // 12.61M) is not the released network, so its 2.5G cannot be met by this one.
    for (const id of ['dpn68', 'dpn68b']) {
      const m = build(id);
      try {
        const macs = cz.summary(m, [3, 224, 224]).totalMacs;
        console.log(`macs ${id}: ${(macs / 1e9).toFixed(3)}G`);
        expect(macs).toBe(2326163456);
        expect(cz.modelMeta(id).gmacs).toBe(2.5);
      } finally {
        disposeModel(m);
      }
    }
  });
});

describe('DPN: weights and preprocessing (timm pretrained configs)', () => {
  test('default tags, hub URLs, crops, mean/std: DPN normalisation for the MXNet weights, ImageNet for dpn68b.ra_in1k', () => {
    expect(DPN_MEAN).toEqual([124 / 255, 117 / 255, 104 / 255]);
    expect(DPN_STD.every((s) => Math.abs(s - 1 / (0.0167 * 255)) < 1e-15)).toBe(true);
    for (const id of ['dpn68', 'dpn92', 'dpn98', 'dpn107', 'dpn131']) {
      const meta = cz.modelMeta(id);
      expect([meta.mean, meta.std, meta.interpolation, meta.firstConv, meta.classifier], id).toEqual([
        DPN_MEAN,
        DPN_STD,
        'bicubic',
        'features.conv1_1.conv',
        'classifier',
      ]);
      expect(meta.weights.length).toBe(1);
      const w = meta.weights[0];
      expect([w.tag, w.default, w.url, w.resizeSize, w.cropSize, w.mean, w.numParams]).toEqual([
        'mx_in1k',
        true,
        `https://huggingface.co/timm/${id}.mx_in1k/resolve/main/model.safetensors`,
        256,
        224,
        DPN_MEAN,
        meta.params,
      ]);
    }
    const b = cz.modelMeta('dpn68b');
    expect([b.mean, b.std]).toEqual([cz.IMAGENET_MEAN, cz.IMAGENET_STD]);
    const [ra, mx] = b.weights;
    expect([ra.tag, ra.default, ra.resizeSize, ra.mean, ra.acc1]).toEqual(['ra_in1k', true, 235, cz.IMAGENET_MEAN, 78.546]);
    expect([mx.tag, mx.default, mx.resizeSize, mx.mean, mx.url]).toEqual([
      'mx_in1k',
      false,
      256,
      DPN_MEAN,
      'https://huggingface.co/timm/dpn68b.mx_in1k/resolve/main/model.safetensors',
    ]);
  });
});

describe('DPN: the model surface', () => {
  test('dpn68 trains on Fashion-MNIST-sized input (1 channel, 28x28, 10 classes): the loss goes down', () => {
    cz.manualSeed(0);
    const m = build<DPN>('dpn68', { inChans: 1, numClasses: 10 });
    try {
      const losses = lossesOnFixedBatch(m, { batch: 16, steps: 8 });
      console.log(`losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[7]).toBeLessThan(0.5 * losses[0]);
    } finally {
      disposeModel(m);
    }
  });

  test('forwardFeatures, preLogits, resetClassifier, dropRate; a 1x1-conv classifier', () => {
    const m = build<DPN>('dpn68', { numClasses: 7, dropRate: 0.2 });
    try {
      expect(m.dropRate).toBe(0.2);
      expect(m.numFeatures).toBe(832);
      expect(m.classifier).toBeInstanceOf(cz.nn.Conv2d);
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([1, 3, 64, 64]);
        const f = cz.noGrad(() => m.forwardFeatures(x));
        expect(f.shape).toEqual([1, 832, 2, 2]);
        expect(cz.noGrad(() => m.forwardHead(f, { preLogits: true })).shape).toEqual([1, 832]);
        const before = cz.memory().tensors;
        const y = cz.noGrad(() => m.forward(x));
        expect(cz.memory().tensors, 'forward leaves only its output (the pairs between blocks are freed)').toBe(before + 1);
        expect(y.shape).toEqual([1, 7]);
        m.resetClassifier(0);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 832]);
      });
      expect(() => build('dpn68', { groups: 8 })).toThrow(/fixed by the variant/);
    } finally {
      disposeModel(m);
    }
  });

  test('the dual-path blocks: projection, (residual, dense) pairs, the b split', () => {
    const m = build<DPN>('dpn68');
    const b = build<DPN>('dpn68b');
    try {
      const first = m.features.conv2_1 as DualPathBlock;
      const down = m.features.conv3_1 as DualPathBlock;
      const plain = m.features.conv2_2 as DualPathBlock;
      expect([first.c1x1_w_s1?.convLayer.outChannels, first.c1x1_w_s2, down.c1x1_w_s1, down.c1x1_w_s2?.convLayer.stride]).toEqual([
        64 + 2 * 16,
        null,
        null,
        [2, 2],
      ]);
      expect([plain.c1x1_w_s1, plain.c1x1_w_s2, plain.c3x3_b.convLayer.groups]).toEqual([null, null, 32]);
      expect(m.features.conv5_bn_ac).toBeInstanceOf(CatBnAct);
      const bb = b.features.conv4_2 as DualPathBlock;
      expect(bb.c1x1_c).toBeInstanceOf(CatBnAct);
      expect([bb.c1x1_c1?.outChannels, bb.c1x1_c2?.outChannels]).toEqual([256, 32]);
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([1, 10, 8, 8]);
        const [resid, dense] = cz.noGrad(() => first.forward(x));
        expect([resid.shape, dense.shape]).toEqual([
          [1, 64, 8, 8],
          [1, 48, 8, 8],
        ]);
        const pair: DualPath = [resid, dense];
        const [r2, d2] = cz.noGrad(() => plain.forward(pair));
        expect([r2.shape, d2.shape]).toEqual([
          [1, 64, 8, 8],
          [1, 64, 8, 8],
        ]);
        expect(() => plain.forward(x)).toThrow(/pair/);
      });
    } finally {
      disposeModel(m);
      disposeModel(b);
    }
  });
});
