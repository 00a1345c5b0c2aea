# The PyTorch side of bench/models.mjs for convzoo's Residual Attention Networks (resattnet56, resattnet92), which
# torchvision lacks: the authors' Caffe deploy prototxts (github.com/fwang91/residual-attention-network,
# imagenet_model/Attention-{56,92}-deploy.prototxt) layer for layer as src/models/resattnet.ts builds them. torch_models.py
# imports MODELS into its table of paper networks.
#
# As in convzoo, every parametric layer is registered on the network under its Caffe layer name (names hold '/'; only
# '.' is forbidden in a module name), in prototxt order, so the state dict is convzoo's key for key
# (`AttentionA_1/trunk/res1/branch1/conv1_1x1.weight`, `conv1/bn.running_var`) and its safetensors load directly. The
# residual units and Attention Modules are plain Python views that wire those layers and own no parameters.
#
# Kept from the prototxts (and convzoo): pre-activation bottleneck units whose input BN-ReLU is named after the blob it
# reads; BN eps 1e-5; max-pools 3x3/2 without padding and with ceil rounding; the mask's Interp layers bilinear with
# aligned corners to the size of the map they are added to (read from that tensor's shape, so an ONNX export keeps a
# dynamic batch); (1 + mask) * trunk computed as trunk * mask + trunk; a 7x7/1 average pool and a 2048-input linear
# head (inputs of 195 to 226 pixels). ReLUs and residual sums are in place where convzoo's are.
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-5
HEAD_POOL = 7


def _max_pool():
    return nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True)


def _chain(x, steps):
    for f in steps:
        x = f(x)
    return x


class _Unit:
    """The pre-activation bottleneck unit: BN-ReLU of the input, 1x1 (C/4), BN-ReLU, 3x3 (C/4, the stride), BN-ReLU,
    1x1 (C); plus the raw input, or on a change of width or stride a 1x1 projection (branch2) of the activated input."""
    def __init__(self, preact, branch, proj):
        self.preact, self.branch, self.proj = preact, branch, proj

    def __call__(self, x):
        a = _chain(x, self.preact)
        y = _chain(a, self.branch)
        return y.add_(self.proj(a) if self.proj is not None else x)


class _Mask:
    """The soft mask branch: down (max-pool + units per level), up (bilinear + skip unit + units), BN-ReLU-1x1 twice and
    a sigmoid."""
    def __init__(self, down, skip, up, out):
        self.down, self.skip, self.up, self.out = down, skip, up, out

    def __call__(self, x):
        downs = []
        for level in self.down:
            downs.append(_chain(downs[-1] if downs else x, level))
        y = downs[-1]
        for i in range(len(downs) - 2, -1, -1):
            s = downs[i]
            up = F.interpolate(y, size=s.shape[2:], mode='bilinear', align_corners=True)
            y = _chain(self.skip[i](s).add_(up), self.up[i])
        top = F.interpolate(y, size=x.shape[2:], mode='bilinear', align_corners=True)
        return _chain(top, self.out)


class _Attention:
    """p units, t trunk units beside the mask, (1 + mask) * trunk (Caffe's `_residual` and `/fusion`), p more units."""
    def __init__(self, pre, trunk, mask, post):
        self.pre, self.trunk, self.mask, self.post = pre, trunk, mask, post

    def __call__(self, x):
        split = _chain(x, self.pre)
        trunk = _chain(split, self.trunk)
        mask = self.mask(split)
        return _chain(trunk.mul(mask).add_(trunk), self.post)


class ResidualAttentionNet(nn.Module):
    """The ImageNet layout: conv 7x7/2 (64), BN-ReLU, max-pool; stages of widths 256, 512, 1024, each a unit
    (`pre_res_<s>`, stride 1, 2, 2) and `modules[s]` Attention Modules with 3, 2, 1 mask pools; units
    `post_res_4_1..3` (2048, the first with stride 2); BN-ReLU; 7x7 average pool; linear. p, t, r = 1, 2, 1."""
    def __init__(self, modules, num_classes=1000, p=1, t=2, r=1):
        super().__init__()

        def layer(name, m):
            assert name not in self._modules, name
            self.add_module(name, m)
            return m

        def conv(name, cin, cout, k, stride=1):
            return layer(name, nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False))

        def bn_relu(blob, c):
            return [layer(f'{blob}/bn', nn.BatchNorm2d(c, eps=BN_EPS)), nn.ReLU(inplace=True)]

        def unit(name, inp, cin, cout, stride=1):
            preact = bn_relu(inp, cin)
            b, w = f'{name}/branch1', cout // 4
            branch = [conv(f'{b}/conv1_1x1', cin, w, 1), *bn_relu(f'{b}/conv1_1x1', w),
                      conv(f'{b}/conv2_3x3', w, w, 3, stride), *bn_relu(f'{b}/conv2_3x3', w),
                      conv(f'{b}/conv3_1x1', w, cout, 1)]
            proj = conv(f'{name}/branch2/conv1_1x1', cin, cout, 1, stride) if cin != cout or stride != 1 else None
            return _Unit(preact, branch, proj)

        def chain(names, inp, c):
            units = [unit(n, names[k - 1] if k else inp, c, c) for k, n in enumerate(names)]
            return units, (names[-1] if names else inp)

        def rng(n, f):
            return [f(k + 1) for k in range(n)]

        def attention(mod, inp, C, pools):
            pre, split = chain(rng(p, lambda k: f'{mod}/trunk/res{k}'), inp, C)
            trunk, _ = chain(rng(t, lambda k: f'{mod}/trunk/res{p + k}'), split, C)
            down, level_out = [], []
            for i in range(1, pools + 1):
                units, last = chain(rng(r if i < pools else 2 * r, lambda j: f'{mod}/mask/down_sample/res{i}_{j}'),
                                    f'{mod}/mask/down_sample/pool{i}_3x3_s2', C)
                down.append([_max_pool(), *units])
                level_out.append(last)
            skip, up = [None] * (pools - 1), [None] * (pools - 1)
            for i in range(pools - 1, 0, -1):
                skip[i - 1] = unit(f'{mod}/mask/skip/res{i}', level_out[i - 1], C, C)
                up[i - 1], _ = chain(rng(r, lambda j: f'{mod}/mask/up_sample/res{i}_{j}'), f'{mod}/mask/up_sample{i}', C)
            out = [*bn_relu(f'{mod}/mask/up_sample/interp_1', C), conv(f'{mod}/mask/linear_1', C, C, 1),
                   *bn_relu(f'{mod}/mask/linear_1', C), conv(f'{mod}/mask/linear_2', C, C, 1), torch.sigmoid]
            post, _ = chain([*rng(p - 1, lambda k: f'{mod}/post_res{k}'), mod], f'{mod}/fusion', C)
            return _Attention(pre, trunk, _Mask(down, skip, up, out), post)

        steps = [conv('conv1', 3, 64, 7, 2), *bn_relu('conv1', 64), _max_pool()]
        blob, cin = 'pool1_3x3_s2', 64
        for s, (width, n, pools, stride) in enumerate(zip([256, 512, 1024], modules, [3, 2, 1], [1, 2, 2])):
            steps.append(unit(f'pre_res_{s + 1}', blob, cin, width, stride))
            blob, cin = f'pre_res_{s + 1}', width
            for k in range(1, n + 1):
                mod = f'Attention{"ABC"[s]}_{k}'
                steps.append(attention(mod, blob, cin, pools))
                blob = mod
        for k in range(1, 4):
            steps.append(unit(f'post_res_4_{k}', blob, cin, 2048, 2 if k == 1 else 1))
            blob, cin = f'post_res_4_{k}', 2048
        steps += bn_relu(blob, cin)
        self._steps = steps
        self.pool = nn.AvgPool2d(HEAD_POOL, stride=1)
        self.classifier = layer('classifier', nn.Linear(cin, num_classes))
        # convzoo's initWeights: MSRA fill (N(0, 2 / fan_in)), BN to identity, torch's default Linear.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')

    def forward(self, x):
        x = self.pool(_chain(x, self._steps))
        return self.classifier(torch.flatten(x, 1))


MODELS = {
    'resattnet56': lambda: ResidualAttentionNet([1, 1, 1]),
    'resattnet92': lambda: ResidualAttentionNet([1, 2, 3]),
}
