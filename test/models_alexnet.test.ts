// AlexNet against torchvision, and the 2012 paper's network against the paper.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import type { AlexNet } from '../src/models/alexnet.js';
import { checkLeaks, parityTests, build, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

parityTests('torchvision parity: alexnet', [{ id: 'alexnet', size: 64, batch: 2 }]);

describe('AlexNet', () => {
  test('alexnet_original: the 2012 paper\'s layers, 60,965,224 parameters ("60 million")', () => {
    const m = build<AlexNet>('alexnet_original');
    try {
      expect(m.numParameters()).toBe(60965224);
      expect(cz.modelMeta('alexnet_original').params).toBe(60965224);
      expect(cz.modelMeta('alexnet_original').inputSize).toEqual([3, 227, 227]);
      const convs = [...m.features].filter((l): l is cz.nn.Conv2d => l instanceof cz.nn.Conv2d);
      expect(convs.map((c) => c.outChannels)).toEqual([96, 256, 384, 384, 256]);
      expect(convs.map((c) => c.groups)).toEqual([1, 2, 1, 2, 2]);
      expect(convs[0].kernelSize).toEqual([11, 11]);
      expect(convs[0].stride).toEqual([4, 4]);
      // conv, relu, LRN, pool twice; then conv, relu x3 and a pool.
      expect([...m.features].map((l) => l.constructor.name)).toEqual([
        'Conv2d',
        'ReLU',
        'LocalResponseNorm',
        'MaxPool2d',
        'Conv2d',
        'ReLU',
        'LocalResponseNorm',
        'MaxPool2d',
        'Conv2d',
        'ReLU',
        'Conv2d',
        'ReLU',
        'Conv2d',
        'ReLU',
        'MaxPool2d',
      ]);
      const lrn = m.features[2] as cz.nn.LocalResponseNorm;
      expect([lrn.size, lrn.opts.k, lrn.opts.alpha, lrn.opts.beta]).toEqual([5, 2, 5e-4, 0.75]);
      const pool = m.features[3] as cz.nn.MaxPool2d;
      expect([pool.kernelSize, pool.opts.stride]).toEqual([3, 2]); // overlapping pooling
      expect([...m.classifier].map((l) => l.constructor.name)).toEqual(['Linear', 'ReLU', 'Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear']);
      expect((m.classifier[2] as cz.nn.Dropout).p).toBe(0.5);
      // Initialisation: N(0, 0.01) weights; biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere.
      const fcs = [...m.classifier].filter((l): l is cz.nn.Linear => l instanceof cz.nn.Linear);
      cz.tidy(() => {
        expect([...convs, ...fcs].map((l) => l.bias!.mean().item())).toEqual([0, 1, 0, 1, 1, 1, 1, 0]);
        for (const l of [convs[1], fcs[0]]) expect(l.weight.std().item()).toBeCloseTo(0.01, 3);
        // 227x227 gives 55x55 after conv1 and 6x6x256 features.
        const x = cz.randn([1, 3, 227, 227]);
        m.eval();
        expect(cz.noGrad(() => (m.features[0] as cz.nn.Conv2d).forward(x)).shape).toEqual([1, 96, 55, 55]);
        expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 256, 6, 6]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]);
      });
    } finally {
      disposeModel(m);
    }
  });

  test("LRN with alpha * n reproduces the paper's formula b = a / (k + alpha * sum a^2)^beta", () =>
    cz.tidy(() => {
      const x = cz.randn([1, 7, 2, 2]);
      const got = cz.F.localResponseNorm(x, 5, { k: 2, alpha: 5e-4, beta: 0.75 }).mul(1).toArray();
      const a = x.toArray();
      const at = (c: number, p: number) => a[c * 4 + p];
      for (let c = 0; c < 7; c++)
        for (let p = 0; p < 4; p++) {
          let s = 0;
          for (let j = Math.max(0, c - 2); j <= Math.min(6, c + 2); j++) s += at(j, p) ** 2;
          expect(got[c * 4 + p]).toBeCloseTo(at(c, p) / (2 + 1e-4 * s) ** 0.75, 5);
        }
    }));

  test('alexnet: features.0 ... classifier.6, dropout before the hidden layers, 256x6x6 features', () => {
    const m = build<AlexNet>('alexnet', { numClasses: 10, inChans: 1 });
    try {
      expect([...m.classifier].map((l) => l.constructor.name)).toEqual(['Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear', 'ReLU', 'Linear']);
      expect(m.numFeatures).toBe(256);
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([2, 1, 64, 64]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([2, 10]);
        expect(cz.noGrad(() => m.forwardHead(m.forwardFeatures(x), { preLogits: true })).shape).toEqual([2, 4096]);
      });
    } finally {
      disposeModel(m);
    }
  });
});
