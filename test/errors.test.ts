// Hundreds of bad calls: each must throw a ConvzooError with a code and a message that names the op,
// leak nothing, and leave the process working.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor, ErrorCode } from '../src/index.js';

const F = cz.F;
const nn = cz.nn;

const CODES: ErrorCode[] = [
  'E_SHAPE',
  'E_DTYPE',
  'E_OOM',
  'E_ARG',
  'E_TORCH',
  'E_DISPOSED',
  'E_STATE_DICT',
  'E_FORMAT',
  'E_UNSAFE_PICKLE',
  'E_IO',
  'E_HASH',
  'E_NOT_FOUND',
  'E_IMAGE',
  'E_DATA',
  'E_NATIVE',
];

/** [label, the bad call, accepted codes (undefined: any valid code), text the message must contain] */
type Bad = [label: string, call: () => unknown, codes: ErrorCode[] | undefined, op: string];
const cases: Bad[] = [];
const bad = (label: string, call: () => unknown, codes: ErrorCode | ErrorCode[] | undefined, op: string) =>
  cases.push([label, call, typeof codes === 'string' ? [codes] : codes, op]);

// Inputs made fresh inside each case's tidy().
const f32 = (...shape: number[]) => cz.randn(shape);
const img = () => cz.randn([2, 3, 8, 8]);
const i64 = (...shape: number[]) => cz.zeros(shape, { dtype: 'int64' });
const disposed = () => {
  const t = cz.ones([2, 3]);
  t.dispose();
  return t;
};

// ---- disposed tensors: every method names itself
const unaryMethods = [
  'neg',
  'abs',
  'exp',
  'log',
  'log1p',
  'sqrt',
  'rsqrt',
  'square',
  'reciprocal',
  'sign',
  'floor',
  'ceil',
  'round',
  'sin',
  'cos',
  'erf',
  'erfinv',
  'logicalNot',
  'isfinite',
  'isnan',
  'relu',
  'sigmoid',
  'tanh',
  'clone',
  'contiguous',
  'detach',
  'float',
  'double',
  'long',
  'sum',
  'mean',
  'var',
  'std',
  'norm',
  'all',
  'any',
  'argmax',
  'argmin',
  'flatten',
  'squeeze',
  'isContiguous',
  'toArray',
  'item',
  'bytes',
  'data',
  'numel',
  'backward',
  'zero_',
  'relu_',
  'sqrt_',
  'exp_',
  'neg_',
  'sigmoid_',
  'erfinv_',
  'normal_',
  'uniform_',
  'bernoulli_',
  'requiresGrad_',
  't',
] as const;
for (const m of unaryMethods) {
  bad(`disposed.${m}()`, () => (disposed() as unknown as Record<string, () => unknown>)[m](), 'E_DISPOSED', m);
}
const withArg: [string, (t: Tensor) => unknown][] = [
  ['add', (t) => t.add(1)],
  ['sub', (t) => t.sub(1)],
  ['mul', (t) => t.mul(2)],
  ['div', (t) => t.div(2)],
  ['pow', (t) => t.pow(2)],
  ['eq', (t) => t.eq(0)],
  ['gt', (t) => t.gt(0)],
  ['clamp', (t) => t.clamp({ min: 0 })],
  ['view', (t) => t.view(6)],
  ['reshape', (t) => t.reshape(6)],
  ['permute', (t) => t.permute(1, 0)],
  ['transpose', (t) => t.transpose(0, 1)],
  ['narrow', (t) => t.narrow(0, 0, 1)],
  ['select', (t) => t.select(0, 0)],
  ['slice', (t) => t.slice(0, 0, 1)],
  ['unsqueeze', (t) => t.unsqueeze(0)],
  ['expand', (t) => t.expand(2, 3)],
  ['repeat', (t) => t.repeat(1, 1)],
  ['flip', (t) => t.flip(0)],
  ['roll', (t) => t.roll(1, 0)],
  ['split', (t) => t.split(1)],
  ['chunk', (t) => t.chunk(2)],
  ['to', (t) => t.to('float64')],
  ['softmax', (t) => t.softmax(0)],
  ['logSoftmax', (t) => t.logSoftmax(0)],
  ['max', (t) => t.max(0)],
  ['min', (t) => t.min(0)],
  ['topk', (t) => t.topk(1)],
  ['sort', (t) => t.sort()],
  ['amax', (t) => t.amax(0)],
  ['cumsum', (t) => t.cumsum(0)],
  ['logsumexp', (t) => t.logsumexp(0)],
  ['prod', (t) => t.prod(0)],
  ['add_', (t) => t.add_(1)],
  ['mul_', (t) => t.mul_(2)],
  ['fill_', (t) => t.fill_(1)],
  ['clamp_', (t) => t.clamp_({ max: 1 })],
  ['size', (t) => t.size(0)],
  ['shape', (t) => t.shape],
  ['dtype', (t) => t.dtype],
  ['device', (t) => t.device],
];
for (const [name, call] of withArg) bad(`disposed.${name}`, () => call(disposed()), 'E_DISPOSED', name);
// A disposed tensor as the *other* operand.
const disposedOther: [string, (x: Tensor, d: Tensor) => unknown][] = [
  ['add', (x, d) => x.add(d)],
  ['mul', (x, d) => x.mul(d)],
  ['matmul', (x, d) => x.matmul(d)],
  ['maximum', (x, d) => x.maximum(d)],
  ['copy_', (x, d) => x.copy_(d)],
  ['indexSelect', (x, d) => x.indexSelect(0, d)],
  ['cat', (x, d) => cz.cat([x, d])],
  ['stack', (x, d) => cz.stack([x, d])],
  ['where', (x, d) => cz.where(d, x, x)],
  ['conv2d', (x, d) => F.conv2d(x, d)],
  ['linear', (x, d) => F.linear(x, d)],
  ['batchNorm', (x, d) => F.batchNorm(x, d, null)],
  ['crossEntropy', (x, d) => F.crossEntropy(x, d)],
];
for (const [name, call] of disposedOther) bad(`${name} with a disposed operand`, () => call(f32(2, 3), disposed()), 'E_DISPOSED', name);
const disposedF: [string, (d: Tensor) => unknown][] = [
  ['relu', F.relu],
  ['sigmoid', F.sigmoid],
  ['gelu', (d) => F.gelu(d)],
  ['softmax', (d) => F.softmax(d)],
  ['maxPool2d', (d) => F.maxPool2d(d, 2)],
  ['avgPool2d', (d) => F.avgPool2d(d, 2)],
  ['adaptiveAvgPool2d', (d) => F.adaptiveAvgPool2d(d, 1)],
  ['dropout', (d) => F.dropout(d)],
  ['pad', (d) => F.pad(d, [1, 1])],
  ['layerNorm', (d) => F.layerNorm(d, [3])],
  ['zerosLike', cz.zerosLike],
  ['onesLike', cz.onesLike],
];
for (const [name, call] of disposedF) bad(`F.${name}(disposed)`, () => call(disposed()), 'E_DISPOSED', name);

// ---- non-tensor arguments where a tensor is required
const notTensors: [string, unknown][] = [
  ['null', null],
  ['undefined', undefined],
  ['a number', 5],
  ['a string', 'x'],
  ['an object', {}],
  ['an array', [1, 2]],
];
const needTensor: [string, (v: any) => unknown][] = [
  ['relu', (v) => F.relu(v)],
  ['conv2d', (v) => F.conv2d(img(), v)],
  ['conv2d', (v) => F.conv2d(v, f32(4, 3, 3, 3))],
  ['linear', (v) => F.linear(f32(2, 3), v)],
  ['matmul', (v) => f32(2, 2).matmul(v)],
  ['maximum', (v) => f32(2).maximum(v)],
  ['indexSelect', (v) => f32(3).indexSelect(0, v)],
  ['copy_', (v) => f32(2).copy_(v)],
  ['crossEntropy', (v) => F.crossEntropy(f32(2, 3), v)],
  ['softmax', (v) => F.softmax(v)],
  ['maxPool2d', (v) => F.maxPool2d(v, 2)],
  ['batchNorm', (v) => F.batchNorm(v, null, null, { training: true })],
  ['cat', (v) => cz.cat([f32(2), v])],
  ['zerosLike', (v) => cz.zerosLike(v)],
];
for (const [name, call] of needTensor) {
  for (const [what, v] of notTensors) bad(`${name} given ${what} for a tensor`, () => call(v), ['E_ARG', 'E_DISPOSED'], name);
}
const needScalarOrTensor: [string, (v: any) => unknown][] = [
  ['add', (v) => f32(2).add(v)],
  ['sub', (v) => f32(2).sub(v)],
  ['mul', (v) => f32(2).mul(v)],
  ['div', (v) => f32(2).div(v)],
  ['pow', (v) => f32(2).pow(v)],
  ['eq', (v) => f32(2).eq(v)],
  ['lt', (v) => f32(2).lt(v)],
  ['add_', (v) => f32(2).add_(v)],
  ['fill_', (v) => f32(2).fill_(v)],
  ['full', (v) => cz.full([2], v)],
];
for (const [name, call] of needScalarOrTensor) {
  for (const [what, v] of notTensors.filter(([w]) => w !== 'a number' && w !== 'undefined')) bad(`${name} given ${what}`, () => call(v), 'E_ARG', name);
}
cases.push(['cat of a non-array', () => cz.cat(null as never), ['E_ARG'], 'cat']);
cases.push(['stack of a non-array', () => cz.stack(5 as never), ['E_ARG'], 'stack']);
bad('view with a string', () => f32(4).view('a' as never), 'E_ARG', 'view');
bad('narrow with a string start', () => f32(4).narrow(0, 'a' as never, 1), 'E_ARG', 'narrow');
bad('transpose with undefined dims', () => f32(2, 2).transpose(undefined as never, 0), 'E_ARG', 'transpose');
bad('maxPool2d with a string kernel', () => F.maxPool2d(img(), 'a' as never), 'E_ARG', 'maxPool2d');
bad('zeros with a string shape', () => cz.zeros('abc' as never), 'E_ARG', 'zeros');
bad('zeros with a non-integer dim', () => cz.zeros([2, 'x' as never]), 'E_ARG', 'zeros');
bad('tensor from a string', () => cz.tensor('abc' as never), ['E_ARG', 'E_DTYPE'], 'tensor');
bad('tensor from an object', () => cz.tensor({} as never), ['E_ARG', 'E_DTYPE'], 'tensor');
bad('tensor with a string element', () => cz.tensor([1, 'a' as never]), ['E_ARG', 'E_DTYPE'], 'tensor');
bad('tensor with an undefined element', () => cz.tensor([1, undefined as never]), ['E_ARG', 'E_DTYPE'], 'tensor');
// Integer arguments are never truncated or rounded: 2.5, NaN, Infinity and unsafe integers are refused.
const notIntegers: [string, number][] = [
  ['2.5', 2.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['2**53', 2 ** 53],
  ['1e300', 1e300],
];
for (const [what, v] of notIntegers) {
  bad(`zeros with a dim of ${what}`, () => cz.zeros([2, v]), 'E_ARG', 'zeros');
  bad(`view with a dim of ${what}`, () => f32(6).view(v, -1), 'E_ARG', 'view');
  bad(`select with an index of ${what}`, () => f32(6).select(0, v), 'E_ARG', 'select');
  bad(`narrow with a length of ${what}`, () => f32(6).narrow(0, 0, v), 'E_ARG', 'narrow');
  bad(`transpose with a dim of ${what}`, () => f32(2, 3).transpose(v, 0), 'E_ARG', 'transpose');
  bad(`unsqueeze with a dim of ${what}`, () => f32(2).unsqueeze(v), 'E_ARG', 'unsqueeze');
  bad(`sum over a dim of ${what}`, () => f32(2).sum(v), 'E_ARG', 'sum');
  bad(`softmax over a dim of ${what}`, () => f32(2).softmax(v), 'E_ARG', 'softmax');
  bad(`randperm of ${what}`, () => cz.randperm(v), 'E_ARG', 'randperm');
  bad(`maxPool2d with a kernel of ${what}`, () => F.maxPool2d(img(), v), 'E_ARG', 'maxPool2d');
}

// ---- wrong shapes
const shapeCases: [string, () => unknown, string][] = [
  ['conv2d wrong in-channels', () => F.conv2d(img(), f32(4, 2, 3, 3)), 'conv2d'],
  ['conv2d 3-d weight', () => F.conv2d(img(), f32(4, 3, 3)), 'conv2d'],
  ['conv2d kernel larger than input', () => F.conv2d(f32(1, 3, 2, 2), f32(4, 3, 3, 3)), 'conv2d'],
  ['conv2d bias of the wrong size', () => F.conv2d(img(), f32(4, 3, 3, 3), f32(5)), 'conv2d'],
  ['conv2d groups not dividing channels', () => F.conv2d(img(), f32(4, 1, 3, 3), null, { groups: 2 }), 'conv2d'],
  ['conv2d 2-d input', () => F.conv2d(f32(3, 8), f32(4, 3, 3, 3)), 'conv2d'],
  ['linear mismatched features', () => F.linear(f32(2, 3), f32(4, 5)), 'linear'],
  ['linear bias of the wrong size', () => F.linear(f32(2, 3), f32(4, 3), f32(3)), 'linear'],
  ['matmul mismatch', () => f32(2, 3).matmul(f32(4, 2)), 'matmul'],
  ['mm of 3-d', () => f32(2, 3, 4).mm(f32(4, 2)), 'mm'],
  ['bmm of 2-d', () => f32(2, 3).bmm(f32(3, 2)), 'bmm'],
  ['add broadcast mismatch', () => f32(2, 3).add(f32(4)), 'add'],
  ['mul broadcast mismatch', () => f32(3).mul(f32(2)), 'mul'],
  ['in-place add to a smaller shape', () => f32(3).add_(f32(2, 3)), 'add_'],
  ['view to a wrong size', () => f32(2, 3).view(4, 2), 'view'],
  ['view with two -1', () => f32(2, 3).view(-1, -1), 'view'],
  ['view of a non-contiguous tensor', () => f32(2, 3).t().view(6), 'view'],
  ['reshape to a wrong size', () => f32(2, 3).reshape(7), 'reshape'],
  ['permute with too few dims', () => f32(2, 3, 4).permute(0, 1), 'permute'],
  ['permute with repeated dims', () => f32(2, 3).permute(0, 0), 'permute'],
  ['transpose out of range', () => f32(2, 3).transpose(0, 5), 'transpose'],
  ['flatten with start > end', () => f32(2, 3, 4).flatten(2, 1), 'flatten'],
  ['narrow past the end', () => f32(2, 3).narrow(1, 2, 5), 'narrow'],
  ['select index out of range', () => f32(2, 3).select(0, 5), 'select'],
  ['select dim out of range', () => f32(2, 3).select(3, 0), 'select'],
  ['unsqueeze dim out of range', () => f32(2).unsqueeze(5), 'unsqueeze'],
  ['squeeze dim out of range', () => f32(2).squeeze(4), 'squeeze'],
  ['expand to an incompatible shape', () => f32(2, 3).expand(4, 3), 'expand'],
  ['repeat with fewer dims', () => f32(2, 3).repeat(2), 'repeat'],
  ['indexSelect index out of range', () => f32(3).indexSelect(0, cz.tensor([5])), 'indexSelect'],
  ['gather index of the wrong rank', () => f32(2, 3).gather(1, cz.tensor([0])), 'gather'],
  ['index with a mask of the wrong size', () => f32(3).index(cz.tensor([true, false])), 'index'],
  ['maskedFill mask shape', () => f32(3).maskedFill(cz.tensor([true, false]), 0), 'maskedFill'],
  ['cat of mismatched shapes', () => cz.cat([f32(2, 3), f32(2, 4)]), 'cat'],
  ['cat of nothing', () => cz.cat([]), 'cat'],
  ['cat dim out of range', () => cz.cat([f32(2), f32(2)], 3), 'cat'],
  ['stack of mismatched shapes', () => cz.stack([f32(2), f32(3)]), 'stack'],
  ['split with wrong sizes', () => f32(5).split([2, 2]), 'split'],
  ['chunk of zero chunks', () => f32(5).chunk(0), 'chunk'],
  ['where with mismatched shapes', () => cz.where(cz.tensor([true, false]), f32(3), f32(3)), 'where'],
  ['sum dim out of range', () => f32(2, 3).sum(4), 'sum'],
  ['mean dim out of range', () => f32(2).mean(-3), 'mean'],
  ['max dim out of range', () => f32(2).max(2), 'max'],
  ['argmax dim out of range', () => f32(2).argmax(3), 'argmax'],
  ['topk k too large', () => f32(3).topk(5), 'topk'],
  ['softmax dim out of range', () => f32(2, 3).softmax(2), 'softmax'],
  ['size dim out of range', () => f32(2, 3).size(2), 'size'],
  ['maxPool2d kernel too large', () => F.maxPool2d(f32(1, 1, 2, 2), 3), 'maxPool2d'],
  ['maxPool2d padding more than half the kernel', () => F.maxPool2d(img(), 2, { padding: 2 }), 'maxPool2d'],
  ['avgPool2d kernel too large', () => F.avgPool2d(f32(1, 1, 2, 2), 5), 'avgPool2d'],
  ['adaptiveAvgPool2d of a 2-d input', () => F.adaptiveAvgPool2d(f32(3, 3), 2), 'adaptiveAvgPool2d'],
  ['batchNorm channel mismatch', () => F.batchNorm(img(), cz.zeros([4]), cz.ones([4])), 'batchNorm'],
  ['batchNorm training on one value per channel', () => F.batchNorm(f32(1, 3, 1, 1), null, null, { training: true }), 'batchNorm'],
  ['layerNorm shape mismatch', () => F.layerNorm(f32(2, 3), [4]), 'layerNorm'],
  ['groupNorm groups not dividing channels', () => F.groupNorm(img(), 2), 'groupNorm'],
  ['localResponseNorm of a 2-d input', () => F.localResponseNorm(f32(2, 3), 3), 'localResponseNorm'],
  ['crossEntropy batch mismatch', () => F.crossEntropy(f32(3, 4), cz.tensor([0, 1])), 'crossEntropy'],
  ['crossEntropy target out of range', () => F.crossEntropy(f32(2, 4), cz.tensor([0, 9])), 'crossEntropy'],
  ['crossEntropy weight of the wrong size', () => F.crossEntropy(f32(2, 4), cz.tensor([0, 1]), { weight: cz.ones([3]) }), 'crossEntropy'],
  ['nllLoss target out of range', () => F.nllLoss(f32(2, 3), cz.tensor([0, 7])), 'nllLoss'],
  ['mseLoss shape mismatch', () => F.mseLoss(f32(2, 3), f32(3, 2)), 'mseLoss'],
  ['pad with an odd number of values', () => F.pad(f32(2, 3), [1, 2, 3]), 'pad'],
  ['pad reflect wider than the input', () => F.pad(f32(1, 1, 2, 2), [3, 3, 3, 3], { mode: 'reflect' }), 'pad'],
  ['interpolate of a 3-d input', () => F.interpolate(f32(1, 3, 4), { scaleFactor: 2 }), 'interpolate'],
  ['channelShuffle groups not dividing channels', () => F.channelShuffle(img(), 2), 'channelShuffle'],
  ['tensor from a ragged array', () => cz.tensor([[1, 2], [3]]), 'tensor'],
  ['tensor with a mismatched shape', () => cz.tensor([1, 2, 3], [2, 2]), 'tensor'],
  ['fromBytes with the wrong byte count', () => cz.fromBytes(new Uint8Array(5), [2], 'float32'), 'fromBytes'],
  ['zeros with a negative dim', () => cz.zeros([2, -3]), 'zeros'],
  ['randn with a negative dim', () => cz.randn([-1]), 'randn'],
  ['backward of a non-scalar without a gradient', () => f32(3).requiresGrad_().mul(2).backward(), 'backward'],
  [
    'backward with a gradient of the wrong shape',
    () =>
      f32(3)
        .requiresGrad_()
        .mul(2)
        .backward(cz.ones([4])),
    'backward',
  ],
];
// Plain TORCH_CHECK failures (no exception type to go by) whose wording the error funnel's text fallback
// does not recognise as a shape problem.
const unclassifiedShape = new Set([
  'bmm of 2-d',
  'permute with repeated dims',
  'cat of nothing',
  'chunk of zero chunks',
  'batchNorm channel mismatch',
  'backward of a non-scalar without a gradient',
  'adaptiveAvgPool2d of a 2-d input',
]);
for (const [label, call, op] of shapeCases) bad(label, call, unclassifiedShape.has(label) ? ['E_SHAPE', 'E_TORCH'] : 'E_SHAPE', op);

// ---- wrong dtypes
const dtypeCases: [string, () => unknown, string][] = [
  ['conv2d of an int64 input', () => F.conv2d(i64(1, 3, 4, 4), f32(2, 3, 3, 3)), 'conv2d'],
  ['conv2d of float64 input with float32 weight', () => F.conv2d(img().double(), f32(2, 3, 3, 3)), 'conv2d'],
  ['linear of mixed dtypes', () => F.linear(f32(2, 3).double(), f32(4, 3)), 'linear'],
  ['matmul float32 x float64', () => f32(2, 2).matmul(f32(2, 2).double()), 'matmul'],
  ['mm of int64 x float32', () => i64(2, 2).mm(f32(2, 2)), 'mm'],
  ['softmax of int64', () => i64(3).softmax(0), 'softmax'],
  ['logSoftmax of int64', () => F.logSoftmax(i64(2, 3)), 'logSoftmax'],
  ['crossEntropy with float32 class targets of index shape', () => F.crossEntropy(f32(2, 3), f32(2)), 'crossEntropy'],
  ['crossEntropy with int32 targets', () => F.crossEntropy(f32(2, 3), cz.tensor([0, 1], undefined, { dtype: 'int32' })), 'crossEntropy'],
  ['nllLoss with float targets', () => F.nllLoss(f32(2, 3), f32(2)), 'nllLoss'],
  ['indexSelect with a float index', () => f32(3).indexSelect(0, f32(2)), 'indexSelect'],
  ['gather with a float index', () => f32(2, 3).gather(1, f32(2, 1)), 'gather'],
  ['maskedFill with a float mask', () => f32(3).maskedFill(f32(3), 0), 'maskedFill'],
  ['where with a float condition', () => cz.where(f32(3), f32(3), f32(3)), 'where'],
  ['sqrt_ of an int64 tensor in place', () => i64(3).sqrt_(), 'sqrt_'],
  ['in-place float result into int64', () => i64(3).add_(0.5), 'add_'],
  ['in-place div_ of int64', () => i64(3).div_(f32(3)), 'div_'],
  ['randn of int64', () => cz.randn([3], { dtype: 'int64' }), 'randn'],
  ['rand of bool', () => cz.rand([3], { dtype: 'bool' }), 'rand'],
  ['normal_ of int64', () => i64(3).normal_(), 'normal_'],
  ['batchNorm of int64', () => F.batchNorm(i64(2, 3, 2, 2), null, null, { training: true }), 'batchNorm'],
  ['layerNorm of int64', () => F.layerNorm(i64(2, 3), [3]), 'layerNorm'],
  ['requiresGrad on an int64 tensor', () => i64(3).requiresGrad_(true), 'requiresGrad_|set_requires_grad'],
  ['zeros with an unknown dtype', () => cz.zeros([2], { dtype: 'float128' as never }), 'zeros'],
  ['to an unknown dtype', () => f32(2).to('complex256'), 'to'],
  ['fromBytes with an unknown dtype', () => cz.fromBytes(new Uint8Array(4), [1], 'quux' as never), 'fromBytes'],
];
// A plain TORCH_CHECK ("Mask tensor can take 0 and 1 values only") that the text fallback does not recognise.
const unclassifiedDtype = new Set(['maskedFill with a float mask']);
for (const [label, call, op] of dtypeCases) bad(label, call, unclassifiedDtype.has(label) ? ['E_DTYPE', 'E_ARG', 'E_TORCH'] : ['E_DTYPE', 'E_ARG'], op);

// ---- bad options and states
const argCases: [string, () => unknown, string][] = [
  ['conv2d groups 0', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { groups: 0 }), 'conv2d'],
  ['conv2d groups 1.5', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { groups: 1.5 }), 'conv2d'],
  ['conv2d stride 0', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { stride: 0 }), 'conv2d'],
  ['conv2d negative padding', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { padding: -1 }), 'conv2d'],
  ['conv2d padding same with stride 2', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { padding: 'same', stride: 2 }), 'conv2d'],
  ['conv2d unknown padding mode', () => F.conv2d(img(), f32(4, 3, 3, 3), null, { padding: 'full' as never }), 'conv2d'],
  ['maxPool2d stride 0', () => F.maxPool2d(img(), 2, { stride: 0 }), 'maxPool2d'],
  ['avgPool2d negative padding', () => F.avgPool2d(img(), 2, { padding: -1 }), 'avgPool2d'],
  ['avgPool2d divisorOverride 0', () => F.avgPool2d(img(), 2, { divisorOverride: 0 }), 'avgPool2d'],
  ['dropout p 1.5', () => F.dropout(f32(3), { p: 1.5 }), 'dropout'],
  ['dropout p -0.1', () => F.dropout(f32(3), { p: -0.1 }), 'dropout'],
  ['dropout2d p 2', () => F.dropout2d(img(), { p: 2 }), 'dropout2d'],
  ['crossEntropy labelSmoothing 1.5', () => F.crossEntropy(f32(2, 3), cz.tensor([0, 1]), { labelSmoothing: 1.5 }), 'crossEntropy'],
  ['crossEntropy unknown reduction', () => F.crossEntropy(f32(2, 3), cz.tensor([0, 1]), { reduction: 'avg' as never }), 'crossEntropy'],
  ['mseLoss unknown reduction', () => F.mseLoss(f32(2), f32(2), { reduction: 'max' as never }), 'mseLoss'],
  ['gelu unknown approximation', () => F.gelu(f32(2), { approximate: 'fast' as never }), 'gelu'],
  ['pad reflect with 2 values', () => F.pad(img(), [1, 1], { mode: 'reflect' }), 'pad'],
  ['interpolate without size or scale', () => F.interpolate(img(), {}), 'interpolate'],
  ['interpolate with size and scale', () => F.interpolate(img(), { size: 4, scaleFactor: 2 }), 'interpolate'],
  ['interpolate scale 0', () => F.interpolate(img(), { scaleFactor: 0 }), 'interpolate'],
  ['interpolate unknown mode', () => F.interpolate(img(), { size: 4, mode: 'bicubic' as never }), 'interpolate'],
  ['channelShuffle groups 0', () => F.channelShuffle(img(), 0), 'channelShuffle'],
  ['arange step 0', () => cz.arange(0, 10, 0), 'arange'],
  ['arange with the wrong sign of step', () => cz.arange(0, 10, -1), 'arange'],
  ['randint low >= high', () => cz.randint(5, 3, [2]), 'randint'],
  ['eye of a negative size', () => cz.eye(-1), 'eye'],
  ['randperm of a negative size', () => cz.randperm(-2), 'randperm'],
  ['setNumThreads 0', () => cz.setNumThreads(0), 'setNumThreads'],
  ['setNumThreads 2.5', () => cz.setNumThreads(2.5), 'setNumThreads'],
  ['item of a multi-element tensor', () => f32(3).item(), 'item'],
  ['backward of a tensor that needs no grad', () => f32(1).sum().backward(), 'backward'],
  ['in-place op on a leaf that requires grad', () => f32(3).requiresGrad_().add_(1), 'add_'],
  [
    'backward twice through a freed graph',
    () => {
      const y = f32(3).requiresGrad_().exp().sum();
      y.backward();
      y.backward();
    },
    'backward',
  ],
  ['to a device that does not exist', () => f32(2).to('cuda:7'), 'to'],
  ['to an unknown target string', () => f32(2).to('gpu'), 'to'],
  ['setRngState with a float tensor', () => cz.setRngState(f32(4)), 'setRngState'],
  ['init fan of a 1-d tensor', () => nn.init.kaimingUniform_(f32(4)), 'init'],
  ['Conv2d groups not dividing in-channels', () => new nn.Conv2d(3, 4, 3, { groups: 2 }), 'Conv2d'],
  ['Conv2d 0 in-channels', () => new nn.Conv2d(0, 4, 3), 'Conv2d'],
  ['Linear fractional features', () => new nn.Linear(2.5, 3), 'Linear'],
  ['BatchNorm2d negative features', () => new nn.BatchNorm2d(-1), 'BatchNorm2d'],
  [
    'BatchNorm2d forward of a 2-d input',
    () => {
      const bn = new nn.BatchNorm2d(3);
      try {
        return bn.forward(f32(2, 3));
      } finally {
        for (const t of bn.buffers()) t.dispose();
        for (const p of bn.parameters()) p.dispose();
      }
    },
    'BatchNorm2d',
  ],
  ['GroupNorm groups not dividing channels', () => new nn.GroupNorm(3, 4), 'GroupNorm'],
  ['Dropout p 2', () => new nn.Dropout(2), 'Dropout'],
  ['ModuleList forward', () => new nn.ModuleList().forward(f32(1)), 'ModuleList'],
  ['ModuleDict forward', () => new nn.ModuleDict().forward(f32(1)), 'ModuleDict'],
  ['tidy of a non-function', () => cz.tidy(5 as never), 'tidy'],
];
for (const [label, call, op] of argCases) bad(label, call, undefined, op);

// ---- huge allocations: a clean E_OOM (or a clear size error), never a crash
const hugeCases: [string, () => unknown, string][] = [
  ['empty([1e12])', () => cz.empty([1e12]), 'empty'],
  ['zeros([1e6, 1e6])', () => cz.zeros([1e6, 1e6]), 'zeros'],
  ['ones([2**40]) float64', () => cz.ones([2 ** 40], { dtype: 'float64' }), 'ones'],
  ['randn([1e12])', () => cz.randn([1e12]), 'randn'],
  ['full([1e12])', () => cz.full([1e12], 1), 'full'],
  ['a huge expand made contiguous', () => f32(1).expand(1e6, 1e6).contiguous(), 'contiguous'],
  ['a huge repeat', () => f32(2).repeat(1e12), 'repeat'],
  ['a huge matmul output', () => f32(1e6, 1).matmul(f32(1, 1e6)), 'matmul'],
];
for (const [label, call, op] of hugeCases) bad(label, call, ['E_OOM'], op);
const overflowCases: [string, () => unknown, string][] = [['empty([1e10, 1e10]) overflows int64', () => cz.empty([1e10, 1e10]), 'empty']];
for (const [label, call, op] of overflowCases) bad(label, call, ['E_OOM', 'E_SHAPE', 'E_ARG', 'E_TORCH'], op);

let before = 0;
beforeAll(() => {
  before = cz.memory().tensors;
});

describe('bad calls', () => {
  test('there are hundreds of them', () => {
    expect(cases.length).toBeGreaterThanOrEqual(300);
  });

  test.each(cases)('%s', (_label, call, codes, op) => {
    const live = cz.memory().tensors;
    let err: unknown = null;
    try {
      cz.tidy(() => {
        call();
      });
    } catch (e) {
      err = e;
    }
    expect(err, 'the call did not throw').not.toBeNull();
    if (!(err instanceof cz.ConvzooError)) throw new Error(`expected a ConvzooError, got ${String(err)}`);
    expect(CODES).toContain(err.code);
    if (codes) expect(codes, `code of "${err.message}"`).toContain(err.code);
    // The TypeScript name or the libtorch op's (snake_case) name; '|' separates alternatives.
    const names = op.split('|').flatMap((n) => [n, n.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]);
    expect(
      names.some((n) => err.message.includes(n)),
      `"${err.message}" names none of ${names.join(', ')}`,
    ).toBe(true);
    expect(err.message).not.toMatch(/Exception raised from|frame #\d/); // no C++ backtrace
    expect(err.message.length).toBeLessThan(1000);
    expect(cz.memory().tensors, 'a failing call leaked tensors').toBe(live);
  });
});

describe('the process survives', () => {
  afterAll(() => {
    expect(cz.memory().tensors).toBe(before);
  });

  test('a training step still works after every bad call', () => {
    cz.manualSeed(0);
    const conv = new nn.Conv2d(3, 4, 3, { padding: 1 });
    const lin = new nn.Linear(4, 2);
    try {
      const loss = cz.tidy(() => {
        const y = lin.forward(F.adaptiveAvgPool2d(F.relu(conv.forward(cz.randn([2, 3, 8, 8]))), 1).flatten(1));
        const l = F.crossEntropy(y, cz.tensor([0, 1]));
        l.backward();
        return l.item();
      });
      expect(Number.isFinite(loss)).toBe(true);
      cz.tidy(() => {
        expect(conv.weight.grad!.abs().sum().item()).toBeGreaterThan(0);
      });
      // and allocation still works, at a reasonable size, after the failed huge ones
      cz.tidy(() => {
        expect(cz.ones([1024, 1024]).sum().item()).toBe(1024 * 1024);
      });
    } finally {
      for (const m of [conv, lin]) for (const p of m.parameters()) p.dispose();
    }
  });

  test('errors carry op and code fields', () => {
    try {
      cz.tidy(() => f32(2, 3).matmul(f32(4, 2)));
    } catch (e) {
      const err = e as cz.ConvzooError;
      expect(err.name).toBe('ConvzooError');
      expect(err.op).toBe('matmul');
      expect(err.code).toBe('E_SHAPE');
      expect(err.stack).toContain('errors.test.ts');
      return;
    }
    throw new Error('did not throw');
  });
});
