// bf16 training (autocast on channels-last tensors, float32 master weights) and the exponential moving
// average of the weights (ModelEma, --ema): the average's arithmetic, its evaluation and checkpointing,
// loading it back with createModel({ ema: true }) / eval --ema, and resuming a run that keeps one.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as cz from '../src/index.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { sliceFashionMnist } from './reference.js';
import { disposeModel } from './helpers/tv_reference.js';

describe('ModelEma', () => {
  test('ema = decay * ema + (1 - decay) * weights for parameters and batch-norm statistics; integer buffers copied', () => {
    cz.manualSeed(0);
    const model = cz.buildModel('resnet20');
    const ema = new cz.ModelEma(model, { decay: 0.75 });
    const key = 'layer1.0.conv1.weight';
    const start = model.stateDict()[key].data() as Float32Array;
    cz.noGrad(() => {
      for (const p of model.parameters()) p.fill_(2);
      for (const [k, b] of model.namedBuffers()) b.fill_(k.endsWith('num_batches_tracked') ? 7 : 3);
    });
    ema.update();
    ema.update();
    const sd = ema.module.stateDict();
    const got = sd[key].data() as Float32Array;
    // Two steps towards 2: 0.75^2 * w0 + (1 - 0.75^2) * 2.
    for (let i = 0; i < 20; i++) expect(got[i]).toBeCloseTo(0.5625 * start[i] + 0.4375 * 2, 6);
    expect((sd['bn1.running_var'].data() as Float32Array)[0]).toBeCloseTo(0.5625 * 1 + 0.4375 * 3, 6);
    expect(sd['bn1.num_batches_tracked'].item()).toBe(7);
    expect(ema.module.training).toBe(false);
    expect(ema.module.parameters().every((p) => !p.requiresGrad)).toBe(true);
    expect(() => new cz.ModelEma(model, { decay: 1 })).toThrow(/decay must be a number in \(0, 1\), got 1/);
    for (const t of Object.values(sd)) t.dispose();
    ema.dispose();
    disposeModel(model);
  });
});

describe('trainStep with precision bfloat16', () => {
  test('the loss is float32 and close to the float32 step; weights stay float32 (and channels-last)', () => {
    const losses = (precision: 'float32' | 'bfloat16') => {
      cz.manualSeed(5);
      const model = cz.buildModel('resnet20', { numClasses: 10, inChans: 1 });
      if (precision === 'bfloat16') model.toMemoryFormat('channels_last');
      const opt = new cz.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const images = cz.randn([16, 1, 28, 28]);
      const labels = cz.tensor(
        Array.from({ length: 16 }, (_, i) => i % 10),
        [16],
        { dtype: 'int64' },
      );
      model.train();
      const out = Array.from({ length: 8 }, () => cz.trainStep(model, opt, { images, labels }, { precision }).loss);
      const w = model.parameters().find((p) => p.ndim === 4)!;
      const state = { dtype: w.dtype, channelsLast: w.isContiguous('channels_last') };
      images.dispose();
      labels.dispose();
      disposeModel(model);
      return { out, state };
    };
    const fp32 = losses('float32');
    const bf16 = losses('bfloat16');
    expect(bf16.state).toEqual({ dtype: 'float32', channelsLast: true });
    expect(Math.abs(bf16.out[0] - fp32.out[0]) / fp32.out[0]).toBeLessThan(0.02);
    expect(bf16.out[7]).toBeLessThan(bf16.out[0] * 0.7); // it learns the batch
  });
});

describe('bf16 autograd through every activation and the local response norm', () => {
  // libtorch 1.13 has CPU bfloat16 kernels for most of these but not hardtanh's backward (relu6: PyTorch's
  // own bf16 training of mobilenet_v2 stops there), mish or avg_pool3d (LRN); convzoo routes around each.
  const cases: [string, (x: cz.Tensor) => cz.Tensor][] = [
    ...cz.nn.ACTIVATION_NAMES.map((name): [string, (x: cz.Tensor) => cz.Tensor] => [name, cz.nn.getActivationFn(name)]),
    ['hardtanh(-2, 3)', (x) => cz.F.hardtanh(x, { min: -2, max: 3 })],
    ['relu6_ (in place)', (x) => x.mul(1).relu6_()],
    ['localResponseNorm', (x) => cz.F.localResponseNorm(x, 5, { alpha: 1e-2 })],
  ];
  test.each(cases)('%s: forward and gradient in bf16 close to float32', (_name, fn) => {
    cz.manualSeed(3);
    // Values spread over [-8, 8] so relu6 and hardtanh clip on both sides, and already bf16 values, so both
    // runs see the same inputs (one that rounds to 6 has no gradient through relu6, as in torch).
    const base = cz.tidy(() => cz.randn([2, 6, 5, 5]).mul(4).to('bfloat16').to('float32'));
    const run = (dtype: 'float32' | 'bfloat16') =>
      cz.tidy(() => {
        const x = base.to(dtype).detach();
        x.requiresGrad = true;
        const y = fn(x);
        const out = y.to('float32');
        out.mul(out).sum().backward();
        return { y: Array.from(out.data() as Float32Array), g: Array.from(x.grad!.to('float32').data() as Float32Array), dtype: y.dtype };
      });
    const f32 = run('float32');
    const b16 = run('bfloat16');
    base.dispose();
    expect(b16.dtype).toBe('bfloat16');
    const scale = (v: number[]) => Math.max(1e-3, ...v.map(Math.abs));
    const worst = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale(b);
    expect(worst(b16.y, f32.y)).toBeLessThan(0.03);
    expect(worst(b16.g, f32.g)).toBeLessThan(0.06);
  });

  test('relu6 without gradients (inference) in bf16: the same values', () => {
    const x = cz.tidy(() => cz.randn([4, 50]).mul(5).to('bfloat16'));
    const expected = (x.to('float32').data() as Float32Array).map((v) => Math.min(6, Math.max(0, v)));
    const viaFn = cz.noGrad(() => cz.F.relu6(x));
    const inPlace = cz.noGrad(() => x.mul(1).relu6_());
    for (const y of [viaFn, inPlace]) {
      expect(y.dtype).toBe('bfloat16');
      expect(Array.from(y.to('float32').data() as Float32Array)).toEqual(Array.from(expected));
      y.dispose();
    }
    x.dispose();
  });

  test('a relu6 network (mobilenet_v2) takes a bf16 training step', () => {
    cz.manualSeed(4);
    const model = cz.buildModel('mobilenet_v2', { numClasses: 10 });
    model.toMemoryFormat('channels_last');
    model.train();
    const opt = new cz.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const images = cz.randn([4, 3, 64, 64]);
    const labels = cz.tensor([1, 2, 3, 4], [4], { dtype: 'int64' });
    const { loss } = cz.trainStep(model, opt, { images, labels }, { precision: 'bfloat16' });
    expect(Number.isFinite(loss)).toBe(true);
    expect(loss).toBeGreaterThan(1);
    images.dispose();
    labels.dispose();
    disposeModel(model);
  });
});

describe('convzoo train --precision bf16 --ema', () => {
  const CLI = path.resolve('dist/cli/main.js');
  let data = '';
  let out = '';
  beforeAll(() => {
    data = mkdtempSync(path.join(os.tmpdir(), 'cz-ema-data-'));
    out = mkdtempSync(path.join(os.tmpdir(), 'cz-ema-'));
    sliceFashionMnist('train', 256, data);
    sliceFashionMnist('t10k', 128, data);
  });
  afterAll(() => {
    rmSync(data, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });
  const cli = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  const epochs = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'epoch');

  test('evaluates and checkpoints the average; createModel/eval --ema load it; a resume continues it', async () => {
    const common = ['--model', 'resnet20', '--data', data, '--batch-size', '32', '--lr', '0.05', '--seed', '1', '--threads', '1', '--workers', '0', '--json'];
    const r = cli(['train', ...common, '--epochs', '1', '--precision', 'bf16', '--ema', '0.9', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const [e1] = epochs(r.stdout);
    expect(e1.emaTestAccuracy).toBeGreaterThanOrEqual(0);
    expect(e1.emaTestAccuracy).not.toBe(e1.testAccuracy);

    const ck = await loadCheckpoint(path.join(out, 'last.ckpt'));
    try {
      expect(Object.keys(ck.ema).sort()).toEqual(Object.keys(ck.model).sort());
      expect(ck.options).toMatchObject({ precision: 'bf16', ema: 0.9 });
    } finally {
      ck.dispose();
    }
    // The average, loaded back, scores what the trainer reported for it.
    const evalEma = cli(['eval', '-c', path.join(out, 'last.ckpt'), '--ema', '--json']);
    expect(evalEma.status, evalEma.stderr).toBe(0);
    expect(JSON.parse(evalEma.stdout).top1).toBeCloseTo(e1.emaTestAccuracy, 10);
    const averaged = await cz.createModel('resnet20', { weights: path.join(out, 'last.ckpt'), ema: true });
    const raw = await cz.createModel('resnet20', { weights: path.join(out, 'last.ckpt') });
    const w = (m: cz.ClassifierModel) => (m.stateDict()['conv1.weight'].data() as Float32Array)[0];
    expect(w(averaged)).not.toBe(w(raw));
    disposeModel(averaged);
    disposeModel(raw);

    // Resumed: the options (bf16, EMA) come from the checkpoint and the average goes on from its state.
    const resumed = cli(['train', '--resume', path.join(out, 'last.ckpt'), '--epochs', '2', '--json']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const [e2] = epochs(resumed.stdout);
    expect(e2.epoch).toBe(2);
    expect(typeof e2.emaTestAccuracy).toBe('number');

    // Bad uses are named.
    const noEma = cli(['train', ...common, '--epochs', '1', '--out', path.join(out, 'plain')]);
    expect(noEma.status, noEma.stderr).toBe(0);
    await expect(cz.createModel('resnet20', { weights: path.join(out, 'plain', 'last.ckpt'), ema: true })).rejects.toThrow(/holds no moving average/);
    await expect(cz.createModel('resnet20', { ema: true })).rejects.toThrow(/give it as weights/);
    const bad = cli(['train', ...common, '--ema', '1', '--out', path.join(out, 'bad')]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--ema/);
    const badPrecision = cli(['train', ...common, '--precision', 'fp16', '--out', path.join(out, 'bad')]);
    expect(badPrecision.status).not.toBe(0);
    expect(badPrecision.stderr).toMatch(/--precision.*fp32, bf16/);
  }, 300_000);
});
