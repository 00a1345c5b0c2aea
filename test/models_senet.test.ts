// SENet: the legacy release (timm's legacy/senet.py) and timm's ResNets with SE, against timm through
// the numerical oracle; the other ids' parameter counts against timm's published ones; MACs against
// the paper; aliases; a few training steps of the smallest model.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { type SENet, SEResNetBottleneck, type SEResNeXtBottleneck, type SEBottleneck, SEResNetBlock } from '../src/models/senet.js';
import type { ResNet, Bottleneck } from '../src/models/resnet.js';
import { oracleTests } from './oracle.js';
import { checkLeaks, build, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

oracleTests('SENet: the oracle (timm at the fixtures commit, float64)', [
  'legacy_seresnet18',
  'legacy_seresnet50',
  'legacy_seresnext26_32x4d',
  'legacy_senet154',
  'seresnet50',
]);

describe('SENet: the ids without a fixture', () => {
  // timm's published counts (results-imagenet.csv, param_count in millions to 2 decimals).
  const TIMM_PARAMS_M: Record<string, number> = {
    legacy_seresnet34: 21.96,
    legacy_seresnet101: 49.33,
    legacy_seresnet152: 66.82,
    legacy_seresnext50_32x4d: 27.56,
    legacy_seresnext101_32x4d: 48.96,
    seresnext50_32x4d: 27.56,
  };
  test.each(Object.entries(TIMM_PARAMS_M))('%s: %fM parameters, as timm publishes', (id, millions) => {
    const m = build(id);
    try {
      expect(m.numParameters()).toBe(cz.modelMeta(id).params);
      expect(Math.round(m.numParameters() / 1e4) / 100).toBe(millions);
    } finally {
      disposeModel(m);
    }
  });

  test('the blocks of each id: stride on conv1 for SE-ResNet, on the 3x3 for SE-ResNeXt and SENet-154', () => {
    const r = build<SENet>('legacy_seresnet101');
    const x = build<SENet>('legacy_seresnext50_32x4d');
    const timmX = build<ResNet>('seresnext50_32x4d');
    try {
      const b = r.layer2[0] as SEResNetBottleneck;
      expect(b).toBeInstanceOf(SEResNetBottleneck);
      expect([b.conv1.stride, b.conv2.stride]).toEqual([
        [2, 2],
        [1, 1],
      ]);
      expect(r.layer3.length).toBe(23);
      const c = x.layer2[0] as SEResNeXtBottleneck;
      expect([c.conv1.stride, c.conv2.stride, c.conv2.groups, c.conv2.outChannels]).toEqual([[1, 1], [2, 2], 32, 256]);
      expect(c.se_module.rdChannels).toBe(32);
      // timm's SE-ResNeXt: ResNet's own Bottleneck with the SE module at `se`.
      const t = timmX.layer2[0] as Bottleneck;
      expect([t.conv2.stride, t.conv2.groups, (t.se as cz.nn.SqueezeExcite).rdChannels]).toEqual([[2, 2], 32, 32]);
    } finally {
      for (const m of [r, x, timmX]) disposeModel(m);
    }
  });

  test('aliases: the release names resolve to the legacy ids', () => {
    const aliases = cz.listAliases();
    expect(aliases).toMatchObject({
      senet154: 'legacy_senet154',
      se_resnet50: 'legacy_seresnet50',
      se_resnext50_32x4d: 'legacy_seresnext50_32x4d',
    });
    expect(cz.modelMeta('senet154').id).toBe('legacy_senet154');
    expect(cz.modelMeta('SE_ResNet50').id).toBe('legacy_seresnet50');
    expect(cz.modelMeta('se_resnext50_32x4d').id).toBe('legacy_seresnext50_32x4d');
    expect(cz.listModels()).not.toContain('senet154');
  });

  test("preprocessing and weights: timm's pretrained configs", () => {
    for (const id of ['legacy_seresnet18', 'legacy_seresnext26_32x4d']) expect(cz.modelMeta(id).interpolation).toBe('bicubic');
    for (const id of ['legacy_seresnet50', 'legacy_senet154']) expect(cz.modelMeta(id).interpolation).toBe('bilinear');
    const w = cz.modelMeta('legacy_senet154').weights[0];
    expect([w.tag, w.default, w.resizeSize, w.cropSize, w.mean, w.std]).toEqual(['in1k', true, 256, 224, cz.IMAGENET_MEAN, cz.IMAGENET_STD]);
    const s = cz.modelMeta('seresnet50').weights.find((e) => e.default)!;
    expect([s.tag, s.url, s.resizeSize, s.interpolation]).toEqual([
      'a1_in1k',
      'https://huggingface.co/timm/seresnet50.a1_in1k/resolve/main/model.safetensors',
      235,
      'bicubic',
    ]);
    expect(cz.modelMeta('seresnext50_32x4d').weights.find((e) => e.default)!.tag).toBe('racm_in1k');
  });
});

describe('SENet: MACs at 224 within 2% of the paper (SE-ResNet-50 3.87G, SENet-154 20.7G) and timm', () => {
  test.each([
    ['legacy_seresnet50', 3.87],
    ['legacy_senet154', 20.7],
    ['seresnet50', 4.11],
  ] as [string, number][])(
    '%s: %f GMACs',
    (id, gmacs) => {
      const m = build(id);
      try {
        const macs = cz.summary(m, [3, 224, 224]).totalMacs / 1e9;
        console.log(`macs ${id}: ${macs.toFixed(3)}G`);
        expect(Math.abs(macs / gmacs - 1)).toBeLessThan(0.02);
        expect(Math.abs(macs / cz.modelMeta(id).gmacs! - 1)).toBeLessThan(0.02);
      } finally {
        disposeModel(m);
      }
    },
    60_000,
  );
});

describe('SENet: the model surface', () => {
  test('legacy_seresnet18 trains on Fashion-MNIST-sized input (1 channel, 28x28, 10 classes): the loss goes down', () => {
    cz.manualSeed(0);
    const m = build<SENet>('legacy_seresnet18', { inChans: 1, numClasses: 10 });
    try {
      expect(m.layer0.conv1.inChannels).toBe(1);
      expect(m.layer1[0]).toBeInstanceOf(SEResNetBlock);
      expect(m.dropRate).toBe(0.2);
      const losses = lossesOnFixedBatch(m, { batch: 16, steps: 8 });
      console.log(`losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[7]).toBeLessThan(0.5 * losses[0]);
    } finally {
      disposeModel(m);
    }
  });

  test('forwardFeatures, preLogits, resetClassifier; SENet-154 has the 3-conv stem and 3x3 shortcuts', () => {
    const m = build<SENet>('legacy_seresnext26_32x4d', { numClasses: 7 });
    try {
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([1, 3, 64, 64]);
        const f = cz.noGrad(() => m.forwardFeatures(x));
        expect(f.shape).toEqual([1, 2048, 2, 2]);
        expect(cz.noGrad(() => m.forwardHead(f, { preLogits: true })).shape).toEqual([1, 2048]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 7]);
        m.resetClassifier(0);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 2048]);
      });
    } finally {
      disposeModel(m);
    }
    const s = build<SENet>('senet154', { numClasses: 3 });
    try {
      expect(s.layer0.conv3?.outChannels).toBe(128);
      expect((s.layer1[0] as SEBottleneck).conv1.outChannels).toBe(128);
      const ds = (s.layer2[0] as SEBottleneck).downsample as cz.nn.Sequential;
      expect((ds[0] as cz.nn.Conv2d).kernelSize).toEqual([3, 3]);
      expect(((s.layer1[0] as SEBottleneck).downsample as cz.nn.Sequential)[0]).toMatchObject({ kernelSize: [1, 1] });
    } finally {
      disposeModel(s);
    }
  });

  test('seresnet50 is ResNet with the SE module injected; zero-init last norms by default, as timm', () => {
    const m = build<ResNet>('seresnet50');
    const plain = build<ResNet>('seresnet50', { zeroInitResidual: false });
    try {
      const b = m.layer1[0] as Bottleneck;
      expect(b.se).toBeInstanceOf(cz.nn.SqueezeExcite);
      cz.tidy(() => {
        expect((b.bn3 as cz.nn.BatchNorm2d).weight!.abs().max().item()).toBe(0);
        expect(((plain.layer1[0] as Bottleneck).bn3 as cz.nn.BatchNorm2d).weight!.abs().min().item()).toBe(1);
      });
      expect(() => build('seresnet50', { groups: 32 })).toThrow(/fixed by the variant/);
    } finally {
      disposeModel(m);
      disposeModel(plain);
    }
  });
});
