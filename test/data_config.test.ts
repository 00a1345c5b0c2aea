// One preprocessing config: predict, eval, the training data and checkpoints all take mean/std,
// resize, crop and interpolation from src/vision/data_config.ts, so they cannot disagree.
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { makeData } from '../src/train/datasets.js';
import { weightsDataConfig, pretrainedDataConfig, runDataConfig, defaultDataConfig } from '../src/vision/data_config.js';

let folder = '';
beforeAll(async () => {
  folder = mkdtempSync(path.join(os.tmpdir(), 'cz-datacfg-'));
  for (const cls of ['cat', 'dog']) {
    mkdirSync(path.join(folder, cls));
    for (let i = 0; i < 5; i++) {
      await sharp({ create: { width: 300, height: 260, channels: 3, background: { r: 40 * i, g: cls === 'cat' ? 200 : 20, b: 90 } } })
        .png()
        .toFile(path.join(folder, cls, `${i}.png`));
    }
  }
});

type Spec = { name: string; transforms?: Spec[]; size?: unknown; mean?: number[]; std?: number[] };
const steps = (t: unknown) => ((t as { toSpec(): unknown }).toSpec() as Spec).transforms ?? [];

describe('one preprocessing config', () => {
  it("resolves a weights entry's own resize (resnet50 IMAGENET1K_V2: 232) and mean/std", () => {
    const meta = cz.modelMeta('resnet50');
    expect(weightsDataConfig(meta, 'IMAGENET1K_V2')).toMatchObject({ resizeSize: 232, cropSize: 224, interpolation: 'bilinear' });
    expect(weightsDataConfig(meta, 'IMAGENET1K_V1')).toMatchObject({ resizeSize: 256, cropSize: 224 });
    expect(pretrainedDataConfig(meta, 'DEFAULT')).toEqual(weightsDataConfig(meta, meta.weights.find((w) => w.default)!.tag));
    expect(pretrainedDataConfig(meta, '/some/file.pth')).toBeNull();
    expect(defaultDataConfig(cz.modelMeta('alexnet_original'))).toMatchObject({ resizeSize: 259, cropSize: 227 });
    expect(defaultDataConfig(meta, 1)).toMatchObject({ channels: 1, mean: [0.485], std: [0.229] });
  });

  it("predict uses the loaded weights' config", () => {
    const m = cz.buildModel('resnet50');
    m._weightsTag = 'IMAGENET1K_V2';
    expect(cz.evalTransformFor(m)).toEqual(weightsDataConfig(m.meta!, 'IMAGENET1K_V2'));
    m.dispose();
  });

  it('eval of pretrained weights on an image folder resizes as the weights ask (232, not 256)', async () => {
    const pretrained = pretrainedDataConfig(cz.modelMeta('resnet50'), 'IMAGENET1K_V2');
    const data = await makeData({ data: folder, augment: 'none', batchSize: 4, pretrained });
    try {
      const [resize, crop, norm] = steps(data.test.transform);
      expect(resize).toMatchObject({ name: 'Resize', size: 232 });
      expect(crop).toMatchObject({ name: 'CenterCrop' });
      expect(JSON.stringify(crop.size)).toMatch(/224/);
      expect(norm).toMatchObject({ name: 'Normalize', mean: pretrained!.mean, std: pretrained!.std });
    } finally {
      await data.close();
    }
  });

  it('training from weights with their own statistics normalises with them (vgg16 IMAGENET1K_FEATURES)', async () => {
    const pretrained = pretrainedDataConfig(cz.modelMeta('vgg16'), 'IMAGENET1K_FEATURES')!;
    expect(pretrained.std[0]).toBeCloseTo(1 / 255, 6);
    const data = await makeData({ data: folder, augment: 'crop-flip', batchSize: 4, inputSize: 64, pretrained });
    try {
      for (const t of [data.train.transform, data.test.transform]) {
        const norm = steps(t).find((s) => s.name === 'Normalize')!;
        expect(norm.mean).toEqual(pretrained.mean);
      }
      // --input-size wins over the weights' crop, with the default 0.875 ratio.
      expect(steps(data.test.transform)[0]).toMatchObject({ name: 'Resize', size: 73 });
    } finally {
      await data.close();
    }
  });

  it('a Fashion-MNIST run keeps its own statistics at its own size', () => {
    expect(runDataConfig({ channels: 1 })).toMatchObject({ resizeSize: 28, cropSize: 28, channels: 1 });
    expect(runDataConfig({ channels: 1, inputSize: 64 }).mean[0]).toBeCloseTo(0.286, 3);
  });
});

describe('per-family key remaps at load time', () => {
  it('meta.remapWeightsKey maps old key names before the key check', async () => {
    const base = cz.modelMeta('resnet20');
    const id = 'test_remap_resnet20';
    // A release that called the first conv 'stem.conv' and has an extra key the model drops.
    cz.registerModel({ ...base, id, remapWeightsKey: (k) => (k === 'junk' ? null : k.replace(/^stem\.conv\./, 'conv1.')) }, { options: {}, fixed: {} }, (o) =>
      cz.buildModel('resnet20', o as Record<string, unknown>),
    );
    const src = cz.buildModel('resnet20');
    const sd = src.stateDict();
    const old: Record<string, cz.Tensor> = { junk: cz.zeros([1]) };
    for (const [k, t] of Object.entries(sd)) old[k.replace(/^conv1\./, 'stem.conv.')] = t;
    const file = path.join(folder, 'old-keys.safetensors');
    await cz.save(file, old);
    const m = await cz.createModel(id, { weights: file });
    const w = m.stateDict();
    expect(cz.tidy(() => w['conv1.weight'].sub(sd['conv1.weight']).abs().max().item())).toBe(0);
    // The same through loadPretrained, on tensors in memory.
    const m2 = cz.buildModel(id);
    cz.loadPretrained(m2, old, cz.modelMeta(id));
    const w2 = m2.stateDict();
    expect(cz.tidy(() => w2['fc.weight'].sub(sd['fc.weight']).abs().max().item())).toBe(0);
    for (const t of [...Object.values(old), ...Object.values(w), ...Object.values(w2)]) t.dispose();
    m.dispose();
    m2.dispose();
    src.dispose();
  });
});
