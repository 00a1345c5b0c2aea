// VGG against torchvision, and the six columns of Table 1 against the paper.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import { type VGG, VGG_CONFIGS } from '../src/models/vgg.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec } from './helpers/tv_reference.js';

checkLeaks();

// Small inputs where adaptive pooling allows (VGG's minimum is 32); batch 2 for BN statistics.
parityTests(
  'torchvision parity: vgg',
  ['vgg11', 'vgg11_bn', 'vgg13', 'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn'].map((id) => ({ id, size: 32, batch: 2 })),
);

describe('VGG', () => {
  test('Table 2: 133, 133, 133, 134, 138, 144 million parameters for A, A-LRN, B, C, D, E', () => {
    const expected: [string, number, number][] = [
      ['vgg_a', 133, 132863336],
      ['vgg_a_lrn', 133, 132863336],
      ['vgg_b', 133, 133047848],
      ['vgg_c', 134, 133638952],
      ['vgg_d', 138, 138357544],
      ['vgg_e', 144, 143667240],
    ];
    for (const [id, millions, exact] of expected) {
      const m = build<VGG>(id);
      try {
        expect(Math.round(m.numParameters() / 1e6), id).toBe(millions);
        expect(m.numParameters(), id).toBe(exact);
        expect(cz.modelMeta(id).params, id).toBe(exact);
      } finally {
        disposeModel(m);
      }
    }
    // A, B, D, E are torchvision's vgg11, vgg13, vgg16, vgg19 (their published counts).
    for (const [id, tv] of [
      ['vgg_a', 'vgg11'],
      ['vgg_b', 'vgg13'],
      ['vgg_d', 'vgg16'],
      ['vgg_e', 'vgg19'],
    ]) {
      expect(cz.modelMeta(id).params).toBe(cz.modelMeta(tv).weights[0].numParams);
      expect(cz.modelMeta(id).torchvision).toBe(tv);
    }
  });

  test("vgg_a has vgg11's keys; vgg_a_lrn adds LRN after the first conv; vgg_c has 1x1 convs in the last three stages", () => {
    const a = build<VGG>('vgg_a'),
      v11 = build<VGG>('vgg11'),
      lrn = build<VGG>('vgg_a_lrn'),
      c = build<VGG>('vgg_c');
    try {
      expect(stateSpec(a)).toEqual(stateSpec(v11));
      expect([...lrn.features].slice(0, 4).map((l) => l.constructor.name)).toEqual(['Conv2d', 'ReLU', 'LocalResponseNorm', 'MaxPool2d']);
      expect((lrn.features[2] as cz.nn.LocalResponseNorm).opts).toEqual({ k: 2, alpha: 5e-4, beta: 0.75 });
      const kernels = [...c.features].filter((l): l is cz.nn.Conv2d => l instanceof cz.nn.Conv2d).map((l) => l.kernelSize[0]);
      expect(kernels).toEqual([3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]);
      expect(VGG_CONFIGS.C.filter((v) => typeof v === 'object').length).toBe(3);
      cz.tidy(() => {
        for (const m of [lrn, c]) {
          m.eval();
          const x = cz.randn([1, 3, 32, 32]);
          expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 512, 1, 1]);
          expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]);
        }
      });
      // torchvision's init: He normal (fan out) convs, N(0, 0.01) linear layers, zero biases.
      cz.tidy(() => {
        const conv = a.features[0] as cz.nn.Conv2d,
          fc = a.classifier[0] as cz.nn.Linear;
        expect(conv.weight.std().item()).toBeCloseTo(Math.sqrt(2 / (64 * 9)), 1);
        expect(fc.weight.std().item()).toBeCloseTo(0.01, 3);
        expect(conv.bias!.abs().max().item() + fc.bias!.abs().max().item()).toBe(0);
      });
    } finally {
      for (const m of [a, v11, lrn, c]) disposeModel(m);
    }
  });
});
