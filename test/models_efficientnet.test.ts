// EfficientNet: the oracle fixtures (torchvision's efficientnet_b0, timm's tf_efficientnet_b0 and _b3),
// live torchvision parity for efficientnet_b0, every other id's parameter count against torchvision's and
// timm's published ones, multiply-adds against torchvision's GFLOPS and the paper's Table 2, the compound
// scaling table shared by both builds, timm's block-string builder, TF 'same' padding, the weights
// entries, and training steps of the smallest model on Fashion-MNIST-sized input.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { lossesOnFixedBatch } from './helpers/fixed_batch.js';
import { checkLeaks, build, disposeModel, stateSpec, relMaxDiff, withFile, requireTorchvision, Reference } from './helpers/tv_reference.js';
import { oracleTests } from './oracle.js';
import { EFFICIENTNET_SCALING, efficientNetBlockDefs, type EfficientNet, type TimmEfficientNet } from '../src/models/efficientnet.js';

checkLeaks();

oracleTests('EfficientNet oracle (FILL.md, float64)', ['efficientnet_b0', 'tf_efficientnet_b0', 'tf_efficientnet_b3']);

describe('torchvision parity: efficientnet_b0', () => {
  let ref: Reference;
  beforeAll(() => {
    requireTorchvision();
    ref = new Reference(mkdtempSync(join(tmpdir(), 'convzoo-effnet-')));
  });
  afterAll(() => {
    ref?.close();
    if (ref) rmSync(ref.root, { recursive: true, force: true });
  });

  // torchvision's stochastic depth draws in train mode, so its reference is built with
  // stochastic_depth_prob 0 (the same weights and keys) and ours with dropPathRate 0; the eval-mode
  // logits are also checked against our default model (drop path 0.2 is the identity in eval mode).
  test('keys, parameter count, eval logits, train-mode logits and BN statistics (float64)', async () => {
    const name = 'efficientnet_b0-sd0';
    const fx = await ref.request(name, { id: 'efficientnet_b0', size: 64, batch: 2, options: { stochastic_depth_prob: 0 } });
    const model = build<EfficientNet>('efficientnet_b0', { dropRate: 0, dropPathRate: 0 });
    const plain = build<EfficientNet>('efficientnet_b0');
    try {
      expect(stateSpec(model)).toEqual(fx.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
      expect(model.numParameters()).toBe(fx.numParams);
      expect(cz.modelMeta('efficientnet_b0').params).toBe(fx.numParams);
      await withFile(join(ref.dir(name), 'state.pt'), (sd) => {
        model.loadStateDict(sd);
        plain.loadStateDict(sd);
      });
      await withFile(join(ref.dir(name), 'io.pt'), (io) => {
        cz.tidy(() => {
          model.eval();
          plain.eval();
          expect(
            relMaxDiff(
              cz.noGrad(() => model.forward(io.input)),
              io.logits,
            ),
          ).toBeLessThan(1e-4);
          expect(
            relMaxDiff(
              cz.noGrad(() => plain.forward(io.input)),
              io.logits,
            ),
          ).toBeLessThan(1e-4);
          model.to('float64').train();
          expect(
            relMaxDiff(
              cz.noGrad(() => model.forward(io.input.to('float64'))),
              io.trainLogits,
            ),
          ).toBeLessThan(1e-4);
          const ours = model.stateDict();
          const stats = Object.keys(io).filter((k) => k.startsWith('trainStats.'));
          expect(stats.length).toBe(49 * 3);
          for (const k of stats) {
            const key = k.slice('trainStats.'.length);
            if (io[k].dtype === 'int64') expect(ours[key].toArray(), key).toEqual(io[k].toArray());
            else expect(relMaxDiff(ours[key], io[k]), key).toBeLessThan(1e-4);
          }
        });
      });
    } finally {
      disposeModel(model);
      disposeModel(plain);
      ref.drop(name);
    }
  }, 120_000);
});

const VARIANTS = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7'] as const;
// torchvision 0.14's num_params; timm's published param_count (results-imagenet.csv, millions to 2 places).
const TV_PARAMS = [5288548, 7794184, 9109994, 12233232, 19341616, 30389784, 43040704, 66347960];
const TIMM_PARAMS = [5.29, 7.79, 9.11, 12.23, 19.34, 30.39, 43.04, 66.35];
// torchvision's published GFLOPS at its weights' crop (224, 240, 288, 300, 380, 456, 528, 600).
const TV_GFLOPS = [0.39, 0.69, 1.09, 1.83, 4.39, 10.27, 19.07, 37.75];
// The paper's Table 2 (B FLOPs, i.e. multiply-adds) at its resolutions.
const PAPER_FLOPS = [0.39, 0.7, 1.0, 1.8, 4.2, 9.9, 19, 37];

describe('EfficientNet B0-B7: parameters and multiply-adds', () => {
  test.each(VARIANTS.map((v, i) => [v, i] as const))(
    '%s: torchvision and timm parameter counts, GFLOPS within 2%',
    (v, i) => {
      for (const id of [`efficientnet_${v}`, `tf_efficientnet_${v}`]) {
        const m = build(id);
        try {
          const n = m.numParameters();
          const meta = cz.modelMeta(id);
          const macs = cz.summary(m).totalMacs / 1e9;
          console.log(`${id}: ${n} parameters, ${macs.toFixed(4)} GMACs at ${meta.inputSize[1]}`);
          expect(n, id).toBe(TV_PARAMS[i]);
          expect(Math.round(n / 1e4) / 100, id).toBe(TIMM_PARAMS[i]);
          expect(meta.params, id).toBe(n);
          expect(Math.abs(macs / meta.gmacs! - 1), id).toBeLessThan(0.005);
          if (id.startsWith('tf_')) {
            // At the paper's resolution: Table 2's figures, within 2% except B4, B5, B7 (4.6%, 3.7%, 2.0% over; in the notes).
            expect(meta.inputSize[1]).toBe(EFFICIENTNET_SCALING[v].resolution);
            const off = Math.abs(macs / PAPER_FLOPS[i] - 1);
            if (['b4', 'b5', 'b7'].includes(v)) expect(meta.notes, id).toMatch(/Table 2 says/);
            else expect(off, id).toBeLessThan(0.02);
          } else {
            expect(Math.abs(macs / TV_GFLOPS[i] - 1), id).toBeLessThan(0.02);
            expect(meta.weights.length, id).toBeGreaterThan(0);
            expect(meta.weights.every((w) => w.numParams === n)).toBe(true);
          }
        } finally {
          disposeModel(m);
        }
      }
    },
    120_000,
  );
});

describe('EfficientNet: one compound-scaling table, two builds', () => {
  test('torchvision and timm builds of each variant have the same tensors in the same order (a one-to-one key map)', () => {
    for (const v of ['b0', 'b2', 'b5'] as const) {
      const tv = build(`efficientnet_${v}`);
      const tf = build(`tf_efficientnet_${v}`);
      try {
        const a = stateSpec(tv);
        const b = stateSpec(tf);
        expect(a.map((e) => e.shape)).toEqual(b.map((e) => e.shape));
        expect(b[0].key).toBe('conv_stem.weight');
        expect(a[0].key).toBe('features.0.0.weight');
      } finally {
        disposeModel(tv);
        disposeModel(tf);
      }
    }
  });

  test("timm's block strings decode to the table's rows, scaled in depth with 'ceil'", () => {
    const arch = [
      ['ds_r1_k3_s1_e1_c16_se0.25'],
      ['ir_r2_k3_s2_e6_c24_se0.25'],
      ['ir_r2_k5_s2_e6_c40_se0.25'],
      ['ir_r3_k3_s2_e6_c80_se0.25'],
      ['ir_r3_k5_s1_e6_c112_se0.25'],
      ['ir_r4_k5_s2_e6_c192_se0.25'],
      ['ir_r1_k3_s1_e6_c320_se0.25'],
    ];
    for (const v of VARIANTS) {
      const d = EFFICIENTNET_SCALING[v].depth;
      expect(cz.nn.decodeArchDef(arch, d), v).toEqual(efficientNetBlockDefs(d));
    }
    expect(efficientNetBlockDefs(3.1).map((s) => s.length)).toEqual([4, 7, 7, 10, 10, 13, 4]);
    expect(cz.nn.decodeBlockString('ir_r2_k3_s2_e6_c24_se0.25_nsw_noskip')).toEqual({
      type: 'ir',
      repeats: 2,
      kernel: 3,
      stride: 2,
      expRatio: 6,
      outChannels: 24,
      seRatio: 0.25,
      noskip: true,
      act: 'swish',
    });
    expect(() => cz.nn.decodeBlockString('er_r1_k3_s1_e4_c24')).toThrow(/unknown block type/);
    expect(() => cz.nn.decodeBlockString('ir_r1_k3_s1_c24')).toThrow(/missing 'e'/);
    // Two rows in a stage: ceil(4 * 1.5) = 6 shared out from the last row back with Python's round
    // (round(4.5) = 4, then 2), as timm's decode_arch_def gives.
    const two = cz.nn.scaleStageDepth([cz.nn.decodeBlockString('ir_r1_k3_s1_e1_c8'), cz.nn.decodeBlockString('ir_r3_k5_s1_e6_c8')], 1.5);
    expect(two.map((r) => r.kernel)).toEqual([3, 3, 5, 5, 5, 5]);
    expect([cz.nn.roundHalfEven(2.5), cz.nn.roundHalfEven(3.5), cz.nn.roundHalfEven(4.5), cz.nn.roundChannels(1280, 1.1)]).toEqual([2, 4, 4, 1408]);
  });

  test("the TF ports: 'same' padding where strided, BN eps 1e-3, SE widths, timm's weights entries", () => {
    const m = build<TimmEfficientNet>('tf_efficientnet_b0');
    try {
      expect(m.conv_stem).toBeInstanceOf(cz.nn.Conv2dSame);
      expect(m.bn1.eps).toBe(1e-3);
      const ir = (m.blocks[1] as cz.nn.Sequential)[0] as cz.nn.InvertedResidual;
      expect(ir.conv_dw).toBeInstanceOf(cz.nn.Conv2dSame); // 3x3 stride 2
      expect(ir.conv_pw).not.toBeInstanceOf(cz.nn.Conv2dSame); // static: a plain Conv2d
      expect(ir.se?.rdChannels).toBe(4); // round(96 * 0.25 / 6)
      expect(((m.blocks[1] as cz.nn.Sequential)[1] as cz.nn.InvertedResidual).conv_dw).not.toBeInstanceOf(cz.nn.Conv2dSame);
      expect([m.dropRate, m.dropPathRate]).toEqual([0.2, 0.2]);
      cz.tidy(() => {
        m.eval();
        // Any input size: TF 'same' gives ceil(65 / 32) = 3.
        expect(cz.noGrad(() => m.forwardFeatures(cz.randn([1, 3, 65, 65]))).shape).toEqual([1, 1280, 3, 3]);
      });
    } finally {
      disposeModel(m);
    }
    for (const [v, resize] of [
      ['b0', 256],
      ['b3', 331],
      ['b7', 632],
    ] as const) {
      const id = `tf_efficientnet_${v}`;
      const w = cz.modelMeta(id).weights;
      expect(w.length).toBe(1);
      expect([w[0].tag, w[0].url, w[0].cropSize, w[0].resizeSize, w[0].interpolation, w[0].mean]).toEqual([
        'ns_jft_in1k',
        `https://huggingface.co/timm/${id}.ns_jft_in1k/resolve/main/model.safetensors`,
        EFFICIENTNET_SCALING[v].resolution,
        resize,
        'bicubic',
        cz.IMAGENET_MEAN,
      ]);
    }
    const tv = cz.modelMeta('efficientnet_b0');
    expect([tv.inputSize, tv.weights[0].resizeSize, tv.weights[0].interpolation]).toEqual([[3, 224, 224], 256, 'bicubic']);
  });

  test('torchvision: per-variant dropout, stochastic depth 0.2 rising over the blocks, BN of B5-B7', () => {
    const b0 = build<EfficientNet>('efficientnet_b0');
    const b5 = build<EfficientNet>('efficientnet_b5', { dropPathRate: 0.1 });
    try {
      expect([b0.dropRate, b0.dropPathRate, b5.dropRate, b5.dropPathRate]).toEqual([0.2, 0.2, 0.4, 0.1]);
      const mb = (b0.features[7] as cz.nn.Sequential)[0] as cz.efficientnet.MBConv;
      expect(mb.stochastic_depth.p).toBeCloseTo((0.2 * 15) / 16, 12);
      expect(((b5.features[0] as cz.nn.ConvNormAct).normLayer as cz.nn.BatchNorm2d).eps).toBe(1e-3);
      expect(((b0.features[0] as cz.nn.ConvNormAct).normLayer as cz.nn.BatchNorm2d).eps).toBe(1e-5);
    } finally {
      disposeModel(b0);
      disposeModel(b5);
    }
    expect(() => build('efficientnet_b0', { variant: 'b1' })).toThrow(/fixed by the variant/);
  });
});

describe('EfficientNet: training', () => {
  test('efficientnet_b0 (the smallest, with tf_efficientnet_b0) learns a fixed Fashion-MNIST-sized batch', () => {
    for (const id of ['efficientnet_b0', 'tf_efficientnet_b0']) {
      cz.manualSeed(0);
      const m = build(id, { inChans: 1, numClasses: 10 });
      try {
        const losses = lossesOnFixedBatch(m, { batch: 16, steps: 8, optimizer: (p) => new cz.optim.Adam(p, { lr: 1e-3 }) });
        console.log(`${id} losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
        expect(losses.every(Number.isFinite), id).toBe(true);
        expect(losses[7], id).toBeLessThan(0.8 * losses[0]);
      } finally {
        disposeModel(m);
      }
    }
  }, 120_000);
});
