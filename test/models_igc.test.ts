// IGC V1 against the official MXNet code (the oracle fixtures: the released ImageNet graphs and
// network/resnet_igc.py, transcribed by gen_oracle.py), and against the released graphs' figures.
import { describe, test, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { mxnetKey } from '../src/models/igc.js';
import { checkLeaks, build, disposeModel, stateSpec } from './helpers/tv_reference.js';
import { oracleTests } from './oracle.js';

checkLeaks();

oracleTests('IGC V1: oracle (official MXNet graphs in float64)', ['igc_l24m2', 'igc_l32m26', 'igc_l4m32', 'igc_l16m16']);

describe('IGC V1: the released graphs', () => {
  // Parameters of the released graphs (the paper's table says 11.2M, 11.3M, 8.61M), and multiply-adds
  // at 224x224 counted by hand from the graphs' layers: stem + primary + secondary + projections + fc.
  const expected: [string, number, number, number][] = [
    ['igc_l4m32', 12251240, 1944641536, 1.9],
    ['igc_l16m16', 13528296, 2265989120, 2.2],
    ['igc_l100m2', 8637900, 1264780800, 1.3],
  ];
  for (const [id, params, macs, paperGmacs] of expected) {
    test(`${id}: ${params} parameters, ${(macs / 1e9).toFixed(3)} GMACs (the paper: ${paperGmacs}G)`, () => {
      const m = build(id);
      try {
        expect(m.numParameters()).toBe(params);
        expect(cz.modelMeta(id).params).toBe(params);
        expect(cz.modelMeta(id).gmacs).toBe(paperGmacs);
        const s = cz.summary(m);
        expect(s.totalMacs).toBe(macs);
        // The paper's one-decimal figures are 2.4%, 3.0% and 2.7% away from the graphs' counts.
        expect(Math.abs(s.totalMacs / 1e9 / paperGmacs - 1)).toBeLessThan(0.031);
      } finally {
        disposeModel(m);
      }
    }, 60_000);
  }

  test('igc_l100m2: the first block projects the 100-channel stem to 200 channels; M = 2 in every stage', () => {
    const m = build('igc_l100m2');
    try {
      const spec = new Map(stateSpec(m).map((s) => [s.key, s.shape]));
      expect(spec.get('g0_conv.weight')).toEqual([100, 3, 7, 7]);
      expect(spec.get('g1_b1_proj_conv.weight')).toEqual([200, 1, 1, 1]); // 100 groups
      expect(spec.get('g1_b1_conv1_conv1.weight')).toEqual([200, 1, 3, 3]);
      expect(spec.get('g1_b1_conv1_conv2.weight')).toEqual([200, 100, 1, 1]); // 2 groups
      expect(spec.get('g4_b2_conv2_conv1.weight')).toEqual([1600, 2, 3, 3]); // 800 groups
      expect(spec.get('g4_b2_conv2_conv2.weight')).toEqual([1600, 800, 1, 1]);
      expect(spec.get('fc_score.weight')).toEqual([1000, 1600]);
      expect(spec.get('g1_b1_conv1_bn.running_var')).toEqual([200]);
    } finally {
      disposeModel(m);
    }
  });
});

describe('IGC V1: layers and loading', () => {
  test("the Reorder operator is the channel shuffle out[j*B + i] = in[i*(C/B) + j] (F.channelShuffle's torchvision variant)", () =>
    cz.tidy(() => {
      const C = 12,
        B = 3;
      const x = cz.arange(C).reshape(1, C, 1, 1).to('float32');
      const out = [...(cz.nn.functional.channelShuffle(x, B).data() as Float32Array)];
      const want = new Array<number>(C);
      for (let i = 0; i < B; i++) for (let j = 0; j < C / B; j++) want[j * B + i] = i * (C / B) + j;
      expect(out).toEqual(want);
    }));

  test('BN eps is 2e-5 everywhere; inChans, numClasses and resetClassifier', () => {
    const m = build('igc_l24m2', { inChans: 1, numClasses: 7 });
    try {
      const bns = [...m.modules()].filter((x): x is cz.nn.BatchNorm2d => x instanceof cz.nn.BatchNorm2d);
      expect(bns.length).toBe(1 + 9 * 2 + 2);
      for (const bn of bns) expect(bn.eps).toBe(2e-5);
      m.eval();
      cz.tidy(() => {
        const x = cz.randn([2, 1, 32, 32]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([2, 7]);
        expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([2, 192, 8, 8]);
      });
      m.resetClassifier(0);
      cz.tidy(() => expect(cz.noGrad(() => m.forward(cz.randn([1, 1, 32, 32]))).shape).toEqual([1, 192]));
      expect(stateSpec(m).some((s) => s.key.startsWith('fc.'))).toBe(false);
    } finally {
      disposeModel(m);
    }
  });

  test("MXNet parameter names map to the keys one to one (the released .params files' names)", () => {
    const meta = cz.modelMeta('igc_l4m32');
    expect(meta.remapWeightsKey).toBe(mxnetKey);
    expect(mxnetKey('arg:g1_b1_conv1_conv1_weight')).toBe('g1_b1_conv1_conv1.weight');
    expect(mxnetKey('arg:g2_b1_proj_bn_gamma')).toBe('g2_b1_proj_bn.weight');
    expect(mxnetKey('g0_bn_beta')).toBe('g0_bn.bias');
    expect(mxnetKey('aux:g0_bn_moving_mean')).toBe('g0_bn.running_mean');
    expect(mxnetKey('aux:g4_b2_conv2_bn_moving_var')).toBe('g4_b2_conv2_bn.running_var');
    expect(mxnetKey('arg:fc_score_bias')).toBe('fc_score.bias');
    expect(mxnetKey('g0_bn.running_var')).toBe('g0_bn.running_var');
    expect(meta.weights).toEqual([]);
    expect(meta.notes).toMatch(/resnet_gcwf_noshare_imagenet_d18b4-0095\.params/);
  });

  test('createModel loads a state dict saved under the MXNet names (arg:/aux: prefixes, gamma, moving_var)', async () => {
    const src = build('igc_l24m2');
    const dir = mkdtempSync(join(tmpdir(), 'igc-'));
    try {
      const sd = src.stateDict();
      const mx: Record<string, cz.Tensor> = {};
      for (const [k, t] of Object.entries(sd)) {
        if (k.endsWith('num_batches_tracked')) continue; // MXNet has no such state
        const [node, leaf] = k.split('.');
        const name = {
          weight: k.includes('bn') ? 'gamma' : 'weight',
          bias: k.includes('bn') ? 'beta' : 'bias',
          running_mean: 'moving_mean',
          running_var: 'moving_var',
        }[leaf];
        mx[`${leaf.startsWith('running') ? 'aux' : 'arg'}:${node}_${name}`] = t;
      }
      expect(Object.keys(mx)).toContain('arg:g1_b1_p2_two1_bn_gamma');
      const file = join(dir, 'igc_l24m2_mxnet.safetensors');
      await cz.save(file, mx);
      for (const t of Object.values(sd)) t.dispose();
      const m = await cz.createModel('igc_l24m2', { weights: file });
      try {
        src.eval();
        m.eval();
        cz.tidy(() => {
          const x = cz.randn([2, 3, 32, 32]);
          const a = cz.noGrad(() => src.forward(x));
          const b = cz.noGrad(() => m.forward(x));
          expect(a.sub(b).abs().max().item()).toBe(0);
        });
      } finally {
        disposeModel(m);
      }
    } finally {
      disposeModel(src);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('igc_l24m2 trains on Fashion-MNIST-sized input (1x28x28, 10 classes): the loss goes down', () => {
    cz.manualSeed(0); // the same start on every run
    const m = build('igc_l24m2', { inChans: 1, numClasses: 10 });
    try {
      const losses = lossesOnFixedBatch(m, { batch: 8, steps: 8 });
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    } finally {
      disposeModel(m);
    }
  }, 60_000);
});
