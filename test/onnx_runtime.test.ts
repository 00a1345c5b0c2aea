// The onnxruntime backend (src/onnx/runtime.ts): ONNX files made by PyTorch's own exporter
// (torch.onnx.export, metadata set with python3-onnx) run in OnnxInferenceModel and are compared with
// convzoo's libtorch forward on the same weights; the event loop keeps running during a long forward;
// concurrent calls, disposal, a dead worker, bad files and options; predict and the CLI on both backends.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { OnnxInferenceModel, ONNX_METADATA_KEYS as K, parseMetadata } from '../src/onnx/runtime.js';
import { readOnnxMetadataProps } from '../src/onnx/metadata_props.js';
import { PY, checkLeaks, relMaxDiff, requireTorchvision } from './helpers/tv_reference.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-ortrt-'));
const file = (name: string) => path.join(dir, name);
const CLI = path.resolve('dist/cli/main.js');

// resnet18 with random weights and BN statistics (dynamic batch) and its state dict; a tiny CNN on
// 32 x 32 inputs with a dynamic and a fixed batch of 2, with and without convzoo's metadata; a graph
// with two inputs (not a classifier). The metadata is read back by python3-onnx as the reference.
const FIXTURES = `
import json, sys, torch, torchvision, onnx
out = sys.argv[1]
torch.manual_seed(0)
def export(m, x, name, dynamic=True, inputs=('image',)):
    axes = {n: {0: 'batch'} for n in inputs + ('logits',)} if dynamic else None
    torch.onnx.export(m, x, f'{out}/{name}', input_names=list(inputs), output_names=['logits'], dynamic_axes=axes, opset_version=17)
r18 = torchvision.models.resnet18().eval()
for mod in r18.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.2, 0.2)
        mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 2.0)
torch.save(r18.state_dict(), f'{out}/resnet18.pt')
export(r18, torch.randn(1, 3, 224, 224), 'resnet18.onnx')
tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
export(tiny, torch.randn(1, 3, 32, 32), 'tiny.onnx')
export(tiny, torch.randn(2, 3, 32, 32), 'tiny_b2.onnx', dynamic=False)
hw = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10)).eval()
torch.onnx.export(hw, torch.randn(1, 3, 8, 8), f'{out}/tiny_any_size.onnx', input_names=['image'], output_names=['logits'],
                  dynamic_axes={'image': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}}, opset_version=17)
class Two(torch.nn.Module):
    def forward(self, image, other): return (image * other).flatten(1)
export(Two(), (torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)), 'two_inputs.onnx', inputs=('image', 'other'))
def with_props(name, props):
    m = onnx.load(f'{out}/tiny.onnx')
    onnx.helper.set_model_props(m, props)
    onnx.save(m, f'{out}/{name}')
    return {p.key: p.value for p in onnx.load(f'{out}/{name}').metadata_props}
read = {
    'tiny_meta.onnx': with_props('tiny_meta.onnx', {
        'convzoo.id': 'resnet20', 'convzoo.weights': 'some-run.ckpt', 'convzoo.version': '0.1.1',
        'convzoo.labels': json.dumps([f'thing {i}' for i in range(10)]),
        'convzoo.mean': '[0.5, 0.4, 0.3]', 'convzoo.std': '[0.2, 0.25, 0.3]', 'convzoo.input_size': '[3, 32, 32]',
        'other.key': 'ünïcode ✓'}),
    'tiny_transform.onnx': with_props('tiny_transform.onnx', {'convzoo.id': 'resnet20', 'convzoo.mean': '[0.5, 0.4, 0.3]',
        'convzoo.transform': json.dumps({'resizeSize': 40, 'cropSize': 32, 'mean': [0.1, 0.2, 0.3], 'std': [0.4, 0.5, 0.6],
                                         'interpolation': 'bicubic', 'channels': 3})}),
    'tiny_wrong_crop.onnx': with_props('tiny_wrong_crop.onnx', {
        'convzoo.transform': json.dumps({'resizeSize': 40, 'cropSize': 28, 'mean': [0.1], 'std': [0.4], 'interpolation': 'bilinear', 'channels': 3})}),
    'tiny_id_only.onnx': with_props('tiny_id_only.onnx', {'convzoo.id': 'resnet20'}),
    'tiny_bad_mean.onnx': with_props('tiny_bad_mean.onnx', {'convzoo.mean': 'nope'}),
    'tiny_bad_labels.onnx': with_props('tiny_bad_labels.onnx', {'convzoo.labels': '["just one"]'}),
}
json.dump(read, open(f'{out}/props.json', 'w'))
`;

let reference: cz.ClassifierModel; // convzoo's resnet18 with the same weights, on libtorch
let ort: OnnxInferenceModel; // resnet18.onnx in onnxruntime
let image = '';

beforeAll(async () => {
  requireTorchvision();
  const onnxCheck = spawnSync(PY, ['-c', 'import onnx'], { encoding: 'utf8' });
  if (onnxCheck.status !== 0) throw new Error(`these tests need ${PY} with onnx (Debian/Ubuntu: apt install python3-onnx): ${onnxCheck.stderr}`);
  const r = spawnSync(PY, ['-c', FIXTURES, dir], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`making the ONNX fixtures failed:\n${r.stderr}`);
  reference = await cz.createModel('resnet18', { weights: file('resnet18.pt') });
  reference.eval();
  ort = await OnnxInferenceModel.fromFile(file('resnet18.onnx'), { threads: 2 });
  // A photo-like image: smooth gradients with some texture.
  const w = 320;
  const h = 240;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = (x * 255) / w;
      px[i + 1] = (y * 255) / h;
      px[i + 2] = 128 + 100 * Math.sin(x / 9) * Math.cos(y / 13);
    }
  }
  image = file('image.png');
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(image);
}, 600_000);

afterAll(async () => {
  await ort?.dispose();
  reference?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

checkLeaks();

/** convzoo's libtorch logits for `x`. */
const libtorchForward = (x: cz.Tensor): cz.Tensor => cz.inferenceMode(() => reference.forward(x));

const expectConvzooError = async (p: Promise<unknown>, code: cz.ErrorCode, message: RegExp) => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(cz.ConvzooError);
  expect((e as cz.ConvzooError).code).toBe(code);
  expect((e as Error).message).toMatch(message);
};

describe('OnnxInferenceModel: the same logits as libtorch', () => {
  it('resnet18 (torch.onnx.export) gives convzoo libtorch forward logits within 1e-4 relative', async () => {
    cz.manualSeed(11);
    const x = cz.randn([3, 3, 224, 224]);
    const got = await ort.forward(x);
    const want = libtorchForward(x);
    expect(got.shape).toEqual([3, 1000]);
    expect(got.dtype).toBe('float32');
    expect(relMaxDiff(got, want)).toBeLessThan(1e-4);
    // Not a constant output: the images get different logits.
    expect(cz.tidy(() => got.select(0, 0).sub(got.select(0, 1)).abs().max().item())).toBeGreaterThan(1e-3);
    for (const t of [x, got, want]) t.dispose();
  });

  it('describes the graph: classes, input size, channels, names; inference only', async () => {
    expect(ort.numClasses).toBe(1000);
    expect(ort.inChans).toBe(3);
    expect(ort.inputSize).toEqual([3, 224, 224]); // torch.onnx.export made only the batch dynamic
    expect(ort.inputName).toBe('image');
    expect(ort.outputName).toBe('logits');
    expect(ort.training).toBe(false);
    expect(ort.eval()).toBe(ort);
    expect(() => ort.train()).toThrow(cz.ConvzooError);
    expect(() => ort.train()).toThrow(/inference-only/);
    expect(ort.threads).toBe(2);
  });
});

describe('OnnxInferenceModel: the event loop and concurrent calls', () => {
  it('keeps the event loop running during a long forward (32 images at 224)', async () => {
    cz.manualSeed(12);
    const x = cz.randn([32, 3, 224, 224]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const start = performance.now();
    const y = await ort.forward(x);
    const elapsed = performance.now() - start;
    clearInterval(timer);
    expect(y.shape).toEqual([32, 1000]);
    // A forward on the main thread would let at most one tick through; here they keep coming (a busy
    // machine delays some, so ask for a quarter of the ideal count).
    expect(elapsed).toBeGreaterThan(200);
    expect(ticks).toBeGreaterThan(Math.max(10, elapsed / 10 / 4));
    const want = libtorchForward(x);
    expect(relMaxDiff(y, want)).toBeLessThan(1e-4);
    for (const t of [x, y, want]) t.dispose();
  });

  it('answers several concurrent forwards correctly and in order', async () => {
    cz.manualSeed(13);
    const inputs = [2, 1, 3, 1, 2].map((n) => cz.randn([n, 3, 224, 224]));
    const order: number[] = [];
    const outputs = await Promise.all(
      inputs.map((x, i) =>
        ort.forward(x).then((y) => {
          order.push(i);
          return y;
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3, 4]);
    for (const [i, x] of inputs.entries()) {
      const want = libtorchForward(x);
      expect(outputs[i].shape).toEqual([x.shape[0], 1000]);
      expect(relMaxDiff(outputs[i], want)).toBeLessThan(1e-4);
      want.dispose();
    }
    for (const t of [...inputs, ...outputs]) t.dispose();
  });

  it('leaves the caller its input, and answers an empty batch without running', async () => {
    const x = cz.randn([1, 3, 224, 224]);
    const before = x.data();
    const y = await ort.forward(x);
    expect(x.isDisposed).toBe(false);
    expect(x.data()).toEqual(before);
    const empty = cz.zeros([0, 3, 224, 224]);
    const e = await ort.forward(empty);
    expect(e.shape).toEqual([0, 1000]);
    for (const t of [x, y, empty, e]) t.dispose();
  });

  it('rejects inputs the graph cannot take with E_DTYPE / E_SHAPE, and stays usable', async () => {
    const f64 = cz.zeros([1, 3, 224, 224], { dtype: 'float64' });
    await expectConvzooError(ort.forward(f64), 'E_DTYPE', /float32/);
    const chw = cz.zeros([3, 224, 224]);
    await expectConvzooError(ort.forward(chw), 'E_SHAPE', /\[N, C, H, W\]/);
    const gray = cz.zeros([1, 1, 224, 224]);
    await expectConvzooError(ort.forward(gray), 'E_SHAPE', /the graph takes \[N, 3, 224, 224\], got \[1, 1, 224, 224\]/);
    const small = cz.zeros([1, 3, 64, 64]);
    await expectConvzooError(ort.forward(small), 'E_SHAPE', /the graph takes \[N, 3, 224, 224\]/);
    await expectConvzooError(ort.forward('x' as unknown as cz.Tensor), 'E_ARG', /expected a Tensor/);
    const x = cz.zeros([1, 3, 224, 224]);
    const y = await ort.forward(x);
    expect(y.shape).toEqual([1, 1000]);
    for (const t of [f64, chw, gray, small, x, y]) t.dispose();
  });
});

describe('OnnxInferenceModel: lifetime', () => {
  it('dispose() ends the worker: pending calls and later ones reject with E_DISPOSED; twice is harmless', async () => {
    const m = await OnnxInferenceModel.fromFile(file('resnet18.onnx'), { threads: 1 });
    const x = cz.randn([4, 3, 224, 224]);
    const ok = await m.forward(x);
    expect(ok.shape).toEqual([4, 1000]);
    // Disposed while one run is in progress and two more are queued: no crash, all three reject.
    const pending = [m.forward(x), m.forward(x), m.forward(x)];
    await new Promise((r) => setTimeout(r, 50));
    const done = m.dispose();
    for (const p of pending) await expectConvzooError(p, 'E_DISPOSED', /disposed before the result came/);
    await done;
    expect(m.isDisposed).toBe(true);
    await expectConvzooError(m.forward(x), 'E_DISPOSED', /the model was disposed/);
    await m.dispose();
    await m[Symbol.asyncDispose]();
    for (const t of [x, ok]) t.dispose();
  });

  it('a worker that dies rejects the pending calls and every later one instead of hanging', async () => {
    const m = await OnnxInferenceModel.fromFile(file('tiny.onnx'), { threads: 1 });
    const x = cz.randn([2, 3, 32, 32]);
    // A request the worker does not understand makes it throw and die, as a bug in it would; the
    // forward queued behind it is pending when the thread dies.
    (m as unknown as { worker: Worker }).worker.postMessage({ type: 'bogus' });
    const pending = m.forward(x);
    await expectConvzooError(pending, 'E_NATIVE', /onnxruntime worker failed: .*unknown request "bogus"/);
    await expectConvzooError(m.forward(x), 'E_NATIVE', /onnxruntime worker failed/);
    await m.dispose(); // nothing left to end; resolves
    x.dispose();
  });

  it('an idle model does not keep the process alive; a pending forward does', () => {
    const script = file('exit_check.mjs');
    writeFileSync(
      script,
      `import * as cz from ${JSON.stringify(path.resolve('dist/index.js'))};
const m = await cz.OnnxInferenceModel.fromFile(${JSON.stringify(file('tiny.onnx'))}, { threads: 1 });
const y = await m.forward(cz.ones([2, 3, 32, 32]));
console.log('logits', y.shape.join('x'));
// no dispose() of m: the process must still end; an awaited dispose() of another must settle
const other = await cz.OnnxInferenceModel.fromFile(${JSON.stringify(file('tiny.onnx'))}, { threads: 1 });
await other.dispose();
console.log('disposed');
`,
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error).toBeUndefined(); // not killed by the timeout
    expect(r.stderr).not.toMatch(/unsettled top-level await/i);
    expect(r.stdout.trim()).toBe('logits 2x10\ndisposed');
    expect(r.status).toBe(0);
  });
});

describe('OnnxInferenceModel: metadata and preprocessing', () => {
  it('reads metadata_props as python3-onnx does', () => {
    const python = JSON.parse(readFileSync(file('props.json'), 'utf8')) as Record<string, Record<string, string>>;
    for (const [name, props] of Object.entries(python)) {
      expect(readOnnxMetadataProps(file(name))).toEqual(props);
      expect(readOnnxMetadataProps(readFileSync(file(name)))).toEqual(props);
    }
    expect(readOnnxMetadataProps(file('tiny.onnx'))).toEqual({});
  });

  it('rejects broken protobuf framing with E_FORMAT and a missing file with E_IO', () => {
    const bytes = readFileSync(file('tiny_meta.onnx'));
    expect(() => readOnnxMetadataProps(bytes.subarray(0, bytes.length - 3))).toThrow(expect.objectContaining({ code: 'E_FORMAT' }));
    expect(() => readOnnxMetadataProps(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow(/not an ONNX model/);
    expect(() => readOnnxMetadataProps(file('missing.onnx'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });

  it("fills id, classes and the eval transform from convzoo's keys", async () => {
    const m = await OnnxInferenceModel.fromFile(file('tiny_meta.onnx'), { threads: 1 });
    try {
      expect(m.id).toBe('resnet20');
      expect(m.meta?.id).toBe('resnet20');
      expect(m.classes).toEqual(Array.from({ length: 10 }, (_, i) => `thing ${i}`));
      expect(m.numClasses).toBe(10);
      expect(m.inputSize).toEqual([3, 32, 32]);
      // No transform key: resnet20's registered preprocessing at the graph's size, with the file's mean and std.
      expect(m.evalTransform).toEqual({ resizeSize: 37, cropSize: 32, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], interpolation: 'bilinear', channels: 3 });
      expect(m.metadata[K.version]).toBe('0.1.1');
      expect(m.metadata['other.key']).toBe('ünïcode ✓');
    } finally {
      await m.dispose();
    }
  });

  it('takes convzoo.transform as the whole preprocessing when the file has it', async () => {
    const m = await OnnxInferenceModel.fromFile(file('tiny_transform.onnx'), { threads: 1 });
    expect(m.evalTransform).toEqual({ resizeSize: 40, cropSize: 32, mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6], interpolation: 'bicubic', channels: 3 });
    await m.dispose();
    // A transform whose crop the graph cannot take is the file's fault (E_FORMAT), one from the options the caller's (E_ARG).
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny_wrong_crop.onnx')), 'E_FORMAT', /3 x 28 x 28 inputs, the graph takes 3 x 32 x 32/);
    const t28: cz.EvalTransform = { resizeSize: 32, cropSize: 28, mean: [0], std: [1], interpolation: 'bilinear', channels: 3 };
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), { transform: t28 }), 'E_ARG', /the graph takes 3 x 32 x 32/);
  });

  it("takes an id-only file's preprocessing from the registry, a bare file's from ImageNet's defaults at its size", async () => {
    const idOnly = await OnnxInferenceModel.fromFile(file('tiny_id_only.onnx'), { threads: 1 });
    const bare = await OnnxInferenceModel.fromFile(file('tiny.onnx'), { threads: 1 });
    try {
      expect(idOnly.evalTransform).toEqual(cz.defaultDataConfig(cz.modelMeta('resnet20')));
      expect(idOnly.evalTransform.mean).toEqual([0.4914, 0.4822, 0.4465]); // CIFAR-10's
      expect(bare.id).toBeUndefined();
      expect(bare.classes).toBeUndefined();
      expect(bare.evalTransform).toEqual({
        resizeSize: 37,
        cropSize: 32,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        interpolation: 'bilinear',
        channels: 3,
      });
    } finally {
      await idOnly.dispose();
      await bare.dispose();
    }
  });

  it('lets the options override the file (id, labels, transform) and checks them', async () => {
    const transform: cz.EvalTransform = { resizeSize: 32, cropSize: 32, mean: [0, 0, 0], std: [1, 1, 1], interpolation: 'nearest', channels: 3 };
    const labels = Array.from({ length: 10 }, (_, i) => `mine ${i}`);
    const m = await OnnxInferenceModel.fromFile(file('tiny_meta.onnx'), { threads: 1, id: 'resnet56', labels, transform });
    expect(m.id).toBe('resnet56');
    expect(m.classes).toEqual(labels);
    expect(m.evalTransform).toEqual(transform);
    await m.dispose();
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), { labels: ['a', 'b'] }), 'E_ARG', /2 labels for 10 classes/);
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), { id: 'resnet_nope' }), 'E_NOT_FOUND', /unknown model/);
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), { transform: { ...transform, cropSize: 0 } }), 'E_ARG', /transform\.cropSize/);
  });

  it('rejects malformed convzoo metadata with E_FORMAT naming the key', async () => {
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny_bad_mean.onnx')), 'E_FORMAT', /convzoo\.mean/);
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny_bad_labels.onnx')), 'E_FORMAT', /convzoo\.labels names 1 classes, its output has 10/);
    expect(() => parseMetadata({ [K.inputSize]: '[3, 32]' })).toThrow(/convzoo\.input_size/);
    expect(() => parseMetadata({ [K.numClasses]: '2.5' })).toThrow(/convzoo\.num_classes/);
    expect(() => parseMetadata({ [K.transform]: '{"cropSize": 32}' })).toThrow(/convzoo\.transform/);
  });
});

describe('OnnxInferenceModel: fixed batch, bad files, options', () => {
  it('runs any batch size through a graph exported with a fixed batch (pieces of 2, the last padded)', async () => {
    const fixed = await OnnxInferenceModel.fromFile(file('tiny_b2.onnx'), { threads: 1 });
    const dynamic = await OnnxInferenceModel.fromFile(file('tiny.onnx'), { threads: 1 });
    try {
      cz.manualSeed(14);
      for (const n of [1, 2, 3, 5]) {
        const x = cz.randn([n, 3, 32, 32]);
        const a = await fixed.forward(x);
        const b = await dynamic.forward(x);
        expect(a.shape).toEqual([n, 10]);
        expect(relMaxDiff(a, b)).toBeLessThan(1e-5);
        for (const t of [x, a, b]) t.dispose();
      }
    } finally {
      await fixed.dispose();
      await dynamic.dispose();
    }
  });

  it('rejects files that are not ONNX classifiers with ConvzooErrors, and keeps working', async () => {
    writeFileSync(file('garbage.onnx'), Buffer.from('this is not a protobuf at all, just text'));
    await expectConvzooError(OnnxInferenceModel.fromFile(file('garbage.onnx')), 'E_FORMAT', /onnxruntime cannot load .*garbage\.onnx/);
    await expectConvzooError(OnnxInferenceModel.fromFile(new Uint8Array([1, 2, 3, 4, 5])), 'E_FORMAT', /onnxruntime cannot load the model bytes/);
    await expectConvzooError(OnnxInferenceModel.fromFile(new Uint8Array(0)), 'E_FORMAT', /empty/);
    await expectConvzooError(OnnxInferenceModel.fromFile(file('missing.onnx')), 'E_IO', /cannot read .*missing\.onnx/);
    mkdirSync(file('a_directory.onnx'));
    await expectConvzooError(OnnxInferenceModel.fromFile(file('a_directory.onnx')), 'E_IO', /not a regular file/);
    await expectConvzooError(OnnxInferenceModel.fromFile(file('two_inputs.onnx')), 'E_FORMAT', /expected one input, the graph has 2/);
    await expectConvzooError(OnnxInferenceModel.fromFile(42 as unknown as string), 'E_ARG', /file path or the model's bytes/);
    // Loading from bytes works the same as from the path, and the caller's bytes stay intact.
    const bytes = new Uint8Array(readFileSync(file('tiny.onnx')));
    const m = await OnnxInferenceModel.fromFile(bytes, { threads: 1 });
    expect(bytes.byteLength).toBeGreaterThan(0);
    const x = cz.ones([1, 3, 32, 32]);
    const y = await m.forward(x);
    expect(y.shape).toEqual([1, 10]);
    await m.dispose();
    // And the shared model still answers.
    const zero = cz.zeros([1, 3, 224, 224]);
    const z = await ort.forward(zero);
    expect(z.shape).toEqual([1, 1000]);
    for (const t of [x, y, zero, z]) t.dispose();
  });

  it('turns an onnxruntime failure during a run into E_NATIVE naming it, and stays usable', async () => {
    // Height and width are symbolic, but the linear layer only fits 8 x 8 inputs.
    const m = await OnnxInferenceModel.fromFile(file('tiny_any_size.onnx'), { threads: 1 });
    const big = cz.zeros([1, 3, 16, 16]);
    const gray = cz.zeros([1, 1, 8, 8]);
    const fits = cz.ones([2, 3, 8, 8]);
    try {
      expect(m.inputSize).toBeUndefined();
      expect(m.inChans).toBe(3);
      await expectConvzooError(m.forward(big), 'E_NATIVE', /^OnnxInferenceModel\.forward: onnxruntime: .+/);
      await expectConvzooError(m.forward(gray), 'E_SHAPE', /expected 3 input channels/);
      const y = await m.forward(fits);
      expect(y.shape).toEqual([2, 10]);
      y.dispose();
    } finally {
      for (const t of [big, gray, fits]) t.dispose();
      await m.dispose();
    }
  });

  it('checks threads: an integer >= 1, default one per core as convzoo', async () => {
    for (const threads of [0, -1, 1.5, Number.NaN, '2' as unknown as number]) {
      await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), { threads }), 'E_ARG', /threads/);
    }
    await expectConvzooError(OnnxInferenceModel.fromFile(file('tiny.onnx'), null as unknown as object), 'E_ARG', /options/);
    const m = await OnnxInferenceModel.fromFile(file('tiny.onnx'));
    expect(m.threads).toBe(process.env.OMP_NUM_THREADS ? Number(process.env.OMP_NUM_THREADS) : os.availableParallelism());
    await m.dispose();
  });
});

describe('predict with an onnxruntime model', () => {
  it('gives the same top-5 as the libtorch model on an image', async () => {
    const [a] = await cz.predict(reference, [image]);
    const [b] = await cz.predict(ort, [image]);
    expect('predictions' in a && 'predictions' in b).toBe(true);
    if (!('predictions' in a) || !('predictions' in b)) return;
    expect(b.predictions.map((p) => p.index)).toEqual(a.predictions.map((p) => p.index));
    expect(b.predictions.map((p) => p.label)).toEqual(a.predictions.map((p) => p.label));
    b.predictions.forEach((p, i) => expect(p.probability).toBeCloseTo(a.predictions[i].probability, 5));
  });

  it('streams batches and answers unreadable images per image', async () => {
    writeFileSync(file('broken.jpg'), 'not an image');
    const sources = [image, file('broken.jpg'), image, image];
    const batches: cz.PredictResult[][] = [];
    for await (const batch of cz.predictStream(ort, sources, { batchSize: 2, topk: 3 })) batches.push(batch);
    expect(batches.map((b) => b.length)).toEqual([2, 2]);
    const flat = batches.flat();
    expect('error' in flat[1] && flat[1].code).toBe('E_IMAGE');
    for (const k of [0, 2, 3]) {
      const r = flat[k];
      expect(r.source).toBe(image);
      if (!('predictions' in r) || !('predictions' in flat[0])) throw new Error(`image ${k} got no predictions`);
      expect(r.predictions.map((p) => p.index)).toEqual(flat[0].predictions.map((p) => p.index));
      expect(r.predictions).toHaveLength(3);
    }
  });

  it('names classes with the labels from the file', async () => {
    const m = await OnnxInferenceModel.fromFile(file('tiny_meta.onnx'), { threads: 1 });
    try {
      const [r] = await cz.predict(m, [image], { topk: 10 });
      expect('predictions' in r && r.predictions.map((p) => p.label).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `thing ${i}`));
    } finally {
      await m.dispose();
    }
  });
});

describe("createModel(id, { backend: 'onnxruntime' })", () => {
  it('checks the backend and its threads before building anything', async () => {
    await expectConvzooError(cz.createModel('resnet18', { backend: 'tensorflow' as 'libtorch' }), 'E_ARG', /backend/);
    await expectConvzooError(cz.createModel('resnet18', { backend: 'onnxruntime', threads: 0 }), 'E_ARG', /threads/);
  });

  it('gives libtorch logits within 1e-4 relative (exported in memory)', async () => {
    const m = await cz.createModel('resnet18', { weights: file('resnet18.pt'), backend: 'onnxruntime', threads: 2 });
    try {
      cz.manualSeed(15);
      const x = cz.randn([2, 3, 224, 224]);
      const got = await m.forward(x);
      const want = libtorchForward(x);
      expect(relMaxDiff(got, want)).toBeLessThan(1e-4);
      expect(m.id).toBe('resnet18');
      for (const t of [x, got, want]) t.dispose();
    } finally {
      await m.dispose();
    }
  });

  it('runs a grayscale model at its own size, named and preprocessed as the libtorch model', async () => {
    cz.manualSeed(16);
    const torch = await cz.createModel('resnet20', { inChans: 1 });
    cz.manualSeed(16);
    const m = await cz.createModel('resnet20', { inChans: 1, backend: 'onnxruntime', threads: 1 });
    try {
      expect(m.inputSize).toEqual([1, 32, 32]);
      expect(m.numClasses).toBe(10);
      expect(m.evalTransform).toEqual(cz.evalTransformFor(torch, 1));
      const x = cz.randn([3, 1, 32, 32]);
      torch.eval();
      const want = cz.inferenceMode(() => torch.forward(x));
      const got = await m.forward(x);
      expect(relMaxDiff(got, want)).toBeLessThan(1e-4);
      for (const t of [x, got, want]) t.dispose();
    } finally {
      torch.dispose();
      await m.dispose();
    }
  });
});

describe("a file written by convzoo's exporter", () => {
  it('loads with its id, preprocessing and fixed batch, and gives libtorch logits', async () => {
    const onnxFile = file('convzoo_resnet18.onnx');
    await cz.exportOnnx(reference, onnxFile); // batch 1, fixed
    const m = await OnnxInferenceModel.fromFile(onnxFile, { threads: 2 });
    try {
      expect(m.id).toBe('resnet18');
      expect(m.meta?.id).toBe('resnet18');
      expect(m.inputSize).toEqual([3, 224, 224]);
      expect(m.evalTransform).toEqual(cz.evalTransformFor(reference));
      cz.manualSeed(17);
      const x = cz.randn([3, 3, 224, 224]); // three runs of the batch-1 graph
      const got = await m.forward(x);
      const want = libtorchForward(x);
      expect(relMaxDiff(got, want)).toBeLessThan(1e-4);
      for (const t of [x, got, want]) t.dispose();
    } finally {
      await m.dispose();
    }
  });
});

describe('convzoo predict --backend', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300_000 });

  it('prints the same top-5 for an ONNX file on onnxruntime as for its weights on libtorch', () => {
    const torch = run(['predict', '-m', 'resnet18', '-w', file('resnet18.pt'), '--json', image]);
    const onnx = run(['predict', '--backend', 'onnxruntime', '-w', file('resnet18.onnx'), '--threads', '2', '--json', image]);
    expect(torch.status, torch.stderr).toBe(0);
    expect(onnx.status, onnx.stderr).toBe(0);
    const [a] = JSON.parse(torch.stdout);
    const [b] = JSON.parse(onnx.stdout);
    expect(b.predictions.map((p: cz.Prediction) => p.label)).toEqual(a.predictions.map((p: cz.Prediction) => p.label));
    b.predictions.forEach((p: cz.Prediction, i: number) => expect(p.probability).toBeCloseTo(a.predictions[i].probability, 5));
    // The text form is the libtorch one too.
    const text = run(['predict', '--backend', 'onnxruntime', '-w', file('resnet18.onnx'), '-k', '2', image]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n +\\d+\\.\\d\\d%  .+\\n +\\d+\\.\\d\\d%  .+\\n$`));
  });

  it('rejects an unknown backend as a usage error', () => {
    const r = run(['predict', '--backend', 'tvm', image]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/libtorch, onnxruntime/);
  });

  it('exports a libtorch model for onnxruntime', () => {
    const torch = run(['predict', '-m', 'resnet18', '-w', file('resnet18.pt'), '--json', image]);
    const onnx = run(['predict', '--backend', 'onnxruntime', '-m', 'resnet18', '-w', file('resnet18.pt'), '--json', image]);
    expect(onnx.status, onnx.stderr).toBe(0);
    expect(JSON.parse(onnx.stdout)[0].predictions.map((p: cz.Prediction) => p.index)).toEqual(
      JSON.parse(torch.stdout)[0].predictions.map((p: cz.Prediction) => p.index),
    );
  });
});
