// cz.predict / predictStream: argument checks, paths that are not regular files, streaming (only one
// batch of decoded images alive; memory that does not grow with the number of images), order and
// per-image errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { predict, predictStream, _predictProbe, type PredictResult } from '../src/predict.js';
import type { EvalTransform } from '../src/vision/preprocess.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-predict-'));
// resnet20 (CIFAR, 10 classes) on 32 x 32 crops keeps the forward passes cheap.
const T: EvalTransform = { resizeSize: 36, cropSize: 32, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26], interpolation: 'bilinear', channels: 3 };
let model: cz.ClassifierModel;
const img = (i: number) => path.join(dir, `img${i}.png`);

beforeAll(async () => {
  cz.manualSeed(1);
  model = cz.buildModel('resnet20');
  for (let i = 0; i < 12; i++) {
    const px = Buffer.alloc(60 * 40 * 3);
    for (let k = 0; k < px.length; k++) px[k] = (k * (i + 3) + i * 17) % 256;
    await sharp(px, { raw: { width: 60, height: 40, channels: 3 } })
      .png()
      .toFile(img(i));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isError = (r: PredictResult): r is { source: string; error: string; code: string } => 'error' in r;

describe('predict: arguments', () => {
  it('rejects a batch size, topk or concurrency that is not an integer >= 1 with E_ARG naming the option', async () => {
    // With no images first: before the fix batchSize 0 was accepted here (and looped forever with images).
    for (const batchSize of [0, -1, 1.5, Number.NaN, '4' as unknown as number]) {
      await expect(predict(model, [], { batchSize, transform: T })).rejects.toMatchObject({ code: 'E_ARG', message: expect.stringMatching(/batchSize/) });
    }
    for (const topk of [0, -3, 2.5]) {
      await expect(predict(model, [], { topk, transform: T })).rejects.toMatchObject({ code: 'E_ARG', message: expect.stringMatching(/topk/) });
    }
    await expect(predict(model, [], { concurrency: 0, transform: T })).rejects.toMatchObject({ code: 'E_ARG', message: expect.stringMatching(/concurrency/) });
    // And with images: an error at once, no loop.
    await expect(predict(model, [img(0)], { batchSize: 0, transform: T })).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(predict(model, [img(0)], { batchSize: -2, transform: T })).rejects.toMatchObject({ code: 'E_ARG' });
    // predictStream checks before iterating.
    expect(() => predictStream(model, [img(0)], { batchSize: 0, transform: T })).toThrow(/batchSize/);
  });

  it('rejects sources that are not an array of paths or Buffers, and a bad transform', async () => {
    await expect(predict(model, img(0) as unknown as string[], { transform: T })).rejects.toMatchObject({
      code: 'E_ARG',
      message: expect.stringMatching(/sources/),
    });
    await expect(predict(model, [img(0), 42 as unknown as string], { transform: T })).rejects.toMatchObject({
      code: 'E_ARG',
      message: expect.stringMatching(/sources\[1\]/),
    });
    await expect(predict(model, [img(0)], { transform: { ...T, cropSize: 0 } })).rejects.toMatchObject({
      code: 'E_ARG',
      message: expect.stringMatching(/transform\.cropSize/),
    });
    await expect(predict(model, [img(0)], { transform: T, labels: 'cat' as unknown as string[] })).rejects.toMatchObject({
      code: 'E_ARG',
      message: expect.stringMatching(/labels/),
    });
  });

  it('clamps topk to the number of classes', async () => {
    const [r] = await predict(model, [img(0)], { topk: 50, transform: T });
    expect(!isError(r) && r.predictions).toHaveLength(10);
  });
});

describe('predict: paths that are not regular files', () => {
  it('answers a FIFO with "not a regular file" instead of blocking on it, and still answers the others', async () => {
    const fifo = path.join(dir, 'pipe.jpg');
    execFileSync('mkfifo', [fifo]);
    // A writer that would unblock a reader after a second (so that the old code fails rather than hangs).
    const writer = spawn('sh', ['-c', `sleep 1; printf x > '${fifo}'`], { stdio: 'ignore' });
    try {
      const sub = path.join(dir, 'a-directory.png');
      mkdirSync(sub);
      const res = await predict(model, [fifo, img(1), sub, path.join(dir, 'missing.png')], { topk: 2, transform: T });
      expect(res.map((r) => r.source)).toEqual([fifo, img(1), sub, path.join(dir, 'missing.png')]);
      expect(res[0]).toMatchObject({ code: 'E_IMAGE', error: `${fifo}: not a regular file` });
      expect(isError(res[1])).toBe(false);
      expect(res[2]).toMatchObject({ code: 'E_IMAGE', error: `${sub}: not a regular file` });
      expect(res[3]).toMatchObject({ code: 'E_IMAGE', error: expect.stringMatching(/missing\.png: cannot read: ENOENT/) });
    } finally {
      writer.kill();
    }
  });
});

describe('predict: streaming', () => {
  it('decodes only one batch at a time, keeps the input order and per-image errors', async () => {
    const sources: (string | Buffer)[] = Array.from({ length: 30 }, (_, i) => img(i % 12));
    sources[5] = Buffer.from('not an image');
    sources[17] = path.join(dir, 'nope.png');
    _predictProbe.reset();
    const res = await predict(model, sources, { batchSize: 4, topk: 3, transform: T });
    expect(_predictProbe.peak).toBeGreaterThan(0);
    expect(_predictProbe.peak).toBeLessThanOrEqual(4);
    expect(_predictProbe.live).toBe(0);
    expect(res).toHaveLength(30);
    res.forEach((r, i) => {
      if (i === 5) expect(r).toMatchObject({ source: 'buffer #5', code: 'E_IMAGE', error: expect.stringMatching(/not a decodable image/) });
      else if (i === 17) expect(r).toMatchObject({ source: sources[17], code: 'E_IMAGE' });
      else {
        expect(r.source).toBe(sources[i]);
        expect(!isError(r) && r.predictions).toHaveLength(3);
      }
    });
    // The same image gets the same answer in whichever batch it falls.
    const first = res[0],
      again = res[12];
    expect(!isError(first) && !isError(again) && again.predictions[0].probability).toBeCloseTo(!isError(first) ? first.predictions[0].probability : -1, 5);
  });

  it('predictStream yields each batch in order as it is done, with the same results as predict', async () => {
    const sources = Array.from({ length: 10 }, (_, i) => img(i));
    _predictProbe.reset();
    const batches: PredictResult[][] = [];
    for await (const b of predictStream(model, sources, { batchSize: 4, concurrency: 2, topk: 1, transform: T })) {
      expect(_predictProbe.live).toBe(0); // a batch's images are released before it is yielded
      batches.push(b);
    }
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(_predictProbe.peak).toBeLessThanOrEqual(4);
    const all = await predict(model, sources, { batchSize: 3, topk: 1, transform: T });
    expect(batches.flat().map((r) => r.source)).toEqual(sources);
    batches.flat().forEach((r, i) => {
      const a = all[i];
      expect(!isError(r) && !isError(a) && r.predictions[0].index).toBe(!isError(a) ? a.predictions[0].index : -1);
    });
  });

  it('keeps peak memory flat: 200 images take about as much as 40 (child processes, built dist/)', async () => {
    // One 800 x 600 noise PNG (about 1.4 MB, 1.4 MB decoded) behind 200 symlinks. Before streaming,
    // every file was read and every input decoded before the first forward: about +5 MB per image
    // (800 MB more for 200 than for 40). Streaming bounds the working set by the batch; what remains
    // between 40 and 200 images is allocator and GC noise, measured at 3 to 15 MB; 64 MB is the margin.
    const big = path.join(dir, 'noise.png');
    const w = 800,
      h = 600;
    const px = Buffer.alloc(w * h * 3);
    let s = 7;
    for (let i = 0; i < px.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      px[i] = s >>> 24;
    }
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png({ compressionLevel: 1 })
      .toFile(big);
    const files = [big];
    for (let i = 1; i < 200; i++) {
      const f = path.join(dir, `noise${i}.png`);
      symlinkSync(big, f);
      files.push(f);
    }
    const child = `import * as cz from ${JSON.stringify(path.resolve('dist/index.js'))};
const files = JSON.parse(process.argv[1]);
const model = cz.buildModel('resnet18');
const t = { resizeSize: 73, cropSize: 64, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: 'bilinear', channels: 3 };
const r = await cz.predict(model, files, { topk: 1, transform: t, batchSize: 8 });
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS / 1024, n: r.length, errors: r.filter((x) => 'error' in x).length }));`;
    const rss = (n: number) => {
      const out = JSON.parse(
        execFileSync('node', ['--input-type=module', '-e', child, JSON.stringify(files.slice(0, n))], { encoding: 'utf8', timeout: 110_000 }),
      );
      expect(out).toMatchObject({ n, errors: 0 });
      return out.maxRSS as number;
    };
    const few = rss(40),
      many = rss(200);
    console.log(`maxRSS: 40 images ${few.toFixed(0)} MB, 200 images ${many.toFixed(0)} MB`);
    expect(many - few).toBeLessThan(64);
  });
});
