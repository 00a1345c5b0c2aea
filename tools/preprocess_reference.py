#!/usr/bin/python3
"""Reference inputs (and logits) from torchvision's ImageNet evaluation pipeline, for
test/preprocess.test.ts.

Usage: /usr/bin/python3 tools/preprocess_reference.py MANIFEST.json

The manifest is JSON:
  {"resize": 256, "crop": 224, "mean": [...], "std": [...], "interpolation": "bilinear",
   "images": [{"file": "a.jpg", "out": "a.f32", "exifTranspose": false}, ...],
   (an image may override resize, crop, interpolation, mean, std, and set "mode": "L" for convert('L'))
   "model": {"id": "resnet18", "seed": 0, "state": "state.pt", "logits": "logits.f32"}}   (model optional)

For every image it writes `out`: the normalised input, float32 little-endian, C x crop x crop, made as
torchvision's ImageFolder + the weights' transforms do it:
  img = Image.open(f).convert('RGB')            (torchvision's pil_loader; EXIF orientation ignored)
  Resize(resize, interpolation) -> CenterCrop(crop) -> ToTensor() -> Normalize(mean, std)
With "exifTranspose" the image is first passed through PIL.ImageOps.exif_transpose (convzoo applies
EXIF orientation by default; torchvision does not).

With "model": torchvision's model built with torch.manual_seed(seed) (random init, no download) is
saved to `state` (torch.save of the state dict, which cz.load reads) and its eval-mode logits for the
reference inputs (those without "model": false), N x classes float32, to `logits`.
It prints one JSON line: the PIL mode of each image as opened.
"""
import json, os, sys, warnings

import torch
import torchvision.models as tvm
from PIL import Image, ImageOps
from torchvision import transforms as T

warnings.filterwarnings('ignore')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

MODES = {m.value: m for m in T.InterpolationMode}


def main(manifest_path):
    with open(manifest_path) as f:
        man = json.load(f)
    base = os.path.dirname(os.path.abspath(manifest_path))
    p = lambda name: name if os.path.isabs(name) else os.path.join(base, name)
    def transform(item):
        get = lambda key, default=None: item.get(key, man.get(key, default))
        return T.Compose([
            T.Resize(get('resize'), interpolation=MODES[get('interpolation', 'bilinear')]),
            T.CenterCrop(get('crop')),
            T.ToTensor(),
            T.Normalize(get('mean'), get('std')),
        ])
    inputs, modes = [], []
    for item in man['images']:
        with open(p(item['file']), 'rb') as f:
            img = Image.open(f)
            modes.append(img.mode)
            if item.get('exifTranspose'):
                img = ImageOps.exif_transpose(img)
            img = img.convert(item.get('mode', 'RGB'))
        x = transform(item)(img)
        x.contiguous().numpy().astype('<f4').tofile(p(item['out']))
        if item.get('model', True):
            inputs.append(x)
    model = man.get('model')
    if model:
        torch.manual_seed(model.get('seed', 0))
        net = getattr(tvm, model['id'])().eval()
        torch.save(net.state_dict(), p(model['state']))
        with torch.no_grad():
            logits = net(torch.stack(inputs))
        logits.numpy().astype('<f4').tofile(p(model['logits']))
    print(json.dumps({'modes': modes}))


if __name__ == '__main__':
    main(sys.argv[1])
