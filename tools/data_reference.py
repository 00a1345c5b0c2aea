"""Reference values for test/data.test.ts, computed with numpy and torchvision (Debian's python3).

Usage: /usr/bin/python3 tools/data_reference.py REQUEST.json
REQUEST has "mode":
  "idx":    {"dir": D} -> reads D/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz with gzip + numpy and
            prints counts, label range, the first labels and per-image pixel sums of the first images.
  "geometry": {"input": F, "shape": [C, H, W], "resize": [{"size": [h, w] or n, "antialias": bool}, ...],
            "crop": [[h, w], ...], "out": DIR} -> torchvision.transforms.functional.resize (bilinear) and
            center_crop on the float32 CHW tensor in F; writes DIR/resize_<i>.bin and DIR/crop_<i>.bin
            (float32) and prints {"resize": shapes, "crop": shapes}.
"""
import gzip
import json
import sys

import numpy as np


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    req = json.load(open(sys.argv[1]))
    mode = req['mode']
    if mode == 'idx':
        out = {}
        for split in ('train', 't10k'):
            imgs = read_idx(f"{req['dir']}/{split}-images-idx3-ubyte.gz")
            labels = read_idx(f"{req['dir']}/{split}-labels-idx1-ubyte.gz")
            out[split] = {
                'images': list(imgs.shape), 'labels': int(labels.shape[0]),
                'min': int(labels.min()), 'max': int(labels.max()),
                'first': labels[:32].tolist(),
                'sums': [int(s) for s in imgs[:8].reshape(8, -1).sum(1)],
                'mean': float(imgs.astype(np.float64).mean() / 255), 'std': float((imgs.astype(np.float64) / 255).std()),
            }
        print(json.dumps(out))
        return
    import torch
    import torchvision.transforms.functional as TF
    c, h, w = req['shape']
    x = torch.from_numpy(np.fromfile(req['input'], dtype=np.float32).reshape(c, h, w).copy())
    shapes = {'resize': [], 'crop': []}
    for i, case in enumerate(req['resize']):
        y = TF.resize(x, case['size'], interpolation=TF.InterpolationMode.BILINEAR, antialias=case['antialias'])
        y.contiguous().numpy().astype(np.float32).tofile(f"{req['out']}/resize_{i}.bin")
        shapes['resize'].append(list(y.shape))
    for i, size in enumerate(req['crop']):
        y = TF.center_crop(x, size)
        y.contiguous().numpy().astype(np.float32).tofile(f"{req['out']}/crop_{i}.bin")
        shapes['crop'].append(list(y.shape))
    print(json.dumps(shapes))


if __name__ == '__main__':
    main()
