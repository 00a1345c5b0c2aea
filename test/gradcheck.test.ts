// Gradient check: for every bound differentiable op, the gradient that libtorch's autograd returns
// through convzoo equals central finite differences in float64. The checked scalar is
// sum(output * W) for fixed random weights W, so that every output element contributes.
import { describe, test, expect, beforeEach, afterEach } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';

const F = cz.F;

// ---- a deterministic source of input values, independent of libtorch's generator
let seed = 12345;
function rnd(): number {
  // xorshift32 in [0, 1)
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
}
function values(n: number, lo: number, hi: number): Float64Array {
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * rnd());
}

/** A float64 input of the given shape, uniform on [lo, hi). */
interface Input {
  shape: number[];
  values: Float64Array;
}
const inp = (shape: number[], lo = -2, hi = 2): Input => ({
  shape,
  values: values(
    shape.reduce((a, b) => a * b, 1),
    lo,
    hi,
  ),
});

interface CheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  reseed?: number;
}
type Outputs = Tensor | Tensor[] | { [k: string]: Tensor };

function outputsOf(r: Outputs): Tensor[] {
  const list = r instanceof cz.Tensor ? [r] : Array.isArray(r) ? r : Object.values(r);
  return list.filter((t) => cz.isFloatingDType(t.dtype));
}

/**
 * Compares autograd's gradient of sum(fn(...xs) * W) with respect to each input with central differences.
 * Returns the worst |analytic - numeric| seen, for the record.
 */
function gradcheck(fn: (...xs: Tensor[]) => Outputs, inputs: Input[], opts: CheckOptions = {}): number {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3, reseed } = opts;
  const make = (vals: Float64Array[], grad: boolean) => vals.map((v, i) => cz.tensor(v, inputs[i].shape, { dtype: 'float64', requiresGrad: grad }));
  // Fixed output weights, one per float output, from the first evaluation's shapes.
  const weights: Input[] = cz.tidy(() => {
    if (reseed !== undefined) cz.manualSeed(reseed);
    return outputsOf(
      cz.noGrad(() =>
        fn(
          ...make(
            inputs.map((x) => x.values),
            false,
          ),
        ),
      ),
    ).map((o) => inp(o.shape, -1, 1));
  });
  expect(weights.length, 'the op returned no floating output').toBeGreaterThan(0);
  const objective = (outs: Outputs): Tensor => {
    const os = outputsOf(outs);
    expect(os.length).toBe(weights.length);
    return os.map((o, i) => o.mul(cz.tensor(weights[i].values, weights[i].shape, { dtype: 'float64' })).sum()).reduce((a, b) => a.add(b));
  };
  const evaluate = (vals: Float64Array[]): number =>
    cz.tidy(() =>
      cz.noGrad(() => {
        if (reseed !== undefined) cz.manualSeed(reseed);
        return objective(fn(...make(vals, false))).item();
      }),
    );
  const analytic: Float64Array[] = cz.tidy(() => {
    const xs = make(
      inputs.map((x) => x.values),
      true,
    );
    if (reseed !== undefined) cz.manualSeed(reseed);
    const out = fn(...xs);
    for (const o of outputsOf(out)) expect(o.dtype, 'a float64 op must give float64').toBe('float64');
    objective(out).backward();
    return xs.map((x) => {
      const g = x.grad;
      return g ? (g.data() as Float64Array) : new Float64Array(x.numel());
    });
  });
  let worst = 0;
  const vals = inputs.map((x) => Float64Array.from(x.values));
  for (let k = 0; k < vals.length; k++) {
    const v = vals[k];
    for (let i = 0; i < v.length; i++) {
      const x0 = v[i];
      v[i] = x0 + eps;
      const up = evaluate(vals);
      v[i] = x0 - eps;
      const down = evaluate(vals);
      v[i] = x0;
      const numeric = (up - down) / (2 * eps);
      const diff = Math.abs(analytic[k][i] - numeric);
      worst = Math.max(worst, diff);
      if (diff > atol + rtol * Math.abs(numeric)) {
        throw new Error(`gradient of input ${k} element ${i}: analytic ${analytic[k][i]}, numeric ${numeric}`);
      }
    }
  }
  return worst;
}

let live = 0;
beforeEach(() => {
  live = cz.memory().tensors;
  seed = 12345;
});
afterEach(() => {
  expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
});

type Case = [name: string, fn: (...xs: Tensor[]) => Outputs, inputs: () => Input[], opts?: CheckOptions];
const run = (cases: Case[]) =>
  test.each(cases)('%s', (_name, fn, inputs, opts) => {
    gradcheck(fn, inputs(), opts);
  });

// Away from kinks: values in +-[0.1, 2] with random sign.
const awayFromZero = (shape: number[]): Input => {
  const x = inp(shape, 0.1, 2);
  for (let i = 0; i < x.values.length; i++) if (rnd() < 0.5) x.values[i] = -x.values[i];
  return x;
};
const long = (vals: number[]) => cz.tensor(vals, undefined, { dtype: 'int64' });

describe('convolution and linear', () => {
  run([
    ['conv2d', (x, w, b) => F.conv2d(x, w, b), () => [inp([2, 3, 5, 5]), inp([4, 3, 3, 3]), inp([4])]],
    ['conv2d stride 2 padding 1', (x, w, b) => F.conv2d(x, w, b, { stride: 2, padding: 1 }), () => [inp([1, 2, 6, 6]), inp([3, 2, 3, 3]), inp([3])]],
    ['conv2d asymmetric stride/padding', (x, w) => F.conv2d(x, w, null, { stride: [2, 1], padding: [0, 2] }), () => [inp([1, 2, 5, 4]), inp([2, 2, 3, 2])]],
    ['conv2d dilation 2', (x, w, b) => F.conv2d(x, w, b, { dilation: 2, padding: 2 }), () => [inp([1, 2, 6, 6]), inp([2, 2, 3, 3]), inp([2])]],
    ['conv2d groups 2', (x, w, b) => F.conv2d(x, w, b, { groups: 2, padding: 1 }), () => [inp([2, 4, 4, 4]), inp([6, 2, 3, 3]), inp([6])]],
    ['conv2d depthwise', (x, w) => F.conv2d(x, w, null, { groups: 3, padding: 1, stride: 2 }), () => [inp([1, 3, 5, 5]), inp([3, 1, 3, 3])]],
    ['conv2d padding same', (x, w) => F.conv2d(x, w, null, { padding: 'same' }), () => [inp([1, 2, 4, 5]), inp([2, 2, 3, 3])]],
    ['conv2d 1x1', (x, w, b) => F.conv2d(x, w, b), () => [inp([2, 3, 3, 3]), inp([4, 3, 1, 1]), inp([4])]],
    ['linear', (x, w, b) => F.linear(x, w, b), () => [inp([3, 5]), inp([4, 5]), inp([4])]],
    ['linear without bias, 3-d input', (x, w) => F.linear(x, w), () => [inp([2, 3, 5]), inp([4, 5])]],
  ]);
});

describe('pooling', () => {
  run([
    ['maxPool2d', (x) => F.maxPool2d(x, 2), () => [inp([2, 2, 4, 4])]],
    ['maxPool2d k3 s2 p1', (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }), () => [inp([1, 2, 7, 7])]],
    ['maxPool2d ceilMode', (x) => F.maxPool2d(x, 3, { stride: 2, ceilMode: true }), () => [inp([1, 2, 6, 6])]],
    ['maxPool2d dilation', (x) => F.maxPool2d(x, 2, { stride: 1, dilation: 2 }), () => [inp([1, 1, 5, 5])]],
    ['maxPool2dWithIndices', (x) => F.maxPool2dWithIndices(x, 2), () => [inp([1, 2, 4, 4])]],
    ['avgPool2d', (x) => F.avgPool2d(x, 2), () => [inp([2, 2, 4, 4])]],
    ['avgPool2d k3 s2 p1 countIncludePad=false', (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), () => [inp([1, 2, 5, 5])]],
    ['avgPool2d ceilMode', (x) => F.avgPool2d(x, 2, { ceilMode: true }), () => [inp([1, 1, 5, 5])]],
    ['avgPool2d divisorOverride', (x) => F.avgPool2d(x, 2, { divisorOverride: 3 }), () => [inp([1, 1, 4, 4])]],
    ['adaptiveAvgPool2d 1', (x) => F.adaptiveAvgPool2d(x, 1), () => [inp([2, 3, 3, 3])]],
    ['adaptiveAvgPool2d 5->3 (overlapping bins)', (x) => F.adaptiveAvgPool2d(x, [3, 2]), () => [inp([1, 2, 5, 5])]],
    ['adaptiveMaxPool2d', (x) => F.adaptiveMaxPool2d(x, [2, 3]), () => [inp([1, 2, 5, 5])]],
  ]);
});

describe('normalisation', () => {
  run([
    [
      'batchNorm training (batch statistics)',
      (x, w, b) => F.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
      () => [inp([3, 2, 3, 3]), inp([2], 0.5, 1.5), inp([2])],
    ],
    [
      'batchNorm training, running stats updated',
      (x, w, b) => {
        const rm = cz.zeros([2], { dtype: 'float64' }),
          rv = cz.ones([2], { dtype: 'float64' });
        return F.batchNorm(x, rm, rv, { weight: w, bias: b, training: true, momentum: 0.3 });
      },
      () => [inp([2, 2, 2, 3]), inp([2], 0.5, 1.5), inp([2])],
    ],
    [
      'batchNorm eval (running statistics)',
      (x, w, b) => {
        const rm = cz.tensor([0.5, -0.25], undefined, { dtype: 'float64' }),
          rv = cz.tensor([2, 0.5], undefined, { dtype: 'float64' });
        return F.batchNorm(x, rm, rv, { weight: w, bias: b, training: false });
      },
      () => [inp([2, 2, 3, 3]), inp([2]), inp([2])],
    ],
    ['batchNorm without affine', (x) => F.batchNorm(x, null, null, { training: true, eps: 1e-3 }), () => [inp([4, 3, 2, 2])]],
    ['layerNorm', (x, w, b) => F.layerNorm(x, [3, 4], { weight: w, bias: b }), () => [inp([2, 3, 4]), inp([3, 4]), inp([3, 4])]],
    ['layerNorm without affine', (x) => F.layerNorm(x, [5]), () => [inp([3, 5])]],
    ['groupNorm', (x, w, b) => F.groupNorm(x, 2, { weight: w, bias: b }), () => [inp([2, 4, 3, 3]), inp([4]), inp([4])]],
    ['groupNorm 1 group', (x) => F.groupNorm(x, 1), () => [inp([2, 3, 2, 2])]],
    ['localResponseNorm size 3', (x) => F.localResponseNorm(x, 3, { alpha: 0.1, beta: 0.75, k: 2 }), () => [inp([1, 5, 2, 2])]],
    ['localResponseNorm size 2 (even)', (x) => F.localResponseNorm(x, 2), () => [inp([2, 4, 2, 2])]],
  ]);
});

describe('activations', () => {
  const act = (name: string, fn: (x: Tensor) => Tensor): Case => [name, fn, () => [awayFromZero([3, 7])]];
  run([
    act('relu', F.relu),
    act('relu6', (x) => F.relu6(x.mul(4))),
    act('hardtanh', (x) => F.hardtanh(x, { min: -0.5, max: 1.5 })),
    act('leakyRelu', (x) => F.leakyRelu(x, { negativeSlope: 0.2 })),
    act('elu', (x) => F.elu(x, { alpha: 0.7 })),
    act('gelu', F.gelu),
    act('gelu tanh', (x) => F.gelu(x, { approximate: 'tanh' })),
    act('silu', F.silu),
    act('mish', F.mish),
    act('hardswish', (x) => F.hardswish(x.mul(2.5))),
    act('hardsigmoid', (x) => F.hardsigmoid(x.mul(2.5))),
    act('sigmoid', F.sigmoid),
    act('tanh', F.tanh),
    act('softplus', (x) => F.softplus(x, { beta: 2, threshold: 3 })),
    act('Tensor.relu', (x) => x.relu()),
    act('Tensor.sigmoid', (x) => x.sigmoid()),
    act('Tensor.tanh', (x) => x.tanh()),
    ['softmax', (x) => F.softmax(x, { dim: 1 }), () => [inp([3, 5])]],
    ['softmax dim 0', (x) => F.softmax(x, { dim: 0 }), () => [inp([3, 2, 2])]],
    ['logSoftmax', (x) => F.logSoftmax(x), () => [inp([3, 5])]],
    ['Tensor.softmax/logSoftmax', (x) => [x.softmax(-1), x.logSoftmax(0)], () => [inp([2, 4])]],
    ['channelShuffle', (x) => F.channelShuffle(x, 2), () => [inp([1, 4, 2, 2])]],
    ['dropout (fixed seed)', (x) => F.dropout(x, { p: 0.3 }), () => [inp([4, 6])], { reseed: 7 }],
    ['dropout2d (fixed seed)', (x) => F.dropout2d(x, { p: 0.5 }), () => [inp([2, 4, 2, 2])], { reseed: 3 }],
  ]);
});

describe('losses', () => {
  run([
    ['crossEntropy', (x) => F.crossEntropy(x, long([0, 3, 1])), () => [inp([3, 4])]],
    ['crossEntropy labelSmoothing', (x) => F.crossEntropy(x, long([0, 3, 1]), { labelSmoothing: 0.1 }), () => [inp([3, 4])]],
    [
      'crossEntropy weight',
      (x) => F.crossEntropy(x, long([0, 3, 1, 1]), { weight: cz.tensor([1, 2, 0.5, 3], undefined, { dtype: 'float64' }) }),
      () => [inp([4, 4])],
    ],
    [
      'crossEntropy weight + labelSmoothing',
      (x) => F.crossEntropy(x, long([2, 0, 1]), { weight: cz.tensor([0.2, 1, 2], undefined, { dtype: 'float64' }), labelSmoothing: 0.2 }),
      () => [inp([3, 3])],
    ],
    ['crossEntropy reduction sum', (x) => F.crossEntropy(x, long([1, 2]), { reduction: 'sum' }), () => [inp([2, 3])]],
    ['crossEntropy reduction none', (x) => F.crossEntropy(x, long([1, 2, 0]), { reduction: 'none' }), () => [inp([3, 3])]],
    ['crossEntropy ignoreIndex', (x) => F.crossEntropy(x, long([1, -100, 0]), {}), () => [inp([3, 3])]],
    [
      'crossEntropy spatial (N, C, H, W)',
      (x) =>
        F.crossEntropy(
          x,
          cz.tensor(
            [
              [
                [0, 1],
                [2, 1],
              ],
            ],
            undefined,
            { dtype: 'int64' },
          ),
        ),
      () => [inp([1, 3, 2, 2])],
    ],
    ['crossEntropy probability targets', (x, p) => F.crossEntropy(x, p.softmax(1)), () => [inp([2, 3]), inp([2, 3])]],
    ['nllLoss', (x) => F.nllLoss(x.logSoftmax(1), long([2, 0, 1])), () => [inp([3, 3])]],
    ['nllLoss weight', (x) => F.nllLoss(x, long([2, 0, 1]), { weight: cz.tensor([1, 2, 3], undefined, { dtype: 'float64' }) }), () => [inp([3, 3])]],
    ['mseLoss', (x, y) => F.mseLoss(x, y), () => [inp([3, 4]), inp([3, 4])]],
    ['mseLoss sum', (x, y) => F.mseLoss(x, y, { reduction: 'sum' }), () => [inp([5]), inp([5])]],
    [
      'binaryCrossEntropyWithLogits',
      (x) =>
        F.binaryCrossEntropyWithLogits(
          x,
          cz.tensor(
            [
              [0, 1, 1],
              [1, 0, 0.5],
            ],
            undefined,
            { dtype: 'float64' },
          ),
        ),
      () => [inp([2, 3])],
    ],
  ]);
});

describe('padding and resizing', () => {
  run([
    ['pad constant', (x) => F.pad(x, [1, 2, 0, 1], { value: 0.5 }), () => [inp([1, 2, 3, 3])]],
    ['pad constant negative (crop)', (x) => F.pad(x, [-1, 1]), () => [inp([2, 4])]],
    ['pad reflect', (x) => F.pad(x, [1, 2, 2, 1], { mode: 'reflect' }), () => [inp([1, 2, 4, 4])]],
    ['pad replicate', (x) => F.pad(x, [2, 0, 1, 1], { mode: 'replicate' }), () => [inp([1, 1, 3, 3])]],
    ['interpolate nearest x2', (x) => F.interpolate(x, { scaleFactor: 2 }), () => [inp([1, 2, 2, 3])]],
    ['interpolate nearest to size', (x) => F.interpolate(x, { size: [5, 3] }), () => [inp([1, 1, 3, 4])]],
    ['interpolate bilinear', (x) => F.interpolate(x, { size: [5, 4], mode: 'bilinear' }), () => [inp([1, 2, 3, 3])]],
    ['interpolate bilinear alignCorners', (x) => F.interpolate(x, { scaleFactor: 2, mode: 'bilinear', alignCorners: true }), () => [inp([1, 1, 3, 2])]],
    ['interpolate bilinear downscale', (x) => F.interpolate(x, { size: 2, mode: 'bilinear' }), () => [inp([1, 1, 5, 5])]],
    ['interpolate bilinear non-integer scale', (x) => F.interpolate(x, { scaleFactor: [1.5, 0.7], mode: 'bilinear' }), () => [inp([1, 1, 4, 5])]],
    ['interpolate nearest non-integer scale', (x) => F.interpolate(x, { scaleFactor: 1.7 }), () => [inp([1, 1, 3, 4])]],
  ]);
});

describe('arithmetic', () => {
  run([
    ['add', (a, b) => a.add(b), () => [inp([2, 3]), inp([2, 3])]],
    ['add broadcast', (a, b) => a.add(b), () => [inp([2, 3]), inp([3])]],
    ['add alpha', (a, b) => a.add(b, { alpha: -2.5 }), () => [inp([2, 3]), inp([2, 1])]],
    ['add scalar', (a) => a.add(1.5), () => [inp([4])]],
    ['sub', (a, b) => a.sub(b), () => [inp([3, 1]), inp([1, 4])]],
    ['mul', (a, b) => a.mul(b), () => [inp([2, 3]), inp([2, 3])]],
    ['mul scalar', (a) => a.mul(-3), () => [inp([4])]],
    ['div', (a, b) => a.div(b), () => [inp([2, 3]), awayFromZero([2, 3])]],
    ['pow scalar', (a) => a.pow(3), () => [inp([5])]],
    ['pow fractional', (a) => a.pow(0.7), () => [inp([5], 0.5, 2)]],
    ['pow tensor exponent', (a, b) => a.pow(b), () => [inp([4], 0.5, 2), inp([4])]],
    ['matmul', (a, b) => a.matmul(b), () => [inp([3, 4]), inp([4, 2])]],
    ['matmul batched broadcast', (a, b) => a.matmul(b), () => [inp([2, 3, 4]), inp([4, 2])]],
    ['matmul vector', (a, b) => a.matmul(b), () => [inp([3, 4]), inp([4])]],
    ['mm', (a, b) => a.mm(b), () => [inp([2, 3]), inp([3, 2])]],
    ['bmm', (a, b) => a.bmm(b), () => [inp([2, 2, 3]), inp([2, 3, 2])]],
    ['maximum', (a, b) => a.maximum(b), () => [inp([6]), inp([6])]],
    ['minimum', (a, b) => a.minimum(b), () => [inp([6]), inp([6])]],
    ['clamp', (a) => a.clamp({ min: -0.55, max: 0.95 }), () => [inp([8])]],
    ['where', (a, b) => cz.where(cz.tensor([true, false, true, false]), a, b), () => [inp([4]), inp([4])]],
    ['where scalar', (a) => cz.where(a.gt(0), a, 0), () => [awayFromZero([5])]],
    ['maskedFill', (a) => a.maskedFill(cz.tensor([false, true, false]), 2), () => [inp([3])]],
  ]);
  const un = (name: string, fn: (x: Tensor) => Tensor, lo = -2, hi = 2): Case => [name, fn, () => [inp([2, 4], lo, hi)]];
  run([
    un('neg', (x) => x.neg()),
    ['abs', (x) => x.abs(), () => [awayFromZero([6])]],
    un('exp', (x) => x.exp()),
    un('log', (x) => x.log(), 0.2, 3),
    un('log1p', (x) => x.log1p(), -0.5, 3),
    un('sqrt', (x) => x.sqrt(), 0.2, 3),
    un('rsqrt', (x) => x.rsqrt(), 0.3, 3),
    un('reciprocal', (x) => x.reciprocal(), 0.3, 3),
    un('square', (x) => x.square()),
    un('sin', (x) => x.sin()),
    un('cos', (x) => x.cos()),
    un('erf', (x) => x.erf()),
    un('erfinv', (x) => x.erfinv(), -0.9, 0.9),
  ]);
});

describe('reductions', () => {
  run([
    ['sum', (x) => x.sum(), () => [inp([2, 3])]],
    ['sum dims keepdim', (x) => x.sum([0, 2], { keepdim: true }), () => [inp([2, 3, 2])]],
    ['mean', (x) => x.mean(1), () => [inp([2, 3])]],
    ['var', (x) => x.var(1), () => [inp([2, 4])]],
    ['var correction 0', (x) => x.var(undefined, { correction: 0 }), () => [inp([5])]],
    ['std', (x) => x.std(0, { keepdim: true }), () => [inp([4, 2])]],
    ['norm', (x) => x.norm(), () => [inp([2, 3])]],
    ['norm p=1 dim', (x) => x.norm(1, 1), () => [awayFromZero([2, 3])]],
    ['amax', (x) => x.amax(1), () => [inp([3, 4])]],
    ['amin', (x) => x.amin([0, 1]), () => [inp([3, 4])]],
    ['max', (x) => x.max(), () => [inp([3, 4])]],
    ['max dim', (x) => x.max(1).values, () => [inp([3, 4])]],
    ['min dim keepdim', (x) => x.min(0, { keepdim: true }).values, () => [inp([3, 4])]],
    ['prod', (x) => x.prod(1), () => [inp([2, 3])]],
    ['prod all', (x) => x.prod(), () => [inp([4], 0.5, 1.5)]],
    ['logsumexp', (x) => x.logsumexp(1), () => [inp([2, 5])]],
    ['cumsum', (x) => x.cumsum(1), () => [inp([2, 4])]],
    ['topk values', (x) => x.topk(2).values, () => [inp([3, 5])]],
    ['sort values', (x) => x.sort({ descending: true }).values, () => [inp([2, 5])]],
  ]);
});

describe('shape ops', () => {
  run([
    ['view', (x) => x.view(3, 4), () => [inp([2, 6])]],
    ['reshape of a non-contiguous tensor', (x) => x.t().reshape(-1), () => [inp([3, 4])]],
    ['permute', (x) => x.permute(2, 0, 1), () => [inp([2, 3, 4])]],
    ['transpose', (x) => x.transpose(0, 2), () => [inp([2, 3, 2])]],
    ['flatten', (x) => x.flatten(1), () => [inp([2, 3, 2])]],
    ['narrow', (x) => x.narrow(1, 1, 2), () => [inp([2, 4])]],
    ['select', (x) => x.select(0, 1), () => [inp([3, 2])]],
    ['slice with step', (x) => x.slice(1, 0, 5, 2), () => [inp([2, 5])]],
    ['indexSelect (repeated indices accumulate)', (x) => x.indexSelect(0, long([2, 0, 2])), () => [inp([3, 2])]],
    ['index (boolean mask)', (x) => x.index(cz.tensor([true, false, true])), () => [inp([3, 2])]],
    [
      'gather',
      (x) =>
        x.gather(
          1,
          cz.tensor(
            [
              [0, 0],
              [2, 1],
            ],
            undefined,
            { dtype: 'int64' },
          ),
        ),
      () => [inp([2, 3])],
    ],
    ['scatter', (x, s) => x.scatter(1, cz.tensor([[2], [0]], undefined, { dtype: 'int64' }), s), () => [inp([2, 3]), inp([2, 1])]],
    ['expand', (x) => x.expand(3, 2, 4), () => [inp([2, 1])]],
    ['repeat', (x) => x.repeat(2, 3), () => [inp([2, 2])]],
    ['flip', (x) => x.flip([0, 1]), () => [inp([2, 3])]],
    ['roll', (x) => x.roll(1, 1), () => [inp([2, 3])]],
    ['unsqueeze/squeeze', (x) => x.unsqueeze(1).squeeze(), () => [inp([3, 1])]],
    ['contiguous/clone', (x) => x.t().contiguous().clone(), () => [inp([2, 3])]],
    ['asStrided', (x) => x.asStrided([2, 2], [1, 2]), () => [inp([5])]],
    ['cat', (a, b) => cz.cat([a, b], 1), () => [inp([2, 2]), inp([2, 3])]],
    ['stack', (a, b) => cz.stack([a, b], 1), () => [inp([2, 3]), inp([2, 3])]],
    ['split', (x) => x.split(2, 1), () => [inp([2, 5])]],
    ['split sizes', (x) => x.split([1, 3], 0), () => [inp([4, 2])]],
    ['chunk', (x) => cz.chunk(x, 3, 0), () => [inp([5, 2])]],
    ['to float32 and back', (x) => x.to('float32').to('float64'), () => [inp([3])], { eps: 1e-3, atol: 1e-4, rtol: 1e-3 }],
  ]);
});

describe('the helper itself', () => {
  test('notices a wrong gradient', () => {
    // A custom "op" whose forward detaches part of the computation: autograd misses that part.
    const bad = (x: Tensor) => x.mul(x.detach());
    expect(() => gradcheck(bad, [inp([3])])).toThrow(/analytic/);
  });
  test('reports a small worst error for a smooth op', () => {
    expect(gradcheck((x) => x.exp(), [inp([4])])).toBeLessThan(1e-7);
  });
});
