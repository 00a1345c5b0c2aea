// Residual Attention Network against the authors' Caffe prototxts (the oracle: Attention-56 executed
// layer by layer, and the CIFAR Attention-92 of section 4.1 written with the same templates), the
// parameter counts and multiply-adds of every id, the Caffe-named keys, the 195..226 input range of
// the ImageNet head, and a few training steps of the smallest model.
import { describe, test, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { oracleTests } from './oracle.js';
import { checkLeaks, build, disposeModel, stateSpec } from './helpers/tv_reference.js';

checkLeaks();

oracleTests('Residual Attention: oracle (the official Caffe prototxt, and the section 4.1 transcription, in float64)', ['resattnet92_cifar', 'resattnet56']);

describe('Residual Attention: parameters and multiply-adds', () => {
  // The released prototxts' counts (the paper's Table 3: 31.9M and 51.3M) and the CIFAR transcription's
  // (the paper: 1.9M, 5.1M, 8.6M; Attention-452's hyper-parameters are ambiguous in the text).
  test.each([
    ['resattnet56', 31810728],
    ['resattnet92', 52466344],
    ['resattnet92_cifar', 1841242],
    ['resattnet236_cifar', 5084762],
    ['resattnet452_cifar', 10181210],
  ] as [string, number][])('%s: %i parameters', (id, params) => {
    const m = build(id);
    try {
      expect(m.numParameters()).toBe(params);
      expect(cz.modelMeta(id).params).toBe(params);
    } finally {
      disposeModel(m);
    }
  });

  // Convolutions and the classifier at 224: the prototxts' 6.27G and 10.53G, the paper's 6.2 and 10.4 GFLOPs.
  test.each([
    ['resattnet56', 6.27, 6.2],
    ['resattnet92', 10.53, 10.4],
  ] as [string, number, number][])(
    '%s: %f GMACs at 224 (the paper: %f), within 2% of both',
    (id, gmacs, paper) => {
      const m = build(id);
      try {
        const g = cz.summary(m).totalMacs / 1e9;
        console.log(`${id}: ${g.toFixed(4)} GMACs`);
        expect(cz.modelMeta(id).gmacs).toBe(gmacs);
        expect(Math.abs(g / gmacs - 1)).toBeLessThan(0.002);
        expect(Math.abs(g / paper - 1)).toBeLessThan(0.02);
        expect(cz.modelMeta(id).notes).toContain(`${paper} GFLOPs`);
      } finally {
        disposeModel(m);
      }
    },
    60_000,
  );
});

describe('Residual Attention: structure', () => {
  test("keys are the Caffe layer names; every BN has eps 1e-5; Attention-92's 1, 2, 3 modules per stage", () => {
    const m = build('resattnet92');
    try {
      const keys = new Map(stateSpec(m).map((s) => [s.key, s.shape]));
      expect(keys.get('conv1.weight')).toEqual([64, 3, 7, 7]);
      expect(keys.get('pool1_3x3_s2/bn.running_var')).toEqual([64]);
      expect(keys.get('pre_res_2/branch1/conv2_3x3.weight')).toEqual([128, 128, 3, 3]);
      expect(keys.get('pre_res_2/branch2/conv1_1x1.weight')).toEqual([512, 256, 1, 1]);
      expect(keys.get('AttentionA_1/mask/skip/res2/branch1/conv1_1x1.weight')).toEqual([64, 256, 1, 1]);
      expect(keys.get('AttentionA_1/mask/down_sample/res3_2/branch1/conv3_1x1.weight')).toEqual([256, 64, 1, 1]);
      expect(keys.get('AttentionB_2/mask/up_sample/interp_1/bn.weight')).toEqual([512]);
      expect(keys.get('AttentionC_3/mask/linear_2.weight')).toEqual([1024, 1024, 1, 1]);
      expect(keys.get('AttentionC_3/fusion/bn.running_mean')).toEqual([1024]);
      expect(keys.get('post_res_4_3/bn.num_batches_tracked')).toEqual([]);
      expect(keys.get('classifier.weight')).toEqual([1000, 2048]);
      expect(keys.has('AttentionA_2/trunk/res1/branch1/conv1_1x1.weight')).toBe(false);
      expect(keys.has('AttentionC_4/trunk/res1/branch1/conv1_1x1.weight')).toBe(false);
      // Caffe's convolutions have no bias_term: the only biases are the BNs' shifts and the classifier's.
      expect([...keys.keys()].filter((k) => k.endsWith('.bias') && !k.endsWith('/bn.bias'))).toEqual(['classifier.bias']);
      const bns = [...m.modules()].filter((x): x is cz.nn.BatchNorm2d => x instanceof cz.nn.BatchNorm2d);
      expect(bns.length).toBeGreaterThan(0);
      for (const bn of bns) expect(bn.eps).toBe(1e-5);
    } finally {
      disposeModel(m);
    }
  });

  test('Attention-452 (CIFAR): p, t, r = 2, 4, 3: six trunk units, two units after the fusion, 2r units at the lowest mask level', () => {
    const m = build('resattnet452_cifar');
    try {
      const keys = new Set(stateSpec(m).map((s) => s.key));
      const has = (layer: string) => keys.has(`${layer}/branch1/conv1_1x1.weight`);
      expect(has('AttentionA_6/trunk/res6')).toBe(true);
      expect(has('AttentionA_6/trunk/res7')).toBe(false);
      expect(has('AttentionB_1/post_res1')).toBe(true);
      expect(has('AttentionB_1')).toBe(true);
      expect(has('AttentionA_1/mask/down_sample/res3_6')).toBe(true);
      expect(has('AttentionA_1/mask/down_sample/res2_3')).toBe(true);
      expect(has('AttentionA_1/mask/down_sample/res2_4')).toBe(false);
      expect(has('AttentionC_1/mask/down_sample/res1_6')).toBe(true);
      expect(has('AttentionC_1/mask/skip/res1')).toBe(false);
      expect(has('post_res_3')).toBe(true);
    } finally {
      disposeModel(m);
    }
  });

  test('the ImageNet head (7x7/1 average pool + InnerProduct) takes 195..226 pixels; inChans, numClasses, resetClassifier', () => {
    const m = build('resattnet56', { inChans: 1, numClasses: 5 });
    try {
      m.eval();
      cz.tidy(() => {
        const f = cz.noGrad(() => m.forwardFeatures(cz.randn([1, 1, 195, 195])));
        expect(f.shape).toEqual([1, 2048, 7, 7]);
        expect(m.forwardHead(f).shape).toEqual([1, 5]);
        const big = cz.noGrad(() => m.forwardFeatures(cz.randn([1, 1, 227, 227])));
        expect(big.shape).toEqual([1, 2048, 8, 8]);
        expect(() => m.forwardHead(big)).toThrow(/7x7 feature map \(inputs of 195 to 226 pixels\), got 8x8/);
        m.resetClassifier(0);
        expect(m.forwardHead(f).shape).toEqual([1, 2048]);
      });
    } finally {
      disposeModel(m);
    }
  }, 60_000);

  test('createModel loads a state dict saved under the Caffe names (keys with /)', async () => {
    const src = build('resattnet92_cifar');
    const dir = mkdtempSync(join(tmpdir(), 'resattnet-'));
    try {
      const sd = src.stateDict();
      const file = join(dir, 'resattnet92_cifar.safetensors');
      await cz.save(file, sd);
      for (const t of Object.values(sd)) t.dispose();
      const m = await cz.createModel('resattnet92_cifar', { weights: file });
      try {
        src.eval();
        m.eval();
        cz.tidy(() => {
          const x = cz.randn([2, 3, 32, 32]);
          expect(
            cz
              .noGrad(() => m.forward(x))
              .sub(cz.noGrad(() => src.forward(x)))
              .abs()
              .max()
              .item(),
          ).toBe(0);
        });
      } finally {
        disposeModel(m);
      }
    } finally {
      disposeModel(src);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test('metadata: no weights (none were released), Caffe-named first conv and classifier', () => {
    for (const id of ['resattnet56', 'resattnet92', 'resattnet92_cifar', 'resattnet236_cifar', 'resattnet452_cifar']) {
      const meta = cz.modelMeta(id);
      expect(meta.weights).toEqual([]);
      expect(meta.firstConv).toBe('conv1');
      expect(meta.classifier).toBe('classifier');
      expect(meta.notes).toMatch(/No weights/);
    }
    expect(cz.listModels('resattnet')).toEqual(['resattnet56', 'resattnet92', 'resattnet92_cifar', 'resattnet236_cifar', 'resattnet452_cifar']);
  });
});

describe('Residual Attention: training', () => {
  test('resattnet92_cifar trains on Fashion-MNIST-sized input (1x28x28, 10 classes): the loss goes down', () => {
    cz.manualSeed(0); // the same start on every run
    const m = build('resattnet92_cifar', { inChans: 1, numClasses: 10 });
    try {
      const losses = lossesOnFixedBatch(m, { batch: 8, steps: 8 });
      console.log(`resattnet92_cifar losses: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    } finally {
      disposeModel(m);
    }
  }, 120_000);
});
