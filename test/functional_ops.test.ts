// The functional side of the nn block toolbox against torch/torchvision (tools/layers_reference.py):
// the activation table's functions, conv1d, TF 'SAME' padding, both channel-shuffle permutations,
// avg+max pooling, interpolation and drop path, values and gradients; and the integer helpers
// (makeDivisible, same-padding arithmetic, ECA's kernel size) against their Python originals.
import { describe, test, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { loadReference, decode, expectClose, objective, type LayersReference } from './layers_reference.js';

const F = cz.F;
const nn = cz.nn;

let ref: LayersReference;
beforeAll(() => {
  ref = loadReference();
});

let live = 0;
beforeEach(() => {
  live = cz.memory().tensors;
});
afterEach(() => {
  expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
});

type Fn = (...xs: Tensor[]) => Tensor;
const act =
  (name: cz.nn.ActName): Fn =>
  (x) =>
    nn.getActivationFn(name)(x);

// The convzoo call for each case of tools/layers_reference.py's functional_cases().
const cases: Record<string, Fn> = {
  ...Object.fromEntries(nn.ACTIVATION_NAMES.map((name) => [`act ${name}`, act(name)])),
  conv1d: (x, w, b) => F.conv1d(x, w, b, { stride: 2, padding: 1 }),
  'conv1d dilation groups': (x, w) => F.conv1d(x, w, null, { padding: 2, dilation: 2, groups: 2 }),
  'padSame k3 s2 odd': (x) => F.padSame(x, 3, { stride: 2 }),
  'padSame k(3,5) s(2,1) d(1,2) value': (x) => F.padSame(x, [3, 5], { stride: [2, 1], dilation: [1, 2], value: 0.5 }),
  'padSame k4 s1 even kernel': (x) => F.padSame(x, 4),
  'padSame k1 s2 none needed': (x) => F.padSame(x, 1, { stride: 2 }),
  'conv2d same k3 s2': (x, w, b) => cz.tidy(() => F.conv2d(F.padSame(x, 3, { stride: 2 }), w, b, { stride: 2 })),
  'maxPool2d same k3 s2': (x) => cz.tidy(() => F.maxPool2d(F.padSame(x, 3, { stride: 2, value: -Infinity }), 3, { stride: 2 })),
  'channelShuffle torchvision': (x) => F.channelShuffle(x, 3),
  'channelShuffle megvii': (x) => F.channelShuffle(x, 3, { variant: 'megvii' }),
  'channelShuffle megvii g4': (x) => F.channelShuffle(x, 4, { variant: 'megvii' }),
  'adaptiveMaxPool2d global': (x) => F.adaptiveMaxPool2d(x, 1),
  adaptiveAvgMaxPool2d: (x) => F.adaptiveAvgMaxPool2d(x),
  'adaptiveCatAvgMaxPool2d 2': (x) => F.adaptiveCatAvgMaxPool2d(x, 2),
  'interpolate bilinear x2': (x) => F.interpolate(x, { scaleFactor: 2, mode: 'bilinear', alignCorners: false }),
  'interpolate bilinear size alignCorners': (x) => F.interpolate(x, { size: [7, 5], mode: 'bilinear', alignCorners: true }),
  'interpolate bilinear x0.5 alignCorners': (x) => F.interpolate(x, { scaleFactor: 0.5, mode: 'bilinear', alignCorners: true }),
  'interpolate nearest down to size': (x) => F.interpolate(x, { size: [3, 2] }),
  'interpolate nearest x(2,3)': (x) => F.interpolate(x, { scaleFactor: [2, 3] }),
  // Seeded: the same generator calls as torch, so the same per-sample masks.
  'dropPath 0.5': (x) => F.dropPath(x, 0.5),
  'dropPath 0.2 no scale': (x) => F.dropPath(x, 0.2, { scaleByKeep: false }),
  'stochasticDepth row 0.3': (x) => new nn.DropPath(0.3).forward(x),
  'dropPath p=1': (x) => F.dropPath(x, 1),
};

/** Output and the gradient of every float input, as the reference computes them. */
function runCase(name: string): void {
  const c = ref.functional[name];
  cz.tidy(() => {
    const inputs = c.inputs.map((t) => decode(t, { requiresGrad: t.dtype.startsWith('float') }));
    if (c.seed !== undefined) cz.manualSeed(c.seed);
    const out = cases[name](...inputs);
    expectClose(out, c.outputs[0], `${name}: output`);
    objective(out).backward();
    c.grads.forEach((g, i) => {
      if (g === null) return;
      const grad = inputs[i].grad;
      expect(grad, `${name}: input ${i} got no gradient`).not.toBeNull();
      expectClose(grad!, g, `${name}: gradient of input ${i}`);
    });
  });
}

describe('against torch: values and gradients', () => {
  test('every reference case has a convzoo call and the other way round', () => {
    expect(Object.keys(cases).sort()).toEqual(Object.keys(ref.functional).sort());
  });
  const names = [...Object.keys(cases)];
  test.each(names)('%s', (name) => {
    runCase(name);
  });
});

describe('the activation table', () => {
  test('every name gives a module computing the same as its function, with no state', () => {
    cz.tidy(() => {
      const x = cz.randn([4, 5]).mul(3);
      for (const name of nn.ACTIVATION_NAMES) {
        const m = nn.getActivation(name);
        expect(m).toBeInstanceOf(nn.Module);
        expect(m.stateShapes().size, name).toBe(0);
        const a = m.forward(x),
          b = nn.getActivationFn(name)(x);
        expect(a.sub(b).abs().max().item(), name).toBe(0);
      }
    });
  });
  test("nothing works in place; the functions return new handles (the Identity module, as torch's, returns its input)", () => {
    cz.tidy(() => {
      const x = cz.randn([3, 4]).mul(4);
      const before = x.clone();
      for (const name of nn.ACTIVATION_NAMES) {
        const y = nn.getActivationFn(name)(x);
        expect(y === x, `${name} returned its input`).toBe(false);
        nn.getActivation(name).forward(x);
      }
      expect(x.sub(before).abs().max().item()).toBe(0);
    });
  });
  test('aliases: swish is silu, hard_swish is hardswish, gelu_tanh is GELU(tanh), none is identity', () => {
    expect(nn.getActivation('swish')).toBeInstanceOf(nn.SiLU);
    expect(nn.getActivation('hard_swish')).toBeInstanceOf(nn.Hardswish);
    expect(nn.getActivation('hard_sigmoid')).toBeInstanceOf(nn.Hardsigmoid);
    const g = nn.getActivation('gelu_tanh');
    expect(g).toBeInstanceOf(nn.GELU);
    expect((g as cz.nn.GELU).approximate).toBe('tanh');
    expect(nn.getActivation('none')).toBeInstanceOf(nn.Identity);
    expect(nn.isIdentityAct('identity') && nn.isIdentityAct('none') && !nn.isIdentityAct('relu')).toBe(true);
  });
  test('a factory is called for each new module; unknown names and non-modules are E_ARG errors', () => {
    const m1 = nn.getActivation(() => new nn.LeakyReLU(0.2));
    const m2 = nn.getActivation(() => new nn.LeakyReLU(0.2));
    expect(m1).not.toBe(m2);
    expect((m1 as cz.nn.LeakyReLU).negativeSlope).toBe(0.2);
    expect(() => nn.getActivation('relu7' as cz.nn.ActName)).toThrow(
      expect.objectContaining({ code: 'E_ARG', message: expect.stringMatching(/unknown activation 'relu7'.*relu6/) }),
    );
    expect(() => nn.getActivation((() => 3) as unknown as () => cz.nn.Module)).toThrow(/not a Module/);
    expect(() => nn.getActivationFn('toString' as cz.nn.ActName)).toThrow(/unknown activation/);
  });
});

describe('integer helpers against Python', () => {
  test('makeDivisible: torchvision _make_divisible (roundLimit 0.9) and timm make_divisible (roundLimit 0)', () => {
    for (const [v, divisor, minValue, roundLimit, want] of ref.make_divisible) {
      expect(nn.makeDivisible(v, divisor, minValue ?? undefined, roundLimit), `makeDivisible(${v}, ${divisor}, ${minValue}, ${roundLimit})`).toBe(want);
    }
  });
  test('getSamePadding: timm get_same_padding over sizes, kernels, strides, dilations', () => {
    for (const [i, k, s, d, want] of ref.same_padding) expect(nn.getSamePadding(i, k, s, d), `i=${i} k=${k} s=${s} d=${d}`).toBe(want);
  });
  test('sameConvPadding puts the odd pixel after (right/bottom), as TensorFlow', () => {
    expect(nn.sameConvPadding(7, 3, 2)).toEqual([1, 1]);
    expect(nn.sameConvPadding(8, 3, 2)).toEqual([0, 1]);
    expect(nn.sameConvPadding(5, 4, 1)).toEqual([1, 2]);
  });
  test("getPadding is (k - 1) / 2 * dilation for odd kernels at stride 1 and 2 (torchvision), timm's formula otherwise", () => {
    for (const k of [1, 3, 5, 7])
      for (const d of [1, 2, 3])
        for (const stride of [1, 2]) {
          expect(nn.getPadding(k, { stride, dilation: d })).toBe(((k - 1) / 2) * d);
        }
    expect(nn.getPadding(4, { stride: 2 })).toBe(2); // ((2 - 1) + 3) // 2
    expect(nn.isStaticPad(3)).toBe(true);
    expect(nn.isStaticPad(3, { stride: 2 })).toBe(false);
    expect(nn.isStaticPad(4)).toBe(false);
    expect(nn.isStaticPad(4, { dilation: 2 })).toBe(true);
  });
  test("ecaKernelSize: timm EcaModule's kernel from the channel count (gamma 2, beta 1)", () => {
    for (const [c, k] of ref.eca_kernel) expect(nn.ecaKernelSize(c), `channels ${c}`).toBe(k);
  });
});

describe('drop path', () => {
  test('statistics: about p of the samples are zeroed, the rest scaled by 1/(1-p), the mean kept', () => {
    cz.tidy(() => {
      cz.manualSeed(5);
      const n = 20000,
        p = 0.3;
      const x = cz.ones([n, 2, 2, 1]);
      const y = F.dropPath(x, p);
      const perSample = y.view(n, -1);
      const values = perSample.toArray();
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        const row = values.slice(i * 4, i * 4 + 4);
        expect(new Set(row).size, 'one decision per sample').toBe(1);
        if (row[0] === 0) dropped++;
        else expect(row[0]).toBeCloseTo(1 / (1 - p), 6);
      }
      // Binomial(20000, 0.3): sd 0.0032, so 5 sd is 0.016.
      expect(Math.abs(dropped / n - p)).toBeLessThan(0.016);
      expect(Math.abs(y.mean().item() - 1)).toBeLessThan(0.03);
    });
  });
  test('identity in eval mode and at p = 0, as a new handle that the caller owns', () => {
    cz.tidy(() => {
      const x = cz.randn([4, 3, 2, 2]);
      for (const y of [F.dropPath(x, 0.5, { training: false }), F.dropPath(x, 0)]) {
        expect(y.handle).not.toBe(x.handle);
        expect(y.sub(x).abs().max().item()).toBe(0);
      }
      const m = new nn.DropPath(0.9).eval();
      const y = m.forward(x);
      expect(y.sub(x).abs().max().item()).toBe(0);
      y.dispose();
      expect(x.isDisposed).toBe(false);
      expect(new nn.DropPath(0.1).toString()).toBe('DropPath(p=0.1)');
    });
  });
  test('the gradient reaches the input in eval mode (a view, not a detached copy)', () => {
    cz.tidy(() => {
      const x = cz.randn([3, 2], { requiresGrad: true });
      F.dropPath(x, 0.5, { training: false }).sum().backward();
      expect(x.grad!.toArray()).toEqual([1, 1, 1, 1, 1, 1]);
    });
  });
  test('dropPathRates: linear from 0 to the rate (timm ResNet, linspace), or i/n (EfficientNet)', () => {
    expect(nn.dropPathRates(5, 0.2)).toEqual([0, 0.05, 0.1, 0.15000000000000002, 0.2]);
    expect(nn.dropPathRates(4, 0.2, { includeEnd: false })).toEqual([0, 0.05, 0.1, 0.15000000000000002]);
    expect(nn.dropPathRates(1, 0.2)).toEqual([0]);
    cz.tidy(() => expect(() => F.dropPath(cz.zeros([1]), 1.5)).toThrow(/p must be in \[0, 1\]/));
  });
});

describe('channel shuffle', () => {
  test("Megvii's permutation is the inverse of torchvision's, and torchvision's with C/g groups", () => {
    cz.tidy(() => {
      const x = cz.arange(24, undefined, 1, { dtype: 'float32' }).view(1, 24, 1, 1);
      const back = F.channelShuffle(F.channelShuffle(x, 3), 3, { variant: 'megvii' });
      expect(back.toArray()).toEqual(x.toArray());
      expect(F.channelShuffle(x, 3, { variant: 'megvii' }).toArray()).toEqual(F.channelShuffle(x, 8).toArray());
      const m = new nn.ChannelShuffle(4, { variant: 'megvii' });
      expect(m.forward(x).toArray()).toEqual(F.channelShuffle(x, 4, { variant: 'megvii' }).toArray());
      expect(m.toString()).toBe('ChannelShuffle(groups=4, variant=megvii)');
      expect(() => F.channelShuffle(x, 5)).toThrow(/groups to divide the channels \(24\)/);
      expect(() => F.channelShuffle(x, 2, { variant: 'v2' as 'megvii' })).toThrow(/unknown variant 'v2'/);
    });
  });
});

describe('in-place activations after a norm', () => {
  test('ReLU6(true), Hardswish(true) and Hardsigmoid(true) equal the out-of-place ops, overwrite their input, and give the same gradients', () => {
    for (const [Act, fn] of [
      [cz.nn.Hardswish, cz.F.hardswish],
      [cz.nn.Hardsigmoid, cz.F.hardsigmoid],
    ] as const) {
      cz.tidy(() => {
        const x = cz.randn([2, 3, 5, 5]).mul(4);
        const want = fn(x);
        const y = x.clone();
        expect(new Act(true).forward(y)).toBe(y);
        expect(y.sub(want).abs().max().item()).toBe(0);
        // Through a batch norm under autograd, as in MobileNetV3's conv-bn-act blocks.
        const grads = [false, true].map((inplace) => {
          cz.manualSeed(1);
          const block = new cz.nn.ConvNormAct(3, 4, 3, { act: () => new Act(inplace) });
          block.train();
          block.forward(x).square().sum().backward();
          const g = block.convLayer.weight.grad!.clone();
          block.dispose();
          return g;
        });
        expect(grads[1].sub(grads[0]).abs().max().item()).toBeLessThan(1e-5);
      });
    }
  });
});
