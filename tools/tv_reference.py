#!/usr/bin/python3
"""Reference fixtures from torchvision for convzoo's model tests (test/models.test.ts).

For one torchvision model id it builds the model with a fixed seed (random init: no downloads) and
writes into a directory:
  index.json   id, parameter count, and every state-dict entry (key, shape, dtype) in torchvision's order
  state.pt     the state dict, with torch.save (convzoo reads it with cz.load)
  io.pt        with torch.save, a dict of: input (seed 1, N(0, 1)); logits, eval mode; logitsTransformInput
               (GoogLeNet, with transform_input flipped); then after ONE train-mode forward of the same
               input in float64 with dropout set to 0: trainLogits, trainAux1 / trainAux2 (GoogLeNet's
               heads) and trainStats, a dict of every BatchNorm's running_mean / running_var /
               num_batches_tracked (cz.load flattens it to 'trainStats.<key>')
With metaOnly only index.json is written (keys, shapes, count: no tensors).

Two ways to run it:
  /usr/bin/python3 tools/tv_reference.py OUT_DIR resnet18:64:2 vgg11:32:2 ...   (id:size:batch)
  /usr/bin/python3 tools/tv_reference.py --serve
      reads one JSON request per stdin line, {"id", "size", "batch", "out", "metaOnly", "options"},
      writes the fixture and answers one JSON line {"ok": true, "dir": ...} or {"ok": false, "error": ...};
      torch is imported once for all models.
"""
import json, os, sys, warnings

import torch
import torchvision.models as tvm

warnings.filterwarnings('ignore')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def build(model_id, options):
    kwargs = dict(options or {})
    if model_id == 'googlenet':
        kwargs.setdefault('init_weights', True)  # silences torchvision's FutureWarning; same init either way
    torch.manual_seed(0)
    return getattr(tvm, model_id)(**kwargs)


def bn_stats(model):
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            out[f'{name}.running_mean'] = m.running_mean
            out[f'{name}.running_var'] = m.running_var
            out[f'{name}.num_batches_tracked'] = m.num_batches_tracked
    return out


def make_fixture(req):
    model_id, out = req['id'], req['out']
    size, batch = int(req.get('size', 64)), int(req.get('batch', 2))
    os.makedirs(out, exist_ok=True)
    model = build(model_id, req.get('options'))
    sd = model.state_dict()
    index = {
        'id': model_id, 'options': req.get('options') or {}, 'size': size, 'batch': batch,
        'numParams': sum(p.numel() for p in model.parameters()),
        'stateDict': [{'key': k, 'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in sd.items()],
    }
    if not req.get('metaOnly'):
        torch.save(sd, os.path.join(out, 'state.pt'))
        torch.manual_seed(1)
        x = torch.randn(batch, 3, size, size)
        io = {'input': x}
        model.eval()
        with torch.no_grad():
            io['logits'] = model(x)
            if hasattr(model, 'transform_input'):
                model.transform_input = not model.transform_input
                io['logitsTransformInput'] = model(x)
                model.transform_input = not model.transform_input
            # Dropout off so that train-mode outputs are deterministic (batch norm statistics do not
            # depend on it: every dropout comes after the last batch norm of its path). In float64:
            # with batch statistics a deep randomly initialised network is ill-conditioned (torchvision's
            # own float32 and float64 results differ by ~1e-3 for resnet152), float64 makes it exact.
            for m in model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
            model.double().train()
            # GoogLeNet runs its auxiliary heads in train mode: their outputs are taken from the heads
            # themselves (the order of its output tuple is easy to misread).
            aux = {}
            hooks = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: aux.__setitem__(name, o))
                     for name in ('aux1', 'aux2') if getattr(model, name, None) is not None]
            y = model(x.double())
            for h in hooks:
                h.remove()
        io['trainLogits'] = y[0] if isinstance(y, tuple) else y
        for name, t in aux.items():
            io['train' + name.capitalize()] = t
        io['trainStats'] = bn_stats(model)
        torch.save(io, os.path.join(out, 'io.pt'))
    with open(os.path.join(out, 'index.json'), 'w') as f:
        json.dump(index, f)
    return out


def serve():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = {'ok': True, 'dir': make_fixture(json.loads(line))}
        except Exception as e:  # answer and keep serving: the test reports the error
            reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


def main(argv):
    if argv[:1] == ['--serve']:
        return serve()
    meta_only = '--meta-only' in argv
    args = [a for a in argv if not a.startswith('--')]
    if len(args) < 2:
        sys.exit(__doc__)
    out_root = args[0]
    for spec in args[1:]:
        model_id, size, batch = (spec.split(':') + ['64', '2'])[:3]
        d = make_fixture({'id': model_id, 'size': size, 'batch': batch, 'out': os.path.join(out_root, model_id), 'metaOnly': meta_only})
        print(d)


if __name__ == '__main__':
    main(sys.argv[1:])
