// ShuffleNet v1 (Megvii's official code) and v2 (torchvision): the oracle fixtures (shufflenet_v1_g3,
// shufflenet_v1_g8, shufflenet_v2_x1_0), live torchvision parity for v2, parameter counts against the
// paper (v1) and torchvision (v2), multiply-adds against the paper / official README and torchvision's
// published GFLOPS, the Megvii channel shuffle and checkpoint keys, and training steps of the smallest
// model on Fashion-MNIST-sized input.
import { describe, test, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { type ShuffleNetV1, type ShuffleNetV2, type ShuffleV1Block, type ShuffleV2Block, megviiKey } from '../src/models/shufflenet.js';
import { TORCHVISION_WEIGHTS } from '../src/models/torchvision_weights.js';
import { oracleTests } from './oracle.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec } from './helpers/tv_reference.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';

checkLeaks();

oracleTests('ShuffleNet: the oracle (official ShuffleNetV1 code, torchvision; float64)', ['shufflenet_v1_g3', 'shufflenet_v1_g8', 'shufflenet_v2_x1_0']);

parityTests('torchvision parity: shufflenet v2', [
  {
    id: 'shufflenet_v2_x0_5',
    size: 64,
    batch: 2,
    extra: async (_fx, _dir, _io, ref) => {
      // x1_5 by keys and count only (x1_0 is the oracle's, x2_0 runs live below).
      const fx = await ref.request('shufflenet_v2_x1_5-meta', { id: 'shufflenet_v2_x1_5', size: 64, batch: 2, metaOnly: true });
      const m = build('shufflenet_v2_x1_5');
      try {
        expect(stateSpec(m)).toEqual(fx.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
        expect(m.numParameters()).toBe(fx.numParams);
      } finally {
        disposeModel(m);
        ref.drop('shufflenet_v2_x1_5-meta');
      }
    },
  },
  { id: 'shufflenet_v2_x2_0', size: 64, batch: 2 },
]);

/** Parameters and multiply-adds of one 224x224 image (cz.summary: convolutions and linear layers). */
function count(id: string): { params: number; macs: number } {
  const m = build(id);
  try {
    return { params: m.numParameters(), macs: cz.summary(m, [3, 224, 224]).totalMacs };
  } finally {
    disposeModel(m);
  }
}

describe('ShuffleNet v1: parameters and multiply-adds against the paper and the official README', () => {
  // [id, exact count of the official code (Table 1 widths for g1/g2/g4), the paper's millions (Table 8 /
  // README; none for g1, g2, g4), the figure's MFLOPs (README for g3/g8, Table 1 for g1/g2/g4)].
  const V1: [string, number, number | null, number][] = [
    ['shufflenet_v1_g1', 1530936, null, 143],
    ['shufflenet_v1_g2', 1732848, null, 140],
    ['shufflenet_v1_g3', 1864728, 1.9, 138],
    ['shufflenet_v1_g4', 1967344, null, 133],
    ['shufflenet_v1_g8', 2433768, 2.4, 138],
    ['shufflenet_v1_g3_0_5x', 717324, 0.7, 38],
    ['shufflenet_v1_g3_1_5x', 3441168, 3.4, 292],
    ['shufflenet_v1_g3_2_0x', 5449776, 5.4, 524],
  ];
  test.each(V1)(
    "%s: the official code's exact count, the paper's rounding, multiply-adds within 2 percent of the figure",
    (id, exact, millions, mflops) => {
      const { params, macs } = count(id);
      console.log(`${id}: ${params} parameters, ${(macs / 1e6).toFixed(2)}M MACs (figure: ${millions ?? '-'}M, ${mflops}M)`);
      expect(params).toBe(exact);
      expect(cz.modelMeta(id).params).toBe(exact);
      if (millions !== null) expect(Math.round(params / 1e5) / 10).toBe(millions);
      expect(Math.abs(macs / 1e6 / mflops - 1)).toBeLessThan(0.02);
      expect(cz.modelMeta(id).gmacs).toBe(mflops / 1000);
    },
    60_000,
  );
});

describe('ShuffleNet v2: torchvision figures', () => {
  test.each([
    ['shufflenet_v2_x0_5', 0.04],
    ['shufflenet_v2_x1_0', 0.145],
    ['shufflenet_v2_x1_5', 0.296],
    ['shufflenet_v2_x2_0', 0.583],
  ] as [string, number][])(
    "%s: torchvision's parameter count and weights, multiply-adds within 2 percent of its published GFLOPS",
    (id, gflops) => {
      const { params, macs } = count(id);
      console.log(`${id}: ${params} parameters, ${(macs / 1e9).toFixed(4)} GMACs (torchvision: ${gflops})`);
      const w = TORCHVISION_WEIGHTS[id];
      expect(w.length).toBe(1);
      expect(params).toBe(w[0].numParams);
      expect(cz.modelMeta(id).params).toBe(params);
      expect(cz.modelMeta(id).weights).toBe(w);
      expect(w[0].url).toMatch(/^https:\/\/download\.pytorch\.org\/models\/shufflenetv2_x/);
      expect(Math.abs(macs / 1e9 / gflops - 1)).toBeLessThan(0.02);
      expect(cz.modelMeta(id).gmacs).toBe(gflops);
    },
    60_000,
  );
});

describe('ShuffleNet: blocks, keys and the model surface', () => {
  test("the Megvii shuffle is the inverse of torchvision's; v1 units use it, v2 units torchvision's with 2 groups", () => {
    cz.tidy(() => {
      const x = cz.arange(12).view(1, 12, 1, 1).to('float32');
      const megvii = cz.F.channelShuffle(x, 3, { variant: 'megvii' });
      const tv = cz.F.channelShuffle(x, 3);
      // blocks.py: reshape(b, C/g, g) + permute -> out[i * (C/g) + j] = in[j * g + i].
      expect(megvii.flatten().toArray()).toEqual([0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
      expect(tv.flatten().toArray()).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      expect(cz.F.channelShuffle(tv, 3, { variant: 'megvii' }).flatten().toArray()).toEqual(x.flatten().toArray());
    });
    const v1 = build<ShuffleNetV1>('shufflenet_v1_g3_0_5x');
    const g1 = build<ShuffleNetV1>('shufflenet_v1_g1');
    const v2 = build<ShuffleNetV2>('shufflenet_v2_x0_5');
    try {
      const first = v1.features[0] as ShuffleV1Block;
      const second = v1.features[1] as ShuffleV1Block;
      expect([first.shuffle?.groups, first.shuffle?.variant]).toEqual([3, 'megvii']);
      // Stage 2's first pointwise conv is not grouped; later ones are; the output conv always is.
      expect((first.branch_main_1[0] as cz.nn.Conv2d).groups).toBe(1);
      expect((second.branch_main_1[0] as cz.nn.Conv2d).groups).toBe(3);
      expect((first.branch_main_2[0] as cz.nn.Conv2d).groups).toBe(3);
      // No ReLU after the depthwise conv: branch_main_1 ends with its BN.
      expect(first.branch_main_1[4]).toBeInstanceOf(cz.nn.BatchNorm2d);
      expect(first.branch_proj).toBeInstanceOf(cz.nn.AvgPool2d);
      expect(second.branch_proj).toBeNull();
      expect((g1.features[1] as ShuffleV1Block).shuffle).toBeNull();
      const unit = v2.stage2[1] as ShuffleV2Block;
      expect([unit.shuffle.groups, unit.shuffle.variant, unit.branch1]).toEqual([2, 'torchvision', null]);
      // The classifier of the official code has no bias, also after resetClassifier.
      const spec = stateSpec(v1);
      expect(spec[0]).toEqual({ key: 'first_conv.0.weight', shape: [12, 3, 3, 3], dtype: 'float32' });
      expect(spec.at(-1)).toEqual({ key: 'classifier.0.weight', shape: [1000, 480], dtype: 'float32' });
      v1.resetClassifier(5);
      expect(stateSpec(v1).at(-1)).toEqual({ key: 'classifier.0.weight', shape: [5, 480], dtype: 'float32' });
      expect(cz.modelMeta('shufflenet_v1_g3').std).toEqual([1 / 255, 1 / 255, 1 / 255]);
      expect(cz.modelMeta('shufflenet_v1_g3').weights).toEqual([]);
    } finally {
      for (const m of [v1, g1, v2]) disposeModel(m);
    }
  });

  test('forwardFeatures, preLogits, resetClassifier, inChans; forward frees its intermediates', () => {
    for (const [id, features] of [
      ['shufflenet_v1_g3_0_5x', 480],
      ['shufflenet_v2_x0_5', 1024],
    ] as const) {
      const m = build(id, { inChans: 1, numClasses: 7, dropRate: 0.1 });
      try {
        m.eval();
        const input = cz.randn([2, 1, 64, 64]);
        const before = cz.memory().tensors;
        cz.noGrad(() => m.forward(input)).dispose();
        expect(cz.memory().tensors, `${id}: forward leaves only its output`).toBe(before);
        input.dispose();
        cz.tidy(() => {
          const x = cz.randn([2, 1, 64, 64]);
          expect(cz.noGrad(() => m.forward(x)).shape, id).toEqual([2, 7]);
          const f = cz.noGrad(() => m.forwardFeatures(x));
          expect(f.shape, id).toEqual([2, features, 2, 2]);
          expect(cz.noGrad(() => m.forwardHead(f, { preLogits: true })).shape, id).toEqual([2, features]);
          m.resetClassifier(0);
          expect(cz.noGrad(() => m.forward(x)).shape, id).toEqual([2, features]);
        });
        expect((m as ShuffleNetV1 | ShuffleNetV2).dropRate).toBe(0.1);
      } finally {
        disposeModel(m);
      }
    }
    expect(() => build('shufflenet_v1_g3', { groups: 8 })).toThrow(/fixed by the variant/);
  });

  test("a checkpoint in the released format (nn.DataParallel's module. prefix) loads through createModel", async () => {
    expect(megviiKey('module.features.0.branch_main_1.0.weight')).toBe('features.0.branch_main_1.0.weight');
    expect(megviiKey('classifier.0.weight')).toBe('classifier.0.weight');
    const dir = mkdtempSync(join(tmpdir(), 'convzoo-shufflenet-'));
    const src = build('shufflenet_v1_g3_0_5x');
    try {
      const sd = src.stateDict();
      const file = join(dir, 'released.safetensors');
      try {
        await cz.save(file, Object.fromEntries(Object.entries(sd).map(([k, t]) => [`module.${k}`, t])));
      } finally {
        for (const t of Object.values(sd)) t.dispose();
      }
      const m = await cz.createModel('shufflenet_v1_g3_0_5x', { weights: file });
      try {
        cz.tidy(() => {
          src.eval();
          m.eval();
          const x = cz.randn([1, 3, 64, 64]);
          const d = cz.noGrad(() => m.forward(x).sub(src.forward(x)).abs().max().item());
          expect(d).toBe(0);
        });
      } finally {
        disposeModel(m);
      }
    } finally {
      disposeModel(src);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('training', () => {
  // The smallest of each version (v1 0.5x g3: 0.72M parameters; v2 x0.5: 1.37M), Adam at 1e-3.
  test.each(['shufflenet_v1_g3_0_5x', 'shufflenet_v2_x0_5'])('%s learns a fixed Fashion-MNIST-sized batch (1 channel, 28x28, 10 classes)', (id) => {
    cz.manualSeed(0);
    const m = build(id, { inChans: 1, numClasses: 10 });
    try {
      const losses = lossesOnFixedBatch(m, { batch: 16, steps: 8, optimizer: (p) => new cz.optim.Adam(p, { lr: 1e-3 }) });
      console.log(`losses ${id}: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[7]).toBeLessThan(0.5 * losses[0]);
    } finally {
      disposeModel(m);
    }
  });
});
