# The PyTorch side of bench/models.mjs for zoo part 3's timm families that torchvision lacks:
# timm's TF ports of EfficientNet B0-B7 (tf_efficientnet_b*), timm's MnasNet (semnasnet_*, mnasnet_100) and
# the NFNets (dm_nfnet_f0 ... f6, nfnet_l0, eca_nfnet_l0). bench/torch_models.py imports MODELS.
#
# Each network is written with torch's own ops, layer for layer as convzoo builds it (src/models/efficientnet.ts,
# src/models/mnasnet.ts, src/nn/efficientnet_blocks.ts, src/models/nfnet.ts, src/nn/std_conv.ts,
# src/nn/squeeze_excite.ts): the same parameter counts and multiply-adds, the same work per forward.
#  - TF "same" padding where it depends on the input (strided or even kernels) is computed in forward from the
#    input size and applied with F.pad, as convzoo's Conv2dSame / padSame; elsewhere a fixed symmetric padding.
#  - NFNet convs standardise their weight in every forward (F.batch_norm over weight.reshape(1, out, -1), as
#    timm and convzoo's StdConv2d.standardizedWeight), never precomputed here. Note: convzoo itself caches the
#    standardised weight in eval mode when no weight gradient is recorded (std_conv.ts), so under
#    inferenceMode / noGrad its forward skips this work; the PyTorch column does it every call.
#  - Activations are in place where convzoo's are (ReLU after BN; add_ of the residual; GammaAct's mul_);
#    SiLU/GELU are not (convzoo has no in-place SiLU). Dropout and drop path are identity in eval and left out.
# Python 3 with torch 1.13 (Debian's /usr/bin/python3); no timm needed.
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- shared arithmetic (src/nn/make_divisible.ts, padding.ts, efficientnet_blocks.ts)

def make_divisible(v, divisor=8, min_value=None, round_limit=0.9):
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(v + divisor / 2) // divisor * divisor)
    if rounded < round_limit * v:
        rounded += divisor
    return rounded


def round_channels(c, multiplier=1.0):
    return make_divisible(c * multiplier) if multiplier else c


def get_padding(k, stride=1, dilation=1):
    return (stride - 1 + dilation * (k - 1)) // 2


def is_static_pad(k, stride=1, dilation=1):
    return stride == 1 and (dilation * (k - 1)) % 2 == 0


def pad_same(x, k, stride, dilation=(1, 1), value=0.0):
    """TensorFlow's 'SAME' padding of the last two dims (an odd pixel after), from the input size."""
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / stride[0]) - 1) * stride[0] + (k[0] - 1) * dilation[0] + 1 - ih, 0)
    pw = max((math.ceil(iw / stride[1]) - 1) * stride[1] + (k[1] - 1) * dilation[1] + 1 - iw, 0)
    if ph > 0 or pw > 0:
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], value=value)
    return x


class Conv2dSame(nn.Conv2d):
    """Conv2d padded to TF 'SAME' in forward (convzoo's Conv2dSame)."""
    def __init__(self, cin, cout, k, stride=1, groups=1, bias=False):
        super().__init__(cin, cout, k, stride, 0, groups=groups, bias=bias)

    def forward(self, x):
        return super().forward(pad_same(x, self.kernel_size, self.stride, self.dilation))


def create_conv2d(cin, cout, k, stride=1, groups=1, padding=None, bias=False):
    """timm's / convzoo's createConv2d: 'same' is static symmetric padding where exact, else Conv2dSame."""
    if padding == 'same' and not is_static_pad(k, stride):
        return Conv2dSame(cin, cout, k, stride, groups, bias)
    return nn.Conv2d(cin, cout, k, stride, get_padding(k, stride), groups=groups, bias=bias)


def act_module(act, inplace):
    """convzoo's getActivation: ReLU can be in place, SiLU cannot."""
    if act == 'relu':
        return nn.ReLU(inplace=inplace)
    if act == 'swish':
        return nn.SiLU()
    raise ValueError(act)


# ---- timm's EfficientNet blocks and class (src/nn/efficientnet_blocks.ts, TimmEfficientNet)

class SqueezeExcite(nn.Module):
    """convzoo's SqueezeExcite: mean over H, W (keepdim), fc1, [act], fc2, gate, x * s (not in place)."""
    def __init__(self, channels, rd, act='relu', names=('fc1', 'act', 'fc2', 'gate')):
        super().__init__()
        self._names = names
        setattr(self, names[0], nn.Conv2d(channels, rd, 1))
        setattr(self, names[1], act_module(act, False))
        setattr(self, names[2], nn.Conv2d(rd, channels, 1))
        setattr(self, names[3], nn.Sigmoid())

    def forward(self, x):
        fc1, act, fc2, gate = (getattr(self, n) for n in self._names)
        return x * gate(fc2(act(fc1(x.mean((2, 3), keepdim=True)))))


def timm_se(channels, rd, act):
    return SqueezeExcite(channels, rd, act, names=('conv_reduce', 'act1', 'conv_expand', 'gate'))


def round_half_even(v):
    return round(v)  # Python's round: halves to even, as convzoo's roundHalfEven


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin, cout, k, stride, act, bn_eps, padding, se_rd, noskip):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout and not noskip
        self.conv_dw = create_conv2d(cin, cin, k, stride, groups=cin, padding=padding)
        self.bn1 = nn.BatchNorm2d(cin, eps=bn_eps)
        self.act1 = act_module(act, True)
        self.se = timm_se(cin, se_rd, act) if se_rd else None
        self.conv_pw = create_conv2d(cin, cout, 1, padding=padding)
        self.bn2 = nn.BatchNorm2d(cout, eps=bn_eps)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_dw(x)))
        if self.se is not None:
            y = self.se(y)
        y = self.bn2(self.conv_pw(y))
        return y.add_(x) if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, k, stride, exp_ratio, act, bn_eps, padding, se_rd, noskip):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout and not noskip
        mid = make_divisible(cin * exp_ratio)
        self.conv_pw = create_conv2d(cin, mid, 1, padding=padding)
        self.bn1 = nn.BatchNorm2d(mid, eps=bn_eps)
        self.act1 = act_module(act, True)
        self.conv_dw = create_conv2d(mid, mid, k, stride, groups=mid, padding=padding)
        self.bn2 = nn.BatchNorm2d(mid, eps=bn_eps)
        self.act2 = act_module(act, True)
        self.se = timm_se(mid, se_rd, act) if se_rd else None
        self.conv_pwl = create_conv2d(mid, cout, 1, padding=padding)
        self.bn3 = nn.BatchNorm2d(cout, eps=bn_eps)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.bn3(self.conv_pwl(y))
        return y.add_(x) if self.has_skip else y


# A row: (type 'ds' | 'ir', kernel, stride, exp_ratio, out_channels, se_ratio, noskip), one per block.

def decode_arch(stages):
    """timm's block strings at depth multiplier 1 (convzoo's decodeArchDef): one row per block."""
    out = []
    for rows in stages:
        stage = []
        for s in rows:
            t, *ops = s.split('_')
            num, noskip = {}, False
            for op in ops:
                if op == 'noskip':
                    noskip = True
                else:
                    key = 'se' if op.startswith('se') else op[0]
                    num[key] = float(op[len(key):])
            stage += [(t, int(num['k']), int(num['s']), num.get('e', 1) if t == 'ir' else 1, int(num['c']),
                       num.get('se', 0), noskip)] * int(num['r'])
        out.append(stage)
    return out


class TimmEfficientNet(nn.Module):
    """timm's EfficientNet class as convzoo's TimmEfficientNet: conv_stem, bn1, act1, blocks, conv_head, bn2, act2, classifier."""
    def __init__(self, stages, width, head, scale_head, act, bn_eps=1e-5, padding=None):
        super().__init__()
        rc = lambda c: round_channels(c, width)  # noqa: E731
        stem = rc(32)
        self.conv_stem = create_conv2d(3, stem, 3, 2, padding=padding)
        self.bn1 = nn.BatchNorm2d(stem, eps=bn_eps)
        self.act1 = act_module(act, True)
        cin, built = stem, []
        for rows in stages:
            blocks = []
            for i, (t, k, s, e, c, se, noskip) in enumerate(rows):
                cout, stride = rc(c), (s if i == 0 else 1)
                if t == 'ir':
                    mid = make_divisible(cin * e)
                    rd = round_half_even(mid * (se / e)) if se else 0
                    blocks.append(InvertedResidual(cin, cout, k, stride, e, act, bn_eps, padding, rd, noskip))
                else:
                    rd = round_half_even(cin * (se / 1)) if se else 0
                    blocks.append(DepthwiseSeparableConv(cin, cout, k, stride, act, bn_eps, padding, rd, noskip))
                cin = cout
            built.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*built)
        self.num_features = rc(head) if scale_head else head
        self.conv_head = create_conv2d(cin, self.num_features, 1, padding=padding)
        self.bn2 = nn.BatchNorm2d(self.num_features, eps=bn_eps)
        self.act2 = act_module(act, True)
        self.classifier = nn.Linear(self.num_features, 1000)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.act2(self.bn2(self.conv_head(self.blocks(x))))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# EfficientNet's Table 1 (expand, kernel, stride, out, layers) and compound scaling (width, depth).
EFFICIENTNET_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                       (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
EFFICIENTNET_SCALING = {'b0': (1.0, 1.0), 'b1': (1.0, 1.1), 'b2': (1.1, 1.2), 'b3': (1.2, 1.4),
                        'b4': (1.4, 1.8), 'b5': (1.6, 2.2), 'b6': (1.8, 2.6), 'b7': (2.0, 3.1)}


def tf_efficientnet(v):
    width, depth = EFFICIENTNET_SCALING[v]
    stages = [[('ds' if i == 0 else 'ir', k, s, e, c, 0.25, False)] * math.ceil(n * depth)
              for i, (e, k, s, c, n) in enumerate(EFFICIENTNET_STAGES)]
    return TimmEfficientNet(stages, width, 1280, True, 'swish', bn_eps=1e-3, padding='same')


MNASNET_A1 = [['ds_r1_k3_s1_e1_c16_noskip'], ['ir_r2_k3_s2_e6_c24'], ['ir_r3_k5_s2_e3_c40_se0.25'], ['ir_r4_k3_s2_e6_c80'],
              ['ir_r2_k3_s1_e6_c112_se0.25'], ['ir_r3_k5_s2_e6_c160_se0.25'], ['ir_r1_k3_s1_e6_c320']]
MNASNET_B1 = [['ds_r1_k3_s1_c16_noskip'], ['ir_r3_k3_s2_e3_c24'], ['ir_r3_k5_s2_e3_c40'], ['ir_r3_k5_s2_e6_c80'],
              ['ir_r2_k3_s1_e6_c96'], ['ir_r4_k5_s2_e6_c192'], ['ir_r1_k3_s1_e6_c320_noskip']]


def timm_mnasnet(arch, width):
    return TimmEfficientNet(decode_arch(arch), width, 1280, False, 'relu')


# ---- NFNets (src/models/nfnet.ts, src/nn/std_conv.ts)

NONLIN_GAMMA = {'gelu': 1.7015043497085571, 'silu': 1.7881293296813965, 'relu': 1.7139588594436646}
NF_ALPHA, NF_ATTN_GAIN, NF_STD_CONV_EPS = 0.2, 2.0, 1e-5


class ScaledStdConv2d(nn.Conv2d):
    """Weight standardised per output channel in every forward, times gain * gamma / sqrt(fan_in); TF 'same' when dynamic."""
    def __init__(self, cin, cout, k, stride=1, groups=1, same=False, gamma=1.0, eps=NF_STD_CONV_EPS, gain_init=1.0):
        dynamic = same and not is_static_pad(k, stride)
        super().__init__(cin, cout, k, stride, 0 if dynamic else get_padding(k, stride), groups=groups, bias=True)
        self.same_pad, self.eps = dynamic, eps
        self.gain = nn.Parameter(torch.full((cout, 1, 1, 1), float(gain_init)))
        self.scale = gamma / math.sqrt(cin / groups * k * k)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            # The same per-channel statistics and affine as the batch_norm below, written out: torch exports
            # batch_norm(training=True) through a transposed and a reshaped copy of the weight, which constant
            # folding stores as two more initializers (a 2x larger file; dm_nfnet_f4+ past protobuf's 2 GB).
            d = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
            w = d / torch.sqrt(d.mul(d).mean((1, 2, 3), keepdim=True) + self.eps) * (self.gain * self.scale)
        else:
            w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                             weight=(self.gain * self.scale).view(-1), training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class GammaAct(nn.Module):
    """act(x) * gamma, the product in place (convzoo's GammaAct)."""
    def __init__(self, act, gamma):
        super().__init__()
        self.fn, self.gamma = {'gelu': F.gelu, 'silu': F.silu, 'relu': F.relu}[act], gamma

    def forward(self, x):
        return self.fn(x).mul_(self.gamma)


class EcaModule(nn.Module):
    def __init__(self, channels):
        super().__init__()
        t = int(abs(math.log(channels) / math.log(2) + 1) / 2)
        k = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        n = x.shape[0]
        y = self.conv(x.mean((2, 3)).view(n, 1, -1))
        return x * self.gate(y).view(n, -1, 1, 1)


class DownsampleAvg(nn.Module):
    def __init__(self, cin, cout, stride, conv):
        super().__init__()
        self.pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else None
        self.conv = conv(cin, cout, 1)

    def forward(self, x):
        return self.conv(self.pool(x) if self.pool is not None else x)


class NormFreeBlock(nn.Module):
    def __init__(self, cin, cout, stride, beta, cfg, act, conv):
        super().__init__()
        mid = make_divisible(cout * cfg['bottle_ratio'])
        groups = mid // cfg['group_size']
        if cfg['group_size'] % 8 == 0:
            mid = cfg['group_size'] * groups
        self.beta = beta
        self.skipinit_gain = nn.Parameter(torch.tensor(0.)) if cfg['skipinit'] else None
        self.downsample = DownsampleAvg(cin, cout, stride, conv) if cin != cout or stride != 1 else None
        self.act1 = act()
        self.conv1 = conv(cin, mid, 1)
        self.act2 = act()
        self.conv2 = conv(mid, mid, 3, stride=stride, groups=groups)
        self.act2b = act()
        self.conv2b = conv(mid, mid, 3, groups=groups)
        self.act3 = act()
        self.conv3 = conv(mid, cout, 1, gain_init=1.0 if cfg['skipinit'] else 0.0)
        if cfg['attn'] == 'eca':
            self.attn_last = EcaModule(cout)
        else:
            self.attn_last = SqueezeExcite(cout, make_divisible(cout * cfg['attn'], 8, None, 0))

    def forward(self, x):
        h = self.act1(x).mul_(self.beta)
        shortcut = self.downsample(h) if self.downsample is not None else x
        out = self.conv3(self.act3(self.conv2b(self.act2b(self.conv2(self.act2(self.conv1(h)))))))
        out = self.attn_last(out).mul(NF_ATTN_GAIN)
        if self.skipinit_gain is not None:
            out = out.mul(self.skipinit_gain)
        return out.mul(NF_ALPHA).add_(shortcut)


class NfStem(nn.Module):
    def __init__(self, cin, cout, act, conv):
        super().__init__()
        c1, c2, c3 = cout // 8, cout // 4, cout // 2
        self.conv1 = conv(cin, c1, 3, stride=2)
        self.act2 = act()
        self.conv2 = conv(c1, c2, 3)
        self.act3 = act()
        self.conv3 = conv(c2, c3, 3)
        self.act4 = act()
        self.conv4 = conv(c3, cout, 3, stride=2)

    def forward(self, x):
        return self.conv4(self.act4(self.conv3(self.act3(self.conv2(self.act2(self.conv1(x)))))))


class NfHead(nn.Module):
    """convzoo's HeadModule: global average pool, flatten, `fc` (timm's key head.fc)."""
    def __init__(self, num_features):
        super().__init__()
        self.fc = nn.Linear(num_features, 1000)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class NormFreeNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        gamma = NONLIN_GAMMA[cfg['act']]
        gamma_in_act = cfg['gamma_in_act']

        def act():
            if gamma_in_act:
                return GammaAct(cfg['act'], gamma)
            return {'gelu': nn.GELU, 'silu': nn.SiLU, 'relu': nn.ReLU}[cfg['act']]()

        def conv(cin, cout, k, stride=1, groups=1, gain_init=1.0):
            return ScaledStdConv2d(cin, cout, k, stride, groups, same=cfg['same'], gamma=1.0 if gamma_in_act else gamma,
                                   gain_init=gain_init)

        stem = make_divisible(128)
        self.stem = NfStem(3, stem, act, conv)
        prev, expected_var, stages = stem, 1.0, []
        for s in range(4):
            cout = make_divisible(cfg['channels'][s])
            blocks = []
            for b in range(cfg['depths'][s]):
                blocks.append(NormFreeBlock(prev, cout, 2 if b == 0 and s > 0 else 1, 1 / expected_var ** 0.5, cfg, act, conv))
                if b == 0:
                    expected_var = 1.0
                expected_var += NF_ALPHA ** 2
                prev = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = make_divisible(int(cfg['channels'][3] * cfg['feat_mult']))
        self.final_conv = conv(prev, self.num_features, 1)
        self.final_act = act()
        self.head = NfHead(self.num_features)

    def forward(self, x):
        x = self.final_act(self.final_conv(self.stages(self.stem(x))))
        return self.head(x)


def dm_nfnet(k):
    return NormFreeNet(dict(depths=[k, 2 * k, 6 * k, 3 * k], channels=[256, 512, 1536, 1536], group_size=128, bottle_ratio=0.5,
                            feat_mult=2, act='gelu', attn=0.5, gamma_in_act=True, same=True, skipinit=True))


def nfnet_l0(attn):
    return NormFreeNet(dict(depths=[1, 2, 6, 3], channels=[256, 512, 1536, 1536], group_size=64, bottle_ratio=0.25,
                            feat_mult=1.5, act='silu', attn=attn, gamma_in_act=False, same=False, skipinit=False))


# ---- the ids and their input sizes (convzoo's meta.inputSize)

MODELS = {
    **{f'tf_efficientnet_{v}': (lambda v=v: tf_efficientnet(v)) for v in EFFICIENTNET_SCALING},
    'semnasnet_050': lambda: timm_mnasnet(MNASNET_A1, 0.5),
    'semnasnet_075': lambda: timm_mnasnet(MNASNET_A1, 0.75),
    'semnasnet_100': lambda: timm_mnasnet(MNASNET_A1, 1.0),
    'semnasnet_140': lambda: timm_mnasnet(MNASNET_A1, 1.4),
    'mnasnet_100': lambda: timm_mnasnet(MNASNET_B1, 1.0),
    **{f'dm_nfnet_f{k}': (lambda k=k: dm_nfnet(k + 1)) for k in range(7)},
    'nfnet_l0': lambda: nfnet_l0(0.25),
    'eca_nfnet_l0': lambda: nfnet_l0('eca'),
}

INPUT_SIZES = {
    **dict(zip([f'tf_efficientnet_b{i}' for i in range(8)], [224, 240, 260, 300, 380, 456, 528, 600])),
    **{k: 224 for k in ['semnasnet_050', 'semnasnet_075', 'semnasnet_100', 'semnasnet_140', 'mnasnet_100']},
    **dict(zip([f'dm_nfnet_f{i}' for i in range(7)], [256, 320, 352, 416, 512, 544, 576])),
    'nfnet_l0': 288,
    'eca_nfnet_l0': 288,
}
