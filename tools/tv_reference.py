#!/usr/bin/python3
"""Reference fixtures from torchvision for convzoo's model tests (test/models.test.ts).

For one torchvision model id it builds the model with a fixed seed (random init: no downloads) and
writes into a directory:
  index.json   id, parameter count, every state-dict entry (key, shape, dtype, byte offset) in
               torchvision's order, and the reference tensors below
  state.bin    the state dict's tensors, raw little-endian, one after another
  state.pt     the same state dict with torch.save (with --pt), for convzoo's own loader
  io.bin       input (seed 1, N(0, 1)), eval-mode logits, logits with transform_input (GoogLeNet),
               and after ONE train-mode forward of the same input in float64 with dropout set to 0: the train-mode
               logits (and GoogLeNet's aux1/aux2 logits) and every BatchNorm's running_mean /
               running_var / num_batches_tracked
With --meta-only only index.json is written (keys, shapes, count: no tensors).

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


class Writer:
    """Appends tensors to one raw file and records where each one is."""

    def __init__(self, path):
        self.f = open(path, 'wb')
        self.offset = 0

    def add(self, t, key=None):
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        self.f.write(data)
        entry = {'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', ''), 'offset': self.offset, 'nbytes': len(data)}
        if key is not None:
            entry['key'] = key
        self.offset += len(data)
        return entry

    def close(self):
        self.f.close()


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
        w = Writer(os.path.join(out, 'state.bin'))
        index['stateDict'] = [w.add(v, k) for k, v in sd.items()]
        w.close()
        if req.get('pt'):
            torch.save(sd, os.path.join(out, 'state.pt'))
        torch.manual_seed(1)
        x = torch.randn(batch, 3, size, size)
        io = Writer(os.path.join(out, 'io.bin'))
        tensors = {'input': io.add(x)}
        model.eval()
        with torch.no_grad():
            tensors['logits'] = io.add(model(x))
            if hasattr(model, 'transform_input'):
                model.transform_input = not model.transform_input
                tensors['logitsTransformInput'] = io.add(model(x))
                model.transform_input = not model.transform_input
            # Dropout off so that train-mode outputs are deterministic (batch norm statistics do not
            # depend on it: every dropout comes after the last batch norm of its path). In float64:
            # with batch statistics a deep randomly initialised network is ill-conditioned (torchvision's
            # own float32 and float64 results differ by ~1e-3 for resnet152), float64 makes it exact.
            for m in model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
            model.double().train()
            y = model(x.double())
        # GoogLeNet in train mode returns (logits, aux2, aux1) and has run its auxiliary heads.
        if isinstance(y, tuple):
            tensors['trainLogits'], tensors['trainAux2'], tensors['trainAux1'] = (io.add(t) for t in y)
        else:
            tensors['trainLogits'] = io.add(y)
        index['trainStats'] = [io.add(v, k) for k, v in bn_stats(model).items()]
        io.close()
        index['tensors'] = tensors
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
    pt = '--pt' in argv
    meta_only = '--meta-only' in argv
    args = [a for a in argv if not a.startswith('--')]
    if len(args) < 2:
        sys.exit(__doc__)
    out_root = args[0]
    for spec in args[1:]:
        model_id, size, batch = (spec.split(':') + ['64', '2'])[:3]
        d = make_fixture({'id': model_id, 'size': size, 'batch': batch, 'out': os.path.join(out_root, model_id), 'pt': pt, 'metaOnly': meta_only})
        print(d)


if __name__ == '__main__':
    main(sys.argv[1:])
