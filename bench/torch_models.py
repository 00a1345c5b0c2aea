# The PyTorch side of bench/models.mjs (run with Debian's /usr/bin/python3: torch 1.13, torchvision 0.14).
#
#   python3 bench/torch_models.py export OUT_DIR ID...   torchvision's ONNX export of each model, once
#   python3 bench/torch_models.py worker '{"threads": 2}' a worker driven by JSON lines on stdin
#
# Every model of the zoo that torchvision has is torchvision's own builder with random initialisation.
# The paper networks torchvision lacks (alexnet_original, vgg_a_lrn, vgg_c, googlenet_original, MobileNet v1)
# are written here with torchvision's building blocks, layer for layer as convzoo's src/models/*.ts
# (same parameter counts: the driver compares them), so that they get a PyTorch and an ONNX column too.
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

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
    for model_id in ids:
        path = os.path.join(out_dir, f'{model_id}.onnx')
        if os.path.exists(path):
            continue
        model, _ = build(model_id)
        size = 227 if model_id == 'alexnet_original' else 224
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
    model, inputs = None, {}
    print(json.dumps({'version': torch.__version__, 'torchvision': torchvision.__version__,
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg['cmd']
        if cmd == 'load':
            model, inputs = None, {}
            model, native = build(msg['model'])
            size = msg['size']
            print(json.dumps({'params': sum(p.numel() for p in model.parameters()), 'torchvision': native}), flush=True)
        elif cmd == 'run':
            b = msg['batch']
            if b not in inputs:
                inputs[b] = torch.randn(b, 3, size, size)
            with torch.inference_mode():
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = model(inputs[b])
                t = time.perf_counter() - t0
                cpu = time.process_time() - c0
            del out
            print(json.dumps({'t': t, 'cpu': cpu}), flush=True)
        else:
            break


if __name__ == '__main__':
    if sys.argv[1] == 'export':
        export(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == 'worker':
        worker(json.loads(sys.argv[2]))
    else:
        sys.exit(f'unknown command {sys.argv[1]}')
