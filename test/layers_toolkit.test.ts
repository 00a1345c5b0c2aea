// The nn block toolbox's modules against torchvision and timm's layers (tools/layers_reference.py):
// state-dict keys in order, then, with the reference's (randomised) state loaded, the output, the
// input's and every parameter's gradient, and the state after the forward (running statistics).
// Then what torch cannot show: the ScaledStdConv2d eval cache, naming rules, printing.
import { describe, test, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { loadReference, decode, expectClose, objective, type LayersReference } from './layers_reference.js';

const nn = cz.nn;
type Module = cz.nn.Module;

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

// The convzoo module for each case of tools/layers_reference.py's module_cases().
const builders: Record<string, () => Module> = {
  'SqueezeExcite torchvision': () => nn.SqueezeExcite.torchvision(32, 8),
  'SqueezeExcite torchvision mobilenetv3': () => nn.SqueezeExcite.torchvision(24, nn.makeDivisible(Math.floor(24 / 4), 8), { gate: 'hardsigmoid' }),
  'SqueezeExcite torchvision efficientnet': () => nn.SqueezeExcite.torchvision(40, 4, { act: 'silu' }),
  'SqueezeExcite timm': () => new nn.SqueezeExcite(64),
  'SqueezeExcite timm rdRatio 0.25 silu hardsigmoid': () => new nn.SqueezeExcite(36, { rdRatio: 0.25, act: 'silu', gate: 'hardsigmoid' }),
  'SqueezeExcite timm bn eval': () => new nn.SqueezeExcite(48, { norm: true }),
  'SqueezeExcite timm no bias': () => new nn.SqueezeExcite(32, { rdChannels: 5, bias: false }),
  'SqueezeExcite legacy senet': () => nn.SqueezeExcite.legacySenet(64, 16),
  'SqueezeExcite linear': () => new nn.SqueezeExcite(24, { rdChannels: 6, form: 'linear' }),
  'EcaModule 64': () => new nn.EcaModule(64),
  'EcaModule 256': () => new nn.EcaModule(256),
  'EcaModule kernel 7 hardsigmoid': () => new nn.EcaModule(20, { kernelSize: 7, gate: 'hardsigmoid' }),
  'ConvNormAct timm': () => new nn.ConvNormAct(8, 16, 3, { stride: 2 }),
  'ConvNormAct silu groups dilation': () => new nn.ConvNormAct(8, 12, 3, { dilation: 2, groups: 4, act: 'silu' }),
  'ConvNormAct eval': () => new nn.ConvNormAct(6, 8, 5, { act: 'hardswish' }),
  'ConvNormAct no norm gelu_tanh': () => new nn.ConvNormAct(4, 6, 3, { norm: false, act: 'gelu_tanh' }),
  'ConvNormAct tf same stride 2': () => new nn.ConvNormAct(3, 8, 3, { stride: 2, padding: 'same', act: 'relu6' }),
  'ConvNormAct torchvision names': () => new nn.ConvNormAct(8, 16, 3, { stride: 2, names: { conv: '0', norm: '1', act: '2' } }),
  'NormActConv densenet names': () => new nn.NormActConv(16, 8, 1, { names: { norm: 'norm1', act: 'relu1', conv: 'conv1' } }),
  'NormActConv dpn bn eps': () => new nn.NormActConv(16, 24, 3, { stride: 2, groups: 4, norm: { eps: 1e-3 } }),
  'Conv2dSame k3 s2': () => new nn.Conv2dSame(3, 4, 3, { stride: 2 }),
  'Conv2dSame k4 s1 dilation 2': () => new nn.Conv2dSame(2, 3, 4, { dilation: 2, bias: false }),
  'MaxPool2dSame k3 s2': () => new nn.MaxPool2dSame(3, { stride: 2 }),
  StdConv2d: () => new nn.StdConv2d(4, 6, 3),
  ScaledStdConv2d: () => new nn.ScaledStdConv2d(4, 6, 3),
  'ScaledStdConv2d gamma eps stride groups': () => new nn.ScaledStdConv2d(8, 6, 3, { stride: 2, groups: 2, gamma: 1.7139588594436646, eps: 1e-8 }),
  'ScaledStdConv2d same stride 2 eval': () => new nn.ScaledStdConv2d(3, 5, 3, { stride: 2, padding: 'same' }),
  'ScaledStdConv2d 1x1 no bias': () => new nn.ScaledStdConv2d(6, 4, 1, { bias: false }),
};

function loadState(m: Module, state: Record<string, { dtype: 'float32' | 'float64' | 'int64' | 'bool'; shape: number[]; data: number[] }>): void {
  cz.tidy(() => {
    m.loadStateDict(Object.fromEntries(Object.entries(state).map(([k, t]) => [k, decode(t)])));
  });
}

describe('against torchvision / timm: keys, values, gradients', () => {
  test('every reference case has a convzoo module and the other way round', () => {
    expect(Object.keys(builders).sort()).toEqual(Object.keys(ref.modules).sort());
  });
  test.each(Object.keys(builders))('%s', (name) => {
    const c = ref.modules[name];
    const m = builders[name]();
    try {
      expect([...m.stateShapes().keys()], 'state-dict keys, in order').toEqual(c.keys);
      for (const [k, shape] of m.stateShapes()) expect(shape, k).toEqual(c.state[k].shape);
      loadState(m, c.state);
      m.train(c.training);
      cz.tidy(() => {
        const x = decode(c.input, { requiresGrad: true });
        const y = m.forward(x);
        expectClose(y, c.output, 'output');
        objective(y).backward();
        expectClose(x.grad!, c.grad_input, 'gradient of the input');
        const params = new Map(m.namedParameters());
        expect([...params.keys()].sort()).toEqual(Object.keys(c.grad_params).sort());
        for (const [k, p] of params) expectClose(p.grad!, c.grad_params[k], `gradient of ${k}`);
      });
      const after = m.stateDict();
      try {
        for (const [k, t] of Object.entries(after)) expectClose(t, c.after[k], `${k} after the forward`);
      } finally {
        for (const t of Object.values(after)) t.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});

describe('ScaledStdConv2d: the eval-mode weight cache', () => {
  const make = () => {
    cz.manualSeed(3);
    const m = new nn.ScaledStdConv2d(4, 6, 3, { gamma: 1.5 });
    cz.noGrad(() => m.gain.uniform_(0.5, 1.5));
    return m;
  };
  const fresh = (m: cz.nn.ScaledStdConv2d, x: Tensor): Tensor => cz.tidy(() => cz.F.conv2d(x, m.standardizedWeight(), m.bias, { padding: 1 }));
  const maxDiff = (a: Tensor, b: Tensor): number => cz.tidy(() => a.sub(b).abs().max().item());

  test('built once in eval mode without autograd, equal to the uncached weight, not in the state dict', () => {
    const m = make().eval();
    cz.tidy(() => {
      const x = cz.randn([2, 4, 5, 5]);
      cz.noGrad(() => {
        const y1 = m.forward(x);
        const cached = m.cached_weight;
        expect(cached).not.toBeNull();
        const y2 = m.forward(x);
        expect(m.cached_weight, 'reused, not rebuilt').toBe(cached);
        expect(maxDiff(y1, y2)).toBe(0);
        expect(maxDiff(y1, fresh(m, x))).toBe(0);
      });
      expect([...m.stateShapes().keys()]).toEqual(['weight', 'bias', 'gain']);
      expect(m.buffers()).toContain(m.cached_weight);
    });
    m.dispose();
    expect(m.cached_weight === null || m.cached_weight.isDisposed).toBe(true);
  });

  test('rebuilt after in-place changes (an optimizer step, loadStateDict) and after to()', () => {
    const m = make().eval();
    cz.tidy(() => {
      const x = cz.randn([1, 4, 4, 4]);
      const before = cz.noGrad(() => m.forward(x));
      // An SGD step changes weight and gain in place.
      cz.tidy(() => {
        m.train();
        cz.F.mseLoss(m.forward(x), cz.zerosLike(before)).backward();
        m.eval();
      });
      new cz.optim.SGD(m.parameters(), { lr: 0.5 }).step();
      const afterStep = cz.noGrad(() => m.forward(x));
      expect(maxDiff(afterStep, before)).toBeGreaterThan(1e-3);
      expect(maxDiff(afterStep, fresh(m, x))).toBe(0);
      // loadStateDict copies in place: the gain alone changes here.
      cz.tidy(() => {
        const sd = m.stateDict();
        m.loadStateDict({ ...sd, gain: sd.gain.mul(2) });
      });
      const afterLoad = cz.noGrad(() => m.forward(x));
      expect(maxDiff(afterLoad, afterStep)).toBeGreaterThan(1e-3);
      expect(maxDiff(afterLoad, fresh(m, x))).toBeLessThan(1e-6);
      // to() gives the parameters new handles.
      m.to('float64');
      const x64 = x.double();
      const y64 = cz.noGrad(() => m.forward(x64));
      expect(y64.dtype).toBe('float64');
      expect(m.cached_weight!.dtype).toBe('float64');
      expect(maxDiff(y64, fresh(m, x64))).toBe(0);
    });
    m.dispose();
  });

  test('not used when a weight gradient is recorded, dropped in training mode, built inside inferenceMode too', () => {
    const m = make();
    cz.tidy(() => {
      const x = cz.randn([1, 4, 4, 4]);
      m.eval();
      m.forward(x).sum().backward(); // eval mode with autograd on: gradients must reach weight and gain
      expect(m.cached_weight).toBeNull();
      expect(m.weight.grad).not.toBeNull();
      expect(m.gain.grad).not.toBeNull();
      m.zeroGrad();
      const yInference = cz.inferenceMode(() => m.forward(x));
      expect(m.cached_weight).not.toBeNull();
      // The cache built in inference mode serves a later noGrad forward.
      expect(
        maxDiff(
          cz.noGrad(() => m.forward(x)),
          yInference,
        ),
      ).toBe(0);
      m.train();
      m.forward(x);
      expect(m.cached_weight, 'the first training forward drops the cache').toBeNull();
    });
    m.dispose();
  });

  test('frozen weights (requiresGrad off) use the cache even with autograd on; the input still gets its gradient', () => {
    const m = make().eval();
    for (const p of m.parameters()) p.requiresGrad_(false);
    cz.tidy(() => {
      const x = cz.randn([1, 4, 3, 3], { requiresGrad: true });
      m.forward(x).sum().backward();
      expect(m.cached_weight).not.toBeNull();
      expect(x.grad).not.toBeNull();
      const y = cz.randn([1, 4, 3, 3]);
      expect(
        maxDiff(
          cz.noGrad(() => m.forward(y)),
          fresh(m, y),
        ),
      ).toBe(0);
    });
    m.dispose();
  });
});

describe('blocks: options and naming', () => {
  test('ConvNormAct pads (k - 1) / 2 * dilation by default: stride 1 keeps the size, for odd kernels and dilations', () => {
    for (const [k, d] of [
      [1, 1],
      [3, 1],
      [3, 2],
      [5, 1],
      [7, 3],
    ]) {
      const m = new nn.ConvNormAct(2, 3, k, { dilation: d });
      cz.tidy(() => expect(m.forward(cz.randn([1, 2, 9, 8])).shape).toEqual([1, 3, 9, 8]));
      expect(m.convLayer.padding).toEqual([((k - 1) / 2) * d, ((k - 1) / 2) * d]);
      m.dispose();
    }
  });
  test('bias only without a norm; norm as options or a factory; act as a factory; accessors whatever the names', () => {
    const a = new nn.ConvNormAct(4, 8, 3, { norm: (c) => new nn.GroupNorm(2, c), act: () => new nn.LeakyReLU(0.2), names: { norm: 'gn' } });
    expect([...a.stateShapes().keys()]).toEqual(['conv.weight', 'gn.weight', 'gn.bias']);
    expect(a.normLayer).toBeInstanceOf(nn.GroupNorm);
    expect(a.actLayer).toBeInstanceOf(nn.LeakyReLU);
    const b = new nn.ConvNormAct(4, 8, 1, { norm: false, act: 'none' });
    expect([...b.stateShapes().keys()]).toEqual(['conv.weight', 'conv.bias']);
    expect(b.normLayer).toBeNull();
    expect(b.actLayer).toBeNull();
    const c = new nn.ConvNormAct(4, 8, 3, { norm: { eps: 1e-3, momentum: 0.01 } });
    expect((c.normLayer as cz.nn.BatchNorm2d).eps).toBe(1e-3);
    expect(c.toString()).toBe(
      [
        'ConvNormAct(',
        '  (conv): Conv2d(4, 8, kernelSize=[3,3], stride=[1,1], padding=[1,1], bias=false)',
        '  (bn): BatchNorm2d(8, eps=0.001, momentum=0.01)',
        '  (act): ReLU(inplace=true)', // on the norm's output, as torchvision's ReLU(inplace=True)
        ')',
      ].join('\n'),
    );
    const d = new nn.ConvNormAct(3, 4, 3, { stride: 2, padding: 'same' });
    expect(d.convLayer).toBeInstanceOf(nn.Conv2dSame);
    const e = new nn.ConvNormAct(3, 4, 3, { padding: 'same' });
    expect(e.convLayer).not.toBeInstanceOf(nn.Conv2dSame); // static: a plain padding of 1
    expect(e.convLayer.padding).toEqual([1, 1]);
    for (const m of [a, b, c, d, e]) m.dispose();
  });
  test('NormActConv normalises the input channels and registers norm, act, conv in that order', () => {
    const m = new nn.NormActConv(6, 4, 3);
    expect([...m.stateShapes()]).toEqual([
      ['bn.weight', [6]],
      ['bn.bias', [6]],
      ['bn.running_mean', [6]],
      ['bn.running_var', [6]],
      ['bn.num_batches_tracked', []],
      ['conv.weight', [4, 6, 3, 3]],
    ]);
    cz.tidy(() => expect(m.forward(cz.randn([2, 6, 5, 5])).shape).toEqual([2, 4, 5, 5]));
    m.dispose();
  });
  test('the activation works in place only on a norm output: never on the block input', () => {
    // NormActConv without a norm applies its activation to the input itself: that must stay intact.
    for (const [norm, inplace] of [
      [true, true],
      [false, false],
      [(c: number) => new nn.GroupNorm(2, c), true],
      [() => new nn.Identity(), false], // a factory's norm might return its input
    ] as const) {
      const m = new nn.NormActConv(4, 4, 1, { norm, act: 'relu6' });
      expect((m.actLayer as cz.nn.ReLU6).inplace, String(norm)).toBe(inplace);
      cz.tidy(() => {
        const x = cz.randn([1, 4, 3, 3]);
        const before = x.toArray();
        m.forward(x);
        expect(x.toArray()).toEqual(before);
      });
      m.dispose();
    }
    expect(nn.getActivation('hardswish', { inplace: true })).toBeInstanceOf(nn.Hardswish);
    expect((nn.getActivation('hard_swish', { inplace: true }) as cz.nn.Hardswish).inplace).toBe(true);
    expect((nn.getActivation('relu') as cz.nn.ReLU).inplace).toBe(false);
    expect(nn.getActivation('silu', { inplace: true })).toBeInstanceOf(nn.SiLU); // no in-place op: the plain module
  });
  test('names that cannot be keys, or would overwrite a field, are E_ARG errors', () => {
    for (const bad of ['', '_conv', 'a.b', 'training', 'forward', 'convLayer']) {
      expect(() => new nn.ConvNormAct(2, 2, 1, { names: { conv: bad } }), `name '${bad}'`).toThrow(expect.objectContaining({ code: 'E_ARG' }));
    }
    expect(() => new nn.ConvNormAct(2, 2, 1, { names: { conv: 'x', norm: 'x' } })).toThrow(/'x' cannot be a sub-module name/);
    expect(() => new nn.SqueezeExcite(16, { names: { gate: 'fc1' } })).toThrow(/'fc1' cannot be a sub-module name/);
    // (the leak check after this test shows that a rejected name builds no parameters)
  });
  test('SqueezeExcite widths: rdRatio with divisor rounding, rdChannels, and printing', () => {
    const widths = [
      [64, {}, 8],
      [256, {}, 16],
      [36, { rdRatio: 0.25 }, 8],
      [96, { rdRatio: 0.25, rdDivisor: 1 }, 24],
      [10, { rdChannels: 3 }, 3],
    ] as const;
    for (const [c, opts, rd] of widths) {
      const m = new nn.SqueezeExcite(c, opts);
      expect(m.rdChannels, `channels ${c}`).toBe(rd);
      m.dispose();
    }
    const se = nn.SqueezeExcite.legacySenet(64);
    expect(se.toString()).toBe(
      [
        'SqueezeExcite(64, rdChannels=4',
        '  (fc1): Conv2d(64, 4, kernelSize=[1,1], stride=[1,1])',
        '  (relu): ReLU()',
        '  (fc2): Conv2d(4, 64, kernelSize=[1,1], stride=[1,1])',
        '  (sigmoid): Sigmoid()',
        ')',
      ].join('\n'),
    );
    se.dispose();
    expect(() => new nn.SqueezeExcite(8, { form: 'linear', norm: true })).toThrow(/a norm needs form 'conv'/);
    cz.tidy(() => {
      const m = new nn.SqueezeExcite(16);
      expect(() => m.forward(cz.randn([1, 8, 2, 2]))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
      m.dispose();
    });
  });
  test('EcaModule: kernel from the channels, odd kernels only, keys conv.weight [1, 1, k]', () => {
    const m = new nn.EcaModule(1024);
    expect([...m.stateShapes()]).toEqual([['conv.weight', [1, 1, 5]]]);
    expect(m.toString()).toContain('EcaModule(1024, kernelSize=5');
    m.dispose();
    expect(() => new nn.EcaModule(8, { kernelSize: 4 })).toThrow(/odd kernelSize/);
  });
  test("Conv1d: torch's default initialisation bounds and keys", () => {
    const m = new nn.Conv1d(4, 6, 3, { padding: 1 });
    expect([...m.stateShapes()]).toEqual([
      ['weight', [6, 4, 3]],
      ['bias', [6]],
    ]);
    const bound = 1 / Math.sqrt(12);
    expect(Math.max(...m.weight.toArray().map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...m.bias!.toArray().map(Math.abs))).toBeLessThanOrEqual(bound);
    cz.tidy(() => expect(m.forward(cz.randn([2, 4, 7])).shape).toEqual([2, 6, 7]));
    m.dispose();
  });
  test('StdConv2d defaults (no bias, eps 1e-6) and printing of the TF-same variants', () => {
    const s = new nn.StdConv2d(4, 8, 3, { stride: 2, padding: 'same' });
    expect(s.bias).toBeNull();
    expect(s.samePad).toBe(true);
    expect(s.toString()).toBe('StdConv2d(4, 8, kernelSize=[3,3], stride=[2,2], bias=false, padding=tf_same, eps=0.000001)');
    s.dispose();
    const p = new nn.MaxPool2dSame(3, { stride: 2 });
    expect(p.toString()).toBe('MaxPool2dSame(kernelSize=[3,3], stride=[2,2], padding=tf_same)');
  });
});

describe('float64 finite differences (eval mode: the ScaledStdConv2d cache must follow the perturbed weights)', () => {
  /** Worst |analytic - numeric| over every input and parameter element, for sum(m(x) * W). */
  function gradcheckModule(m: Module, inputShape: number[]): void {
    m.to('float64').eval();
    cz.tidy(() => {
      cz.manualSeed(11);
      const x = cz.randn(inputShape, { dtype: 'float64' });
      const w = cz.noGrad(() => cz.randn(m.forward(x).shape, { dtype: 'float64' }));
      const objectiveOf = (input: Tensor) => cz.tidy(() => m.forward(input).mul(w).sum());
      const xg = x.clone().requiresGrad_(true);
      m.zeroGrad();
      objectiveOf(xg).backward();
      const targets: [string, Tensor, Tensor][] = [
        ['input', x, xg.grad!],
        ...[...m.namedParameters()].map(([k, p]): [string, Tensor, Tensor] => [k, p, p.grad!]),
      ];
      const eps = 1e-6;
      for (const [name, t, grad] of targets) {
        const analytic = grad.toArray();
        for (let i = 0; i < t.numel(); i++) {
          const bump = (delta: number) =>
            cz.noGrad(() =>
              cz.tidy(() => {
                const d = new Float64Array(t.numel());
                d[i] = delta;
                t.add_(cz.tensor(d, t.shape));
              }),
            );
          bump(eps);
          const up = cz.noGrad(() => objectiveOf(x).item());
          bump(-2 * eps);
          const down = cz.noGrad(() => objectiveOf(x).item());
          bump(eps);
          const numeric = (up - down) / (2 * eps);
          expect(Math.abs(analytic[i] - numeric), `${name}[${i}]: analytic ${analytic[i]}, numeric ${numeric}`).toBeLessThan(1e-5 + 1e-3 * Math.abs(numeric));
        }
      }
    });
    m.dispose();
  }
  test('ScaledStdConv2d (weight, bias, gain)', () =>
    gradcheckModule(new nn.ScaledStdConv2d(3, 2, 3, { gamma: 1.3, stride: 2, padding: 'same' }), [1, 3, 5, 4]));
  test('StdConv2d', () => gradcheckModule(new nn.StdConv2d(2, 3, 3, { eps: 1e-5 }), [1, 2, 4, 4]));
  test('SqueezeExcite with hard-sigmoid gate and bn', () =>
    gradcheckModule(new nn.SqueezeExcite(8, { rdChannels: 3, norm: true, act: 'silu', gate: 'hardsigmoid' }), [2, 8, 2, 2]));
  test('EcaModule', () => gradcheckModule(new nn.EcaModule(16, { kernelSize: 3 }), [2, 16, 2, 1]));
  test('ConvNormAct with gelu_tanh', () => gradcheckModule(new nn.ConvNormAct(2, 3, 3, { act: 'gelu_tanh', stride: 2 }), [1, 2, 5, 5]));
  test('NormActConv with elu', () => gradcheckModule(new nn.NormActConv(3, 2, 1, { act: 'elu' }), [2, 3, 2, 2]));
});
