// A trained model must be usable: a convzoo checkpoint loads as weights (createModel, loadModel,
// predict --checkpoint, train --weights) with its own classes and preprocessing, and weight files are
// checked key for key and shape for shape before their data is read.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';

const CLI = path.resolve('dist/cli/main.js');
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-ckpt-model-'));
const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
let trained: cz.TrainResult;
let best = '';
let image = '';
let server: http.Server;
let base = '';

beforeAll(async () => {
  trained = await cz.train({ model: 'resnet20', data: 'fashion-mnist', subset: 128, batchSize: 64, epochs: 1, threads: 2, out: path.join(dir, 'run') });
  best = path.join(dir, 'run', 'best.ckpt');
  // A garment-like grey image, larger than 28 px and not square.
  const px = Buffer.alloc(60 * 40);
  for (let y = 0; y < 40; y++) for (let x = 0; x < 60; x++) px[y * 60 + x] = x > 15 && x < 45 ? 200 : 10;
  image = path.join(dir, 'shirt.png');
  await sharp(px, { raw: { width: 60, height: 40, channels: 1 } })
    .png()
    .toFile(image);
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    res.end(Buffer.from('not a weights file at all, just bytes'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 300_000);
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const logitsOf = (m: cz.ClassifierModel, x: cz.Tensor) => cz.inferenceMode(() => cz.tidy(() => m.eval().forward(x).data() as Float32Array));

describe('convzoo checkpoints as weights', () => {
  it('createModel(id, {weights: ckpt}) gives the trained model, its classes and its preprocessing', async () => {
    const m = await cz.createModel('resnet20', { weights: best });
    expect(m.classes).toEqual(FASHION);
    expect(m.numClasses).toBe(10);
    const t = cz.evalTransformFor(m);
    expect([t.channels, t.cropSize, t.resizeSize]).toEqual([1, 28, 28]);
    expect(t.mean[0]).toBeCloseTo(0.286, 3);
    const x = cz.randn([2, 1, 28, 28]);
    // best.ckpt holds the one epoch's model, which is the model train() returned.
    expect(logitsOf(m, x)).toEqual(logitsOf(trained.model, x));
    x.dispose();
    m.dispose();
  });

  it('loadModel(ckpt) takes the model id from the checkpoint; another id is refused', async () => {
    const m = await cz.loadModel(best);
    expect(m.meta!.id).toBe('resnet20');
    m.dispose();
    await expect(cz.createModel('resnet32', { weights: best })).rejects.toThrow(/checkpoint of resnet20, not resnet32/);
    await expect(cz.loadModel(image)).rejects.toMatchObject({ code: 'E_FORMAT' });
  });

  it("predict --checkpoint (and -m ID --weights CKPT) answers with the checkpoint's class names", () => {
    for (const args of [
      ['--checkpoint', best],
      ['-m', 'resnet20', '--weights', best],
    ]) {
      const r = cli(['predict', image, ...args, '--json', '-k', '3']);
      expect(r.status, r.stderr).toBe(0);
      const [res] = JSON.parse(r.stdout);
      expect(res.predictions).toHaveLength(3);
      for (const p of res.predictions) expect(FASHION).toContain(p.label);
    }
    const wrong = cli(['predict', image, '--checkpoint', best, '-m', 'resnet18']);
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(/holds resnet20, not resnet18/);
  });

  it('train --weights CKPT fine-tunes from a checkpoint', async () => {
    const r = await cz.train({
      model: 'resnet20',
      weights: best,
      subset: 64,
      batchSize: 64,
      epochs: 1,
      threads: 2,
      lr: 1e-9,
      momentum: 0,
      weightDecay: 0,
      out: path.join(dir, 'finetune'),
    });
    // With a vanishing learning rate the fine-tuned weights are the checkpoint's.
    const m = await cz.createModel('resnet20', { weights: best });
    const a = m.stateDict(),
      b = r.model.stateDict();
    expect(cz.tidy(() => a['conv1.weight'].sub(b['conv1.weight']).abs().max().item())).toBeLessThan(1e-6);
    for (const t of [...Object.values(a), ...Object.values(b)]) t.dispose();
    m.dispose();
    r.model.dispose();
  });
});

describe('weight files are checked before their data is read', () => {
  it('a file with a wrong shape or wrong keys fails with E_STATE_DICT naming them, without a leak', async () => {
    const sd = cz.buildModel('resnet20').stateDict();
    const wrongShape = { ...sd, 'conv1.weight': cz.zeros([16, 3, 5, 5]) };
    const f1 = path.join(dir, 'wrong-shape.safetensors');
    await cz.save(f1, wrongShape);
    const f2 = path.join(dir, 'wrong-keys.safetensors');
    const renamed: Record<string, cz.Tensor> = {};
    for (const [k, t] of Object.entries(sd)) renamed[`module.${k}`] = t;
    await cz.save(f2, renamed);
    for (const t of [...Object.values(sd), wrongShape['conv1.weight']]) t.dispose();
    const before = cz.memory().tensors;
    await expect(cz.createModel('resnet20', { weights: f1 })).rejects.toThrow(
      /does not fit resnet20: shape mismatches \(1\): conv1\.weight: file \[16, 3, 5, 5\] vs model \[16, 3, 3, 3\]/,
    );
    await expect(cz.createModel('resnet20', { weights: f2 })).rejects.toThrow(/missing keys.*unexpected keys.*strip the "module\." prefix/);
    expect(cz.memory().tensors).toBe(before);
  });

  it('a downloaded file that is not weights is not kept in the cache', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'cz-ckpt-home-'));
    process.env.CONVZOO_HOME = home;
    try {
      const url = `${base}/model.pth`;
      const e = await cz.createModel('resnet20', { weights: url }).catch((err) => err);
      expect(e).toBeInstanceOf(cz.ConvzooError);
      expect(e.code).toBe('E_FORMAT');
      expect(existsSync(cz.cachePathFor(url))).toBe(false);
    } finally {
      delete process.env.CONVZOO_HOME;
    }
  });

  it('refuses a bad weights argument with E_ARG', async () => {
    for (const w of ['', 42, {}]) {
      await expect(cz.createModel('resnet20', { weights: w as string })).rejects.toMatchObject({ code: 'E_ARG' });
    }
    writeFileSync(path.join(dir, 'empty.pth'), '');
    await expect(cz.createModel('resnet20', { weights: path.join(dir, 'empty.pth') })).rejects.toMatchObject({ code: 'E_FORMAT' });
  });
});
