#!/usr/bin/python3
"""Reference values for test/nn.test.ts, from Debian's torch (run with /usr/bin/python3).

    /usr/bin/python3 tools/nn_reference.py OUT.json

Writes one JSON object:
  functional: {case: {inputs: [T], outputs: [T], grad: T | null}}  where T = {dtype, shape, data}
      inputs come from torch.manual_seed(0) + randn; grad is d/d(inputs[0]) of sum(out0 * cos(arange))
  layers:     {case: {seed, state: {key: T}, input: T, output: T, after: {key: T}}}
      the layer is built right after torch.manual_seed(seed) (so its default initialisation is compared
      too), run forward once in training mode on `input`; `after` is its state dict after that call
  init:       {case: {seed, shape, values: T}}   nn.init functions on a fresh empty tensor after manual_seed
  keys:       {case: [state-dict keys in order]}
The test feeds the same inputs to convzoo and compares.
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)


def enc(t):
    t = t.detach()
    dtype = {torch.float32: 'float32', torch.float64: 'float64', torch.int64: 'int64', torch.bool: 'bool'}[t.dtype]
    data = t.flatten().tolist()
    if dtype == 'float32' or dtype == 'float64':
        data = [None if math.isnan(v) else v for v in data]
    return {'dtype': dtype, 'shape': list(t.shape), 'data': data}


def randn(*shape):
    return torch.randn(*shape)


def cls(*vals):
    return torch.tensor(vals, dtype=torch.int64)


# name -> (inputs, fn). The test has a table with the same names and the convzoo call.
def functional_cases():
    c = {}
    x4 = lambda *s: randn(*s)
    c['conv2d'] = ([x4(2, 3, 6, 6), x4(4, 3, 3, 3), x4(4)], lambda x, w, b: F.conv2d(x, w, b))
    c['conv2d stride2 pad1'] = ([x4(1, 3, 7, 7), x4(5, 3, 3, 3), x4(5)], lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1))
    c['conv2d dilation groups'] = ([x4(2, 4, 7, 7), x4(6, 2, 3, 3)], lambda x, w: F.conv2d(x, w, None, padding=2, dilation=2, groups=2))
    c['conv2d padding same'] = ([x4(1, 2, 5, 6), x4(3, 2, 4, 3)], lambda x, w: F.conv2d(x, w, None, padding='same'))
    c['conv2d padding valid'] = ([x4(1, 2, 5, 6), x4(3, 2, 2, 2)], lambda x, w: F.conv2d(x, w, None, padding='valid'))
    c['conv2d asymmetric'] = ([x4(1, 2, 8, 6), x4(2, 2, 3, 1)], lambda x, w: F.conv2d(x, w, None, stride=(2, 1), padding=(1, 0)))
    c['linear'] = ([x4(3, 5), x4(4, 5), x4(4)], lambda x, w, b: F.linear(x, w, b))
    c['linear 3d no bias'] = ([x4(2, 3, 5), x4(4, 5)], lambda x, w: F.linear(x, w))
    c['maxPool2d'] = ([x4(2, 3, 6, 6)], lambda x: F.max_pool2d(x, 2))
    c['maxPool2d k3s2p1'] = ([x4(1, 2, 9, 9)], lambda x: F.max_pool2d(x, 3, stride=2, padding=1))
    c['maxPool2d ceil'] = ([x4(1, 2, 8, 8)], lambda x: F.max_pool2d(x, 3, stride=2, ceil_mode=True))
    c['maxPool2d dilation'] = ([x4(1, 1, 7, 7)], lambda x: F.max_pool2d(x, 2, stride=1, dilation=2))
    c['maxPool2dWithIndices'] = ([x4(1, 2, 5, 5)], lambda x: F.max_pool2d(x, 2, stride=2, ceil_mode=True, return_indices=True))
    c['avgPool2d'] = ([x4(2, 3, 6, 6)], lambda x: F.avg_pool2d(x, 2))
    c['avgPool2d k3s2p1 exclude pad'] = ([x4(1, 2, 7, 7)], lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False))
    c['avgPool2d k3s2p1 include pad'] = ([x4(1, 2, 7, 7)], lambda x: F.avg_pool2d(x, 3, stride=2, padding=1))
    c['avgPool2d ceil'] = ([x4(1, 2, 7, 7)], lambda x: F.avg_pool2d(x, 2, ceil_mode=True))
    c['avgPool2d divisor'] = ([x4(1, 1, 4, 4)], lambda x: F.avg_pool2d(x, 2, divisor_override=3))
    c['adaptiveAvgPool2d 1'] = ([x4(2, 3, 5, 5)], lambda x: F.adaptive_avg_pool2d(x, 1))
    c['adaptiveAvgPool2d 7->3x2'] = ([x4(1, 2, 7, 7)], lambda x: F.adaptive_avg_pool2d(x, (3, 2)))
    c['adaptiveAvgPool2d upsample 2->5'] = ([x4(1, 1, 2, 2)], lambda x: F.adaptive_avg_pool2d(x, 5))
    c['adaptiveMaxPool2d'] = ([x4(1, 2, 7, 5)], lambda x: F.adaptive_max_pool2d(x, (3, 2)))
    c['batchNorm train'] = ([x4(4, 3, 3, 3), torch.rand(3) + 0.5, x4(3)],
                            lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True))
    c['batchNorm eval'] = ([x4(2, 3, 3, 3), torch.rand(3) + 0.5, x4(3), x4(3), torch.rand(3) + 0.5],
                           lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3))
    c['layerNorm'] = ([x4(2, 3, 4), x4(3, 4), x4(3, 4)], lambda x, w, b: F.layer_norm(x, (3, 4), w, b))
    c['layerNorm last dim eps'] = ([x4(3, 5)], lambda x: F.layer_norm(x, (5,), eps=1e-6))
    c['groupNorm'] = ([x4(2, 6, 3, 3), x4(6), x4(6)], lambda x, w, b: F.group_norm(x, 3, w, b))
    c['groupNorm 1'] = ([x4(2, 4, 2, 2)], lambda x: F.group_norm(x, 1))
    c['localResponseNorm alexnet'] = ([x4(2, 8, 3, 3) * 3], lambda x: F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0))
    c['localResponseNorm even size'] = ([x4(1, 6, 2, 2) * 3], lambda x: F.local_response_norm(x, 4, alpha=0.5, beta=0.6, k=1.5))
    c['localResponseNorm 3d input'] = ([x4(2, 5, 4)], lambda x: F.local_response_norm(x, 3, alpha=0.3))
    for name, fn in [
        ('relu', F.relu), ('relu6', lambda x: F.relu6(x * 4)), ('hardtanh', lambda x: F.hardtanh(x, -0.5, 1.5)),
        ('leakyRelu', lambda x: F.leaky_relu(x, 0.2)), ('leakyRelu default', F.leaky_relu), ('elu', lambda x: F.elu(x, 0.7)),
        ('gelu', F.gelu), ('gelu tanh', lambda x: F.gelu(x, approximate='tanh')), ('silu', F.silu), ('mish', F.mish),
        ('hardswish', lambda x: F.hardswish(x * 3)), ('hardsigmoid', lambda x: F.hardsigmoid(x * 3)),
        ('sigmoid', torch.sigmoid), ('tanh', torch.tanh), ('softplus', lambda x: F.softplus(x * 3, beta=2, threshold=3)),
        ('softmax', lambda x: F.softmax(x, dim=1)), ('softmax dim0', lambda x: F.softmax(x, dim=0)),
        ('logSoftmax', lambda x: F.log_softmax(x, dim=-1)),
    ]:
        c[name] = ([x4(3, 7)], fn)
    c['channelShuffle'] = ([x4(2, 6, 2, 2)], lambda x: torch.channel_shuffle(x, 3))
    c['crossEntropy'] = ([x4(4, 5), cls(0, 4, 2, 2)], lambda x, t: F.cross_entropy(x, t))
    c['crossEntropy labelSmoothing'] = ([x4(4, 5), cls(0, 4, 2, 2)], lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1))
    c['crossEntropy weight'] = ([x4(4, 5), cls(0, 4, 2, 1), torch.rand(5) + 0.2], lambda x, t, w: F.cross_entropy(x, t, weight=w))
    c['crossEntropy weight labelSmoothing'] = ([x4(4, 5), cls(0, 4, 2, 1), torch.rand(5) + 0.2],
                                               lambda x, t, w: F.cross_entropy(x, t, weight=w, label_smoothing=0.3))
    c['crossEntropy ignoreIndex sum'] = ([x4(4, 3), cls(0, -100, 2, 1)], lambda x, t: F.cross_entropy(x, t, reduction='sum'))
    c['crossEntropy none'] = ([x4(4, 3), cls(0, 1, 2, 1)], lambda x, t: F.cross_entropy(x, t, reduction='none'))
    c['crossEntropy custom ignoreIndex'] = ([x4(3, 3), cls(0, 2, 1)], lambda x, t: F.cross_entropy(x, t, ignore_index=2))
    c['crossEntropy spatial'] = ([x4(2, 3, 2, 2), torch.randint(0, 3, (2, 2, 2))], lambda x, t: F.cross_entropy(x, t))
    c['crossEntropy probabilities'] = ([x4(3, 4), torch.softmax(x4(3, 4), 1)], lambda x, p: F.cross_entropy(x, p))
    c['crossEntropy probabilities labelSmoothing'] = ([x4(3, 4), torch.softmax(x4(3, 4), 1)], lambda x, p: F.cross_entropy(x, p, label_smoothing=0.2))
    c['nllLoss'] = ([torch.log_softmax(x4(4, 3), 1), cls(2, 0, 1, 1)], lambda x, t: F.nll_loss(x, t))
    c['nllLoss weight'] = ([torch.log_softmax(x4(4, 3), 1), cls(2, 0, 1, 1), torch.rand(3) + 0.2], lambda x, t, w: F.nll_loss(x, t, weight=w))
    c['mseLoss'] = ([x4(3, 4), x4(3, 4)], lambda x, y: F.mse_loss(x, y))
    c['mseLoss none'] = ([x4(3, 4), x4(3, 4)], lambda x, y: F.mse_loss(x, y, reduction='none'))
    c['bceWithLogits'] = ([x4(3, 4), torch.rand(3, 4)], lambda x, y: F.binary_cross_entropy_with_logits(x, y))
    c['bceWithLogits weight sum'] = ([x4(3, 4), torch.rand(3, 4), torch.rand(4)], lambda x, y, w: F.binary_cross_entropy_with_logits(x, y, weight=w, reduction='sum'))
    c['pad constant'] = ([x4(1, 2, 3, 3)], lambda x: F.pad(x, (1, 2, 0, 1), value=0.5))
    c['pad reflect'] = ([x4(1, 2, 4, 4)], lambda x: F.pad(x, (1, 2, 2, 1), mode='reflect'))
    c['pad replicate'] = ([x4(1, 1, 3, 3)], lambda x: F.pad(x, (2, 0, 1, 1), mode='replicate'))
    c['interpolate nearest x2'] = ([x4(1, 2, 3, 3)], lambda x: F.interpolate(x, scale_factor=2))
    c['interpolate nearest size'] = ([x4(1, 2, 3, 4)], lambda x: F.interpolate(x, size=(5, 3)))
    c['interpolate nearest x2.5'] = ([x4(1, 1, 3, 3)], lambda x: F.interpolate(x, scale_factor=2.5))
    c['interpolate nearest x0.7'] = ([x4(1, 1, 7, 9)], lambda x: F.interpolate(x, scale_factor=0.7))
    c['interpolate bilinear size'] = ([x4(1, 2, 3, 3)], lambda x: F.interpolate(x, size=(5, 4), mode='bilinear'))
    c['interpolate bilinear x2 alignCorners'] = ([x4(1, 2, 3, 3)], lambda x: F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True))
    c['interpolate bilinear x1.5'] = ([x4(1, 1, 5, 5)], lambda x: F.interpolate(x, scale_factor=1.5, mode='bilinear'))
    c['interpolate bilinear x(0.5,1.7)'] = ([x4(1, 1, 6, 5)], lambda x: F.interpolate(x, scale_factor=(0.5, 1.7), mode='bilinear'))
    c['dropout p=0'] = ([x4(3, 4)], lambda x: F.dropout(x, 0.0))
    c['dropout eval'] = ([x4(3, 4)], lambda x: F.dropout(x, 0.5, training=False))
    return c


NO_GRAD = {'channelShuffle'}

SEEDED = {  # same generator: after manual_seed the masks are the same
    'dropout seeded': (lambda: [randn(4, 8)], lambda x: F.dropout(x, 0.3)),
    'dropout2d seeded': (lambda: [randn(2, 6, 2, 2)], lambda x: F.dropout2d(x, 0.5)),
}


def grad_of_first(inputs, fn):
    x = inputs[0]
    if not x.is_floating_point():
        return None
    x = x.clone().requires_grad_(True)
    out = fn(x, *inputs[1:])
    o = out[0] if isinstance(out, tuple) else out
    w = torch.cos(torch.arange(o.numel(), dtype=o.dtype)).view(o.shape)
    (o * w).sum().backward()
    return enc(x.grad)


def functional():
    out = {}
    torch.manual_seed(0)
    for name, (inputs, fn) in functional_cases().items():
        res = fn(*inputs)
        outs = list(res) if isinstance(res, tuple) else [res]
        # torch's native channel_shuffle has no derivative in 1.13 (convzoo's does: view + transpose).
        grad = None if name in NO_GRAD else grad_of_first(inputs, fn)
        out[name] = {'inputs': [enc(t) for t in inputs], 'outputs': [enc(t) for t in outs], 'grad': grad}
    for i, (name, (make, fn)) in enumerate(SEEDED.items()):
        torch.manual_seed(100 + i)
        inputs = make()
        torch.manual_seed(200 + i)
        out[name] = {'inputs': [enc(t) for t in inputs], 'outputs': [enc(fn(*inputs))], 'grad': None, 'seed': 200 + i}
    return out


def layer_cases():
    return {
        'Conv2d': (1, lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)),
        'Conv2d stride groups no bias': (2, lambda: nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False), (1, 4, 6, 6)),
        'Conv2d 1x1 wide': (3, lambda: nn.Conv2d(64, 8, 1), (1, 64, 2, 2)),
        'Linear': (4, lambda: nn.Linear(10, 3), (4, 10)),
        'Linear no bias': (5, lambda: nn.Linear(7, 2, bias=False), (3, 7)),
        'BatchNorm2d': (6, lambda: nn.BatchNorm2d(3), (4, 3, 2, 2)),
        'BatchNorm2d momentum None': (7, lambda: nn.BatchNorm2d(3, momentum=None), (4, 3, 2, 2)),
        'LayerNorm': (8, lambda: nn.LayerNorm([3, 2]), (2, 3, 2)),
        'GroupNorm': (9, lambda: nn.GroupNorm(2, 4), (2, 4, 2, 2)),
        'Sequential conv-bn-relu-pool-flatten-linear': (10, lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)), (2, 2, 6, 6)),
    }


def layers():
    out = {}
    for name, (seed, make, shape) in layer_cases().items():
        torch.manual_seed(seed)
        m = make()
        state = {k: enc(v) for k, v in m.state_dict().items()}
        torch.manual_seed(1000 + seed)
        x = torch.randn(*shape)
        m.train()
        y = m(x)
        out[name] = {'seed': seed, 'state': state, 'input': enc(x), 'output': enc(y),
                     'after': {k: enc(v) for k, v in m.state_dict().items()}}
    return out


def init():
    I = nn.init
    cases = {
        'kaimingUniform fanIn relu': ((8, 4, 3, 3), lambda t: I.kaiming_uniform_(t, mode='fan_in', nonlinearity='relu')),
        'kaimingUniform a=sqrt5': ((6, 5), lambda t: I.kaiming_uniform_(t, a=math.sqrt(5))),
        'kaimingNormal fanOut relu': ((8, 4, 3, 3), lambda t: I.kaiming_normal_(t, mode='fan_out', nonlinearity='relu')),
        'kaimingNormal leaky': ((5, 7), lambda t: I.kaiming_normal_(t, a=0.2)),
        'xavierUniform': ((6, 9), lambda t: I.xavier_uniform_(t)),
        'xavierUniform gain': ((4, 3, 2, 2), lambda t: I.xavier_uniform_(t, gain=I.calculate_gain('tanh'))),
        'xavierNormal': ((6, 9), lambda t: I.xavier_normal_(t)),
        'truncNormal': ((50,), lambda t: I.trunc_normal_(t, std=0.02)),
        'truncNormal bounds': ((50,), lambda t: I.trunc_normal_(t, mean=1.0, std=2.0, a=-1.0, b=2.5)),
        'uniform': ((10,), lambda t: I.uniform_(t, -3, 2)),
        'normal': ((10,), lambda t: I.normal_(t, 1, 0.5)),
    }
    out = {}
    for i, (name, (shape, fn)) in enumerate(cases.items()):
        torch.manual_seed(50 + i)
        t = torch.empty(*shape)
        fn(t)
        out[name] = {'seed': 50 + i, 'shape': list(shape), 'values': enc(t)}
    return out


def keys():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4)), nn.Flatten(), nn.Linear(4, 2))
    return {'nested sequential': list(m.state_dict().keys()),
            'nested sequential parameters': [k for k, _ in m.named_parameters()]}


if __name__ == '__main__':
    result = {'functional': functional(), 'layers': layers(), 'init': init(), 'keys': keys(), 'torch': torch.__version__}
    with open(sys.argv[1], 'w') as f:
        json.dump(result, f)
