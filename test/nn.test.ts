// cz.F and cz.nn against torch.nn from /usr/bin/python3 (tools/nn_reference.py writes inputs, outputs,
// gradients, layer states and init values into a temp dir at test time), plus default initialisation
// statistics, nn.init and the Module API.
import { describe, test, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';

const F = cz.F;
const nn = cz.nn;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface T {
  dtype: 'float32' | 'float64' | 'int64' | 'bool';
  shape: number[];
  data: (number | null)[];
}
interface Reference {
  torch: string;
  functional: Record<string, { inputs: T[]; outputs: T[]; grad: T | null; seed?: number }>;
  layers: Record<string, { seed: number; state: Record<string, T>; input: T; output: T; after: Record<string, T> }>;
  init: Record<string, { seed: number; shape: number[]; values: T }>;
  keys: Record<string, string[]>;
}

let ref: Reference;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'convzoo-nn-'));
  const out = path.join(dir, 'reference.json');
  execFileSync('/usr/bin/python3', ['-W', 'ignore', path.join(root, 'tools/nn_reference.py'), out], { stdio: 'inherit' });
  ref = JSON.parse(readFileSync(out, 'utf8')) as Reference;
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let live = 0;
beforeEach(() => {
  live = cz.memory().tensors;
});
afterEach(() => {
  expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
});

function decode(t: T): Tensor {
  const vals = t.data.map((v) => (v === null ? NaN : v));
  switch (t.dtype) {
    case 'float32':
      return cz.tensor(Float32Array.from(vals), t.shape);
    case 'float64':
      return cz.tensor(Float64Array.from(vals), t.shape);
    case 'int64':
      return cz.tensor(
        BigInt64Array.from(vals, (v) => BigInt(v)),
        t.shape,
      );
    case 'bool':
      return cz.tensor(Uint8Array.from(vals), t.shape, { dtype: 'bool' });
  }
}

/** Asserts allclose(actual, expected) elementwise with a useful message. */
function expectClose(actual: Tensor, expected: T, what: string, atol = 1e-5, rtol = 1e-4): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  const a = actual.toArray();
  let worst = -1,
    worstAt = -1;
  for (let i = 0; i < a.length; i++) {
    const e = expected.data[i] ?? NaN;
    if (Number.isNaN(e) && Number.isNaN(a[i])) continue;
    const excess = Math.abs(a[i] - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  if (worstAt >= 0) throw new Error(`${what}: element ${worstAt} is ${a[worstAt]}, torch gives ${expected.data[worstAt]}`);
}

function disposeModule(m: cz.nn.Module): void {
  for (const t of [...m.parameters(), ...m.buffers()]) t.dispose();
}

// ---- functional cases: the convzoo call for each case name of tools/nn_reference.py
type Fn = (...xs: Tensor[]) => Tensor | Tensor[];
const cases: Record<string, Fn> = {
  conv2d: (x, w, b) => F.conv2d(x, w, b),
  'conv2d stride2 pad1': (x, w, b) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
  'conv2d dilation groups': (x, w) => F.conv2d(x, w, null, { padding: 2, dilation: 2, groups: 2 }),
  'conv2d padding same': (x, w) => F.conv2d(x, w, null, { padding: 'same' }),
  'conv2d padding valid': (x, w) => F.conv2d(x, w, null, { padding: 'valid' }),
  'conv2d asymmetric': (x, w) => F.conv2d(x, w, null, { stride: [2, 1], padding: [1, 0] }),
  linear: (x, w, b) => F.linear(x, w, b),
  'linear 3d no bias': (x, w) => F.linear(x, w),
  maxPool2d: (x) => F.maxPool2d(x, 2),
  'maxPool2d k3s2p1': (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  'maxPool2d ceil': (x) => F.maxPool2d(x, 3, { stride: 2, ceilMode: true }),
  'maxPool2d dilation': (x) => F.maxPool2d(x, 2, { stride: 1, dilation: 2 }),
  maxPool2dWithIndices: (x) => {
    const r = F.maxPool2dWithIndices(x, 2, { stride: 2, ceilMode: true });
    return [r.output, r.indices];
  },
  avgPool2d: (x) => F.avgPool2d(x, 2),
  'avgPool2d k3s2p1 exclude pad': (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
  'avgPool2d k3s2p1 include pad': (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1 }),
  'avgPool2d ceil': (x) => F.avgPool2d(x, 2, { ceilMode: true }),
  'avgPool2d divisor': (x) => F.avgPool2d(x, 2, { divisorOverride: 3 }),
  'adaptiveAvgPool2d 1': (x) => F.adaptiveAvgPool2d(x, 1),
  'adaptiveAvgPool2d 7->3x2': (x) => F.adaptiveAvgPool2d(x, [3, 2]),
  'adaptiveAvgPool2d upsample 2->5': (x) => F.adaptiveAvgPool2d(x, 5),
  adaptiveMaxPool2d: (x) => F.adaptiveMaxPool2d(x, [3, 2]),
  'batchNorm train': (x, w, b) => F.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
  'batchNorm eval': (x, w, b, rm, rv) => F.batchNorm(x, rm, rv, { weight: w, bias: b, training: false, eps: 1e-3 }),
  layerNorm: (x, w, b) => F.layerNorm(x, [3, 4], { weight: w, bias: b }),
  'layerNorm last dim eps': (x) => F.layerNorm(x, [5], { eps: 1e-6 }),
  groupNorm: (x, w, b) => F.groupNorm(x, 3, { weight: w, bias: b }),
  'groupNorm 1': (x) => F.groupNorm(x, 1),
  'localResponseNorm alexnet': (x) => F.localResponseNorm(x, 5, { alpha: 1e-4, beta: 0.75, k: 2 }),
  'localResponseNorm even size': (x) => F.localResponseNorm(x, 4, { alpha: 0.5, beta: 0.6, k: 1.5 }),
  'localResponseNorm 3d input': (x) => F.localResponseNorm(x, 3, { alpha: 0.3 }),
  relu: F.relu,
  relu6: (x) => F.relu6(x.mul(4)),
  hardtanh: (x) => F.hardtanh(x, { min: -0.5, max: 1.5 }),
  leakyRelu: (x) => F.leakyRelu(x, { negativeSlope: 0.2 }),
  'leakyRelu default': (x) => F.leakyRelu(x),
  elu: (x) => F.elu(x, { alpha: 0.7 }),
  gelu: (x) => F.gelu(x),
  'gelu tanh': (x) => F.gelu(x, { approximate: 'tanh' }),
  silu: F.silu,
  mish: F.mish,
  hardswish: (x) => F.hardswish(x.mul(3)),
  hardsigmoid: (x) => F.hardsigmoid(x.mul(3)),
  sigmoid: F.sigmoid,
  tanh: F.tanh,
  softplus: (x) => F.softplus(x.mul(3), { beta: 2, threshold: 3 }),
  softmax: (x) => F.softmax(x, { dim: 1 }),
  'softmax dim0': (x) => F.softmax(x, { dim: 0 }),
  logSoftmax: (x) => F.logSoftmax(x),
  channelShuffle: (x) => F.channelShuffle(x, 3),
  crossEntropy: (x, t) => F.crossEntropy(x, t),
  'crossEntropy labelSmoothing': (x, t) => F.crossEntropy(x, t, { labelSmoothing: 0.1 }),
  'crossEntropy weight': (x, t, w) => F.crossEntropy(x, t, { weight: w }),
  'crossEntropy weight labelSmoothing': (x, t, w) => F.crossEntropy(x, t, { weight: w, labelSmoothing: 0.3 }),
  'crossEntropy ignoreIndex sum': (x, t) => F.crossEntropy(x, t, { reduction: 'sum' }),
  'crossEntropy none': (x, t) => F.crossEntropy(x, t, { reduction: 'none' }),
  'crossEntropy custom ignoreIndex': (x, t) => F.crossEntropy(x, t, { ignoreIndex: 2 }),
  'crossEntropy spatial': (x, t) => F.crossEntropy(x, t),
  'crossEntropy probabilities': (x, p) => F.crossEntropy(x, p),
  'crossEntropy probabilities labelSmoothing': (x, p) => F.crossEntropy(x, p, { labelSmoothing: 0.2 }),
  nllLoss: (x, t) => F.nllLoss(x, t),
  'nllLoss weight': (x, t, w) => F.nllLoss(x, t, { weight: w }),
  mseLoss: (x, y) => F.mseLoss(x, y),
  'mseLoss none': (x, y) => F.mseLoss(x, y, { reduction: 'none' }),
  bceWithLogits: (x, y) => F.binaryCrossEntropyWithLogits(x, y),
  'bceWithLogits weight sum': (x, y, w) => F.binaryCrossEntropyWithLogits(x, y, { weight: w, reduction: 'sum' }),
  'pad constant': (x) => F.pad(x, [1, 2, 0, 1], { value: 0.5 }),
  'pad reflect': (x) => F.pad(x, [1, 2, 2, 1], { mode: 'reflect' }),
  'pad replicate': (x) => F.pad(x, [2, 0, 1, 1], { mode: 'replicate' }),
  'interpolate nearest x2': (x) => F.interpolate(x, { scaleFactor: 2 }),
  'interpolate nearest size': (x) => F.interpolate(x, { size: [5, 3] }),
  'interpolate nearest x2.5': (x) => F.interpolate(x, { scaleFactor: 2.5 }),
  'interpolate nearest x0.7': (x) => F.interpolate(x, { scaleFactor: 0.7 }),
  'interpolate bilinear size': (x) => F.interpolate(x, { size: [5, 4], mode: 'bilinear' }),
  'interpolate bilinear x2 alignCorners': (x) => F.interpolate(x, { scaleFactor: 2, mode: 'bilinear', alignCorners: true }),
  'interpolate bilinear x1.5': (x) => F.interpolate(x, { scaleFactor: 1.5, mode: 'bilinear' }),
  'interpolate bilinear x(0.5,1.7)': (x) => F.interpolate(x, { scaleFactor: [0.5, 1.7], mode: 'bilinear' }),
  'dropout p=0': (x) => F.dropout(x, { p: 0 }),
  'dropout eval': (x) => F.dropout(x, { p: 0.5, training: false }),
  'dropout seeded': (x) => F.dropout(x, { p: 0.3 }),
  'dropout2d seeded': (x) => F.dropout2d(x, { p: 0.5 }),
};

describe('F.* against torch.nn.functional', () => {
  test('the reference covers every case and nothing else', () => {
    expect(Object.keys(ref.functional).sort()).toEqual(Object.keys(cases).sort());
    expect(ref.torch).toMatch(/^1\.13/);
  });

  test.each(Object.keys(cases))('%s', (name) =>
    cz.tidy(() => {
      const c = ref.functional[name];
      const xs = c.inputs.map(decode);
      if (c.seed !== undefined) cz.manualSeed(c.seed);
      const res = cases[name](...xs);
      const outs = Array.isArray(res) ? res : [res];
      expect(outs.length).toBe(c.outputs.length);
      outs.forEach((o, i) => {
        expect(o.dtype, `output ${i} dtype`).toBe(c.outputs[i].dtype);
        expectClose(o, c.outputs[i], `output ${i}`);
      });
      if (c.grad) {
        const x = xs[0].detach().requiresGrad_(true);
        const out0 = [cases[name](x, ...xs.slice(1))].flat()[0];
        const w = cz
          .arange(out0.numel(), undefined, 1, { dtype: out0.dtype })
          .cos()
          .view(...out0.shape);
        out0.mul(w).sum().backward();
        expectClose(x.grad!, c.grad, 'gradient of input 0', 1e-5, 1e-4);
      }
    }),
  );
});

// ---- layers: built after the same seed, so default initialisation must match torch's exactly
const layerFactories: Record<string, () => cz.nn.Module> = {
  Conv2d: () => new nn.Conv2d(3, 4, 3, { padding: 1 }),
  'Conv2d stride groups no bias': () => new nn.Conv2d(4, 6, [3, 2], { stride: 2, groups: 2, bias: false }),
  'Conv2d 1x1 wide': () => new nn.Conv2d(64, 8, 1),
  Linear: () => new nn.Linear(10, 3),
  'Linear no bias': () => new nn.Linear(7, 2, { bias: false }),
  BatchNorm2d: () => new nn.BatchNorm2d(3),
  'BatchNorm2d momentum None': () => new nn.BatchNorm2d(3, { momentum: null as unknown as number }),
  LayerNorm: () => new nn.LayerNorm([3, 2]),
  GroupNorm: () => new nn.GroupNorm(2, 4),
  'Sequential conv-bn-relu-pool-flatten-linear': () =>
    new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(4),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.AdaptiveAvgPool2d(1),
      new nn.Flatten(),
      new nn.Linear(4, 3),
    ),
};

describe('nn layers against torch.nn', () => {
  test('the reference covers every layer', () => {
    expect(Object.keys(ref.layers).sort()).toEqual(Object.keys(layerFactories).sort());
  });

  test.each(Object.keys(layerFactories))('%s: default init, forward (train) and state after it', (name) => {
    const c = ref.layers[name];
    cz.manualSeed(c.seed);
    const m = layerFactories[name]();
    try {
      cz.tidy(() => {
        const sd = m.stateDict();
        expect(Object.keys(sd)).toEqual(Object.keys(c.state));
        for (const [k, v] of Object.entries(c.state)) expectClose(sd[k], v, `initial ${k}`, 1e-7, 1e-6);
        const y = m.train().forward(decode(c.input));
        expectClose(y, c.output, 'output');
        const after = m.stateDict();
        for (const [k, v] of Object.entries(c.after)) expectClose(after[k], v, `after forward: ${k}`);
      });
    } finally {
      disposeModule(m);
    }
  });

  test('backward through a layer stack reaches every parameter', () => {
    cz.manualSeed(0);
    const m = layerFactories['Sequential conv-bn-relu-pool-flatten-linear']();
    try {
      cz.tidy(() => {
        const loss = F.crossEntropy(m.forward(cz.randn([2, 2, 6, 6])), cz.tensor([0, 2]));
        loss.backward();
        for (const [name, p] of m.namedParameters()) {
          const g = p.grad;
          expect(g, name).not.toBeNull();
          expect(g!.shape, name).toEqual(p.shape);
        }
      });
      m.zeroGrad();
      for (const p of m.parameters()) expect(p.grad).toBeNull();
    } finally {
      disposeModule(m);
    }
  });
});

// ---- nn.init: same values as torch.nn.init after the same seed, and the documented statistics
const initFns: Record<string, (t: Tensor) => unknown> = {
  'kaimingUniform fanIn relu': (t) => nn.init.kaimingUniform_(t, { mode: 'fanIn', nonlinearity: 'relu' }),
  'kaimingUniform a=sqrt5': (t) => nn.init.kaimingUniform_(t, { a: Math.sqrt(5) }),
  'kaimingNormal fanOut relu': (t) => nn.init.kaimingNormal_(t, { mode: 'fanOut', nonlinearity: 'relu' }),
  'kaimingNormal leaky': (t) => nn.init.kaimingNormal_(t, { a: 0.2 }),
  xavierUniform: (t) => nn.init.xavierUniform_(t),
  'xavierUniform gain': (t) => nn.init.xavierUniform_(t, { gain: nn.init.calculateGain('tanh') }),
  xavierNormal: (t) => nn.init.xavierNormal_(t),
  truncNormal: (t) => nn.init.truncNormal_(t, { std: 0.02 }),
  'truncNormal bounds': (t) => nn.init.truncNormal_(t, { mean: 1, std: 2, a: -1, b: 2.5 }),
  uniform: (t) => nn.init.uniform_(t, -3, 2),
  normal: (t) => nn.init.normal_(t, 1, 0.5),
};

describe('nn.init', () => {
  test('the reference covers every init function', () => {
    expect(Object.keys(ref.init).sort()).toEqual(Object.keys(initFns).sort());
  });

  test.each(Object.keys(initFns))("%s gives torch.nn.init's values for the same seed", (name) =>
    cz.tidy(() => {
      const c = ref.init[name];
      cz.manualSeed(c.seed);
      const t = cz.empty(c.shape);
      const r = initFns[name](t);
      expect(r).toBe(t); // in place, returns its argument
      expectClose(t, c.values, name, 1e-6, 1e-5);
    }),
  );

  test('gains and fans', () =>
    cz.tidy(() => {
      expect(nn.init.calculateGain('relu')).toBeCloseTo(Math.SQRT2, 12);
      expect(nn.init.calculateGain('tanh')).toBeCloseTo(5 / 3, 12);
      expect(nn.init.calculateGain('leaky_relu', 0.2)).toBeCloseTo(Math.sqrt(2 / 1.04), 12);
      expect(nn.init.calculateGain('leaky_relu')).toBeCloseTo(Math.sqrt(2 / 1.0001), 12);
      expect(nn.init.calculateGain('selu')).toBe(0.75);
      expect(nn.init.calculateGain('linear')).toBe(1);
      expect(nn.init.calculateFanInAndFanOut(cz.empty([8, 4, 3, 3]))).toEqual({ fanIn: 36, fanOut: 72 });
      expect(nn.init.calculateFanInAndFanOut(cz.empty([5, 7]))).toEqual({ fanIn: 7, fanOut: 5 });
      expect(() => nn.init.calculateFanInAndFanOut(cz.empty([5]))).toThrow(cz.ConvzooError);
    }));

  const stats = (t: Tensor) => ({ min: t.min().item(), max: t.max().item(), mean: t.mean().item(), std: t.std().item() });

  test('kaiming uniform/normal statistics with fan modes', () =>
    cz.tidy(() => {
      cz.manualSeed(11);
      const shape = [256, 128, 3, 3]; // fanIn 1152, fanOut 2304
      const u = stats(nn.init.kaimingUniform_(cz.empty(shape), { nonlinearity: 'relu' }));
      const bound = Math.sqrt(2) * Math.sqrt(3 / 1152);
      expect(u.max).toBeLessThanOrEqual(bound);
      expect(u.min).toBeGreaterThanOrEqual(-bound);
      expect(u.max).toBeGreaterThan(0.999 * bound);
      expect(u.std).toBeCloseTo(bound / Math.sqrt(3), 3);
      const nIn = stats(nn.init.kaimingNormal_(cz.empty(shape), { nonlinearity: 'relu' }));
      expect(nIn.std / Math.sqrt(2 / 1152)).toBeCloseTo(1, 2);
      expect(Math.abs(nIn.mean)).toBeLessThan(1e-3);
      const nOut = stats(nn.init.kaimingNormal_(cz.empty(shape), { mode: 'fanOut', nonlinearity: 'relu' }));
      expect(nOut.std / Math.sqrt(2 / 2304)).toBeCloseTo(1, 2);
    }));

  test('xavier statistics', () =>
    cz.tidy(() => {
      cz.manualSeed(12);
      const u = stats(nn.init.xavierUniform_(cz.empty([300, 500])));
      const a = Math.sqrt(6 / 800);
      expect(u.max).toBeLessThanOrEqual(a);
      expect(u.min).toBeGreaterThanOrEqual(-a);
      expect(u.std / (a / Math.sqrt(3))).toBeCloseTo(1, 2);
      const n = stats(nn.init.xavierNormal_(cz.empty([300, 500]), { gain: 2 }));
      expect(n.std / (2 * Math.sqrt(2 / 800))).toBeCloseTo(1, 2);
    }));

  test('truncNormal bounds and std', () =>
    cz.tidy(() => {
      cz.manualSeed(13);
      const t = stats(nn.init.truncNormal_(cz.empty([200000])));
      expect(t.min).toBeGreaterThanOrEqual(-2);
      expect(t.max).toBeLessThanOrEqual(2);
      expect(t.max).toBeGreaterThan(1.99);
      expect(t.std).toBeCloseTo(0.8796, 2); // std of N(0, 1) truncated to [-2, 2]
      const s = stats(nn.init.truncNormal_(cz.empty([200000]), { std: 0.02 }));
      expect(s.std / 0.02).toBeCloseTo(1, 2); // [-2, 2] is 100 std away: no truncation
      const off = stats(nn.init.truncNormal_(cz.empty([200000]), { mean: 3, std: 1, a: 2.5, b: 4 }));
      expect(off.min).toBeGreaterThanOrEqual(2.5);
      expect(off.max).toBeLessThanOrEqual(4);
      expect(off.mean).toBeGreaterThan(3); // more mass above the mean than below when [2.5, 4] is skewed
    }));

  test('constant/zeros/ones', () =>
    cz.tidy(() => {
      expect(nn.init.constant_(cz.empty([3]), 2.5).toArray()).toEqual([2.5, 2.5, 2.5]);
      expect(nn.init.zeros_(cz.empty([2])).toArray()).toEqual([0, 0]);
      expect(nn.init.ones_(cz.empty([2])).toArray()).toEqual([1, 1]);
      const p = new nn.Parameter(cz.zeros([2]));
      try {
        expect(nn.init.ones_(p).toArray()).toEqual([1, 1]);
      } finally {
        p.dispose();
      } // no error on a leaf that needs grad
    }));

  test('default initialisation of Conv2d and Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn))', () => {
    cz.manualSeed(14);
    const conv = new nn.Conv2d(64, 128, 3);
    const lin = new nn.Linear(500, 300);
    const bn = new nn.BatchNorm2d(8);
    const ln = new nn.LayerNorm(6);
    try {
      cz.tidy(() => {
        for (const [w, b, fanIn] of [
          [conv.weight, conv.bias!, 576],
          [lin.weight, lin.bias!, 500],
        ] as const) {
          const bound = 1 / Math.sqrt(fanIn);
          const s = stats(w);
          expect(s.max).toBeLessThanOrEqual(bound);
          expect(s.min).toBeGreaterThanOrEqual(-bound);
          expect(s.max).toBeGreaterThan(0.99 * bound);
          expect(s.std / (bound / Math.sqrt(3))).toBeCloseTo(1, 2);
          const sb = stats(b);
          expect(sb.max).toBeLessThanOrEqual(bound);
          expect(sb.min).toBeGreaterThanOrEqual(-bound);
          expect(sb.max - sb.min).toBeGreaterThan(bound); // spread over the range
        }
        expect(bn.weight!.toArray()).toEqual(new Array(8).fill(1));
        expect(bn.bias!.toArray()).toEqual(new Array(8).fill(0));
        expect(bn.running_mean!.toArray()).toEqual(new Array(8).fill(0));
        expect(bn.running_var!.toArray()).toEqual(new Array(8).fill(1));
        expect(bn.num_batches_tracked!.dtype).toBe('int64');
        expect(bn.num_batches_tracked!.item()).toBe(0);
        expect(ln.weight!.toArray()).toEqual(new Array(6).fill(1));
        expect(ln.bias!.toArray()).toEqual(new Array(6).fill(0));
        for (const p of [conv.weight, lin.weight, bn.weight!]) expect(p.requiresGrad).toBe(true);
        expect(bn.running_mean!.requiresGrad).toBe(false);
      });
    } finally {
      for (const m of [conv, lin, bn, ln]) disposeModule(m);
    }
  });
});

// ---- Module
function net(): cz.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(3, 4, 3, { bias: false }),
    new nn.BatchNorm2d(4),
    new nn.ReLU(),
    new nn.Sequential(new nn.Conv2d(4, 4, 1), new nn.GroupNorm(2, 4)),
    new nn.Flatten(),
    new nn.Linear(4, 2),
  );
}

describe('Module', () => {
  let m: cz.nn.Sequential;
  beforeEach(() => {
    cz.manualSeed(0);
    m = net();
    live = cz.memory().tensors;
  });
  afterEach(() => {
    disposeModule(m);
    live = cz.memory().tensors;
  });

  test("namedParameters and stateDict keys are torch's", () => {
    expect([...m.namedParameters()].map(([k]) => k)).toEqual(ref.keys['nested sequential parameters']);
    const sd = m.stateDict();
    try {
      expect(Object.keys(sd)).toEqual(ref.keys['nested sequential']);
      expect(sd['1.num_batches_tracked'].dtype).toBe('int64');
      expect(sd['0.weight'].requiresGrad).toBe(false); // detached
    } finally {
      for (const t of Object.values(sd)) t.dispose();
    }
    expect([...m.namedBuffers()].map(([k]) => k)).toEqual(['1.running_mean', '1.running_var', '1.num_batches_tracked']);
    expect([...m.namedModules()].map(([k]) => k)).toEqual(['', '0', '1', '2', '3', '3.0', '3.1', '4', '5']);
    expect([...m.namedChildren()].map(([k]) => k)).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(m.numParameters()).toBe(108 + 8 + 20 + 8 + 10);
    m[0].parameters()[0].requiresGrad_(false);
    expect(m.numParameters({ trainableOnly: true })).toBe(8 + 20 + 8 + 10);
  });

  test('stateDict round trip through loadStateDict', () => {
    cz.manualSeed(1);
    const other = net();
    try {
      const sd = other.stateDict();
      const res = m.loadStateDict(sd);
      expect(res).toEqual({ missingKeys: [], unexpectedKeys: [] });
      cz.tidy(() => {
        const a = m.stateDict(),
          b = other.stateDict();
        for (const k of Object.keys(a)) expect(a[k].toArray()).toEqual(b[k].toArray());
      });
      for (const t of Object.values(sd)) t.dispose();
    } finally {
      disposeModule(other);
    }
  });

  test('loadStateDict strict errors list missing, unexpected and shape-mismatched keys', () => {
    const sd = m.stateDict();
    try {
      const bad: Record<string, Tensor> = { ...sd };
      delete bad['5.bias'];
      delete bad['3.1.weight'];
      bad['extra.weight'] = sd['5.bias'];
      bad['0.weight'] = cz.zeros([4, 3, 5, 5]);
      let err: unknown;
      try {
        m.loadStateDict(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cz.ConvzooError);
      const e = err as cz.ConvzooError;
      expect(e.code).toBe('E_STATE_DICT');
      expect(e.message).toMatch(/loadStateDict/);
      expect(e.message).toMatch(/missing keys \(2\): .*5\.bias/);
      expect(e.message).toMatch(/3\.1\.weight/);
      expect(e.message).toMatch(/unexpected keys \(1\): extra\.weight/);
      expect(e.message).toMatch(/0\.weight: checkpoint \[4, 3, 5, 5\] vs model \[4, 3, 3, 3\]/);
      // Non-strict: missing/unexpected are returned, shape mismatches still refused.
      bad['0.weight'].dispose();
      bad['0.weight'] = sd['0.weight'];
      const r = m.loadStateDict(bad, { strict: false });
      expect(r.missingKeys.sort()).toEqual(['3.1.weight', '5.bias']);
      expect(r.unexpectedKeys).toEqual(['extra.weight']);
      const shaped = cz.zeros([9]);
      try {
        expect(() => m.loadStateDict({ ...sd, '5.bias': shaped }, { strict: false })).toThrow(/shape mismatches/);
      } finally {
        shaped.dispose();
      }
    } finally {
      for (const t of Object.values(sd)) t.dispose();
    }
  });

  test('a missing num_batches_tracked is accepted (old checkpoints)', () => {
    const sd = m.stateDict();
    try {
      const old = { ...sd };
      delete old['1.num_batches_tracked'];
      const r = m.loadStateDict(old);
      expect(r.unexpectedKeys).toEqual([]);
      const bnBatches = (m[1] as cz.nn.BatchNorm2d).num_batches_tracked!;
      expect(bnBatches.item()).toBe(0);
    } finally {
      for (const t of Object.values(sd)) t.dispose();
    }
  });

  test('loadStateDict copies values (the model does not alias the checkpoint)', () => {
    const sd = m.stateDict();
    const w = cz.full([2], 3, { dtype: 'float32' });
    try {
      m.loadStateDict({ ...sd, '5.bias': w });
      w.fill_(7);
      expect((m[5] as cz.nn.Linear).bias!.toArray()).toEqual([3, 3]);
    } finally {
      w.dispose();
      for (const t of Object.values(sd)) t.dispose();
    }
  });

  test('train()/eval() reach every submodule and change BatchNorm', () => {
    expect([...m.modules()].every((x) => x.training)).toBe(true);
    expect(m.eval()).toBe(m);
    expect([...m.modules()].every((x) => !x.training)).toBe(true);
    m.train();
    expect(m[3].training).toBe(true);
    m[3].eval();
    expect(m.training && !m[3].training && !(m[3] as cz.nn.Sequential)[0].training).toBe(true);
    // eval uses running stats: output for one sample does not depend on the rest of the batch
    const bn = m[1] as cz.nn.BatchNorm2d;
    cz.tidy(() => {
      bn.eval();
      const x = cz.randn([3, 4, 2, 2]);
      const one = bn.forward(x.narrow(0, 0, 1));
      const all = bn.forward(x).narrow(0, 0, 1);
      expect(one.sub(all).abs().max().item()).toBeLessThan(1e-6);
      expect(bn.num_batches_tracked!.item()).toBe(0);
      bn.train();
      bn.forward(x);
      expect(bn.num_batches_tracked!.item()).toBe(1);
      expect(bn.running_mean!.abs().sum().item()).toBeGreaterThan(0);
    });
  });

  test("to('float64') casts parameters and float buffers in place, keeps identity and int buffers", () => {
    const params = m.parameters();
    expect(m.to('float64')).toBe(m);
    expect(m.parameters()).toEqual(params);
    for (const p of m.parameters()) {
      expect(p.dtype).toBe('float64');
      expect(p.requiresGrad).toBe(true);
      expect(p.isLeaf).toBe(true);
    }
    const bn = m[1] as cz.nn.BatchNorm2d;
    expect(bn.running_mean!.dtype).toBe('float64');
    expect(bn.num_batches_tracked!.dtype).toBe('int64');
    cz.tidy(() => {
      const y = m.forward(cz.randn([2, 3, 3, 3], { dtype: 'float64' }));
      expect(y.dtype).toBe('float64');
      expect(y.shape).toEqual([2, 2]);
      y.sum().backward();
      expect(m[5].parameters()[0].grad!.dtype).toBe('float64');
    });
    m.to('float32');
    expect(m.parameters()[0].dtype).toBe('float32');
    expect(m.to('cpu')).toBe(m);
  });

  test('zeroGrad clears gradients', () => {
    cz.tidy(() =>
      m
        .forward(cz.randn([2, 3, 3, 3]))
        .sum()
        .backward(),
    );
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
    cz.tidy(() => {
      for (const p of m.parameters()) p.grad;
    });
    m.zeroGrad();
    expect(m.parameters().every((p) => p.grad === null)).toBe(true);
  });

  test('apply visits children first, then the module itself', () => {
    const seen: string[] = [];
    expect(m.apply((x) => seen.push(x.constructor.name))).toBe(m);
    expect(seen).toEqual(['Conv2d', 'BatchNorm2d', 'ReLU', 'Conv2d', 'GroupNorm', 'Sequential', 'Flatten', 'Linear', 'Sequential']);
    // A typical use: re-initialise every conv.
    m.apply((x) => {
      if (x instanceof nn.Conv2d) nn.init.zeros_(x.weight);
    });
    cz.tidy(() => {
      expect(m[0].parameters()[0].abs().sum().item()).toBe(0);
    });
  });

  test('toString shows the tree', () => {
    const s = m.toString();
    expect(s.split('\n')[0]).toBe('Sequential(');
    expect(s).toContain('(0): Conv2d(3, 4, kernelSize=[3,3], stride=[1,1], bias=false)');
    expect(s).toContain('(1): BatchNorm2d(4, eps=0.00001, momentum=0.1)');
    expect(s).toContain('(3): Sequential(\n    (0): Conv2d(4, 4');
    expect(s).toContain('(5): Linear(inFeatures=4, outFeatures=2)');
    expect(s.trimEnd().endsWith(')')).toBe(true);
  });

  test('Sequential forward frees intermediates but keeps its input', () => {
    m.eval();
    const before = cz.memory().tensors;
    const x = cz.randn([1, 3, 3, 3]);
    const y = cz.noGrad(() => m.forward(x));
    expect(x.isDisposed).toBe(false);
    expect(cz.memory().tensors).toBe(before + 2);
    x.dispose();
    y.dispose();
  });

  test('ModuleList and ModuleDict register children under their keys', () => {
    const list = new nn.ModuleList([new nn.Linear(2, 2), new nn.ReLU()]);
    const dict = new nn.ModuleDict({ head: new nn.Linear(2, 1), act: new nn.ReLU() });
    try {
      expect([...list.namedParameters()].map(([k]) => k)).toEqual(['0.weight', '0.bias']);
      expect([...dict.namedParameters()].map(([k]) => k)).toEqual(['head.weight', 'head.bias']);
      expect(list.length).toBe(2);
      expect([...list].length).toBe(2);
      expect(() => list.forward(cz.ones([1]))).toThrow();
    } finally {
      disposeModule(list);
      disposeModule(dict);
      live = cz.memory().tensors;
    }
  });

  test('Parameter takes over a tensor and tidy never frees it', () => {
    const p = cz.tidy(() => new nn.Parameter(cz.ones([2])));
    expect(p.isDisposed).toBe(false);
    expect(p.requiresGrad).toBe(true);
    const q = new nn.Parameter(cz.ones([2]), false);
    expect(q.requiresGrad).toBe(false);
    p.dispose();
    q.dispose();
  });
});

describe('layers behave like torch in their modes', () => {
  test('Dropout is the identity in eval, scales by 1/(1-p) in training', () =>
    cz.tidy(() => {
      const d = new nn.Dropout(0.25);
      const x = cz.ones([1000]);
      expect(d.eval().forward(x).toArray()).toEqual(new Array(1000).fill(1));
      const y = d.train().forward(x);
      const vals = new Set(y.toArray().map((v) => +v.toFixed(5)));
      expect([...vals].sort()).toEqual([0, 1.33333]);
      expect(() => new nn.Dropout(1.5)).toThrow(/p must be in/);
    }));

  test('activation modules match their functions', () =>
    cz.tidy(() => {
      const x = cz.randn([10]);
      const pairs: [cz.nn.Module, (t: Tensor) => Tensor][] = [
        [new nn.ReLU(), F.relu],
        [new nn.ReLU6(), F.relu6],
        [new nn.SiLU(), F.silu],
        [new nn.Hardswish(), F.hardswish],
        [new nn.Hardsigmoid(), F.hardsigmoid],
        [new nn.Sigmoid(), F.sigmoid],
        [new nn.Tanh(), F.tanh],
        [new nn.Mish(), F.mish],
        [new nn.LeakyReLU(0.3), (t) => F.leakyRelu(t, { negativeSlope: 0.3 })],
        [new nn.ELU(0.5), (t) => F.elu(t, { alpha: 0.5 })],
        [new nn.GELU('tanh'), (t) => F.gelu(t, { approximate: 'tanh' })],
        [new nn.Softplus({ beta: 2 }), (t) => F.softplus(t, { beta: 2 })],
        [new nn.Softmax(0), (t) => F.softmax(t, { dim: 0 })],
        [new nn.Identity(), (t) => t],
      ];
      for (const [mod, fn] of pairs) expect(mod.forward(x).toArray()).toEqual(fn(x).toArray());
      expect(new nn.Flatten().forward(cz.ones([2, 3, 4])).shape).toEqual([2, 12]);
      expect(new nn.Flatten(0).forward(cz.ones([2, 3, 4])).shape).toEqual([24]);
      expect(new nn.LocalResponseNorm(3).forward(cz.ones([1, 4, 2, 2])).shape).toEqual([1, 4, 2, 2]);
      expect(new nn.AvgPool2d(2).forward(cz.ones([1, 1, 4, 4])).shape).toEqual([1, 1, 2, 2]);
      expect(new nn.AdaptiveMaxPool2d(1).forward(cz.ones([1, 2, 4, 4])).shape).toEqual([1, 2, 1, 1]);
    }));
});
