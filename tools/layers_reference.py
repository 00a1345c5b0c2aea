#!/usr/bin/python3
"""Reference values for the nn block toolbox (test/functional_ops.test.ts, test/layers_toolkit.test.ts),
from Debian's torch and torchvision (run with /usr/bin/python3).

    /usr/bin/python3 tools/layers_reference.py OUT.json

timm is not installed here, so its layers are re-implemented below from timm's source (layers/padding.py,
helpers.py, squeeze_excite.py, eca.py, std_conv.py, drop.py, conv_bn_act.py), kept line for line where
the arithmetic matters; torchvision's SqueezeExcitation, Conv2dNormActivation, _make_divisible and
stochastic_depth are used as they are.

Writes one JSON object, T = {dtype, shape, data}:
  functional: {case: {inputs: [T], outputs: [T], grads: [T | null], seed?}}
      grads[i] is d/d(inputs[i]) of sum(out0 * cos(arange)) (null for non-float inputs)
  modules:    {case: {keys: [state-dict keys in order], state: {key: T}, input: T, output: T,
               grad_input: T, grad_params: {name: T}, after: {key: T}}}
      the module is built after torch.manual_seed(seed), its parameters and buffers are then
      randomised (so the test cannot pass on default values), and it runs forward once in the mode
      that `training` says; the test loads `state` into convzoo's module and compares the rest
  make_divisible: [[v, divisor, min_value | null, round_limit, result]]
  same_padding: [[input, kernel, stride, dilation, total]]
  eca_kernel: [[channels, kernel_size]]
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import SqueezeExcitation, stochastic_depth
from torchvision.ops.misc import Conv2dNormActivation
from torchvision.models._utils import _make_divisible

torch.set_num_threads(1)


def enc(t):
    t = t.detach()
    dtype = {torch.float32: 'float32', torch.float64: 'float64', torch.int64: 'int64', torch.bool: 'bool'}[t.dtype]
    return {'dtype': dtype, 'shape': list(t.shape), 'data': t.flatten().tolist()}


# ---- timm, re-implemented (see the module docstring)
def get_padding(kernel_size, stride=1, dilation=1):
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def get_same_padding(x, kernel_size, stride, dilation):
    return max((math.ceil(x / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - x, 0)


def pad_same(x, kernel_size, stride, dilation=(1, 1), value=0.):
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)


def make_divisible(v, divisor=8, min_value=None, round_limit=.9):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class Conv2dSame(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x):
        x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


class MaxPool2dSame(nn.MaxPool2d):
    def __init__(self, kernel_size, stride=None, ceil_mode=False):
        kernel_size = (kernel_size, kernel_size)
        stride = (stride, stride) if stride else kernel_size
        super().__init__(kernel_size, stride, (0, 0), (1, 1), ceil_mode)

    def forward(self, x):
        x = pad_same(x, self.kernel_size, self.stride, value=-float('inf'))
        return F.max_pool2d(x, self.kernel_size, self.stride, (0, 0), self.dilation, self.ceil_mode)


class SEModule(nn.Module):  # timm layers/squeeze_excite.py
    def __init__(self, channels, rd_ratio=1. / 16, rd_channels=None, rd_divisor=8, bias=True,
                 act_layer=nn.ReLU, norm_layer=None, gate_layer=nn.Sigmoid):
        super().__init__()
        if not rd_channels:
            rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=bias)
        self.bn = norm_layer(rd_channels) if norm_layer else nn.Identity()
        self.act = act_layer()
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=bias)
        self.gate = gate_layer()

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc1(x_se)
        x_se = self.act(self.bn(x_se))
        x_se = self.fc2(x_se)
        return x * self.gate(x_se)


class LegacySEModule(nn.Module):  # timm models/senet.py (the SENet release's layout)
    def __init__(self, channels, reduction):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        module_input = x
        x = x.mean((2, 3), keepdim=True)
        x = self.fc1(x)
        x = self.relu(x)
        x = self.fc2(x)
        x = self.sigmoid(x)
        return module_input * x


class LinearSE(nn.Module):  # the squeeze-excite of the paper's figure: fully connected layers
    def __init__(self, channels, rd_channels):
        super().__init__()
        self.fc1 = nn.Linear(channels, rd_channels)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(rd_channels, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
        return x * s.view(x.shape[0], x.shape[1], 1, 1)


def eca_kernel_size(channels, gamma=2, beta=1):
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


class EcaModule(nn.Module):  # timm layers/eca.py, use_mlp=False
    def __init__(self, channels=None, kernel_size=3, gamma=2, beta=1, gate_layer=nn.Sigmoid):
        super().__init__()
        if channels is not None:
            kernel_size = eca_kernel_size(channels, gamma, beta)
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=padding, bias=False)
        self.gate = gate_layer()

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.conv(y)
        y = self.gate(y).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


class StdConv2d(nn.Conv2d):  # timm layers/std_conv.py, with StdConv2dSame's dynamic padding
    def __init__(self, in_channel, out_channels, kernel_size, stride=1, padding=None, dilation=1, groups=1,
                 bias=False, eps=1e-6, same_pad=False):
        if padding is None:
            padding = get_padding(kernel_size, stride, dilation)
        super().__init__(in_channel, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.eps = eps
        self.same_pad = same_pad

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ScaledStdConv2d(nn.Conv2d):  # timm layers/std_conv.py, with ScaledStdConv2dSame's dynamic padding
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1, groups=1,
                 bias=True, gamma=1.0, eps=1e-6, gain_init=1.0, same_pad=False):
        if padding is None:
            padding = get_padding(kernel_size, stride, dilation)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1), gain_init))
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps
        self.same_pad = same_pad

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              weight=(self.gain * self.scale).view(-1),
                              training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvNormAct(nn.Module):  # timm layers/conv_bn_act.py: keys conv.*, bn.*
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1, padding=None,
                 bias=False, norm=True, act=nn.ReLU, same=False):
        super().__init__()
        if same:
            self.conv = Conv2dSame(in_channels, out_channels, kernel_size, stride, dilation, groups, bias)
        else:
            p = get_padding(kernel_size, stride, dilation) if padding is None else padding
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, p, dilation, groups, bias)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act = act() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class DenseNetPreAct(nn.Module):  # torchvision's _DenseLayer's first half: norm1, relu1, conv1
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.conv1(self.relu1(self.norm1(x)))


class BnActConv2d(nn.Module):  # timm dpn.py: bn (BatchNormAct2d, eps 1e-3), conv
    def __init__(self, in_chs, out_chs, kernel_size, stride, groups=1):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_chs, eps=0.001)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, get_padding(kernel_size, stride), groups=groups, bias=False)

    def forward(self, x):
        return self.conv(self.act(self.bn(x)))


def drop_path(x, drop_prob=0., training=False, scale_by_keep=True):  # timm layers/drop.py
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


def megvii_channel_shuffle(x, group):  # megvii-model/ShuffleNet-Series, ShuffleNetV1/blocks.py
    batchsize, num_channels, height, width = x.data.size()
    assert num_channels % group == 0
    group_channels = num_channels // group
    x = x.reshape(batchsize, group_channels, group, height, width)
    x = x.permute(0, 2, 1, 3, 4)
    return x.reshape(batchsize, num_channels, height, width)


def torchvision_channel_shuffle(x, groups):  # torchvision/models/shufflenetv2.py
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


# ---- the activation table's meaning of each name (timm's create_act names, torch's functions)
ACTIVATIONS = {
    'relu': F.relu, 'relu6': F.relu6, 'hardswish': F.hardswish, 'hard_swish': F.hardswish,
    'hardsigmoid': F.hardsigmoid, 'hard_sigmoid': F.hardsigmoid, 'silu': F.silu, 'swish': F.silu,
    'gelu': F.gelu, 'gelu_tanh': lambda x: F.gelu(x, approximate='tanh'), 'elu': F.elu,
    'leaky_relu': F.leaky_relu, 'mish': F.mish, 'sigmoid': torch.sigmoid, 'tanh': torch.tanh,
    'identity': lambda x: x, 'none': lambda x: x,
}


def functional_cases():
    r = torch.randn
    c = {}
    for name, fn in ACTIVATIONS.items():
        # Away from the kinks (0, +-3, 6) so that finite slopes on either side do not matter.
        c['act ' + name] = ([r(3, 7) * 3], fn)
    c['conv1d'] = ([r(2, 3, 9), r(4, 3, 3), r(4)], lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1))
    c['conv1d dilation groups'] = ([r(1, 4, 10), r(6, 2, 3)], lambda x, w: F.conv1d(x, w, None, padding=2, dilation=2, groups=2))
    c['padSame k3 s2 odd'] = ([r(1, 2, 7, 8)], lambda x: pad_same(x, (3, 3), (2, 2)))
    c['padSame k(3,5) s(2,1) d(1,2) value'] = ([r(1, 1, 6, 5)], lambda x: pad_same(x, (3, 5), (2, 1), (1, 2), value=0.5))
    c['padSame k4 s1 even kernel'] = ([r(1, 1, 5, 5)], lambda x: pad_same(x, (4, 4), (1, 1)))
    c['padSame k1 s2 none needed'] = ([r(1, 1, 6, 6)], lambda x: pad_same(x, (1, 1), (2, 2)))
    c['conv2d same k3 s2'] = ([r(2, 3, 9, 8), r(4, 3, 3, 3), r(4)],
                              lambda x, w, b: F.conv2d(pad_same(x, (3, 3), (2, 2)), w, b, stride=2))
    c['maxPool2d same k3 s2'] = ([r(1, 2, 8, 7)],
                                 lambda x: F.max_pool2d(pad_same(x, (3, 3), (2, 2), value=-float('inf')), 3, 2))
    c['channelShuffle torchvision'] = ([r(2, 12, 2, 2)], lambda x: torchvision_channel_shuffle(x, 3))
    c['channelShuffle megvii'] = ([r(2, 12, 2, 2)], lambda x: megvii_channel_shuffle(x, 3))
    c['channelShuffle megvii g4'] = ([r(1, 8, 3, 1)], lambda x: megvii_channel_shuffle(x, 4))
    c['adaptiveMaxPool2d global'] = ([r(2, 3, 5, 4)], lambda x: F.adaptive_max_pool2d(x, 1))
    c['adaptiveAvgMaxPool2d'] = ([r(2, 3, 5, 4)], lambda x: 0.5 * (F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1)))
    c['adaptiveCatAvgMaxPool2d 2'] = ([r(1, 3, 6, 6)], lambda x: torch.cat((F.adaptive_avg_pool2d(x, 2), F.adaptive_max_pool2d(x, 2)), 1))
    c['interpolate bilinear x2'] = ([r(1, 2, 3, 4)], lambda x: F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False))
    c['interpolate bilinear size alignCorners'] = ([r(1, 2, 4, 3)], lambda x: F.interpolate(x, size=(7, 5), mode='bilinear', align_corners=True))
    c['interpolate bilinear x0.5 alignCorners'] = ([r(1, 1, 6, 6)], lambda x: F.interpolate(x, scale_factor=0.5, mode='bilinear', align_corners=True))
    c['interpolate nearest down to size'] = ([r(1, 2, 7, 5)], lambda x: F.interpolate(x, size=(3, 2), mode='nearest'))
    c['interpolate nearest x(2,3)'] = ([r(1, 1, 2, 3)], lambda x: F.interpolate(x, scale_factor=(2, 3), mode='nearest'))
    return c


def seeded_cases():
    # (seed, input maker, fn): the mask comes from the generator right after manual_seed(seed).
    return {
        'dropPath 0.5': (301, lambda: torch.randn(16, 3, 2, 2), lambda x: drop_path(x, 0.5, training=True)),
        'dropPath 0.2 no scale': (302, lambda: torch.randn(8, 5), lambda x: drop_path(x, 0.2, training=True, scale_by_keep=False)),
        'stochasticDepth row 0.3': (303, lambda: torch.randn(10, 2, 3, 3), lambda x: stochastic_depth(x, 0.3, 'row', training=True)),
        'dropPath p=1': (304, lambda: torch.randn(4, 3), lambda x: drop_path(x, 1.0, training=True)),
    }


def grads_of(inputs, fn):
    xs = [t.clone().requires_grad_(True) if t.is_floating_point() else t for t in inputs]
    out = fn(*xs)
    w = torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view(out.shape)
    (out * w).sum().backward()
    return [enc(x.grad) if x.is_floating_point() and x.grad is not None else None for x in xs]


def functional():
    out = {}
    torch.manual_seed(0)
    for name, (inputs, fn) in functional_cases().items():
        res = fn(*inputs)
        out[name] = {'inputs': [enc(t) for t in inputs], 'outputs': [enc(res)], 'grads': grads_of(inputs, fn)}
    for name, (seed, make, fn) in seeded_cases().items():
        torch.manual_seed(seed + 1000)
        x = make()
        torch.manual_seed(seed)
        res = fn(x)
        torch.manual_seed(seed)
        out[name] = {'inputs': [enc(x)], 'outputs': [enc(res)], 'grads': grads_of([x], fn), 'seed': seed}
    return out


def module_cases():
    # name -> (make, input shape, training)
    return {
        'SqueezeExcite torchvision': (lambda: SqueezeExcitation(32, 8), (2, 32, 3, 3), True),
        'SqueezeExcite torchvision mobilenetv3': (
            lambda: SqueezeExcitation(24, _make_divisible(24 // 4, 8), scale_activation=nn.Hardsigmoid), (2, 24, 2, 3), True),
        'SqueezeExcite torchvision efficientnet': (
            lambda: SqueezeExcitation(40, max(1, 16 // 4), activation=nn.SiLU), (1, 40, 3, 2), True),
        'SqueezeExcite timm': (lambda: SEModule(64), (2, 64, 2, 2), True),
        'SqueezeExcite timm rdRatio 0.25 silu hardsigmoid': (
            lambda: SEModule(36, rd_ratio=0.25, act_layer=nn.SiLU, gate_layer=nn.Hardsigmoid), (2, 36, 3, 3), True),
        'SqueezeExcite timm bn eval': (lambda: SEModule(48, norm_layer=nn.BatchNorm2d), (2, 48, 2, 2), False),
        'SqueezeExcite timm no bias': (lambda: SEModule(32, rd_channels=5, bias=False), (2, 32, 2, 2), True),
        'SqueezeExcite legacy senet': (lambda: LegacySEModule(64, 16), (2, 64, 3, 3), True),
        'SqueezeExcite linear': (lambda: LinearSE(24, 6), (3, 24, 2, 2), True),
        'EcaModule 64': (lambda: EcaModule(64), (2, 64, 2, 2), True),
        'EcaModule 256': (lambda: EcaModule(256), (2, 256, 1, 2), True),
        'EcaModule kernel 7 hardsigmoid': (lambda: EcaModule(kernel_size=7, gate_layer=nn.Hardsigmoid), (1, 20, 2, 2), True),
        'ConvNormAct timm': (lambda: ConvNormAct(8, 16, 3, stride=2), (2, 8, 7, 7), True),
        'ConvNormAct silu groups dilation': (lambda: ConvNormAct(8, 12, 3, dilation=2, groups=4, act=nn.SiLU), (2, 8, 6, 6), True),
        'ConvNormAct eval': (lambda: ConvNormAct(6, 8, 5, act=nn.Hardswish), (2, 6, 5, 5), False),
        'ConvNormAct no norm gelu_tanh': (lambda: ConvNormAct(4, 6, 3, norm=False, bias=True, act=lambda: nn.GELU(approximate='tanh')), (1, 4, 5, 5), True),
        'ConvNormAct tf same stride 2': (lambda: ConvNormAct(3, 8, 3, stride=2, same=True, act=nn.ReLU6), (2, 3, 8, 9), True),
        'ConvNormAct torchvision names': (lambda: Conv2dNormActivation(8, 16, 3, stride=2), (2, 8, 6, 6), True),
        'NormActConv densenet names': (lambda: DenseNetPreAct(16, 8), (2, 16, 3, 3), True),
        'NormActConv dpn bn eps': (lambda: BnActConv2d(16, 24, 3, 2, groups=4), (2, 16, 5, 5), False),
        'Conv2dSame k3 s2': (lambda: Conv2dSame(3, 4, 3, 2), (1, 3, 8, 7), True),
        'Conv2dSame k4 s1 dilation 2': (lambda: Conv2dSame(2, 3, 4, 1, dilation=2, bias=False), (1, 2, 6, 6), True),
        'MaxPool2dSame k3 s2': (lambda: MaxPool2dSame(3, 2), (1, 2, 9, 8), True),
        'StdConv2d': (lambda: StdConv2d(4, 6, 3), (2, 4, 5, 5), True),
        'ScaledStdConv2d': (lambda: ScaledStdConv2d(4, 6, 3), (2, 4, 5, 5), True),
        'ScaledStdConv2d gamma eps stride groups': (
            lambda: ScaledStdConv2d(8, 6, 3, stride=2, groups=2, gamma=1.7139588594436646, eps=1e-8), (2, 8, 7, 7), True),
        'ScaledStdConv2d same stride 2 eval': (lambda: ScaledStdConv2d(3, 5, 3, stride=2, padding=0, same_pad=True), (1, 3, 8, 8), False),
        'ScaledStdConv2d 1x1 no bias': (lambda: ScaledStdConv2d(6, 4, 1, bias=False), (2, 6, 3, 3), True),
    }


def randomise(m):
    # Non-default values everywhere: gains, biases, running statistics.
    with torch.no_grad():
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if name.endswith('num_batches_tracked'):
                t.fill_(3)
            elif name.endswith('running_var') or name.endswith('gain'):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith('running_mean') or name.endswith('bias') or name.endswith('weight') and t.ndim == 1:
                t.copy_(torch.randn_like(t) * 0.5)


def modules():
    out = {}
    for i, (name, (make, shape, training)) in enumerate(module_cases().items()):
        torch.manual_seed(10 + i)
        m = make()
        randomise(m)
        state = {k: enc(v) for k, v in m.state_dict().items()}
        m.train(training)
        x = (torch.randn(*shape) * 2).requires_grad_(True)
        y = m(x)
        w = torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view(y.shape)
        (y * w).sum().backward()
        out[name] = {
            'keys': list(m.state_dict().keys()), 'state': state, 'training': training,
            'input': enc(x), 'output': enc(y), 'grad_input': enc(x.grad),
            'grad_params': {k: enc(p.grad) for k, p in m.named_parameters()},
            'after': {k: enc(v) for k, v in m.state_dict().items()},
        }
    return out


def divisible_cases():
    rows = []
    for v in [3, 7.5, 8, 11.9, 12, 16 * 0.75, 24 * 1.1, 32 * 0.35, 40 * 0.25, 100, 112 * 1.2, 1280 * 0.5, 0.4]:
        for divisor in [8, 4, 1]:
            rows.append([v, divisor, None, 0.9, _make_divisible(v, divisor)])  # torchvision's
            rows.append([v, divisor, None, 0.0, make_divisible(v, divisor, round_limit=0.)])  # timm's SE
        rows.append([v, 8, 16, 0.9, _make_divisible(v, 8, 16)])
    return rows


def same_padding_cases():
    rows = []
    for i in [1, 2, 5, 6, 7, 8, 224, 225]:
        for k in [1, 2, 3, 4, 5, 7]:
            for s in [1, 2, 3]:
                for d in [1, 2]:
                    rows.append([i, k, s, d, get_same_padding(i, k, s, d)])
    return rows


if __name__ == '__main__':
    result = {
        'torch': torch.__version__, 'torchvision': torchvision.__version__,
        'functional': functional(), 'modules': modules(),
        'make_divisible': divisible_cases(), 'same_padding': same_padding_cases(),
        'eca_kernel': [[c, eca_kernel_size(c)] for c in [1, 2, 3, 8, 16, 24, 32, 40, 64, 96, 128, 255, 256, 512, 1024, 1536, 2048, 3072]],
    }
    with open(sys.argv[1], 'w') as f:
        json.dump(result, f)
