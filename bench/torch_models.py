# The PyTorch side of bench/models.mjs (run with Debian's /usr/bin/python3: torch 1.13, torchvision 0.14).
#
#   python3 bench/torch_models.py export OUT_DIR ID[@SIZE]...   torch.onnx.export of each model at SIZE (224), once
#   python3 bench/torch_models.py worker '{"threads": 2, "variant": "eager"|"cl"|"bf16"}'
#                                                              a worker driven by JSON lines on stdin
#
# Every model of the zoo that torchvision has is torchvision's own builder with random initialisation.
# The networks torchvision lacks (the paper variants alexnet_original, vgg_a_lrn, vgg_c, googlenet_original and
# MobileNet v1; timm's and the authors' SENet, DPN and IGC V1; Megvii's ShuffleNet v1; the Residual Attention
# prototxts, in torch_zoo3_resattn.py; timm's EfficientNet-builder ids and NFNets, in torch_zoo3_timm.py) are written here with torchvision's building
# blocks, layer for layer as convzoo's src/models/*.ts (same parameter counts, which the driver compares, and
# the same multiply-adds), so that they get a PyTorch and an ONNX column too.
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import torch_zoo3_resattn  # bench/: the networks too long to sit in this file
import torch_zoo3_timm

# ---- the paper networks torchvision does not have

LRN_PAPER = dict(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)  # AlexNet's LRN in torch's convention (alpha / n)


class _LrnOnnx(torch.autograd.Function):
    """F.local_response_norm is Python code, not an aten op: torch.onnx would trace its pow/pad/avg_pool pieces
    (and lose the spatial sizes that AdaptiveAvgPool2d's export needs). ONNX has the op itself, with torch's
    formula (alpha divided by size, the window centred on the channel)."""
    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op('LRN', x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.LocalResponseNorm):
    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return _LrnOnnx.apply(x, self.size, self.alpha, self.beta, self.k)
        return super().forward(x)


def alexnet_original():
    """Krizhevsky et al. 2012, both towers as groups=2 convolutions, LRN after conv1 and conv2."""
    def conv(cin, cout, k, stride=1, padding=0, groups=1):
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups), nn.ReLU(inplace=True)]
    pool = lambda: nn.MaxPool2d(3, 2)
    lrn = lambda: LRN(**LRN_PAPER)
    m = torchvision.models.AlexNet()
    m.features = nn.Sequential(
        *conv(3, 96, 11, stride=4), lrn(), pool(),
        *conv(96, 256, 5, padding=2, groups=2), lrn(), pool(),
        *conv(256, 384, 3, padding=1),
        *conv(384, 384, 3, padding=1, groups=2),
        *conv(384, 256, 3, padding=1, groups=2), pool())
    m.classifier = nn.Sequential(
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, 1000))
    return m


# Table 1 of Simonyan & Zisserman: an int is a 3x3 conv, ('1x1', n) a 1x1 conv, 'M' a 2x2 max-pool.
VGG_PAPER = {
    'vgg_a_lrn': [64, 'LRN', 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'vgg_c': [64, 64, 'M', 128, 128, 'M', 256, 256, ('1x1', 256), 'M', 512, 512, ('1x1', 512), 'M',
              512, 512, ('1x1', 512), 'M'],
}


def vgg_paper(cfg):
    layers, cin = [], 3
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(2, 2))
        elif v == 'LRN':
            layers.append(LRN(**LRN_PAPER))
        else:
            cout, k = (v[1], 1) if isinstance(v, tuple) else (v, 3)
            layers += [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True)]
            cin = cout
    return torchvision.models.vgg.VGG(nn.Sequential(*layers))


class ConvRelu(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__(nn.Conv2d(cin, cout, k, stride=stride, padding=padding), nn.ReLU(inplace=True))


class InceptionPaper(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = ConvRelu(cin, c1, 1)
        self.branch2 = nn.Sequential(ConvRelu(cin, c3r, 1), ConvRelu(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvRelu(cin, c5r, 1), ConvRelu(c5r, c5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), ConvRelu(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxPaper(nn.Module):
    """Built for the parameter count only: like torchvision's GoogLeNet, eval mode never runs it."""
    def __init__(self, cin):
        super().__init__()
        self.conv = ConvRelu(cin, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, 1000)


class GoogLeNetPaper(nn.Module):
    """Szegedy et al. 2014 as convzoo's googlenet_original: no BN, LRN in the stem, 5x5 branches, 3x3 pools."""
    ROWS = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), 'M',
            (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64),
            (512, 112, 144, 288, 32, 64, 64), (528, 256, 160, 320, 32, 128, 128), 'M',
            (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)]

    def __init__(self):
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
        lrn = lambda: LRN(5, alpha=1e-4, beta=0.75, k=1.0)
        self.stem = nn.Sequential(ConvRelu(3, 64, 7, stride=2, padding=3), pool(), lrn(),
                                  ConvRelu(64, 64, 1), ConvRelu(64, 192, 3, padding=1), lrn(), pool())
        self.trunk = nn.Sequential(*[pool() if r == 'M' else InceptionPaper(*r) for r in self.ROWS])
        self.aux1, self.aux2 = AuxPaper(512), AuxPaper(528)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.trunk(self.stem(x))), 1)))


def mobilenet_v1(width, rounding, act):
    """MobileNet v1 (Howard et al. 2017, Table 1) as convzoo's src/models/mobilenet.ts builds it: timm's
    layout (conv_stem, depthwise-separable blocks, global pool, linear classifier), ReLU6 for timm's ids and
    ReLU with floor(c * alpha) widths for the paper's."""
    def ch(c):
        if rounding == 'timm':
            v = max(8, int(c * width + 4) // 8 * 8)
            return v + 8 if v < 0.9 * c * width else v
        return max(8, int(c * width))
    Act = nn.ReLU6 if act == 'relu6' else nn.ReLU
    cin = ch(32)
    layers = [nn.Conv2d(3, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin), Act(inplace=True)]
    for out, n, stride in [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)]:
        for i in range(n):
            cout = ch(out)
            layers += [nn.Conv2d(cin, cin, 3, stride if i == 0 else 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), Act(inplace=True),
                       nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), Act(inplace=True)]
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))



# ---- zoo part 2: SENet (timm's legacy release and its ResNet with SE), DPN, IGC V1

class SEModule(nn.Module):
    """Squeeze-and-excitation: global mean, 1x1 conv down, ReLU, 1x1 conv up, sigmoid gate (both forms)."""
    def __init__(self, channels, rd):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.fc2 = nn.Conv2d(rd, channels, 1)

    def forward(self, x):
        s = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)), inplace=True))
        return x * torch.sigmoid(s)


class LegacySEBlock(nn.Module):
    """SE-ResNet-18/34's block of the Caffe release: 3x3 (stride), 3x3, ReLU after both, SE, add, ReLU."""
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, groups):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se_module = SEModule(planes, planes // 16)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.se_module(out)
        out += x if self.downsample is None else self.downsample(x)
        return F.relu(out, inplace=True)


class LegacySEBottleneck(nn.Module):
    """The release's bottlenecks: (mid, width, stride on conv1?) per kind, SE on the branch, add, ReLU."""
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, groups, kind):
        super().__init__()
        mid, width, stride1 = {
            'resnet': (planes, planes, True),
            'resnext': (planes * 4 // 64 * groups, planes * 4 // 64 * groups, False),
            'senet': (planes * 2, planes * 4, False),
        }[kind]
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, mid, 1, stride if stride1 else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, width, 3, 1 if stride1 else stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se_module = SEModule(out, out // 16)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.se_module(self.bn3(self.conv3(out)))
        out += x if self.downsample is None else self.downsample(x)
        return F.relu(out, inplace=True)


class LegacySENet(nn.Module):
    """timm's legacy SENet (Hu et al. 2018, the authors' Caffe release): as convzoo's src/models/senet.ts."""
    def __init__(self, kind, layers, groups=1, senet154=False):
        super().__init__()
        if senet154:
            inplanes = 128
            stem = [nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                    nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                    nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True)]
        else:
            inplanes = 64
            stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        self.layer0 = nn.Sequential(*stem, nn.MaxPool2d(3, 2, ceil_mode=True))
        block = (lambda *a: LegacySEBlock(*a)) if kind == 'basic' else (lambda *a: LegacySEBottleneck(*a, kind))
        expansion = 1 if kind == 'basic' else 4
        k, p = (3, 1) if senet154 else (1, 0)
        stages = []
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], layers)):
            stride, out = (1 if i == 0 else 2), planes * expansion
            kk, pp = (1, 0) if i == 0 else (k, p)
            down = (nn.Sequential(nn.Conv2d(inplanes, out, kk, stride, pp, bias=False), nn.BatchNorm2d(out))
                    if stride != 1 or inplanes != out else None)
            blocks = [block(inplanes, planes, stride, down, groups)]
            inplanes = out
            blocks += [block(inplanes, planes, 1, None, groups) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.dropout = nn.Dropout(0.2)
        self.last_linear = nn.Linear(inplanes, 1000)

    def forward(self, x):
        x = self.layers(self.layer0(x))
        return self.last_linear(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


class TimmSEBottleneck(torchvision.models.resnet.Bottleneck):
    """torchvision's Bottleneck with timm's SEModule after bn3 (timm's seresnet50, seresnext50_32x4d)."""
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.conv3.out_channels
        self.se = SEModule(c, max(8, int(c / 16 + 4) // 8 * 8))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


def timm_seresnet(groups, width_per_group):
    return torchvision.models.resnet.ResNet(TimmSEBottleneck, [3, 4, 6, 3], groups=groups, width_per_group=width_per_group)


DPN_EPS = 1e-3


def bn_act_conv(cin, cout, k, stride=1, groups=1):
    """timm's BnActConv2d: pre-activation BN (eps 1e-3), ReLU, conv."""
    return nn.Sequential(nn.BatchNorm2d(cin, eps=DPN_EPS), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False))


class CatBnAct(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=DPN_EPS)

    def forward(self, x):
        return F.relu(self.bn(torch.cat(x, 1) if isinstance(x, tuple) else x), inplace=True)


class DualPathBlock(nn.Module):
    """timm's DualPathBlock: a shared pre-activation bottleneck split into a residual sum and a dense concat."""
    def __init__(self, cin, r, num_c, inc, groups, block_type, b):
        super().__init__()
        self.num_c, self.b = num_c, b
        self.proj = None
        if block_type != 'normal':
            self.proj = bn_act_conv(cin, num_c + 2 * inc, 1, stride=2 if block_type == 'down' else 1)
        self.c1x1_a = bn_act_conv(cin, r, 1)
        self.c3x3_b = bn_act_conv(r, r, 3, stride=2 if block_type == 'down' else 1, groups=groups)
        if b:
            self.c1x1_c = CatBnAct(r)
            self.c1x1_c1 = nn.Conv2d(r, num_c, 1, bias=False)
            self.c1x1_c2 = nn.Conv2d(r, inc, 1, bias=False)
        else:
            self.c1x1_c = bn_act_conv(r, num_c + inc, 1)

    def forward(self, x):
        x_in = torch.cat(x, 1) if isinstance(x, tuple) else x
        if self.proj is None:
            s1, s2 = x
        else:
            s = self.proj(x_in)
            s1, s2 = s[:, :self.num_c], s[:, self.num_c:]
        h = self.c1x1_c(self.c3x3_b(self.c1x1_a(x_in)))
        if self.b:
            out1, out2 = self.c1x1_c1(h), self.c1x1_c2(h)
        else:
            out1, out2 = h[:, :self.num_c], h[:, self.num_c:]
        return s1 + out1, torch.cat([s2, out2], 1)


class DPN(nn.Module):
    """timm's dpn.py (Chen et al. 2017) as convzoo's src/models/dpn.ts."""
    def __init__(self, small, init_features, k_r, groups, k_sec, inc_sec, b=False):
        super().__init__()
        bw_factor = 1 if small else 4
        k = 3 if small else 7
        blocks = [nn.Conv2d(3, init_features, k, 2, k // 2, bias=False), nn.BatchNorm2d(init_features, eps=DPN_EPS),
                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = init_features
        for stage in range(4):
            bw = 64 * 2 ** stage * bw_factor
            inc = inc_sec[stage]
            r = k_r * bw // (64 * bw_factor)
            for i in range(1, k_sec[stage] + 1):
                kind = 'normal' if i > 1 else ('proj' if stage == 0 else 'down')
                blocks.append(DualPathBlock(cin, r, bw, inc, groups, kind, b))
                cin = bw + 3 * inc if i == 1 else cin + inc
        blocks.append(CatBnAct(cin))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Conv2d(cin, 1000, 1)

    def forward(self, x):
        return torch.flatten(self.classifier(F.adaptive_avg_pool2d(self.features(x), 1)), 1)


def channel_shuffle(x, groups):
    """The Reorder of IGC's graphs, out[j*B+i] = in[i*(C/B)+j]: torchvision's channel shuffle."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class IgcUnit(nn.Module):
    """Primary 3x3 group conv (L groups), reorder, secondary 1x1 group conv (M groups), reorder back, BN."""
    def __init__(self, cin, cout, stride, L, M):
        super().__init__()
        self.L, self.M = L, M
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, groups=L, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 1, groups=M, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=2e-5)

    def forward(self, x):
        return self.bn(channel_shuffle(self.conv2(channel_shuffle(self.conv1(x), self.L)), self.M))


class IgcBlock(nn.Module):
    def __init__(self, cin, cout, stride, L):
        super().__init__()
        self.unit1 = IgcUnit(cin, cout, stride, L, cout // L)
        self.unit2 = IgcUnit(cout, cout, 1, L, cout // L)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, groups=L, bias=False), nn.BatchNorm2d(cout, eps=2e-5))

    def forward(self, x):
        out = self.unit2(F.relu(self.unit1(x), inplace=True))
        out += x if self.proj is None else self.proj(x)
        return F.relu(out, inplace=True)


class IGC(nn.Module):
    """The released IGC V1 ImageNet graphs (Zhang et al. 2017) as convzoo's src/models/igc.ts."""
    def __init__(self, stem, widths, primary):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem, eps=2e-5),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], stem
        for i, (w, L) in enumerate(zip(widths, primary)):
            blocks += [IgcBlock(cin, w, 1 if i == 0 else 2, L), IgcBlock(w, w, 1, L)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc_score = nn.Linear(cin, 1000)

    def forward(self, x):
        return self.fc_score(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


ZOO2_MODELS = {
    'legacy_seresnet18': lambda: LegacySENet('basic', [2, 2, 2, 2]),
    'legacy_seresnet34': lambda: LegacySENet('basic', [3, 4, 6, 3]),
    'legacy_seresnet50': lambda: LegacySENet('resnet', [3, 4, 6, 3]),
    'legacy_seresnet101': lambda: LegacySENet('resnet', [3, 4, 23, 3]),
    'legacy_seresnet152': lambda: LegacySENet('resnet', [3, 8, 36, 3]),
    'legacy_seresnext26_32x4d': lambda: LegacySENet('resnext', [2, 2, 2, 2], 32),
    'legacy_seresnext50_32x4d': lambda: LegacySENet('resnext', [3, 4, 6, 3], 32),
    'legacy_seresnext101_32x4d': lambda: LegacySENet('resnext', [3, 4, 23, 3], 32),
    'legacy_senet154': lambda: LegacySENet('senet', [3, 8, 36, 3], 64, senet154=True),
    'seresnet50': lambda: timm_seresnet(1, 64),
    'seresnext50_32x4d': lambda: timm_seresnet(32, 4),
    'dpn68': lambda: DPN(True, 10, 128, 32, [3, 4, 12, 3], [16, 32, 32, 64]),
    'dpn68b': lambda: DPN(True, 10, 128, 32, [3, 4, 12, 3], [16, 32, 32, 64], b=True),
    'dpn92': lambda: DPN(False, 64, 96, 32, [3, 4, 20, 3], [16, 32, 24, 128]),
    'dpn98': lambda: DPN(False, 96, 160, 40, [3, 6, 20, 3], [16, 32, 32, 128]),
    'dpn107': lambda: DPN(False, 128, 200, 50, [4, 8, 20, 3], [20, 64, 64, 128]),
    'dpn131': lambda: DPN(False, 128, 160, 40, [4, 8, 28, 3], [16, 32, 32, 128]),
    'igc_l4m32': lambda: IGC(128, [128, 256, 512, 1024], [4, 4, 4, 4]),
    'igc_l16m16': lambda: IGC(256, [256, 512, 1024, 2048], [16, 16, 16, 16]),
    'igc_l100m2': lambda: IGC(100, [200, 400, 800, 1600], [100, 200, 400, 800]),
}


# ---- zoo part 3: ShuffleNet v1 (Megvii's official network)

class ShuffleV1Block(nn.Module):
    """blocks.py's unit: 1x1 group conv-BN-ReLU, 3x3 depthwise conv-BN, Megvii's shuffle, 1x1 group conv-BN."""
    def __init__(self, cin, cout, groups, first_group, stride):
        super().__init__()
        mid, out = cout // 4, (cout - cin if stride == 2 else cout)
        self.groups, self.stride = groups, stride
        self.branch_main_1 = nn.Sequential(
            nn.Conv2d(cin, mid, 1, groups=1 if first_group else groups, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid))
        self.branch_main_2 = nn.Sequential(nn.Conv2d(mid, out, 1, groups=groups, bias=False), nn.BatchNorm2d(out))
        self.branch_proj = nn.AvgPool2d(3, 2, 1) if stride == 2 else None

    def forward(self, x):
        y = self.branch_main_1(x)
        if self.groups > 1:  # the inverse of torchvision's permutation
            n, c, h, w = y.shape
            y = y.reshape(n, c // self.groups, self.groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
        y = self.branch_main_2(y)
        if self.branch_proj is None:
            return F.relu(x + y)
        return torch.cat([self.branch_proj(x), F.relu(y)], 1)


SHUFFLENET_V1 = {  # groups, stem, stage widths (convzoo's SHUFFLENET_V1_CONFIGS)
    'g1': (1, 24, [144, 288, 576]), 'g2': (2, 24, [200, 400, 800]), 'g3': (3, 24, [240, 480, 960]),
    'g4': (4, 24, [272, 544, 1088]), 'g8': (8, 24, [384, 768, 1536]), 'g3_0_5x': (3, 12, [120, 240, 480]),
    'g3_1_5x': (3, 24, [360, 720, 1440]), 'g3_2_0x': (3, 48, [480, 960, 1920]),
}


def shufflenet_v1(name):
    groups, stem, widths = SHUFFLENET_V1[name]
    layers, cin = [], stem
    for s, (cout, n) in enumerate(zip(widths, [4, 8, 4])):
        for i in range(n):
            layers.append(ShuffleV1Block(cin, cout, groups, s == 0 and i == 0, 2 if i == 0 else 1))
            cin = cout
    return nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000, bias=False))


ZOO3_MODELS = {f'shufflenet_v1_{k}': (lambda k=k: shufflenet_v1(k)) for k in SHUFFLENET_V1}
ZOO3_MODELS.update(torch_zoo3_resattn.MODELS)
ZOO3_MODELS.update(torch_zoo3_timm.MODELS)

PAPER_MODELS = {
    'mobilenetv1_100': lambda: mobilenet_v1(1.0, 'timm', 'relu6'),
    'mobilenetv1_125': lambda: mobilenet_v1(1.25, 'timm', 'relu6'),
    'mobilenet_v1_1_0': lambda: mobilenet_v1(1.0, 'paper', 'relu'),
    'mobilenet_v1_0_75': lambda: mobilenet_v1(0.75, 'paper', 'relu'),
    'mobilenet_v1_0_5': lambda: mobilenet_v1(0.5, 'paper', 'relu'),
    'mobilenet_v1_0_25': lambda: mobilenet_v1(0.25, 'paper', 'relu'),
    'alexnet_original': alexnet_original,
    'vgg_a_lrn': lambda: vgg_paper(VGG_PAPER['vgg_a_lrn']),
    'vgg_c': lambda: vgg_paper(VGG_PAPER['vgg_c']),
    'googlenet_original': GoogLeNetPaper,
    **ZOO2_MODELS,
    **ZOO3_MODELS,
}

# convzoo's paper-column names that are torchvision's models key for key.
ALIASES = {'vgg_a': 'vgg11', 'vgg_b': 'vgg13', 'vgg_d': 'vgg16', 'vgg_e': 'vgg19'}


def build(model_id):
    """The model in eval mode with random initialisation, and whether it is torchvision's own."""
    torch.manual_seed(0)
    if model_id in PAPER_MODELS:
        return PAPER_MODELS[model_id]().eval(), False
    name = ALIASES.get(model_id, model_id)
    # googlenet without weights: aux_logits=True, transform_input=False, init_weights=True (as convzoo).
    kwargs = {'init_weights': True} if name == 'googlenet' else {}
    return torchvision.models.get_model(name, weights=None, **kwargs).eval(), True


# ---- ONNX export

def export(out_dir, ids, opset=17):
    os.makedirs(out_dir, exist_ok=True)
    for arg in ids:  # ID or ID@SIZE (the input size to trace at; default 224)
        model_id, _, size = arg.partition('@')
        size = int(size) if size else 224
        path = os.path.join(out_dir, f'{model_id}.onnx')
        if os.path.exists(path):
            continue
        model, _ = build(model_id)
        t0 = time.perf_counter()
        tmp = path + '.part'
        with torch.no_grad():
            torch.onnx.export(model, torch.randn(1, 3, size, size), tmp, opset_version=opset,
                              input_names=['input'], output_names=['logits'],
                              dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
        os.replace(tmp, path)
        print(f'exported {model_id} (opset {opset}) in {time.perf_counter() - t0:.1f} s -> {path}', file=sys.stderr, flush=True)


# ---- worker: one JSON line in, one JSON line out

def worker(opts):
    torch.set_num_threads(opts['threads'])
    # 'eager' (float32), 'cl' (tuned float32: channels-last, jit-frozen, optimize_for_inference) or
    # 'bf16' (autocast bfloat16, channels-last).
    variant = opts.get('variant', 'eager')
    model, inputs = None, {}
    print(json.dumps({'version': torch.__version__, 'torchvision': torchvision.__version__,
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg['cmd']
        if cmd == 'load':
            model, inputs, traced = None, {}, {}
            model, native = build(msg['model'])
            size = msg['size']
            params = sum(p.numel() for p in model.parameters())
            if variant in ('cl', 'bf16'):
                model = model.to(memory_format=torch.channels_last)
            print(json.dumps({'params': params, 'torchvision': native, 'variant': variant}), flush=True)
        elif cmd == 'run':
            b = msg['batch']
            if b not in inputs:
                x = torch.randn(b, 3, size, size)
                inputs[b] = x.contiguous(memory_format=torch.channels_last) if variant in ('cl', 'bf16') else x
            run = model
            if variant == 'cl':
                # PyTorch's tuned fp32 inference: traced, frozen (batch norms folded) and optimize_for_inference
                # (oneDNN prepacked convolutions), channels-last; the eager channels-last model if tracing fails.
                if b not in traced:
                    try:
                        with torch.no_grad():
                            traced[b] = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, inputs[b])))
                            traced[b](inputs[b])
                    except Exception as e:  # noqa: BLE001 - a model tracing cannot handle runs eagerly
                        print(f'{msg.get("model", "")}: jit failed ({str(e).splitlines()[0][:120]}); eager channels-last', file=sys.stderr)
                        traced[b] = model
                run = traced[b]
            with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=variant == 'bf16'):
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = run(inputs[b])
                t = time.perf_counter() - t0
                cpu = time.process_time() - c0
            del out
            print(json.dumps({'t': t, 'cpu': cpu}), flush=True)
        else:
            break


# ---- training worker (bench/train_precision.mjs): {cmd: 'load', model, batch, size, precision} then 'step's

def peak_rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


class ThresholdReLU6(torch.nn.Module):
    """ReLU6 as two thresholds, max(x, 0) then -max(-x, -6): PyTorch 1.13's CPU hardtanh backward has no
    bfloat16 kernel, threshold's has (convzoo's relu6 does the same in bf16; clamp's backward is slower)."""

    def forward(self, x):
        return -F.threshold(-F.threshold(x, 0.0, 0.0), -6.0, -6.0)


def swap_relu6(module):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.ReLU6):
            setattr(module, name, ThresholdReLU6())
        else:
            swap_relu6(child)


def train_worker(opts):
    torch.set_num_threads(opts['threads'])
    print(json.dumps({'version': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
    model = optimizer = x = y = None
    bf16 = False
    for line in sys.stdin:
        msg = json.loads(line)
        if msg['cmd'] == 'load':
            model, _ = build(msg['model'])
            model.train()
            bf16 = msg['precision'] == 'bf16'
            torch.manual_seed(1)
            x = torch.randn(msg['batch'], 3, msg['size'], msg['size'])
            y = torch.randint(0, 1000, (msg['batch'],))
            if bf16:  # autocast bfloat16 on channels-last weights and images, float32 loss
                swap_relu6(model)
                model = model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            print(json.dumps({'params': sum(p.numel() for p in model.parameters()), 'rss': peak_rss_mib()}), flush=True)
        elif msg['cmd'] == 'step':
            t0 = time.perf_counter()
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            out = out.logits if hasattr(out, 'logits') else out
            loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            print(json.dumps({'t': time.perf_counter() - t0, 'loss': value, 'rss': peak_rss_mib()}), flush=True)
        else:
            break


if __name__ == '__main__':
    if sys.argv[1] == 'export':
        export(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == 'worker':
        worker(json.loads(sys.argv[2]))
    elif sys.argv[1] == 'trainworker':
        train_worker(json.loads(sys.argv[2]))
    else:
        sys.exit(f'unknown command {sys.argv[1]}')
