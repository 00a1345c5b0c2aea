// DenseNet: torchvision parity for densenet121/161/169/201, the numerical oracle for densenet121, the
// legacy-key remap of torchvision's files through createModel, the paper's CIFAR DenseNet-BC (Table 2's
// parameter counts), MACs against torchvision's GFLOPS, and training steps on Fashion-MNIST-sized input.
import { describe, test, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { type DenseNet, type DenseLayer, remapDenseNetKey } from '../src/models/densenet.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec, relMaxDiff } from './helpers/tv_reference.js';
import { oracleTests } from './oracle.js';

checkLeaks();

parityTests(
  'torchvision parity: densenet',
  ['densenet121', 'densenet161', 'densenet169', 'densenet201'].map((id) => ({ id, size: 32, batch: 2 })),
);

oracleTests('DenseNet oracle', ['densenet121']);

describe("torchvision's legacy keys", () => {
  test('remapDenseNetKey renames norm.1 / relu.2 / conv.1 inside dense layers only', () => {
    expect(remapDenseNetKey('features.denseblock1.denselayer1.norm.1.weight')).toBe('features.denseblock1.denselayer1.norm1.weight');
    expect(remapDenseNetKey('features.denseblock4.denselayer16.conv.2.weight')).toBe('features.denseblock4.denselayer16.conv2.weight');
    expect(remapDenseNetKey('features.denseblock2.denselayer3.norm.2.running_var')).toBe('features.denseblock2.denselayer3.norm2.running_var');
    for (const k of ['features.denseblock1.denselayer1.norm1.weight', 'features.transition1.norm.weight', 'features.norm5.bias', 'classifier.weight'])
      expect(remapDenseNetKey(k)).toBe(k);
  });

  test('createModel loads a file saved with the old keys (as torchvision releases them) and gives the same logits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'convzoo-densenet-'));
    const src = build('densenet121');
    try {
      const sd = src.stateDict();
      // The released files: `denselayerN.norm.1.weight`, no num_batches_tracked.
      const old: Record<string, cz.Tensor> = {};
      for (const [k, t] of Object.entries(sd)) {
        if (k.endsWith('num_batches_tracked')) continue;
        old[k.replace(/(denselayer\d+\.(?:norm|relu|conv))([12])\./, '$1.$2.')] = t;
      }
      expect(Object.keys(old)).toContain('features.denseblock1.denselayer1.norm.1.weight');
      expect(Object.keys(old).some((k) => /denselayer\d+\.(norm|conv)[12]\./.test(k))).toBe(false);
      const file = join(dir, 'densenet121-legacy.safetensors');
      await cz.save(file, old);
      for (const t of Object.values(sd)) t.dispose();
      const loaded = await cz.createModel('densenet121', { weights: file });
      try {
        src.eval();
        loaded.eval();
        cz.tidy(() => {
          const x = cz.randn([1, 3, 32, 32]);
          expect(
            relMaxDiff(
              cz.noGrad(() => loaded.forward(x)),
              cz.noGrad(() => src.forward(x)),
            ),
          ).toBe(0);
        });
        // Grayscale through the same path: the first conv's RGB filters summed.
        const gray = await cz.createModel('densenet121', { weights: file, inChans: 1, numClasses: 10 });
        try {
          expect(gray.stateShapes().get('features.conv0.weight')).toEqual([64, 1, 7, 7]);
        } finally {
          disposeModel(gray);
        }
      } finally {
        disposeModel(loaded);
      }
    } finally {
      disposeModel(src);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DenseNet structure', () => {
  test("keys are torchvision's: norm1/relu1/conv1/norm2/conv2 per layer, transitions' norm/conv, norm5", () => {
    const m = build<DenseNet>('densenet_bc_100_k12');
    try {
      const keys = stateSpec(m).map((e) => e.key);
      expect(keys.slice(0, 8)).toEqual([
        'features.conv0.weight',
        'features.denseblock1.denselayer1.norm1.weight',
        'features.denseblock1.denselayer1.norm1.bias',
        'features.denseblock1.denselayer1.norm1.running_mean',
        'features.denseblock1.denselayer1.norm1.running_var',
        'features.denseblock1.denselayer1.norm1.num_batches_tracked',
        'features.denseblock1.denselayer1.conv1.weight',
        'features.denseblock1.denselayer1.norm2.weight',
      ]);
      expect(keys).toContain('features.transition2.conv.weight');
      expect(keys).not.toContain('features.transition3.conv.weight');
      expect(keys.slice(-7)).toEqual([
        'features.norm5.weight',
        'features.norm5.bias',
        'features.norm5.running_mean',
        'features.norm5.running_var',
        'features.norm5.num_batches_tracked',
        'classifier.weight',
        'classifier.bias',
      ]);
      // The DenseNet-BC shapes: stem 2k = 24, bottleneck 4k = 48, growth 12, 16 layers per block, compression 0.5.
      const shapes = m.stateShapes();
      expect(shapes.get('features.conv0.weight')).toEqual([24, 3, 3, 3]);
      expect(shapes.get('features.denseblock1.denselayer16.conv1.weight')).toEqual([48, 24 + 15 * 12, 1, 1]);
      expect(shapes.get('features.denseblock1.denselayer16.conv2.weight')).toEqual([12, 48, 3, 3]);
      expect(shapes.get('features.transition1.conv.weight')).toEqual([108, 216, 1, 1]);
      expect(shapes.get('features.transition2.conv.weight')).toEqual([150, 300, 1, 1]);
      expect(m.numFeatures).toBe(342);
      expect(shapes.get('classifier.weight')).toEqual([10, 342]);
      // A dense layer's modules are its NormActConvs' (one set of parameters).
      const layer = (m.features as unknown as Record<string, Record<string, DenseLayer>>).denseblock1.denselayer1;
      expect(layer.conv1).toBeInstanceOf(cz.nn.Conv2d);
      expect(layer.parameters().length).toBe(6);
    } finally {
      disposeModel(m);
    }
  });

  test("the CIFAR DenseNet-BC's parameter counts are Table 2's (0.8M, 15.3M, 25.6M)", () => {
    const paper: Record<string, number> = { densenet_bc_100_k12: 0.8e6, densenet_bc_250_k24: 15.3e6, densenet_bc_190_k40: 25.6e6 };
    for (const [id, want] of Object.entries(paper)) {
      const meta = cz.modelMeta(id);
      expect([meta.numClasses, meta.inputSize, meta.family], id).toEqual([10, [3, 32, 32], 'densenet_cifar']);
      const m = build(id);
      try {
        expect(m.numParameters(), id).toBe(meta.params);
        // Table 2 rounds to 0.1M.
        expect(Math.abs(m.numParameters() - want), id).toBeLessThan(0.05e6);
      } finally {
        disposeModel(m);
      }
    }
  });

  test("MACs at 224 are within 2% of torchvision's GFLOPS (2.83, 7.73, 3.36, 4.29)", () => {
    const published: Record<string, number> = { densenet121: 2.83, densenet161: 7.73, densenet169: 3.36, densenet201: 4.29 };
    for (const [id, g] of Object.entries(published)) {
      expect(cz.modelMeta(id).gmacs, id).toBe(g);
      const m = build(id);
      try {
        const macs = cz.summary(m, [3, 224, 224]).totalMacs / 1e9;
        expect(Math.abs(macs - g) / g, `${id}: ${macs} GMACs`).toBeLessThan(0.02);
      } finally {
        disposeModel(m);
      }
    }
  });

  test('options: layerDropRate is typed; the architecture is fixed by the variant; forward frees its intermediates', () => {
    expect(() => build('densenet121', { layerDropRate: 1 })).toThrow(/expected layerDropRate to be a number >= 0 and < 1, got 1/);
    expect(() => build('densenet121', { growthRate: 48 })).toThrow(/'growthRate' is fixed by the variant \(growthRate = 32\)/);
    expect(() => build('densenet121', { layerDropRte: 0.1 })).toThrow(/did you mean 'layerDropRate'/);
    const m = build<DenseNet>('densenet_bc_100_k12', { layerDropRate: 0.2, dropRate: 0.1, numClasses: 3 });
    try {
      expect([m.layerDropRate, m.dropRate, m.numClasses]).toEqual([0.2, 0.1, 3]);
      const x = cz.randn([2, 3, 32, 32]);
      m.eval();
      const before = cz.memory().tensors;
      const y = cz.noGrad(() => m.forward(x));
      expect(cz.memory().tensors).toBe(before + 1);
      expect(y.shape).toEqual([2, 3]);
      // Eval: dropout off, deterministic.
      cz.tidy(() =>
        expect(
          relMaxDiff(
            cz.noGrad(() => m.forward(x)),
            y,
          ),
        ).toBe(0),
      );
      y.dispose();
      // resetClassifier(0): the pooled features after norm5 and ReLU; the old classifier's tensors freed.
      const live = cz.memory().tensors;
      m.resetClassifier(0);
      expect(cz.memory().tensors).toBe(live - 2);
      cz.tidy(() => {
        const f = cz.noGrad(() => m.forward(x));
        expect(f.shape).toEqual([2, 342]);
        expect(f.min().item()).toBeGreaterThanOrEqual(0);
      });
      m.resetClassifier(10);
      expect(m.stateShapes().get('classifier.weight')).toEqual([10, 342]);
      x.dispose();
    } finally {
      disposeModel(m);
    }
  });
});

describe('Fashion-MNIST-sized training', () => {
  test('densenet_bc_100_k12 (1 channel, 10 classes, 28x28): the loss goes down on a fixed batch', () => {
    cz.manualSeed(0);
    const m = build('densenet_bc_100_k12', { inChans: 1 });
    try {
      expect(m.numClasses).toBe(10);
      const losses = lossesOnFixedBatch(m, { batch: 8, steps: 6 });
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!).toBeLessThan(losses[0]);
    } finally {
      disposeModel(m);
    }
  });
});
