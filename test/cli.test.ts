// The CLI's list, info and predict commands, and createModel with weights from a file and from a URL.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';

const CLI = path.resolve('dist/cli/main.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-cli-'));
let weights = '';
let server: http.Server;
let base = '';

beforeAll(async () => {
  // A resnet18 with random weights, saved as a file (what a user would pass with --weights).
  cz.manualSeed(3);
  const m = cz.buildModel('resnet18');
  const sd = m.stateDict();
  weights = path.join(dir, 'resnet18-random.safetensors');
  await cz.save(weights, sd);
  for (const t of Object.values(sd)) t.dispose();
  // Images: a PNG, a JPEG with EXIF orientation, a WebP, and a corrupt file.
  const noise = Buffer.alloc(300 * 200 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 31) % 255;
  const raw = { raw: { width: 300, height: 200, channels: 3 as const } };
  await sharp(noise, raw).png().toFile(path.join(dir, 'a.png'));
  await sharp(noise, raw).jpeg().withMetadata({ orientation: 6 }).toFile(path.join(dir, 'b.jpg'));
  await sharp(noise, raw).webp().toFile(path.join(dir, 'c.webp'));
  writeFileSync(path.join(dir, 'broken.jpg'), Buffer.from('this is not a jpeg'));
  server = http.createServer((_req, res) => {
    res.writeHead(200);
    res.end(readFileSync(weights));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('convzoo list / info', () => {
  it('lists the models of part 1', () => {
    const r = run(['list', '--json']);
    const ids = JSON.parse(r.stdout).map((m: { id: string }) => m.id);
    for (const id of ['resnet18', 'resnet50', 'resnext50_32x4d', 'wide_resnet50_2', 'resnet20', 'resnet110']) expect(ids).toContain(id);
  });

  it("prints torchvision's published GMACs (within 1%) and exact parameter counts", () => {
    const expected: Record<string, [number, number]> = {
      resnet50: [4.089, 25557032],
      resnext50_32x4d: [4.23, 25028904],
      resnet18: [1.814, 11689512],
      alexnet: [0.714, 61100840],
      vgg16: [15.47, 138357544],
      googlenet: [1.498, 6624904],
    };
    for (const [id, [gmacs, params]] of Object.entries(expected)) {
      const r = run(['info', id, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const info = JSON.parse(r.stdout);
      expect(info.params).toBe(params);
      expect(Math.abs(info.macs / 1e9 - gmacs) / gmacs).toBeLessThan(0.01);
      expect(info.inputSize).toEqual([3, 224, 224]);
      expect(info.paper.year).toBeGreaterThan(2011);
    }
  });

  it('prints a layer table', () => {
    const r = run(['info', 'resnet20']);
    expect(r.stdout).toMatch(/layer3\.2\.conv2\s+Conv2d\s+\[1, 64, 8, 8\]\s+36,864/);
    expect(r.stdout).toMatch(/Total params: 269,722/);
  });

  it('rejects an unknown model with exit code 2', () => {
    const r = run(['info', 'resnet51']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown model 'resnet51'; did you mean/);
  });
});

describe('convzoo predict', () => {
  it('answers every good image and reports the corrupt one', () => {
    const files = ['a.png', 'b.jpg', 'broken.jpg', 'c.webp'].map((f) => path.join(dir, f));
    const r = run(['predict', ...files, '--model', 'resnet18', '--weights', weights, '--topk', '3', '--json']);
    expect(r.status).toBe(3); // one file failed
    const out = JSON.parse(r.stdout);
    expect(out).toHaveLength(4);
    expect(out[2].error).toMatch(/broken\.jpg: not a decodable image/);
    for (const i of [0, 1, 3]) {
      expect(out[i].predictions).toHaveLength(3);
      const probs = out[i].predictions.map((p: { probability: number }) => p.probability);
      expect(probs[0]).toBeGreaterThanOrEqual(probs[1]);
      expect(typeof out[i].predictions[0].label).toBe('string');
    }
  });

  it('gives the same logits as the library on the same preprocessed image', async () => {
    const model = await cz.createModel('resnet18', { weights });
    const t = cz.evalTransformFor(model);
    expect(t).toMatchObject({ resizeSize: 256, cropSize: 224, channels: 3 });
    const x = await cz.loadImage(path.join(dir, 'a.png'), t);
    expect(x.length).toBe(3 * 224 * 224);
    const [res] = await cz.predict(model, [path.join(dir, 'a.png')], { topk: 1 });
    const probs = cz.inferenceMode(() =>
      cz.tidy(() =>
        model
          .eval()
          .forward(cz.fromBytes(x, [1, 3, 224, 224], 'float32'))
          .softmax(1)
          .data(),
      ),
    );
    const best = Math.max(...(probs as Float32Array));
    expect('predictions' in res && res.predictions[0].probability).toBeCloseTo(best, 6);
  });
});

describe('createModel with weights', () => {
  it('downloads from a URL into CONVZOO_HOME and loads them', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'cz-home-'));
    process.env.CONVZOO_HOME = home;
    try {
      const a = (await cz.createModel('resnet18', { weights: `${base}/resnet18-random.safetensors` })) as cz.resnet.ResNet;
      const b = await cz.createModel('resnet18', { weights });
      const wa = (a.fc as cz.nn.Linear).weight,
        wb = ((b as cz.resnet.ResNet).fc as cz.nn.Linear).weight;
      expect(cz.tidy(() => wa.sub(wb).abs().max().item())).toBe(0);
      expect(readFileSync(cz.cachePathFor(`${base}/resnet18-random.safetensors`)).length).toBe(readFileSync(weights).length);
    } finally {
      delete process.env.CONVZOO_HOME;
    }
  });

  it('resets the head for another class count and adapts the first conv to grayscale', async () => {
    const m = (await cz.createModel('resnet18', { weights, numClasses: 7, inChans: 1 })) as cz.resnet.ResNet;
    expect((m.fc as cz.nn.Linear).weight.shape).toEqual([7, 512]);
    expect(m.conv1.weight.shape).toEqual([64, 1, 7, 7]);
    const sd = await cz.load(weights);
    const summed = cz.tidy(() => sd['conv1.weight'].sum(1, { keepdim: true }).sub(m.conv1.weight).abs().max().item());
    expect(summed).toBeLessThan(1e-6);
    for (const t of Object.values(sd)) t.dispose();
  });

  it('explains weights that are neither a tag nor a file', async () => {
    await expect(cz.createModel('resnet18', { weights: 'IMAGENET9K' })).rejects.toThrow(/neither a tag \(IMAGENET1K_V1, DEFAULT\) nor an existing file or URL/);
  });
});
