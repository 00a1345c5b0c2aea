// GoogLeNet against torchvision (with its auxiliary heads, transform_input and aux_logits=False), and
// the paper's network against the paper.
import { describe, test, expect } from 'vitest';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import type { GoogLeNet } from '../src/models/googlenet.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec, relMaxDiff, withFile, type Fixture, type Reference } from './helpers/tv_reference.js';

checkLeaks();

parityTests('torchvision parity: googlenet', [
  {
    id: 'googlenet',
    size: 64,
    batch: 2,
    opts: { auxDropRate: 0 },
    extra: googlenetExtra,
    // Train mode: the main logits and both auxiliary heads' against torchvision's.
    trainOutputs: (model, x, io) => {
      const out = cz.noGrad(() => (model as GoogLeNet).forwardWithAux(x));
      expect(relMaxDiff(out.logits, io.trainLogits)).toBeLessThan(1e-4);
      expect(out.aux.length).toBe(2);
      expect(relMaxDiff(out.aux[0], io.trainAux1)).toBeLessThan(1e-4);
      expect(relMaxDiff(out.aux[1], io.trainAux2)).toBeLessThan(1e-4);
    },
  },
]);

/** GoogLeNet's options: transformInput, and the model without auxiliary heads. */
async function googlenetExtra(fx: Fixture, dir: string, io: Record<string, Tensor>, ref: Reference): Promise<void> {
  // transform_input: torchvision's re-normalisation; on by default once createModel has loaded weights.
  const ti = build<GoogLeNet>('googlenet', { transformInput: true, auxLogits: false });
  const plain = build<GoogLeNet>('googlenet', { auxLogits: false });
  const off = build<GoogLeNet>('googlenet', { auxLogits: false, transformInput: false });
  try {
    expect([ti.transformInput, plain.transformInput, off.transformInput]).toEqual([true, false, false]);
    plain._weightsTag = off._weightsTag = 'IMAGENET1K_V1'; // what createModel sets after loading weights
    expect([plain.transformInput, off.transformInput]).toEqual([true, false]);
    await withFile(join(dir, 'state.pt'), (sd) => {
      const r = ti.loadStateDict(sd); // aux1.* / aux2.* are ignored: torchvision drops the heads after loading
      expect(r.unexpectedKeys).toEqual([]);
    });
    cz.tidy(() => {
      ti.eval();
      expect(
        relMaxDiff(
          cz.noGrad(() => ti.forward(io.input)),
          io.logitsTransformInput,
        ),
      ).toBeLessThan(1e-4);
    });
    // The builder's pretrained path with a local file: transformInput switches on as in torchvision.
    const path = join(dir, 'state.pt');
    // As torchvision: pretrained weights come without the auxiliary heads unless auxLogits is asked for.
    for (const opts of [{}, { numClasses: 10 }, { numClasses: 10, auxLogits: true }]) {
      const m = (await cz.createModel('googlenet', { weights: path, ...opts })) as GoogLeNet;
      try {
        expect(m.transformInput).toBe(true);
        m.eval();
        cz.tidy(() => {
          const y = cz.noGrad(() => m.forward(io.input));
          if (!opts.numClasses) expect(relMaxDiff(y, io.logitsTransformInput)).toBeLessThan(1e-4);
          else expect(y.shape).toEqual([2, 10]);
          // The trunk came from the file either way.
          const f = cz.noGrad(() => m.forwardFeatures(io.input));
          const g = cz.noGrad(() => ti.forwardFeatures(io.input));
          expect(relMaxDiff(f, g)).toBeLessThan(1e-6);
        });
        expect(m.aux1 === null).toBe((opts as { auxLogits?: boolean }).auxLogits !== true);
      } finally {
        disposeModel(m);
      }
    }
    cz.tidy(() => {
      ti.train();
      expect(cz.noGrad(() => ti.forwardWithAux(io.input)).aux).toEqual([]);
    });
    // torchvision's googlenet(aux_logits=False): its keys, and its published parameter count.
    const noAux = await ref.request('googlenet-noaux', { id: 'googlenet', size: 64, batch: 2, options: { aux_logits: false }, metaOnly: true });
    expect(stateSpec(plain)).toEqual(noAux.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
    expect(plain.numParameters()).toBe(noAux.numParams);
    expect(noAux.numParams).toBe(cz.modelMeta('googlenet').params);
    expect(fx.numParams - noAux.numParams).toBe(6379984);
    ref.drop('googlenet-noaux');
  } finally {
    for (const m of [ti, plain, off]) disposeModel(m);
  }
}

describe('GoogLeNet', () => {
  test('googlenet_original: no batch norm, LRN, 5x5 branches, dropout 0.4/0.7, aux heads with a 5x5/3 pool', () => {
    const m = build<GoogLeNet>('googlenet_original');
    const noAux = build<GoogLeNet>('googlenet_original', { auxLogits: false });
    try {
      expect(noAux.numParameters()).toBe(6998552);
      expect(cz.modelMeta('googlenet_original').params).toBe(6998552);
      expect(m.numParameters() - noAux.numParameters()).toBe(6379728);
      expect([...m.modules()].some((l) => l instanceof cz.nn.BatchNorm2d)).toBe(false);
      expect(m.lrn1).toBeInstanceOf(cz.nn.LocalResponseNorm);
      expect(m.lrn2).toBeInstanceOf(cz.nn.LocalResponseNorm);
      expect((m.inception3a.branch3[1] as cz.nn.ConvBnAct).conv.kernelSize).toEqual([5, 5]);
      expect(m.dropRate).toBe(0.4);
      expect(m.auxLossWeight).toBe(0.3);
      expect(m.maxpool4.kernelSize).toBe(3);
      cz.tidy(() => {
        // Caffe's reference fillers: biases 0.2 except in the classifiers.
        expect(m.conv1.conv.bias!.mean().item()).toBeCloseTo(0.2, 6);
        expect((m.fc as cz.nn.Linear).bias!.abs().max().item()).toBe(0);
        const x = cz.randn([1, 3, 224, 224]);
        m.train();
        const out = cz.noGrad(() => m.forwardWithAux(x));
        expect(out.logits.shape).toEqual([1, 1000]);
        expect(out.aux.map((t) => t.shape)).toEqual([
          [1, 1000],
          [1, 1000],
        ]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]); // logits in train mode too
        m.eval();
        expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 1024, 7, 7]);
      });
    } finally {
      disposeModel(m);
      disposeModel(noAux);
    }
  });

  test('googlenet: resetClassifier replaces the main and auxiliary classifiers', () => {
    const m = build<GoogLeNet>('googlenet', { inChans: 1 });
    try {
      m.resetClassifier(7);
      cz.tidy(() => {
        m.train();
        const out = cz.noGrad(() => m.forwardWithAux(cz.randn([2, 1, 64, 64])));
        expect([out.logits, ...out.aux].map((t) => t.shape)).toEqual([
          [2, 7],
          [2, 7],
          [2, 7],
        ]);
      });
      m.resetClassifier(0);
      cz.tidy(() => {
        m.eval();
        expect(cz.noGrad(() => m.forward(cz.randn([1, 1, 64, 64]))).shape).toEqual([1, 1024]);
      });
    } finally {
      disposeModel(m);
    }
  });
});
