#!/usr/bin/python3
"""Reference values for test/optim.test.ts, from torch.optim (1.13) on Debian's /usr/bin/python3.

Usage: /usr/bin/python3 tools/optim_reference.py OUT.json

Writes one JSON file:
  optimizers: for each config, the initial parameters, the gradients of every step (null: that
    parameter has no gradient that step) and the parameters after every step, all float32 values.
    `kind` and `opts` are convzoo's spelling (camelCase); `groups` lists parameter indices and
    per-group overrides. RMSprop tfStyle is checked against a plain implementation of TensorFlow's
    formula written below (torch has none).
  schedulers: for each config, the learning rates (and momentum where cycled) of every param group
    after construction and after each step.
"""
import json
import re
import sys
import warnings

import torch

warnings.filterwarnings('ignore')  # SequentialLR's step(0) warns about the epoch argument
torch.set_num_threads(1)

SHAPES = [[3, 4], [5], [2, 3]]
STEPS = 7


def snake(name):
    return re.sub(r'([A-Z])', lambda m: '_' + m.group(1).lower(), name)


def torch_kwargs(opts):
    out = {}
    for k, v in opts.items():
        out[snake(k)] = tuple(v) if k == 'betas' else v
    return out


def make_params():
    g = torch.Generator().manual_seed(7)
    return [torch.randn(s, generator=g) for s in SHAPES]


def make_grads():
    g = torch.Generator().manual_seed(11)
    grads = []
    for step in range(STEPS):
        row = []
        for i, s in enumerate(SHAPES):
            t = torch.randn(s, generator=g) * (1.0 + 0.5 * step)
            # Parameter 2 has no gradient at step 0 (its state starts a step later), parameter 1 none at step 3.
            row.append(None if (step, i) in ((0, 2), (3, 1)) else t)
        grads.append(row)
    return grads


class RMSpropTFReference:
    """TensorFlow's RMSprop as timm's RMSpropTF defines it (lr inside momentum, eps inside sqrt)."""

    def __init__(self, groups):
        self.groups = groups  # [{'params': [...], 'lr':..., ...}]
        self.state = {}

    def step(self):
        for gr in self.groups:
            for p in gr['params']:
                if p.grad is None:
                    continue
                grad = p.grad
                st = self.state.setdefault(id(p), {})
                if not st:
                    st['square_avg'] = torch.ones_like(p)
                    st['grad_avg'] = torch.zeros_like(p)
                    st['buf'] = torch.zeros_like(p)
                if gr['weight_decay'] != 0:
                    grad = grad + gr['weight_decay'] * p
                rate = 1.0 - gr['alpha']
                sq = st['square_avg']
                sq += rate * (grad * grad - sq)
                if gr['centered']:
                    ga = st['grad_avg']
                    ga += rate * (grad - ga)
                    denom = torch.sqrt(sq - ga * ga + gr['eps'])
                else:
                    denom = torch.sqrt(sq + gr['eps'])
                if gr['momentum'] > 0:
                    buf = st['buf']
                    buf.mul_(gr['momentum'])
                    buf += gr['lr'] * grad / denom
                    p -= buf
                else:
                    p -= gr['lr'] * grad / denom


OPTIMIZERS = [
    ('sgd plain', 'SGD', {'lr': 0.1}, None),
    ('sgd momentum', 'SGD', {'lr': 0.05, 'momentum': 0.9}, None),
    ('sgd momentum dampening wd', 'SGD', {'lr': 0.05, 'momentum': 0.9, 'dampening': 0.3, 'weightDecay': 1e-2}, None),
    ('sgd nesterov wd', 'SGD', {'lr': 0.05, 'momentum': 0.9, 'nesterov': True, 'weightDecay': 5e-4}, None),
    ('sgd groups', 'SGD', {'lr': 0.1, 'momentum': 0.9}, [{'params': [0, 1]}, {'params': [2], 'lr': 0.01, 'weightDecay': 0.1}]),
    ('adam', 'Adam', {'lr': 1e-2}, None),
    ('adam wd amsgrad', 'Adam', {'lr': 1e-2, 'betas': [0.8, 0.99], 'eps': 0.1, 'weightDecay': 0.05, 'amsgrad': True}, None),
    ('adamw', 'AdamW', {'lr': 1e-2}, None),
    ('adamw wd amsgrad', 'AdamW', {'lr': 3e-3, 'weightDecay': 0.3, 'amsgrad': True, 'betas': [0.85, 0.95], 'eps': 1e-2}, None),
    ('adamw groups', 'AdamW', {'lr': 1e-2, 'weightDecay': 0.05}, [{'params': [0]}, {'params': [1, 2], 'lr': 1e-3, 'weightDecay': 0}]),
    ('rmsprop', 'RMSprop', {'lr': 1e-2}, None),
    ('rmsprop momentum wd', 'RMSprop', {'lr': 1e-2, 'alpha': 0.9, 'momentum': 0.9, 'weightDecay': 1e-2}, None),
    ('rmsprop centered momentum', 'RMSprop', {'lr': 1e-3, 'centered': True, 'momentum': 0.5, 'eps': 1e-2}, None),
    ('rmsprop groups', 'RMSprop', {'lr': 1e-2, 'centered': True}, [{'params': [0, 2], 'lr': 3e-2}, {'params': [1], 'alpha': 0.9}]),
    ('rmsprop tf', 'RMSprop', {'lr': 1e-2, 'alpha': 0.9, 'eps': 1e-3, 'tfStyle': True}, None),
    ('rmsprop tf momentum wd', 'RMSprop', {'lr': 0.016, 'alpha': 0.9, 'eps': 1e-3, 'momentum': 0.9, 'weightDecay': 1e-5, 'tfStyle': True}, None),
    ('rmsprop tf centered momentum', 'RMSprop', {'lr': 1e-2, 'alpha': 0.9, 'eps': 1e-3, 'momentum': 0.9, 'centered': True, 'tfStyle': True}, None),
]

TORCH_DEFAULTS = {
    'RMSprop': {'lr': 1e-2, 'alpha': 0.99, 'eps': 1e-8, 'weight_decay': 0, 'momentum': 0, 'centered': False},
}


def run_optimizer(name, kind, opts, groups):
    params = [p.clone().requires_grad_(True) for p in make_params()]
    init = [p.detach().flatten().tolist() for p in params]
    grads = make_grads()
    kw = torch_kwargs(opts)
    if groups is None:
        torch_groups = [{'params': params}]
    else:
        torch_groups = [dict(torch_kwargs({k: v for k, v in g.items() if k != 'params'}), params=[params[i] for i in g['params']])
                        for g in groups]
    if kw.pop('tf_style', False):
        merged = []
        for g in torch_groups:
            m = dict(TORCH_DEFAULTS['RMSprop'])
            m.update(kw)
            m.update(g)
            merged.append(m)
        opt = RMSpropTFReference(merged)
    else:
        opt = getattr(torch.optim, kind)(torch_groups, **kw)
    after = []
    for step in range(STEPS):
        for p, g in zip(params, grads[step]):
            p.grad = None if g is None else g.clone()
        if isinstance(opt, RMSpropTFReference):
            with torch.no_grad():
                opt.step()
        else:
            opt.step()
        after.append([p.detach().flatten().tolist() for p in params])
    return {
        'name': name, 'kind': kind, 'opts': opts, 'groups': groups,
        'init': init,
        'grads': [[None if g is None else g.flatten().tolist() for g in row] for row in grads],
        'after': after,
    }


# ---- schedulers
SCHEDULERS = [
    {'name': 'StepLR', 'kind': 'StepLR', 'args': [3], 'opts': {'gamma': 0.5}, 'steps': 12},
    {'name': 'MultiStepLR', 'kind': 'MultiStepLR', 'args': [[2, 5, 5, 9]], 'opts': {'gamma': 0.1}, 'steps': 12},
    {'name': 'ConstantLR', 'kind': 'ConstantLR', 'args': [], 'opts': {'factor': 0.25, 'totalIters': 4}, 'steps': 8},
    {'name': 'LinearLR warm-up', 'kind': 'LinearLR', 'args': [], 'opts': {'startFactor': 0.01, 'totalIters': 6}, 'steps': 10},
    {'name': 'LinearLR decay', 'kind': 'LinearLR', 'args': [], 'opts': {'startFactor': 1.0, 'endFactor': 0.1, 'totalIters': 5}, 'steps': 8},
    {'name': 'ExponentialLR', 'kind': 'ExponentialLR', 'args': [0.9], 'opts': {}, 'steps': 10},
    {'name': 'PolynomialLR', 'kind': 'PolynomialLR', 'args': [], 'opts': {'totalIters': 6, 'power': 2.0}, 'steps': 9},
    {'name': 'CosineAnnealingLR', 'kind': 'CosineAnnealingLR', 'args': [10], 'opts': {'etaMin': 1e-4}, 'steps': 25},
    {'name': 'CosineAnnealingLR to zero', 'kind': 'CosineAnnealingLR', 'args': [7], 'opts': {}, 'steps': 7},
    {'name': 'LambdaLR', 'kind': 'LambdaLR', 'args': ['pow95'], 'opts': {}, 'steps': 6},
    {'name': 'OneCycleLR sgd', 'kind': 'OneCycleLR', 'args': [[1.0, 0.5]], 'opts': {'totalSteps': 20}, 'steps': 19},
    {'name': 'OneCycleLR adamw linear three-phase', 'kind': 'OneCycleLR', 'args': [0.01],
     'opts': {'epochs': 3, 'stepsPerEpoch': 5, 'pctStart': 0.25, 'annealStrategy': 'linear', 'threePhase': True,
              'divFactor': 10.0, 'finalDivFactor': 100.0},
     'optimizer': {'kind': 'AdamW', 'opts': {'lr': 1e-3}}, 'steps': 14},
    {'name': 'OneCycleLR no momentum', 'kind': 'OneCycleLR', 'args': [0.3],
     'opts': {'totalSteps': 10, 'cycleMomentum': False, 'pctStart': 0.4}, 'steps': 9},
    {'name': 'SequentialLR warm-up + cosine', 'kind': 'SequentialLR',
     'schedulers': [{'kind': 'LinearLR', 'args': [], 'opts': {'startFactor': 0.1, 'totalIters': 4}},
                    {'kind': 'CosineAnnealingLR', 'args': [12], 'opts': {'etaMin': 1e-3}}],
     'milestones': [4], 'steps': 20},
    {'name': 'SequentialLR constant + multistep + exponential', 'kind': 'SequentialLR',
     'schedulers': [{'kind': 'ConstantLR', 'args': [], 'opts': {'factor': 0.5, 'totalIters': 3}},
                    {'kind': 'MultiStepLR', 'args': [[2, 4]], 'opts': {'gamma': 0.3}},
                    {'kind': 'ExponentialLR', 'args': [0.8], 'opts': {}}],
     'milestones': [3, 9], 'steps': 15},
    {'name': 'ChainedScheduler', 'kind': 'ChainedScheduler',
     'schedulers': [{'kind': 'ConstantLR', 'args': [], 'opts': {'factor': 0.1, 'totalIters': 2}},
                    {'kind': 'ExponentialLR', 'args': [0.9], 'opts': {}}],
     'steps': 6},
    {'name': 'ReduceLROnPlateau min', 'kind': 'ReduceLROnPlateau', 'args': [],
     'opts': {'factor': 0.1, 'patience': 2, 'minLr': [0.0, 0.02]},
     'metrics': [1.0, 0.9, 0.9, 0.95, 0.91, 0.89, 0.8999, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]},
    {'name': 'ReduceLROnPlateau max abs cooldown', 'kind': 'ReduceLROnPlateau', 'args': [],
     'opts': {'mode': 'max', 'factor': 0.5, 'patience': 1, 'threshold': 0.01, 'thresholdMode': 'abs', 'cooldown': 2},
     'metrics': [0.1, 0.2, 0.205, 0.21, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.31, 0.32, 0.3, 0.3]},
]

LAMBDAS = {'pow95': lambda e: 0.95 ** e}

DEFAULT_OPTIMIZER = {'kind': 'SGD', 'opts': {'lr': 0.1, 'momentum': 0.9}}
GROUP_LRS = [None, 0.02]  # group 0 uses the default lr, group 1 its own


def make_scheduler(cfg, opt):
    kind = cfg['kind']
    if kind == 'SequentialLR':
        subs = [make_scheduler(c, opt) for c in cfg['schedulers']]
        return torch.optim.lr_scheduler.SequentialLR(opt, subs, cfg['milestones'])
    if kind == 'ChainedScheduler':
        return torch.optim.lr_scheduler.ChainedScheduler([make_scheduler(c, opt) for c in cfg['schedulers']])
    args = [LAMBDAS[a] if kind == 'LambdaLR' else a for a in cfg['args']]
    return getattr(torch.optim.lr_scheduler, kind)(opt, *args, **torch_kwargs(cfg['opts']))


def run_scheduler(cfg):
    ocfg = cfg.get('optimizer', DEFAULT_OPTIMIZER)
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    groups = [{'params': [params[0]]}, {'params': [params[1]], 'lr': GROUP_LRS[1]}]
    opt = getattr(torch.optim, ocfg['kind'])(groups, **torch_kwargs(ocfg['opts']))
    sched = make_scheduler(cfg, opt)

    def momentum():
        return [g['betas'][0] if 'betas' in g else g['momentum'] for g in opt.param_groups]

    if cfg['kind'] == 'ReduceLROnPlateau':
        lrs = [[g['lr'] for g in opt.param_groups]]
        for m in cfg['metrics']:
            sched.step(m)
            lrs.append(list(sched._last_lr))
        return dict(cfg, optimizer=ocfg, lrs=lrs)
    lrs = [list(sched.get_last_lr())]
    moms = [momentum()]
    for _ in range(cfg['steps']):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
        moms.append(momentum())
    return dict(cfg, optimizer=ocfg, lrs=lrs, momentum=moms)


def main():
    out = {
        'shapes': SHAPES, 'steps': STEPS, 'groupLrs': GROUP_LRS,
        'optimizers': [run_optimizer(*c) for c in OPTIMIZERS],
        'schedulers': [run_scheduler(c) for c in SCHEDULERS],
    }
    with open(sys.argv[1], 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main()
