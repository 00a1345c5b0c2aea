// The inference fast path (model.optimizeForInference) and autocast: batch norms folded into the
// convolutions before them, channels-last weights and activations, bf16. The float32 fast path must
// compute what eager computes (within 1e-4, every family); bf16 must classify as float32 does on a
// trained network; the model refuses to train afterwards.
import { describe, test, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import * as cz from '../src/index.js';
import { calibrateBatchNorms, FAMILY_CASES, relError } from './helpers/family_cases.js';
import { disposeModel } from './helpers/tv_reference.js';

describe('optimizeForInference (float32, channels-last, batch norms folded): the same logits as eager', () => {
  test.each(FAMILY_CASES)('%s', (id, inputSize) => {
    cz.manualSeed(0);
    const model = cz.buildModel(id, { numClasses: 10 });
    const size = inputSize ?? model.meta!.inputSize[1];
    calibrateBatchNorms(model, [3, size, size]);
    model.eval();
    const x = cz.randn([2, 3, size, size]);
    const want = cz.noGrad(() => model.forward(x));
    const bnModules = [...model.modules()].filter((m) => m instanceof cz.nn.BatchNorm2d).length;
    const r = model.optimizeForInference();
    expect(r.dtype).toBe('float32');
    expect(r.foldedBatchNorms + r.batchNorms).toBeGreaterThanOrEqual(bnModules > 0 ? 1 : 0);
    const got = cz.noGrad(() => model.forward(x));
    expect(got.dtype).toBe('float32');
    expect(got.shape).toEqual([2, 10]);
    expect(relError(got.data() as Float32Array, want.data() as Float32Array)).toBeLessThan(1e-4);
    // Convolution weights now live channels-last.
    const conv = [...model.modules()].find((m): m is cz.nn.Conv2d => m instanceof cz.nn.Conv2d && m.kernelSize[0] > 1);
    if (conv) expect(conv.weight.isContiguous('channels_last')).toBe(true);
    for (const t of [x, want, got]) t.dispose();
    disposeModel(model);
  });

  test('post-activation families fold every batch norm; DenseNet keeps its pre-activation ones', () => {
    const counts = (id: string) => {
      const m = cz.buildModel(id, { numClasses: 10 });
      calibrateBatchNorms(m, [3, 64, 64]);
      const r = m.optimizeForInference();
      disposeModel(m);
      return [r.foldedBatchNorms, r.batchNorms];
    };
    expect(counts('resnet18')).toEqual([20, 0]);
    expect(counts('mobilenet_v2')).toEqual([52, 0]);
    // densenet121: norm0 and each layer's norm2 follow a conv (1 + 58); each layer's norm1 and the
    // transitions' and norm5 follow a concatenation or a pool (58 + 3 + 1).
    expect(counts('densenet121')).toEqual([59, 62]);
  });

  test('an optimized model refuses to train, and to be optimized twice; bad options are named', () => {
    const model = cz.buildModel('resnet20');
    expect(() => model.optimizeForInference({ dtype: 'float16' as 'float32' })).toThrow(/dtype must be 'float32' or 'bfloat16', got 'float16'/);
    expect(() => model.optimizeForInference({ channelLast: true } as never)).toThrow(/unknown option 'channelLast'/);
    model.optimizeForInference({ dtype: 'bfloat16' });
    expect(model.training).toBe(false);
    expect(model.parameters().every((p) => !p.requiresGrad && p.dtype === 'bfloat16')).toBe(true);
    expect(() => model.train()).toThrow(cz.ConvzooError);
    expect(() => model.train()).toThrow(/optimized for inference \(bfloat16, channels-last, 19 batch norms folded\); it only runs forward/);
    expect(() => model.optimizeForInference()).toThrow(/already optimized/);
    model.eval(); // eval stays allowed
    disposeModel(model);
  });

  test('bf16 runs the LRN networks (libtorch has no bf16 avg_pool3d: LRN computes in float32)', () => {
    cz.manualSeed(2);
    const model = cz.buildModel('alexnet_original', { numClasses: 10 }).eval();
    const x = cz.randn([1, 3, 224, 224]);
    const want = cz.noGrad(() => model.forward(x));
    model.optimizeForInference({ dtype: 'bfloat16' });
    const got = cz.noGrad(() => model.forward(x));
    expect(got.dtype).toBe('float32');
    expect(relError(got.data() as Float32Array, want.data() as Float32Array)).toBeLessThan(0.05);
    for (const t of [x, want, got]) t.dispose();
    disposeModel(model);
  });
});

/** The first n Fashion-MNIST images of a split, normalised as the trainer does, and their labels. */
function fashionMnist(split: 'train' | 't10k', n: number): { images: cz.Tensor; labels: cz.Tensor } {
  const img = gunzipSync(readFileSync(`${cz.data.FASHION_MNIST_DIR}/${split}-images-idx3-ubyte.gz`)).subarray(16, 16 + n * 784);
  const lab = gunzipSync(readFileSync(`${cz.data.FASHION_MNIST_DIR}/${split}-labels-idx1-ubyte.gz`)).subarray(8, 8 + n);
  const [mean] = cz.data.FASHION_MNIST_MEAN;
  const [std] = cz.data.FASHION_MNIST_STD;
  const pixels = Float32Array.from(img, (v) => (v / 255 - mean) / std);
  return { images: cz.tensor(pixels, [n, 1, 28, 28]), labels: cz.tensor(Array.from(lab), [n], { dtype: 'int64' }) };
}

describe('bf16 on a trained network', () => {
  test('resnet20 trained on Fashion-MNIST: bf16 (fast path) agrees with float32 on >= 99% of 2000 test images', () => {
    cz.manualSeed(0);
    const model = cz.buildModel('resnet20', { numClasses: 10, inChans: 1 });
    const train = fashionMnist('train', 4096);
    const opt = new cz.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    model.train();
    for (let epoch = 0; epoch < 2; epoch++)
      for (let i = 0; i < 4096; i += 64) {
        const [images, labels] = [train.images.slice(0, i, i + 64), train.labels.slice(0, i, i + 64)];
        cz.trainStep(model, opt, { images, labels });
        images.dispose();
        labels.dispose();
      }
    const test = fashionMnist('t10k', 2000);
    const predict = () => cz.noGrad(() => model.eval().forward(test.images).argmax(1)).data() as BigInt64Array;
    const fp32 = predict();
    model.optimizeForInference({ dtype: 'bfloat16' });
    const bf16 = predict();
    const labels = test.labels.data() as BigInt64Array;
    let agree = 0;
    let right32 = 0;
    let right16 = 0;
    for (let i = 0; i < fp32.length; i++) {
      if (fp32[i] === bf16[i]) agree++;
      if (fp32[i] === labels[i]) right32++;
      if (bf16[i] === labels[i]) right16++;
    }
    expect(right32 / fp32.length).toBeGreaterThan(0.75); // it did learn
    expect(agree / fp32.length).toBeGreaterThanOrEqual(0.99);
    expect(Math.abs(right16 - right32) / fp32.length).toBeLessThanOrEqual(0.005);
    for (const t of [train.images, train.labels, test.images, test.labels]) t.dispose();
    disposeModel(model);
  }, 300_000);
});

describe('autocast', () => {
  test('convolutions and matrix products run in bf16 inside, float32 outside; regions nest and restore', () => {
    const x = cz.randn([2, 4, 8, 8]);
    const w = cz.randn([6, 4, 3, 3]);
    const m = cz.randn([5, 7]);
    const inner = cz.autocast(() => {
      const y = cz.F.conv2d(x, w, null, { padding: 1 });
      const z = cz.autocast(() => m.matmul(m.t()), { enabled: false });
      return [y.dtype, z.dtype, m.matmul(m.t()).dtype];
    });
    expect(inner).toEqual(['bfloat16', 'float32', 'bfloat16']);
    expect(cz.F.conv2d(x, w, null, { padding: 1 }).dtype).toBe('float32');
    for (const t of [x, w, m]) t.dispose();
  });
});

describe('the fast path through createModel, a ModelWorker and the CLI', () => {
  test('createModel({ optimize }) and a ModelWorker with optimize compute what the optimized model computes', async () => {
    cz.manualSeed(3);
    const eager = cz.buildModel('resnet20');
    calibrateBatchNorms(eager, [3, 32, 32]);
    eager.eval();
    const x = cz.randn([2, 3, 32, 32]);
    const want = cz.noGrad(() => eager.forward(x));
    const worker = await cz.ModelWorker.create('resnet20', { optimize: { dtype: 'bfloat16' } }, eager);
    const fromWorker = await worker.forward(x);
    await worker.close();
    eager.optimizeForInference({ dtype: 'bfloat16' });
    const local = cz.noGrad(() => eager.forward(x));
    expect(Array.from(fromWorker.data() as Float32Array)).toEqual(Array.from(local.data() as Float32Array));
    expect(relError(local.data() as Float32Array, want.data() as Float32Array)).toBeLessThan(0.05);

    const built = await cz.createModel('resnet20', { optimize: true });
    expect(built._inference).toMatchObject({ dtype: 'float32', channelsLast: true, foldedBatchNorms: 19 });
    await expect(cz.createModel('resnet20', { optimize: 'yes' as unknown as boolean })).rejects.toThrow(/expected optimize to be a boolean/);
    await expect(cz.createModel('resnet20', { backend: 'onnxruntime', optimize: true })).rejects.toThrow(/optimize is libtorch's fast path/);
    for (const t of [x, want, fromWorker, local]) t.dispose();
    disposeModel(eager);
    disposeModel(built);
  });
});
