// MobileNet v1, v2, v3: the oracle fixtures (timm's mobilenetv1_100, torchvision's mobilenet_v2 and
// mobilenet_v3_small), live torchvision parity (with the width multiplier and v3's other options), the
// paper's Table 6 (parameters and multiply-adds), torchvision's published GFLOPS, and training steps on
// Fashion-MNIST-sized input.
import { describe, test, expect } from 'vitest';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec, relMaxDiff, withFile, type Reference } from './helpers/tv_reference.js';
import { oracleTests } from './oracle.js';

checkLeaks();

oracleTests('MobileNet oracle (FILL.md, float64)', ['mobilenetv1_100', 'mobilenet_v2', 'mobilenet_v3_small']);

/** torchvision's model built with `tvOptions` against ours with `options`: keys, count, eval logits. */
async function optionParity(ref: Reference, name: string, id: string, tvOptions: Record<string, unknown>, options: Record<string, unknown>): Promise<void> {
  const fx = await ref.request(name, { id, size: 64, batch: 2, options: tvOptions });
  const model = build(id, { dropRate: 0, ...options });
  try {
    expect(stateSpec(model)).toEqual(fx.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
    expect(model.numParameters()).toBe(fx.numParams);
    await withFile(join(ref.dir(name), 'state.pt'), (sd) => {
      model.loadStateDict(sd);
    });
    await withFile(join(ref.dir(name), 'io.pt'), (io) => {
      model.eval();
      cz.tidy(() =>
        expect(
          relMaxDiff(
            cz.noGrad(() => model.forward(io.input)),
            io.logits,
          ),
          name,
        ).toBeLessThan(1e-4),
      );
    });
  } finally {
    disposeModel(model);
    ref.drop(name);
  }
}

parityTests('torchvision parity: mobilenet', [
  {
    id: 'mobilenet_v2',
    size: 64,
    batch: 2,
    extra: async (_fx, dir, io, ref) => {
      await optionParity(ref, 'mobilenet_v2-w0.5', 'mobilenet_v2', { width_mult: 0.5 }, { widthMult: 0.5 });
      await optionParity(ref, 'mobilenet_v2-w1.4', 'mobilenet_v2', { width_mult: 1.4 }, { widthMult: 1.4 });
      // The builder's pretrained path with a local file: the trunk loads, the head is new, the stem summed to 1 channel.
      const m = await cz.createModel('mobilenet_v2', { weights: join(dir, 'state.pt'), numClasses: 10, inChans: 1 });
      try {
        m.eval();
        cz.tidy(() => {
          const gray = io.input.sum(1, { keepdim: true }).div(3);
          expect(cz.noGrad(() => m.forward(gray)).shape).toEqual([2, 10]);
        });
      } finally {
        disposeModel(m);
      }
    },
  },
  { id: 'mobilenet_v3_large', size: 64, batch: 2 },
  {
    id: 'mobilenet_v3_small',
    size: 64,
    batch: 2,
    extra: async (_fx, _dir, _io, ref) => {
      const tv = { width_mult: 0.75, reduced_tail: true, dilated: true };
      await optionParity(ref, 'mobilenet_v3_small-opts', 'mobilenet_v3_small', tv, { widthMult: 0.75, reducedTail: true, dilated: true });
    },
  },
]);

/** Multiply-adds of one 224x224 image (cz.summary: convolutions and linear layers). */
function macs(id: string): number {
  const m = build(id);
  try {
    return cz.summary(m).totalMacs;
  } finally {
    disposeModel(m);
  }
}

describe('MobileNet v1: the paper (Table 6) and timm', () => {
  // Table 6: width multiplier, million parameters, million multiply-adds at 224.
  const TABLE6: [string, number, number][] = [
    ['mobilenet_v1_1_0', 4.2, 569],
    ['mobilenet_v1_0_75', 2.6, 325],
    ['mobilenet_v1_0_5', 1.3, 149],
    ['mobilenet_v1_0_25', 0.5, 41],
  ];

  test('the widths of Table 6: parameter counts round to the table, multiply-adds within 2%', () => {
    for (const [id, mparams, mmacs] of TABLE6) {
      const m = build(id);
      try {
        const n = m.numParameters();
        expect(Math.round(n / 1e5) / 10, id).toBe(mparams);
        expect(cz.modelMeta(id).params, id).toBe(n);
        const s = cz.summary(m);
        console.log(`${id}: ${n} parameters, ${(s.totalMacs / 1e6).toFixed(1)}M MACs (Table 6: ${mparams}M, ${mmacs}M)`);
        expect(Math.abs(s.totalMacs / 1e6 - mmacs) / mmacs, id).toBeLessThan(0.02);
        expect(Math.abs(cz.modelMeta(id).gmacs! * 1000 - mmacs) / mmacs, id).toBeLessThan(0.02);
      } finally {
        disposeModel(m);
      }
    }
  });

  test("timm's ids: its counts (4.23M, 6.27M), keys, ReLU6, and the paper's ids in the same layout", () => {
    const m100 = build('mobilenetv1_100');
    const m125 = build('mobilenetv1_125');
    const paper = build('mobilenet_v1_1_0');
    try {
      expect(m100.numParameters()).toBe(4231976);
      expect(Math.round(m125.numParameters() / 1e4) / 100).toBe(6.27);
      expect(cz.modelMeta('mobilenetv1_125').params).toBe(m125.numParameters());
      const spec125 = stateSpec(m125);
      expect(spec125[0]).toEqual({ key: 'conv_stem.weight', shape: [40, 3, 3, 3], dtype: 'float32' });
      expect(spec125.at(-2)).toEqual({ key: 'classifier.weight', shape: [1000, 1280], dtype: 'float32' });
      // The paper's network at 1.0 has timm's keys and shapes; only the activation differs (ReLU, not ReLU6).
      expect(stateSpec(paper)).toEqual(stateSpec(m100));
      expect((paper as cz.mobilenet.MobileNetV1).act1).toBeInstanceOf(cz.nn.ReLU);
      expect((m100 as cz.mobilenet.MobileNetV1).act1).toBeInstanceOf(cz.nn.ReLU6);
      const w = cz.modelMeta('mobilenetv1_100').weights[0];
      expect(w.url).toBe('https://huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k/resolve/main/model.safetensors');
      expect([w.resizeSize, w.cropSize, w.interpolation, w.mean]).toEqual([256, 224, 'bicubic', [0.5, 0.5, 0.5]]);
      expect(cz.modelMeta('mobilenetv1_125').weights[0].resizeSize).toBe(248); // crop_pct 0.9
      expect(Math.abs(macs('mobilenetv1_125') / 1e9 - 0.88) / 0.88).toBeLessThan(0.02);
    } finally {
      for (const m of [m100, m125, paper]) disposeModel(m);
    }
  });

  test('the width is fixed by the id', () => {
    expect(() => build('mobilenet_v1_0_5', { widthMult: 0.75 })).toThrow(/fixed by the variant/);
  });
});

describe('MobileNet v2 / v3 (torchvision)', () => {
  test("multiply-adds within 2% of torchvision's GFLOPS (0.30, 0.22, 0.06; 0.301, 0.217, 0.057 to three places)", () => {
    for (const [id, published, precise] of [
      ['mobilenet_v2', 0.3, 0.301],
      ['mobilenet_v3_large', 0.22, 0.217],
      ['mobilenet_v3_small', 0.06, 0.057],
    ] as const) {
      const g = macs(id) / 1e9;
      console.log(`${id}: ${g.toFixed(4)} GMACs (torchvision: ${published})`);
      expect(Math.abs(g - precise) / precise, id).toBeLessThan(0.02);
      expect(Math.round(g * 100) / 100, id).toBe(published);
      expect(cz.modelMeta(id).gmacs).toBe(precise);
    }
  });

  test('inChans, numClasses, resetClassifier, forwardFeatures and preLogits', () => {
    for (const [id, features, preLogits] of [
      ['mobilenet_v2', 1280, 1280],
      ['mobilenet_v3_small', 576, 1024],
      ['mobilenetv1_100', 1024, 1024],
    ] as const) {
      const m = build(id, { inChans: 1, numClasses: 7 });
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
          expect(cz.noGrad(() => m.forwardHead(f, { preLogits: true })).shape, id).toEqual([2, preLogits]);
          m.resetClassifier(3);
          expect(cz.noGrad(() => m.forward(x)).shape, id).toEqual([2, 3]);
        });
      } finally {
        disposeModel(m);
      }
    }
  });
});

describe('training', () => {
  test('mobilenet_v1_0_25 (the smallest) learns a fixed Fashion-MNIST-sized batch (1 channel, 28x28, 10 classes)', () => {
    cz.manualSeed(0); // a fixed start, so that the loss curve is the same on every run
    const model = build('mobilenet_v1_0_25', { inChans: 1, numClasses: 10 });
    const images = cz.randn([16, 1, 28, 28]);
    const labels = cz.tensor(
      Array.from({ length: 16 }, (_, i) => i % 10),
      [16],
      { dtype: 'int64' },
    );
    const optimizer = new cz.optim.Adam(model.parameters(), { lr: 1e-3 });
    try {
      model.train();
      const losses: number[] = [];
      for (let i = 0; i < 8; i++) losses.push(cz.trainStep(model, optimizer, { images, labels }).loss);
      console.log(`mobilenet_v1_0_25 losses: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.8);
      // The residual families take a step too (in-place residual adds under autograd).
      for (const id of ['mobilenet_v2', 'mobilenet_v3_small']) {
        const m = build(id, { inChans: 1, numClasses: 10, widthMult: 0.5 });
        const o = new cz.optim.Adam(m.parameters(), { lr: 1e-3 });
        try {
          m.train();
          const l = [0, 1, 2, 3, 4, 5].map(() => cz.trainStep(m, o, { images, labels }).loss);
          expect(l.every(Number.isFinite), id).toBe(true);
          expect(l[5], id).toBeLessThan(l[0]);
        } finally {
          o.dispose();
          disposeModel(m);
        }
      }
    } finally {
      optimizer.dispose();
      images.dispose();
      labels.dispose();
      disposeModel(model);
    }
  });
});
