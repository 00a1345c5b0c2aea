// The data pipeline: IDX / Fashion-MNIST, ImageFolder with sharp, seeded transforms (against
// torchvision where it defines the numbers), and the DataLoader with and without worker threads.
import { describe, test, expect, beforeEach, afterEach, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { requirePython, requireFashionMnist } from './reference.js';
import { ConvzooError, data } from '../src/index.js';

const PY = '/usr/bin/python3';
const REF = join(import.meta.dirname, '..', 'tools', 'data_reference.py');
const FMNIST = data.FASHION_MNIST_DIR;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'convzoo-data-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let live = 0;
beforeEach(() => {
  live = cz.memory().tensors;
});
afterEach(() => {
  expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
});

/** Runs tools/data_reference.py with a JSON request; returns its parsed stdout. */
function reference(req: object): any {
  const f = join(tmp, `req-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(req));
  return JSON.parse(execFileSync(PY, [REF, f], { encoding: 'utf8' }));
}

/** Captures the ConvzooError a function throws. */
function errorOf(fn: () => unknown): ConvzooError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConvzooError);
    return e as ConvzooError;
  }
  throw new Error('expected an error');
}
async function asyncErrorOf(fn: () => Promise<unknown>): Promise<ConvzooError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConvzooError);
    return e as ConvzooError;
  }
  throw new Error('expected an error');
}

function idxBytes(dims: number[], values: Uint8Array, magicType = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + values.length);
  out.set([0, 0, magicType, dims.length]);
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(values, 4 + 4 * dims.length);
  return out;
}

/** Writes a small Fashion-MNIST-layout folder: n images of h x w, pixel (i, p) = (7i + p) % 256. */
function writeIdxFolder(
  dir: string,
  opts: { n?: number; h?: number; w?: number; gz?: boolean; split?: string; labels?: number[] } = {},
): { pixels: Uint8Array; labels: Uint8Array } {
  const { n = 5, h = 4, w = 3, gz = false, split = 'train' } = opts;
  mkdirSync(dir, { recursive: true });
  const pixels = Uint8Array.from({ length: n * h * w }, (_, k) => (7 * Math.floor(k / (h * w)) + (k % (h * w))) % 256);
  const labels = Uint8Array.from(opts.labels ?? Array.from({ length: n }, (_, i) => (i * 3) % 10));
  const write = (name: string, bytes: Uint8Array): void => writeFileSync(join(dir, gz ? `${name}.gz` : name), gz ? gzipSync(bytes) : bytes);
  write(`${split}-images-idx3-ubyte`, idxBytes([n, h, w], pixels));
  write(`${split}-labels-idx1-ubyte`, idxBytes([labels.length], labels));
  return { pixels, labels };
}

function randomImage(c: number, h: number, w: number, seed = 1): data.Image {
  const rng = new data.Rng(seed);
  return data.makeImage(
    c,
    h,
    w,
    Float32Array.from({ length: c * h * w }, () => rng.random()),
  );
}
/** An image whose pixel value encodes its position: c * 10000 + y * 100 + x. */
function coordImage(c: number, h: number, w: number): data.Image {
  return data.makeImage(
    c,
    h,
    w,
    Float32Array.from({ length: c * h * w }, (_, k) => {
      const ch = Math.floor(k / (h * w));
      const y = Math.floor((k % (h * w)) / w);
      return ch * 10000 + y * 100 + (k % w);
    }),
  );
}
const at = (img: data.Image, c: number, y: number, x: number): number => img.data[c * img.height * img.width + y * img.width + x];
const readF32 = (file: string): Float32Array => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('IDX / Fashion-MNIST', () => {
  test('raw and gzip IDX files give the same pixels and labels', () => {
    for (const gz of [false, true]) {
      const dir = join(tmp, gz ? 'idx-gz' : 'idx-raw');
      const { pixels, labels } = writeIdxFolder(dir, { gz });
      const ds = new data.FashionMNIST({ root: dir });
      expect(ds.length).toBe(5);
      expect(ds.classes).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
      expect(Array.from(ds.targets)).toEqual(Array.from(labels));
      const s = ds.get(2);
      expect([s.image.channels, s.image.height, s.image.width]).toEqual([1, 4, 3]);
      expect(s.label).toBe(labels[2]);
      expect(
        maxAbsDiff(
          s.image.data,
          Array.from(pixels.subarray(24, 36), (p) => Math.fround(p / 255)),
        ),
      ).toBe(0);
      expect(ds.images.buffer).toBeInstanceOf(SharedArrayBuffer);
    }
  });

  test('the test split reads t10k-*', () => {
    const dir = join(tmp, 'idx-t10k');
    writeIdxFolder(dir, { split: 't10k', n: 3 });
    expect(new data.FashionMNIST({ root: dir, train: false }).length).toBe(3);
    expect(errorOf(() => new data.FashionMNIST({ root: dir })).message).toContain('train-images-idx3-ubyte(.gz) not found');
  });

  test('missing and corrupt files are E_DATA errors that say what was expected where', () => {
    const missing = errorOf(() => new data.FashionMNIST({ root: join(tmp, 'nowhere') }));
    expect(missing.code).toBe('E_DATA');
    expect(missing.message).toBe(
      `fashion-mnist: ${join(tmp, 'nowhere', 'train-images-idx3-ubyte')}(.gz) not found; install dataset-fashion-mnist or pass --data DIR`,
    );

    const dir = join(tmp, 'idx-bad');
    writeIdxFolder(dir);
    const imgs = join(dir, 'train-images-idx3-ubyte');
    const good = readFileSync(imgs);

    writeFileSync(imgs, idxBytes([5, 4, 3], new Uint8Array(60), 0x09));
    let e = errorOf(() => new data.FashionMNIST({ root: dir }));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toContain('bad magic number 0x00000903; expected 0x00000803');
    expect(e.message).toContain(imgs);

    writeFileSync(imgs, good.subarray(0, good.length - 7));
    e = errorOf(() => new data.FashionMNIST({ root: dir }));
    expect(e.message).toContain('truncated file: header says 5x4x3 = 60 bytes of data, found 53');

    writeFileSync(imgs, good.subarray(0, 10));
    expect(errorOf(() => new data.FashionMNIST({ root: dir })).message).toContain('shorter than its 16-byte header');

    writeFileSync(imgs, gzipSync(good).subarray(0, 20));
    e = errorOf(() => new data.FashionMNIST({ root: dir }));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toContain('not a valid gzip file');

    writeFileSync(imgs, good);
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([4], new Uint8Array(4)));
    e = errorOf(() => new data.FashionMNIST({ root: dir }));
    expect(e.message).toContain('has 4 labels but');
    expect(e.message).toContain('has 5 images');

    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([5], Uint8Array.from([1, 2, 3, 12, 4])));
    expect(errorOf(() => new data.FashionMNIST({ root: dir })).message).toContain('label 12 at index 3 is outside 0..9');
  });

  test('the Debian dataset-fashion-mnist files match numpy reading the same gz', () => {
    requireFashionMnist();
    requirePython('numpy');
    const ref = reference({ mode: 'idx', dir: FMNIST });
    for (const [train, split] of [
      [true, 'train'],
      [false, 't10k'],
    ] as const) {
      const ds = new data.FashionMNIST({ train });
      const r = ref[split];
      expect(ds.length).toBe(r.labels);
      expect([ds.length, ds.shape[1], ds.shape[2]]).toEqual(r.images);
      expect(Math.min(...ds.labels)).toBe(0);
      expect(Math.max(...ds.labels)).toBe(9);
      expect(Array.from(ds.labels.subarray(0, 32))).toEqual(r.first);
      for (let i = 0; i < 8; i++) {
        const img = ds.get(i).image.data;
        let sum = 0;
        for (const v of img) sum += Math.round(v * 255);
        expect(sum).toBe(r.sums[i]);
      }
    }
    expect(data.FASHION_MNIST_MEAN[0]).toBeCloseTo(ref.train.mean, 4);
    expect(data.FASHION_MNIST_STD[0]).toBeCloseTo(ref.train.std, 4);
  });
});

describe('transforms', () => {
  test('hflip, vflip, crop and pad move pixels where expected', () => {
    const img = coordImage(2, 3, 4);
    const f = data.hflip(img);
    const v = data.vflip(img);
    for (let c = 0; c < 2; c++)
      for (let y = 0; y < 3; y++)
        for (let x = 0; x < 4; x++) {
          expect(at(f, c, y, x)).toBe(at(img, c, y, 3 - x));
          expect(at(v, c, y, x)).toBe(at(img, c, 2 - y, x));
        }
    const cr = data.crop(img, 1, 2, 2, 2);
    expect(Array.from(cr.data)).toEqual([102, 103, 202, 203, 10102, 10103, 10202, 10203]);
    const p = data.pad(img, [1, 2, 0, 1], { fill: -1 });
    expect([p.height, p.width]).toEqual([6, 5]);
    expect(at(p, 0, 0, 0)).toBe(-1);
    expect(at(p, 0, 2, 1)).toBe(0);
    expect(at(p, 1, 4, 4)).toBe(10203);
    expect(at(p, 1, 5, 4)).toBe(-1);
    const r = data.pad(coordImage(1, 1, 4), [2, 0, 2, 0], { mode: 'reflect' });
    expect(Array.from(r.data)).toEqual([2, 1, 0, 1, 2, 3, 2, 1]);
    const e = data.pad(coordImage(1, 1, 3), [1, 0, 2, 0], { mode: 'edge' });
    expect(Array.from(e.data)).toEqual([0, 0, 1, 2, 2, 2]);
    expect(errorOf(() => data.crop(img, 2, 0, 2, 2)).code).toBe('E_SHAPE');
  });

  test('CenterCrop places the window like torchvision (round half to even) and pads small images', () => {
    const img = coordImage(1, 5, 8);
    // top = round((5 - 2) / 2) = round(1.5) = 2, left = round((8 - 3) / 2) = round(2.5) = 2
    const c = new data.CenterCrop([2, 3]).apply(img);
    expect(Array.from(c.data)).toEqual([202, 203, 204, 302, 303, 304]);
    const c2 = new data.CenterCrop(4).apply(img); // top round(0.5) = 0, left 2
    expect(at(c2, 0, 0, 0)).toBe(2);
    const big = new data.CenterCrop([7, 9]).apply(img); // pad [0, 1, 1, 1] (l, t, r, b): image at rows 1..5, cols 0..7
    expect([big.height, big.width]).toEqual([7, 9]);
    expect(at(big, 0, 1, 0)).toBe(0);
    expect(at(big, 0, 5, 7)).toBe(407);
    expect(at(big, 0, 0, 3)).toBe(0);
    expect(at(big, 0, 3, 8)).toBe(0);
  });

  test('Resize and CenterCrop match torchvision on tensors', () => {
    requirePython('torch', 'torchvision');
    const img = randomImage(3, 37, 53, 7);
    const input = join(tmp, 'resize-in.bin');
    writeFileSync(input, img.data);
    const cases = [
      { size: 20, antialias: false },
      { size: 20, antialias: true },
      { size: [64, 80], antialias: false },
      { size: [64, 80], antialias: true },
      { size: [15, 9], antialias: false },
      { size: [15, 9], antialias: true },
      { size: [37, 26], antialias: true },
      { size: [111, 20], antialias: true },
    ];
    const sizes = [
      [10, 10],
      [36, 52],
      [37, 53],
      [40, 60],
      [4, 7],
    ];
    const out = mkdtempSync(join(tmp, 'resize-'));
    const shapes = reference({ mode: 'geometry', input, shape: [3, 37, 53], resize: cases, crop: sizes, out });
    cases.forEach((cs, i) => {
      const ours = new data.Resize(cs.size as number, { antialias: cs.antialias }).apply(img);
      expect([ours.channels, ours.height, ours.width]).toEqual(shapes.resize[i]);
      const theirs = readF32(join(out, `resize_${i}.bin`));
      expect(maxAbsDiff(ours.data, theirs), JSON.stringify(cs)).toBeLessThan(1e-5);
    });
    sizes.forEach((s, i) => {
      const ours = new data.CenterCrop(s as [number, number]).apply(img);
      expect([ours.channels, ours.height, ours.width]).toEqual(shapes.crop[i]);
      expect(maxAbsDiff(ours.data, readF32(join(out, `crop_${i}.bin`)))).toBe(0);
    });
  });

  test('Normalize computes (x - mean) / std per channel without touching its input', () => {
    const img = data.makeImage(2, 1, 2, Float32Array.from([0.5, 1, 0, 0.25]));
    const n = new data.Normalize([0.5, 0.1], [0.25, 0.5]).apply(img);
    [0, 2, -0.2, 0.3].forEach((v, i) => expect(n.data[i]).toBeCloseTo(v, 6));
    expect(Array.from(img.data)).toEqual([0.5, 1, 0, 0.25]);
    const one = new data.Normalize([0.5], [0.5]).apply(img); // one value for every channel
    expect(one.data[3]).toBeCloseTo(-0.5, 6);
    expect(errorOf(() => new data.Normalize([1, 2, 3], [1, 1, 1]).apply(img)).code).toBe('E_SHAPE');
  });

  test('every transform gives its documented shape, and the same seed gives the same output', () => {
    const img = randomImage(3, 40, 60);
    const cases: [data.Transform, number[]][] = [
      [new data.Resize(20), [3, 20, 30]],
      [new data.Resize([16, 16]), [3, 16, 16]],
      [new data.CenterCrop(32), [3, 32, 32]],
      [new data.RandomCrop(40, { padding: 4 }), [3, 40, 40]],
      [new data.RandomCrop([50, 70], { padIfNeeded: true }), [3, 50, 70]],
      [new data.RandomResizedCrop(24), [3, 24, 24]],
      [new data.RandomHorizontalFlip(), [3, 40, 60]],
      [new data.Lighting(0.1), [3, 40, 60]],
      [new data.ScaleJitter({ minSize: 32, maxSize: 48, cropSize: 28 }), [3, 28, 28]],
      [data.imagenetTrain({ size: 32, lighting: 0.1 }), [3, 32, 32]],
      [data.imagenetEval({ resize: 36, size: 32 }), [3, 32, 32]],
    ];
    for (const [t, shape] of cases) {
      const a = t.apply(img, new data.Rng(5));
      const b = t.apply(img, new data.Rng(5));
      expect([a.channels, a.height, a.width]).toEqual(shape);
      expect(maxAbsDiff(a.data, b.data)).toBe(0);
      // The rebuilt-from-spec copy (what a worker runs) agrees exactly.
      const copy = data.transformFromSpec(t.toSpec!()!);
      expect(maxAbsDiff(copy.apply(img, new data.Rng(5)).data, a.data)).toBe(0);
    }
    const rrc = new data.RandomResizedCrop(24);
    const outs = new Set(Array.from({ length: 8 }, (_, s) => rrc.apply(img, new data.Rng(s)).data[0]));
    expect(outs.size).toBeGreaterThan(4);
  });

  test('RandomHorizontalFlip flips about half the time, exactly mirrored', () => {
    const img = coordImage(1, 2, 5);
    const t = new data.RandomHorizontalFlip();
    let flips = 0;
    for (let s = 0; s < 400; s++) {
      const out = t.apply(img, new data.Rng(s));
      if (out.data[0] === 4) {
        flips++;
        expect(Array.from(out.data)).toEqual([4, 3, 2, 1, 0, 104, 103, 102, 101, 100]);
      } else expect(out).toBe(img);
    }
    expect(flips).toBeGreaterThan(160);
    expect(flips).toBeLessThan(240);
    expect(new data.RandomHorizontalFlip(1).apply(img, new data.Rng(0)).data[0]).toBe(4);
    expect(new data.RandomHorizontalFlip(0).apply(img, new data.Rng(0))).toBe(img);
  });

  test('RandomCrop with padding shows the zero border; positions cover the whole range', () => {
    const img = data.makeImage(1, 4, 4, new Float32Array(16).fill(1));
    const t = new data.RandomCrop(4, { padding: 2 });
    const seen = new Set<string>();
    for (let s = 0; s < 200; s++) {
      const out = t.apply(img, new data.Rng(s));
      const ones = out.data.reduce((a, v) => a + v, 0);
      let top = -1;
      let left = -1;
      // The 4x4 of ones lies at (2 - top, 2 - left) in the padded 8x8 crop window.
      for (let y = 0; y < 4 && top < 0; y++)
        for (let x = 0; x < 4; x++)
          if (out.data[y * 4 + x] === 1) {
            top = y;
            left = x;
            break;
          }
      seen.add(`${top},${left},${ones}`);
    }
    expect(seen.has('-1,-1,0')).toBe(false); // a 4-crop of an 8x8 with padding 2 always overlaps the image
    expect(seen.size).toBeGreaterThan(15);
  });

  test('RandomResizedCrop follows torchvision: windows inside the image within scale and ratio, and its fallback', () => {
    const t = new data.RandomResizedCrop(8);
    for (let s = 0; s < 300; s++) {
      const [top, left, h, w] = t.params(50, 70, new data.Rng(s));
      expect(top >= 0 && left >= 0 && top + h <= 50 && left + w <= 70).toBe(true);
      const frac = (h * w) / 3500;
      expect(frac).toBeGreaterThan(0.06);
      expect(frac).toBeLessThanOrEqual(1);
    }
    // No try can fit a full-area square crop into 10x100: fallback to the widest allowed ratio, centred.
    const fb = new data.RandomResizedCrop(8, { scale: [1, 1] });
    expect(fb.params(10, 100, new data.Rng(3))).toEqual([0, 43, 10, 13]);
    expect(fb.params(100, 10, new data.Rng(3))).toEqual([43, 0, 13, 10]);
    expect(fb.params(30, 30, new data.Rng(3))).toEqual([0, 0, 30, 30]);
  });

  test('Lighting adds eigvec * (alpha * eigval) per channel, alpha ~ N(0, alphastd) from the Rng', () => {
    const img = randomImage(3, 4, 5);
    const out = new data.Lighting(0.1).apply(img, new data.Rng(11));
    const rng = new data.Rng(11);
    const alpha = [rng.normal(0, 0.1), rng.normal(0, 0.1), rng.normal(0, 0.1)];
    const { eigval, eigvec } = data.IMAGENET_PCA;
    for (let c = 0; c < 3; c++) {
      const rgb = eigvec[c][0] * alpha[0] * eigval[0] + eigvec[c][1] * alpha[1] * eigval[1] + eigvec[c][2] * alpha[2] * eigval[2];
      for (let i = 0; i < 20; i++) expect(out.data[c * 20 + i]).toBeCloseTo(img.data[c * 20 + i] + rgb, 6);
    }
    expect(new data.Lighting(0).apply(img, new data.Rng(1))).toBe(img);
    expect(errorOf(() => new data.Lighting().apply(randomImage(1, 2, 2), new data.Rng(1))).code).toBe('E_SHAPE');
  });

  test('ScaleJitter draws S in [min, max] and crops inside the rescaled image', () => {
    const img = coordImage(1, 30, 40);
    const t = new data.ScaleJitter({ minSize: 10, maxSize: 20, cropSize: 10 });
    const sizes = new Set<number>();
    for (let s = 0; s < 100; s++) {
      const rng = new data.Rng(s);
      sizes.add(rng.randint(10, 21));
      expect(t.apply(img, new data.Rng(s)).height).toBe(10);
    }
    expect(Math.min(...sizes)).toBe(10);
    expect(Math.max(...sizes)).toBe(20);
    expect(() => new data.ScaleJitter({ minSize: 200 })).toThrow(ConvzooError);
    // With min = max = crop the whole rescaled image is the crop.
    const fixed = new data.ScaleJitter({ minSize: 15, maxSize: 15, cropSize: [15, 20] }).apply(img, new data.Rng(0));
    expect(maxAbsDiff(fixed.data, data.resize(img, 15, 20).data)).toBe(0);
  });

  test('Rng: reproducible, roughly uniform and normal; mixSeed separates its inputs', () => {
    const a = new data.Rng(42);
    const b = new data.Rng(42);
    const xs = Array.from({ length: 20000 }, () => a.random());
    expect(xs.every((x, i) => x === (i >= 0 ? b.random() : 0))).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    const n = new data.Rng(3);
    const zs = Array.from({ length: 20000 }, () => n.normal());
    const zm = zs.reduce((s, x) => s + x, 0) / zs.length;
    const zv = zs.reduce((s, x) => s + (x - zm) ** 2, 0) / zs.length;
    expect(Math.abs(zm)).toBeLessThan(0.03);
    expect(Math.abs(zv - 1)).toBeLessThan(0.05);
    expect(data.mixSeed(1, 0, 5)).not.toBe(data.mixSeed(1, 5, 0));
    expect(data.mixSeed(1, 2 ** 40)).not.toBe(data.mixSeed(1, 0));
    expect(Array.from(new data.Rng(9).permutation(10)).sort((p, q) => p - q)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('ImageFolder', () => {
  let root: string;
  const colours: Record<string, [number, number, number]> = { ant: [200, 10, 30], bee: [5, 250, 128], cat: [90, 90, 90] };

  beforeAll(async () => {
    root = join(tmp, 'folder');
    // Classes created out of order: the dataset sorts them. bee/ has a nested sub-folder.
    for (const cls of ['cat', 'ant', 'bee']) mkdirSync(join(root, cls, 'sub'), { recursive: true });
    const solid = (rgb: [number, number, number], w = 12, h = 10) =>
      sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
    for (const [cls, rgb] of Object.entries(colours)) {
      for (let i = 0; i < 4; i++)
        await solid(rgb)
          .png()
          .toFile(join(root, cls, `img${i}.png`));
      await solid(rgb)
        .jpeg({ quality: 95 })
        .toFile(join(root, cls, 'photo.JPG'));
      await solid(rgb)
        .webp({ lossless: true })
        .toFile(join(root, cls, 'sub', 'deep.webp'));
    }
    // A gradient PNG to check exact pixel decoding, and one corrupt "PNG".
    const grad = Buffer.from(Array.from({ length: 4 * 3 * 3 }, (_, k) => (k * 7) % 256));
    await sharp(grad, { raw: { width: 4, height: 3, channels: 3 } })
      .png()
      .toFile(join(root, 'ant', 'grad.png'));
    writeFileSync(join(root, 'bee', 'broken.png'), 'this is not an image');
    writeFileSync(join(root, 'cat', 'notes.txt'), 'ignored: not an image extension');
  });

  test('classes are the sorted folder names; files found recursively in sorted order', () => {
    const ds = new data.ImageFolder(root);
    expect(ds.classes).toEqual(['ant', 'bee', 'cat']);
    expect(ds.length).toBe(3 * 6 + 1 + 1);
    expect(Array.from(ds.targets)).toEqual([...Array(7).fill(0), ...Array(7).fill(1), ...Array(6).fill(2)]);
    expect(ds.files.slice(0, 7).map((_, i) => ds.relativePath(i))).toEqual([
      'ant/grad.png',
      'ant/img0.png',
      'ant/img1.png',
      'ant/img2.png',
      'ant/img3.png',
      'ant/photo.JPG',
      'ant/sub/deep.webp',
    ]);
    expect(ds.relativePath(7)).toBe('bee/broken.png');
  });

  test('PNG decodes exactly, JPEG and WebP closely; mode L gives one channel', async () => {
    const ds = new data.ImageFolder(root);
    const g = await ds.get(0);
    expect([g.image.channels, g.image.height, g.image.width]).toEqual([3, 3, 4]);
    // HWC bytes (k * 7) % 256 -> CHW / 255
    for (let c = 0; c < 3; c++) for (let p = 0; p < 12; p++) expect(g.image.data[c * 12 + p]).toBe(Math.fround((((p * 3 + c) * 7) % 256) / 255));
    for (const i of [5, 6]) {
      const s = await ds.get(i);
      expect(s.label).toBe(0);
      for (let c = 0; c < 3; c++) expect(Math.abs(s.image.data[c * 120 + 55] * 255 - colours.ant[c])).toBeLessThan(4);
    }
    const gray = await new data.ImageFolder(root, { mode: 'L' }).get(1);
    expect(gray.image.channels).toBe(1);
  });

  test('a corrupt image is reported and skipped, not fatal (main thread and workers agree)', async () => {
    const warnings: string[] = [];
    const ds = new data.ImageFolder(root, { onWarning: (m) => warnings.push(m) });
    await expect(ds.get(7)).rejects.toMatchObject({ code: 'E_IMAGE' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(join(root, 'bee', 'broken.png'));
    expect(ds.skipped.map((s) => s.index)).toEqual([7]);

    const transform = new data.Compose([new data.Resize([8, 8]), new data.RandomHorizontalFlip(), new data.Normalize(data.IMAGENET_MEAN, data.IMAGENET_STD)]);
    const results: number[][][] = [];
    for (const numWorkers of [0, 2]) {
      const w2: string[] = [];
      const ds2 = new data.ImageFolder(root, { onWarning: (m) => w2.push(m) });
      const loader = new data.DataLoader(ds2, { batchSize: 6, shuffle: true, seed: 3, transform, numWorkers });
      const seen: number[][] = [];
      let total = 0;
      for await (const b of loader) {
        expect(b.images.shape.slice(1)).toEqual([3, 8, 8]);
        expect(b.labels.toArray()).toEqual(b.indices.map((i) => ds2.targets[i]));
        seen.push([...b.indices, ...Array.from(b.images.data() as Float32Array).slice(0, 5)]);
        total += b.indices.length;
        b.dispose();
      }
      await loader.close();
      expect(total).toBe(ds2.length - 1);
      expect(w2).toHaveLength(1);
      expect(w2[0]).toContain('broken.png');
      results.push(seen);
    }
    expect(results[1]).toEqual(results[0]);
  });

  test('verify() finds unreadable files up front and drops them', async () => {
    const ds = new data.ImageFolder(root, { onWarning: () => {} });
    const bad = await ds.verify();
    expect(bad.map((b) => b.path)).toEqual([join(root, 'bee', 'broken.png')]);
    expect(ds.length).toBe(19);
    expect(ds.files.some((f) => f.endsWith('broken.png'))).toBe(false);
    expect(Array.from(ds.targets).filter((t) => t === 1)).toHaveLength(6);
  });

  test('missing or empty folders are E_DATA errors', () => {
    expect(errorOf(() => new data.ImageFolder(join(tmp, 'nope'))).message).toContain('not found or not a folder');
    const empty = join(tmp, 'empty-folder');
    mkdirSync(join(empty, 'only'), { recursive: true });
    const e = errorOf(() => new data.ImageFolder(empty));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toContain('has no images');
  });

  test('seeded train/val splits: stratified keeps class proportions, simple takes valSize', () => {
    const ds = new data.ImageFolder(root);
    const a = ds.split({ valFraction: 0.34, seed: 1 });
    const b = ds.split({ valFraction: 0.34, seed: 1 });
    const c = ds.split({ valFraction: 0.34, seed: 2 });
    expect(Array.from(a.val.indices)).toEqual(Array.from(b.val.indices));
    expect(Array.from(a.val.indices)).not.toEqual(Array.from(c.val.indices));
    const perClass = (s: data.Subset) => [0, 1, 2].map((k) => Array.from(s.targets).filter((t) => t === k).length);
    expect(perClass(a.val)).toEqual([2, 2, 2]); // round(0.34 * 7) = 2, round(0.34 * 6) = 2
    expect(a.train.length + a.val.length).toBe(ds.length);
    expect(new Set([...a.train.indices, ...a.val.indices]).size).toBe(ds.length);
    const simple = data.trainValSplit(ds, { valSize: 5, seed: 4, stratified: false });
    expect(simple.val.length).toBe(5);
    expect(simple.train.classes).toEqual(['ant', 'bee', 'cat']);
  });
});

describe('DataLoader', () => {
  /** 50 images of 1x6x6 whose pixels encode the index; label = index % 10. */
  const synthetic = (n = 50): data.ArrayImageDataset => {
    const px = new Uint8Array(n * 36);
    for (let i = 0; i < n; i++) for (let p = 0; p < 36; p++) px[i * 36 + p] = (i * 5 + p) % 256;
    return new data.ArrayImageDataset(
      px,
      Uint8Array.from({ length: n }, (_, i) => i % 10),
      [1, 6, 6],
      [...'0123456789'],
    );
  };
  const augment = () => new data.Compose([new data.RandomCrop(6, { padding: 2 }), new data.RandomHorizontalFlip(), new data.Normalize([0.5], [0.25])]);

  async function collect(
    loader: data.DataLoader,
    epoch?: number,
  ): Promise<{ indices: number[][]; images: number[][]; labels: number[][]; shapes: number[][] }> {
    const out = { indices: [] as number[][], images: [] as number[][], labels: [] as number[][], shapes: [] as number[][] };
    for await (const b of epoch === undefined ? loader : loader.iterate(epoch)) {
      expect(b.images.dtype).toBe('float32');
      expect(b.labels.dtype).toBe('int64');
      out.indices.push(b.indices);
      out.images.push(Array.from(b.images.data() as Float32Array));
      out.labels.push(b.labels.toArray());
      out.shapes.push(b.images.shape);
      b.dispose();
    }
    return out;
  }

  test('batches, length and dropLast; labels follow the samples', async () => {
    const ds = synthetic();
    const loader = new data.DataLoader(ds, { batchSize: 16 });
    expect(loader.length).toBe(4);
    const r = await collect(loader);
    expect(r.shapes).toEqual([
      [16, 1, 6, 6],
      [16, 1, 6, 6],
      [16, 1, 6, 6],
      [2, 1, 6, 6],
    ]);
    expect(r.indices.flat()).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(r.labels.flat()).toEqual(Array.from({ length: 50 }, (_, i) => i % 10));
    expect(r.images[0].slice(36, 38)).toEqual([5 / 255, 6 / 255].map(Math.fround));
    const dl = new data.DataLoader(ds, { batchSize: 16, dropLast: true });
    expect(dl.length).toBe(3);
    expect((await collect(dl)).shapes.length).toBe(3);
  });

  test('same seed gives the same batches and augmentations with 0 or 2 workers', async () => {
    const ds = synthetic();
    const runs = [];
    for (const numWorkers of [0, 2, 2]) {
      const loader = new data.DataLoader(ds, {
        batchSize: 8,
        shuffle: true,
        seed: 7,
        transform: augment(),
        numWorkers,
        prefetch: numWorkers === 2 ? 3 : undefined,
      });
      runs.push([await collect(loader), await collect(loader)]);
      expect(loader.epoch).toBe(2);
      await loader.close();
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
    // Each sample's augmentation depends on (seed, epoch, index) only: recompute one by hand.
    const [e0] = runs[0];
    const i = e0.indices[1][3];
    const expected = augment().apply(ds.get(i).image, data.sampleRng(7, 0, i));
    expect(e0.images[1].slice(3 * 36, 4 * 36)).toEqual(Array.from(expected.data));
  });

  test('shuffling differs between epochs and is reproducible with setEpoch; augmentations change per epoch', async () => {
    const ds = synthetic();
    const loader = new data.DataLoader(ds, { batchSize: 50, shuffle: true, seed: 1, transform: augment() });
    const e0 = await collect(loader);
    const e1 = await collect(loader);
    expect(e0.indices[0]).not.toEqual(e1.indices[0]);
    expect([...e0.indices[0]].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    loader.setEpoch(1);
    expect(await collect(loader)).toEqual(e1);
    expect(await collect(loader, 0)).toEqual(e0);
    const other = await collect(new data.DataLoader(ds, { batchSize: 50, shuffle: true, seed: 2 }));
    expect(other.indices[0]).not.toEqual(e0.indices[0]);
    // Without shuffle the order is fixed but the random augmentation still varies by epoch.
    const fixed = new data.DataLoader(ds, { batchSize: 50, transform: augment() });
    const f0 = await collect(fixed);
    const f1 = await collect(fixed);
    expect(f0.indices).toEqual(f1.indices);
    expect(f0.images).not.toEqual(f1.images);
  });

  test('subset: the first N or a seeded random N, fixed across epochs', async () => {
    const ds = synthetic();
    const first = new data.DataLoader(ds, { batchSize: 4, subset: 10, shuffle: true });
    expect(first.length).toBe(3);
    expect((await collect(first)).indices.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const rnd = new data.DataLoader(ds, { batchSize: 4, subset: { size: 10, random: true }, seed: 5 });
    const picked = Array.from(rnd.sampleIndices);
    expect(picked).toHaveLength(10);
    expect(picked).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await collect(rnd)).indices.flat()).toEqual(picked);
    expect((await collect(rnd)).indices.flat()).toEqual(picked);
    expect(Array.from(new data.DataLoader(ds, { subset: { size: 10, random: true }, seed: 5 }).sampleIndices)).toEqual(picked);
  });

  test('Subsets and splits go through workers like the main thread', async () => {
    const { train } = data.trainValSplit(synthetic(), { valFraction: 0.2, seed: 3 });
    expect(train.length).toBe(40);
    const runs = [];
    for (const numWorkers of [0, 1]) {
      const loader = new data.DataLoader(train, { batchSize: 16, shuffle: true, seed: 9, transform: augment(), numWorkers });
      runs.push(await collect(loader));
      await loader.close();
    }
    expect(runs[1]).toEqual(runs[0]);
    // Loader indices are positions in the subset; labels are the base samples'.
    expect(runs[0].labels.flat()).toEqual(runs[0].indices.flat().map((i) => train.indices[i] % 10));
  });

  test('the worker thread modules never import the libtorch addon', () => {
    const dir = join(import.meta.dirname, '..', 'src', 'data');
    for (const f of ['worker.ts', 'batch.ts', 'dataset.ts', 'folder.ts', 'image.ts', 'rng.ts', 'transforms.ts']) {
      const imports = [...readFileSync(join(dir, f), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      for (const m of imports) expect(m.startsWith('./') || m === '../errors.js' || m.startsWith('node:') || m === 'sharp', `${f} imports ${m}`).toBe(true);
    }
  });

  test('breaking out early leaves nothing behind, and the loader can be iterated again', async () => {
    const loader = new data.DataLoader(synthetic(), { batchSize: 4, numWorkers: 2, transform: augment() });
    for await (const b of loader) {
      b.dispose();
      break;
    }
    const again = await collect(loader);
    expect(again.indices.flat()).toHaveLength(50);
    await loader.close();
  });

  test('argument and worker errors are ConvzooErrors with codes', async () => {
    const ds = synthetic();
    expect(errorOf(() => new data.DataLoader(ds, { batchSize: 0 })).code).toBe('E_ARG');
    const lam = new data.Lambda((img) => img);
    expect(errorOf(() => new data.DataLoader(ds, { transform: lam, numWorkers: 1 })).message).toContain('numWorkers: 0');
    const custom = { length: 1, classes: ['a'], targets: [0], get: () => ({ image: data.makeImage(1, 1, 1), label: 0 }) };
    expect(errorOf(() => new data.DataLoader(custom, { numWorkers: 1 })).message).toContain('workerSpec');
    // Lambdas and custom datasets work on the main thread.
    expect((await collect(new data.DataLoader(custom, { transform: lam }))).shapes).toEqual([[1, 1, 1, 1]]);
    // A transform error inside a worker surfaces with its code.
    const loader = new data.DataLoader(ds, { batchSize: 4, numWorkers: 1, transform: new data.RandomCrop(10) });
    const e = await asyncErrorOf(() => collect(loader));
    expect(e.code).toBe('E_SHAPE');
    expect(e.message).toContain('RandomCrop');
    await loader.close();
  });

  test('Fashion-MNIST through two workers: a training-ready batch', async () => {
    requireFashionMnist();
    const ds = new data.FashionMNIST({ train: false });
    const loader = new data.DataLoader(ds, { batchSize: 128, shuffle: true, seed: 0, transform: data.fashionMnistTrain(), numWorkers: 2, subset: 512 });
    let n = 0;
    for await (const b of loader) {
      expect(b.images.shape).toEqual([128, 1, 28, 28]);
      const m = cz.tidy(() => b.images.mean().item());
      expect(Math.abs(m)).toBeLessThan(0.5);
      n++;
      b.dispose();
    }
    expect(n).toBe(4);
    await loader.close();
  });
});
