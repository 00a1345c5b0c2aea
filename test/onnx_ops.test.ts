// Each ONNX op mapping against libtorch on its edge cases: a small function of one tensor is traced,
// written as ONNX, run in onnxruntime-node and compared with the same function run by convzoo on a
// random input (a different input and batch from the one traced, so nothing is baked in).
import { describe, test, expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import * as cz from '../src/index.js';
import { traceToOnnx } from '../src/onnx/export.js';
import { encodeOnnx } from '../src/onnx/serialize.js';
import { OP_MAPPINGS } from '../src/onnx/op_map.js';

// Which mappings the tests below exercise: the last test checks that every one of them is.
const exercised = new Set<string>();
for (const [op, mapping] of Object.entries(OP_MAPPINGS)) {
  OP_MAPPINGS[op] = (g, args, out) => {
    exercised.add(op);
    return mapping(g, args, out);
  };
}

const F = cz.F;

class Fn extends cz.nn.Module {
  constructor(private readonly fn: (x: cz.Tensor) => cz.Tensor) {
    super();
  }
  forward(x: cz.Tensor): cz.Tensor {
    return this.fn(x);
  }
}

interface Case {
  /** Input shape without the batch. */
  shape: number[];
  fn: (x: cz.Tensor) => cz.Tensor;
  opset?: number;
  /** The op types the graph must hold (the mapping chosen, not a fallback). */
  expectOps?: string[];
}

async function compare(c: Case, batch = 3): Promise<{ err: number; ops: string[] }> {
  const module = new Fn(c.fn);
  const onnx = traceToOnnx(module, c.fn, c.shape, { opset: c.opset ?? 17, batch: 'dynamic', foldBatchNorm: true });
  const session = await ort.InferenceSession.create(encodeOnnx(onnx).model);
  const x = cz.randn([batch, ...c.shape]);
  const want = cz.noGrad(() => c.fn(x));
  const got = await session.run({ input: new ort.Tensor('float32', x.data() as Float32Array, [batch, ...c.shape]) });
  const y = got.logits;
  expect(Array.from(y.dims)).toEqual(want.shape);
  const w = want.data() as Float32Array;
  const g = y.data as Float32Array;
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < w.length; i++) {
    diff = Math.max(diff, Math.abs(w[i] - g[i]));
    scale = Math.max(scale, Math.abs(w[i]));
  }
  x.dispose();
  want.dispose();
  await session.release();
  return { err: diff / scale, ops: onnx.graph.nodes.map((n) => n.opType) };
}

async function expectSame(c: Case, tol = 1e-5): Promise<void> {
  const { err, ops } = await compare(c);
  expect(err).toBeLessThan(tol);
  for (const op of c.expectOps ?? []) expect(ops).toContain(op);
}

describe('ONNX op mappings against libtorch', () => {
  describe('conv2d', () => {
    const w = (o: number, i: number, k: number) => cz.randn([o, i, k, k]);
    test.each([
      ['stride 2, padding 1', { stride: 2, padding: 1 }, 3, 1],
      ['dilation 2', { dilation: 2, padding: 2 }, 3, 1],
      ['groups 4', { groups: 4, padding: 1 }, 3, 4],
      ['depthwise', { groups: 8, padding: 1 }, 3, 8],
      ["'same' with an even kernel (asymmetric pads)", { padding: 'same' as const }, 4, 1],
      ["'valid'", { padding: 'valid' as const }, 3, 1],
    ])('%s', async (_name, opts, k, groups) => {
      const weight = w(8, 8 / groups, k);
      const bias = cz.randn([8]);
      await expectSame({ shape: [8, 9, 10], fn: (x) => F.conv2d(x, weight, bias, opts as cz.F.Conv2dOptions), expectOps: ['Conv'] });
      weight.dispose();
      bias.dispose();
    });
    test('asymmetric padding before a conv (TF "same" at an odd size)', async () => {
      const weight = w(4, 3, 3);
      await expectSame({ shape: [3, 11, 12], fn: (x) => F.conv2d(F.padSame(x, 3, { stride: 2 }), weight, null, { stride: 2 }), expectOps: ['Pad', 'Conv'] });
      weight.dispose();
    });
  });

  describe('pooling', () => {
    test.each([
      [7, 3, 2, 0, true],
      [8, 3, 2, 0, true],
      [8, 3, 2, 1, true],
      [9, 2, 2, 0, true],
      [10, 3, 3, 1, true],
      [8, 3, 2, 1, false],
    ])('max pool: size %i, kernel %i, stride %i, padding %i, ceil %s', async (n, k, s, p, ceil) => {
      await expectSame({ shape: [2, n, n + 1], fn: (x) => F.maxPool2d(x, k, { stride: s, padding: p, ceilMode: ceil }), expectOps: ['MaxPool'] });
    });
    test('max pool with dilation', async () => {
      await expectSame({ shape: [2, 11, 11], fn: (x) => F.maxPool2d(x, 3, { stride: 2, dilation: 2, padding: 1, ceilMode: true }) });
    });
    test.each([
      [7, 3, 2, 1, true, true],
      [7, 3, 2, 1, true, false],
      [8, 3, 2, 1, false, true],
      [8, 3, 2, 1, false, false],
      [8, 2, 2, 0, true, true],
      [9, 3, 2, 0, true, true],
      [6, 3, 1, 1, false, true],
    ])('avg pool: size %i, kernel %i, stride %i, padding %i, ceil %s, count_include_pad %s', async (n, k, s, p, ceil, cip) => {
      await expectSame({
        shape: [2, n, n + 2],
        fn: (x) => F.avgPool2d(x, k, { stride: s, padding: p, ceilMode: ceil, countIncludePad: cip }),
        expectOps: ['AveragePool'],
      });
    });
    test('avg pool with a divisor override', async () => {
      await expectSame({ shape: [2, 8, 8], fn: (x) => F.avgPool2d(x, 2, { stride: 2, divisorOverride: 3 }) });
    });
    test.each([
      [[1, 1], 'GlobalAveragePool'],
      [[2, 3], 'AveragePool'],
      [[12, 12], 'Resize'],
    ] as const)('adaptive average pool to %j', async (size, op) => {
      const n = op === 'Resize' ? [4, 6] : [6, 9];
      await expectSame({ shape: [3, n[0], n[1]], fn: (x) => F.adaptiveAvgPool2d(x, size as [number, number]), expectOps: [op] });
    });
    test('an adaptive pool with uneven windows is refused by name', async () => {
      await expect(compare({ shape: [3, 7, 7], fn: (x) => F.adaptiveAvgPool2d(x, 3) })).rejects.toThrow(
        /adaptive_avg_pool2d: output 3x3 from 7x7 has uneven windows/,
      );
    });
    test('global max pool', async () => {
      await expectSame({ shape: [3, 5, 6], fn: (x) => F.adaptiveMaxPool2d(x, 1), expectOps: ['GlobalMaxPool'] });
    });
  });

  describe('local response norm (the size and alpha convention)', () => {
    test.each([
      [5, 1e-4, 0.75, 2],
      [5, 0.5, 0.75, 1],
      [4, 0.3, 0.5, 1],
      [3, 1, 1, 0.5],
    ])('size %i, alpha %f, beta %f, k %f', async (size, alpha, beta, k) => {
      await expectSame({ shape: [7, 5, 4], fn: (x) => F.localResponseNorm(x.mul(3), size, { alpha, beta, k }) });
    });
  });

  describe('interpolation', () => {
    test.each([
      ['bilinear, align corners, up', { size: [13, 9], mode: 'bilinear', alignCorners: true }],
      ['bilinear, align corners, down', { size: [3, 4], mode: 'bilinear', alignCorners: true }],
      ['bilinear, half pixel, up', { size: [13, 9], mode: 'bilinear', alignCorners: false }],
      ['bilinear, half pixel, down', { size: [3, 2], mode: 'bilinear', alignCorners: false }],
      ['bilinear, scale factor 1.7', { scaleFactor: 1.7, mode: 'bilinear' }],
      ['nearest, up', { size: [14, 10], mode: 'nearest' }],
      ['nearest, uneven', { size: [11, 7], mode: 'nearest' }],
      ['nearest, scale factor 2', { scaleFactor: 2, mode: 'nearest' }],
    ] as const)('%s', async (_name, opts) => {
      await expectSame({ shape: [2, 7, 5], fn: (x) => F.interpolate(x, opts as cz.F.InterpolateOptions), expectOps: ['Resize'] });
    });
  });

  describe('padding', () => {
    test.each([
      ['constant', [1, 2, 0, 3]],
      ['reflect', [2, 1, 1, 2]],
      ['replicate', [0, 3, 2, 1]],
    ] as const)('%s, asymmetric', async (mode, pads) => {
      await expectSame({ shape: [2, 6, 5], fn: (x) => F.pad(x, pads, { mode, value: mode === 'constant' ? 0.5 : undefined }), expectOps: ['Pad'] });
    });
  });

  describe('shapes and layout', () => {
    test.each(['torchvision', 'megvii'] as const)('channel shuffle (%s)', async (variant) => {
      await expectSame({ shape: [12, 3, 2], fn: (x) => F.channelShuffle(x, 3, { variant }), expectOps: ['Reshape', 'Transpose'] });
    });
    test('flatten, linear, cat, chunk, mean, sum', async () => {
      const w = cz.randn([5, 24]);
      const b = cz.randn([5]);
      await expectSame({
        shape: [6, 2, 2],
        fn: (x) => {
          const [a, c] = x.chunk(2, 1);
          const joined = cz.cat([c, a.mul(2)], 1);
          const pooled = joined.mean([2, 3], { keepdim: true }).add(joined.sum([3], { keepdim: true }).mean([2], { keepdim: true }));
          return F.linear(pooled.flatten(1).repeat(1, 4), w, b);
        },
      });
      w.dispose();
      b.dispose();
    });
    test('linear on a 3-d input', async () => {
      const w = cz.randn([4, 5]);
      await expectSame({ shape: [3, 5], fn: (x) => F.linear(x, w) });
      w.dispose();
    });
  });

  describe('activations', () => {
    test.each([
      ['relu', (x: cz.Tensor) => F.relu(x), 'Relu'],
      ['relu6', (x: cz.Tensor) => F.relu6(x.mul(4)), 'Clip'],
      ['hardswish', (x: cz.Tensor) => F.hardswish(x.mul(4)), 'HardSwish'],
      ['hardsigmoid', (x: cz.Tensor) => F.hardsigmoid(x.mul(4)), 'HardSigmoid'],
      ['silu', (x: cz.Tensor) => F.silu(x), 'Sigmoid'],
      ['gelu', (x: cz.Tensor) => F.gelu(x), 'Erf'],
      ['gelu (tanh)', (x: cz.Tensor) => F.gelu(x, { approximate: 'tanh' }), 'Tanh'],
      ['mish', (x: cz.Tensor) => F.mish(x), 'Softplus'],
      ['leaky relu', (x: cz.Tensor) => F.leakyRelu(x, { negativeSlope: 0.2 }), 'LeakyRelu'],
      ['elu', (x: cz.Tensor) => F.elu(x, { alpha: 0.7 }), 'Elu'],
      ['softplus, beta 2', (x: cz.Tensor) => F.softplus(x, { beta: 2 }), 'Softplus'],
      ['sigmoid', (x: cz.Tensor) => F.sigmoid(x), 'Sigmoid'],
      ['softmax', (x: cz.Tensor) => F.softmax(x, { dim: 1 }), 'Softmax'],
    ])('%s', async (_name, fn, op) => {
      await expectSame({ shape: [4, 3, 3], fn, expectOps: [op] });
    });
    test('in-place ops rebind their value', async () => {
      await expectSame({
        shape: [4, 3, 3],
        fn: (x) => {
          const y = x.mul(2);
          y.relu_();
          return y.add(x);
        },
      });
    });
  });

  describe('batch norm', () => {
    test('folded into the conv before it, with its running statistics', async () => {
      const w = cz.randn([6, 3, 3, 3]);
      const [mean, variance, gamma, beta] = [cz.randn([6]), cz.rand([6]).add(0.5), cz.randn([6]), cz.randn([6])];
      const fn = (x: cz.Tensor) => F.batchNorm(F.conv2d(x, w, null, { padding: 1 }), mean, variance, { weight: gamma, bias: beta, training: false, eps: 1e-3 });
      const { err, ops } = await compare({ shape: [3, 8, 8], fn });
      expect(err).toBeLessThan(1e-5);
      expect(ops).toEqual(['Conv']);
      for (const t of [w, mean, variance, gamma, beta]) t.dispose();
    });
    test('kept as BatchNormalization when no conv feeds it', async () => {
      const [mean, variance] = [cz.randn([3]), cz.rand([3]).add(0.5)];
      const { err, ops } = await compare({ shape: [3, 4, 4], fn: (x) => F.batchNorm(x.mul(2), mean, variance, { training: false }) });
      expect(err).toBeLessThan(1e-5);
      expect(ops).toContain('BatchNormalization');
      mean.dispose();
      variance.dispose();
    });
  });

  test('a view or reshape to the shape a value already has adds no node (eval-mode drop path)', async () => {
    const same = await compare({ shape: [4, 5, 6], fn: (x) => F.relu(cz.F.dropPath(x, 0.2, { training: false }).reshape(-1, 4, 5, 6)) });
    expect(same.err).toBeLessThan(1e-6);
    expect(same.ops).toEqual(['Relu']);
    const other = await compare({ shape: [4, 5, 6], fn: (x) => F.relu(x.view(-1, 4, 30)) });
    expect(other.ops).toEqual(['Reshape', 'Relu']);
  });

  test('a concatenation of a concatenation on the same axis is one Concat (DPN dense path)', async () => {
    const nested = await compare({
      shape: [4, 5, 6],
      fn: (x) => F.relu(cz.cat([x.mul(2), cz.cat([x, x.add(1)], 1)], 1)),
    });
    expect(nested.err).toBeLessThan(1e-6);
    expect(nested.ops.filter((o) => o === 'Concat')).toHaveLength(1);
    // Kept apart when the inner result is used elsewhere or joins on another axis.
    const shared = await compare({
      shape: [4, 5, 6],
      fn: (x) => {
        const inner = cz.cat([x, x.add(1)], 1);
        return cz
          .cat([x.mul(2), inner], 1)
          .sum([1])
          .add(inner.sum([1]));
      },
    });
    expect(shared.err).toBeLessThan(1e-5);
    expect(shared.ops.filter((o) => o === 'Concat')).toHaveLength(2);
    const axes = await compare({ shape: [4, 5, 6], fn: (x) => cz.cat([x, cz.cat([x.narrow(2, 0, 2), x.narrow(2, 2, 3)], 2)], 1).flatten(1) });
    expect(axes.err).toBeLessThan(1e-6);
    expect(axes.ops.filter((o) => o === 'Concat')).toHaveLength(2);
  });

  describe('every other mapping', () => {
    const w2 = () => cz.randn([5, 5]);
    test.each([
      ['to_dtype (float64 and back)', (x: cz.Tensor) => x.to('float64').mul(2).to('float32')],
      ['clone, contiguous, detach, to cpu', (x: cz.Tensor) => x.clone().contiguous().detach().to('cpu').add(1)],
      ['view and reshape', (x: cz.Tensor) => x.view(x.shape[0], 5, -1).reshape(x.shape[0], -1)],
      ['permute and transpose', (x: cz.Tensor) => x.permute(0, 2, 1, 3).transpose(2, 3).contiguous().flatten(1)],
      ['narrow, select, slice with a step', (x: cz.Tensor) => x.narrow(1, 1, 3).select(2, 1).slice(2, 0, 5, 2).flatten(1)],
      ['unsqueeze and squeeze', (x: cz.Tensor) => x.unsqueeze(1).squeeze(1).flatten(1)],
      ['expand, repeat, flip', (x: cz.Tensor) => x.mean([3], { keepdim: true }).expand(x.shape[0], 5, 5, 4).repeat(1, 1, 1, 2).flip([3]).flatten(1)],
      [
        'stack and split',
        (x: cz.Tensor) =>
          cz
            .stack(
              cz.split(x, [2, 3], 1).map((t) => t.sum(1)),
              1,
            )
            .flatten(1),
      ],
      [
        'comparisons, where, masked_fill',
        (x: cz.Tensor) =>
          cz
            .where(x.gt(0).logicalAnd(x.lt(1)), x, x.mul(3))
            .maskedFill(x.le(-1).logicalOr(x.ge(2)), 0.5)
            .maskedFill(x.eq(0).logicalNot().logicalNot(), 7)
            .maskedFill(x.ne(x), 9),
      ],
      ['arithmetic', (x: cz.Tensor) => x.sub(1).div(3).pow(2).add(x, { alpha: 0.5 }).maximum(x).minimum(x.mul(2)).clamp({ min: -1, max: 2 })],
      [
        'unary maths',
        (x: cz.Tensor) =>
          x
            .neg()
            .abs()
            .add(0.1)
            .log()
            .exp()
            .sqrt()
            .rsqrt()
            .reciprocal()
            .add(x.sign())
            .add(x.floor())
            .add(x.ceil())
            .add(x.mul(3).round())
            .add(x.sin())
            .add(x.cos())
            .add(x.erf())
            .add(x.square())
            .add(x.abs().log1p()),
      ],
      ['relu, sigmoid, tanh', (x: cz.Tensor) => x.relu().add(x.sigmoid()).add(x.tanh())],
      [
        'in place arithmetic',
        (x: cz.Tensor) => {
          const y = x.mul(1);
          return y.add_(1).sub_(0.5).mul_(2).div_(3).add_(x, { alpha: 2 }).maximum_(x).neg_().exp_().sqrt_().clamp_({ min: 0, max: 3 }).sigmoid_();
        },
      ],
      [
        'in place activations',
        (x: cz.Tensor) => {
          const y = x.mul(4);
          return y
            .hardswish_()
            .add(x.mul(4).hardsigmoid_())
            .add(F.relu6(x.mul(4)))
            .add(x.mul(4).relu6_());
        },
      ],
      [
        'sum, amax, amin, max and min over a dim, argmax',
        (x: cz.Tensor) =>
          x
            .sum([1])
            .add(x.amax([1]))
            .add(x.amin(1))
            .add(x.max(1).values)
            .add(x.min(1).values)
            .add(x.argmax(1).to('float32')),
      ],
      [
        'matmul, mm, bmm',
        (x: cz.Tensor) => {
          const w = cz.ones([4, 4]).mul(0.5);
          const flat = x.reshape(-1, 4);
          const rows = x.reshape(-1, 5, 4);
          return x
            .matmul(w)
            .add(flat.mm(w).view(...x.shape))
            .add(rows.bmm(rows.transpose(1, 2)).sum([2]).view(x.shape[0], 5, 5, 1));
        },
      ],
      ['conv1d', (x: cz.Tensor) => F.conv1d(x.flatten(2), cz.ones([3, 5, 3]).mul(0.1), null, { padding: 1, stride: 2 })],
      ['max pool with indices', (x: cz.Tensor) => F.maxPool2dWithIndices(x, 2).output],
      ['layer norm', (x: cz.Tensor) => F.layerNorm(x, [5, 4], { eps: 1e-5 })],
      ['group norm', (x: cz.Tensor) => F.groupNorm(x.reshape(x.shape[0], 5, 5, 4), 5, { weight: cz.ones([5]).mul(2), bias: cz.ones([5]) })],
      [
        'dropout, feature dropout and hardtanh in eval',
        (x: cz.Tensor) => F.hardtanh(F.dropout2d(F.dropout(x, { training: false }), { training: false }), { min: -0.5, max: 0.5 }),
      ],
      ['log softmax', (x: cz.Tensor) => F.logSoftmax(x, { dim: 2 })],
    ] as [string, (x: cz.Tensor) => cz.Tensor][])('%s', async (_name, fn) => {
      await expectSame({ shape: [5, 5, 4], fn });
    });
    test('linear on a 2-d input', async () => {
      const w = w2();
      await expectSame({ shape: [5], fn: (x) => F.linear(x, w, cz.ones([5])) });
      w.dispose();
    });
    test('every mapping of op_map.ts has been exercised against libtorch', () => {
      expect(Object.keys(OP_MAPPINGS).filter((op) => !exercised.has(op))).toEqual([]);
    });
  });

  describe('what cannot be exported is refused by name', () => {
    test('an op without a mapping', async () => {
      await expect(compare({ shape: [4], fn: (x) => x.topk(2).values })).rejects.toMatchObject({
        code: 'E_UNSUPPORTED',
        message: expect.stringMatching(/op 'topk'/),
      });
    });
    test('a forward that reads values', async () => {
      await expect(compare({ shape: [4], fn: (x) => x.mul(x.sum().item() as number) })).rejects.toThrow(/reads tensor values into JavaScript \(item\)/);
    });
    test('dropout in training mode', async () => {
      await expect(compare({ shape: [4], fn: (x) => F.dropout(x, { p: 0.5, training: true }) })).rejects.toThrow(/dropout in training mode/);
    });
    test('the ops table is restored after a failed trace', async () => {
      await expect(compare({ shape: [4], fn: (x) => x.topk(2).values })).rejects.toThrow();
      const t = cz.tensor(new Float32Array([1, -2, 3]));
      expect(F.relu(t).toArray()).toEqual([1, 0, 3]);
      t.dispose();
    });
  });
});
