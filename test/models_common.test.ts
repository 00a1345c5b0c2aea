// What every family shares: registration metadata, the common options, the head (resetClassifier),
// freeing intermediates, and strict option declarations.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import { checkLeaks, build, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

describe('every alexnet / vgg / googlenet id', () => {
  const ids = cz.listModels().filter((id) => ['alexnet', 'vgg', 'googlenet'].includes(cz.modelMeta(id).family));

  test('is registered with its paper, input size, normalisation, counts and state-dict prefixes', () => {
    expect(ids.sort()).toEqual([
      'alexnet',
      'alexnet_original',
      'googlenet',
      'googlenet_original',
      'vgg11',
      'vgg11_bn',
      'vgg13',
      'vgg13_bn',
      'vgg16',
      'vgg16_bn',
      'vgg19',
      'vgg19_bn',
      'vgg_a',
      'vgg_a_lrn',
      'vgg_b',
      'vgg_c',
      'vgg_d',
      'vgg_e',
    ]);
    const gm: Record<string, number> = { alexnet: 0.714, vgg11: 7.609, vgg13: 11.308, vgg16: 15.47, vgg19: 19.632, googlenet: 1.498 };
    for (const id of ids) {
      const meta = cz.modelMeta(id);
      expect(meta.paper.title.length, id).toBeGreaterThan(10);
      expect(meta.paper.url, id).toMatch(/^https:/);
      expect(meta.gmacs, id).toBeGreaterThan(0);
      if (gm[id.replace('_bn', '')]) expect(meta.gmacs, id).toBe(gm[id.replace('_bn', '')]);
      expect(meta.mean).toEqual(cz.IMAGENET_MEAN);
      if (meta.torchvision === id) expect(meta.weights.length, id).toBeGreaterThan(0);
    }
  });

  test('builds with numClasses, inChans and dropRate, resets its classifier, and frees intermediates', () => {
    for (const id of ['alexnet', 'alexnet_original', 'vgg11_bn', 'googlenet', 'googlenet_original']) {
      const meta = cz.modelMeta(id);
      const m = build(id, { numClasses: 5, inChans: 1, dropRate: 0.25 });
      try {
        const sd = m.stateDict();
        expect(sd[`${meta.firstConv}.weight`].shape[1], id).toBe(1);
        expect(sd[`${meta.classifier}.weight`].shape[0], id).toBe(5);
        for (const t of Object.values(sd)) t.dispose();
        expect((m as unknown as { dropRate: number }).dropRate).toBe(0.25);
        const size = id.endsWith('original') ? meta.inputSize[1] : 64;
        const x = cz.randn([1, 1, size, size]);
        m.eval();
        const before = cz.memory().tensors;
        const y = cz.noGrad(() => m.forward(x));
        expect(cz.memory().tensors, `${id}: forward leaves only its output`).toBe(before + 1);
        expect(y.shape, id).toEqual([1, 5]);
        y.dispose();
        m.resetClassifier(3);
        expect(m.numClasses).toBe(3);
        cz.tidy(() => expect(cz.noGrad(() => m.forward(x)).shape, id).toEqual([1, 3]));
        x.dispose();
      } finally {
        disposeModel(m);
      }
    }
  });
});

describe('every registered id', () => {
  const ids = cz.listModels();

  test('refuses a misspelt option, naming the nearest valid one (E_ARG)', () => {
    for (const id of ids) {
      let err: unknown;
      try {
        cz.buildModel(id, { numClases: 10 });
      } catch (e) {
        err = e;
      }
      expect(err, id).toBeInstanceOf(cz.ConvzooError);
      expect((err as cz.ConvzooError).code, id).toBe('E_ARG');
      expect((err as Error).message, id).toMatch(/unknown option 'numClases'; did you mean 'numClasses'\?/);
    }
    expect(() => cz.buildModel('googlenet', { auxLogit: false })).toThrow(/did you mean 'auxLogits'/);
    expect(() => cz.buildModel('vgg11', { batchnorm: true })).toThrow(/did you mean 'batchNorm'/);
    expect(() => cz.buildModel('alexnet', { wibble: 1 })).toThrow(/unknown option 'wibble' \(options: numClasses, inChans, dropRate\)/);
  });

  test('refuses to change what the variant fixes', () => {
    expect(() => cz.buildModel('vgg11', { batchNorm: true })).toThrow(/vgg11: option 'batchNorm' is fixed by the variant \(batchNorm = false\), got true/);
    expect(() => cz.buildModel('vgg16', { cfg: 'E' })).toThrow(/'cfg' is fixed by the variant \(cfg = "D"\)/);
    expect(() => cz.buildModel('alexnet', { hidden: 2048 })).toThrow(/'hidden' is fixed by the variant \(hidden = 4096\)/);
    expect(() => cz.buildModel('googlenet', { lrn: true })).toThrow(/'lrn' is fixed by the variant/);
    // The same value is accepted (a saved configuration may repeat it).
    const m = cz.buildModel('vgg11_bn', { batchNorm: true, numClasses: 2 });
    disposeModel(m);
  });

  test("free options are typed: googlenet's auxLogits, transformInput, auxDropRate", () => {
    expect(() => cz.buildModel('googlenet', { auxLogits: 'no' })).toThrow(/expected auxLogits to be true or false, got "no"/);
    expect(() => cz.buildModel('googlenet', { auxDropRate: 1.5 })).toThrow(/expected auxDropRate to be a number >= 0 and < 1, got 1.5/);
    // pretrainedOptions and a checkpoint's saved modelOptions go through the same check, and pass.
    for (const id of ids) {
      const pretrained = cz.modelMeta(id).pretrainedOptions ?? {};
      expect(() => cz.checkModelOptions(id, { ...pretrained, transformInput: id.startsWith('googlenet') ? true : undefined, numClasses: 3 }), id).not.toThrow();
    }
  });

  test("resetClassifier frees the old final layer and keeps the family's keys; 0 gives features", () => {
    for (const id of ['resnet18', 'resnet20', 'vgg11', 'alexnet', 'googlenet']) {
      const meta = cz.modelMeta(id);
      const m = build(id, { numClasses: 5 });
      try {
        const keys = [...m.stateShapes().keys()];
        const before = cz.memory().tensors;
        m.resetClassifier(0);
        expect(m.numClasses, id).toBe(0);
        expect(m.stateShapes().has(`${meta.classifier}.weight`), id).toBe(false);
        expect(cz.memory().tensors, `${id}: the old layer's tensors are freed`).toBeLessThan(before);
        m.resetClassifier(9);
        expect(cz.memory().tensors, id).toBe(before);
        expect([...m.stateShapes().keys()], id).toEqual(keys);
        expect(m.stateShapes().get(`${meta.classifier}.weight`)![0], id).toBe(9);
        expect(() => m.resetClassifier(-1), id).toThrow(/numClasses/);
      } finally {
        disposeModel(m);
      }
    }
  });
});

describe('the torchvision reference', () => {
  test('fails, saying what to install, without python3 or torchvision', async () => {
    const { requireTorchvision } = await import('./helpers/tv_reference.js');
    expect(() => requireTorchvision('/nonexistent/python3')).toThrow(
      /need \/nonexistent\/python3 with torch and torchvision 0\.14 \(Debian\/Ubuntu: apt install python3-torchvision\)/,
    );
  });
});
