// Evaluation preprocessing against torchvision's (tools/preprocess_reference.py with /usr/bin/python3):
// Image.open(f).convert('RGB'), Resize, CenterCrop, ToTensor, Normalize on images of many kinds that
// this test writes with sharp; then top-1 and logits of the same seeded resnet18 on both inputs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { requirePython } from './reference.js';
import { loadImage, preprocessPixels, checkTransform, type EvalTransform } from '../src/vision/preprocess.js';
import { resizedSize } from '../src/vision/pil.js';
import { decodeImage } from '../src/vision/decode.js';
import { pilCoefficients } from '../src/vision/resample.js';

const PY = '/usr/bin/python3';
const SCRIPT = path.resolve('tools/preprocess_reference.py');
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const T: EvalTransform = { resizeSize: 256, cropSize: 224, mean: MEAN, std: STD, interpolation: 'bilinear', channels: 3 };

/** A deterministic picture: smooth waves, a finer diagonal texture and a little noise. */
function pattern(w: number, h: number, c: number, seed = 1): Buffer {
  const b = Buffer.alloc(w * h * c);
  let s = seed;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++) {
        const v = 128 + 90 * Math.sin((x * (k + 1)) / 37 + y / 53 + k) + 30 * Math.cos((x - y) / 11) + 10 * (rnd() - 0.5);
        b[(y * w + x) * c + k] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return b;
}
const raw = (width: number, height: number, channels: 1 | 2 | 3 | 4) => ({ raw: { width, height, channels } });

interface Case {
  file: string;
  /** What the reference does differently from the defaults (see tools/preprocess_reference.py). */
  ref?: { exifTranspose?: boolean; resize?: number; crop?: number; interpolation?: string; mode?: 'L'; mean?: number[]; std?: number[] };
  /** Our side: transform changes and load options. */
  t?: Partial<EvalTransform>;
  autoOrient?: boolean;
  /** Part of the top-1 / logits comparison (default: plain 3-channel 224 inputs). */
  model?: boolean;
  /** Lossless formats must match exactly. */
  exact?: boolean;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-preprocess-'));
const cases: Case[] = [];

async function writeImages(): Promise<void> {
  const add = async (c: Case, img: ReturnType<typeof sharp>) => {
    await img.toFile(path.join(dir, c.file));
    cases.push(c);
  };
  const rgb = (w: number, h: number, seed = 1) => sharp(pattern(w, h, 3, seed), raw(w, h, 3));
  await add({ file: 'photo.jpg' }, rgb(640, 480).jpeg({ quality: 90 }));
  await add({ file: 'smooth.jpg' }, rgb(640, 480, 2).blur(4).jpeg({ quality: 95 }));
  await add({ file: 'q75-444.jpg' }, rgb(500, 375, 7).jpeg({ quality: 75, chromaSubsampling: '4:4:4' }));
  await add({ file: 'progressive.jpg' }, rgb(333, 500, 8).jpeg({ progressive: true }));
  // Alpha: a transparent band whose colour is not black, and varied alpha elsewhere.
  const rgba = pattern(320, 240, 4, 3);
  for (let i = 3; i < rgba.length; i += 4) if ((i >> 2) % 320 < 80) rgba[i] = 0;
  await add({ file: 'rgba.png', exact: true }, sharp(rgba, raw(320, 240, 4)).png());
  await add(
    { file: 'grey.png', exact: true },
    sharp(pattern(300, 200, 1), raw(300, 200, 1))
      .toColourspace('b-w')
      .png(),
  );
  await add(
    { file: 'grey.jpg' },
    sharp(pattern(300, 200, 1), raw(300, 200, 1))
      .toColourspace('b-w')
      .jpeg(),
  );
  await add(
    { file: 'grey-alpha.png', exact: true },
    sharp(pattern(300, 200, 2), raw(300, 200, 2))
      .toColourspace('b-w')
      .png(),
  );
  await add({ file: 'palette.png', exact: true }, rgb(300, 200).png({ palette: true }));
  // CMYK with sharp's embedded CMYK profile (PIL ignores it and converts naively).
  await add({ file: 'cmyk.jpg' }, rgb(400, 300).toColourspace('cmyk').jpeg());
  // 16 bit: RGB keeps the high byte in PIL; greyscale becomes mode I and saturates at 255.
  const w16 = 257,
    h16 = 311,
    p8 = pattern(w16, h16, 3);
  const b16 = new Uint16Array(w16 * h16 * 3);
  for (let i = 0; i < b16.length; i++) b16[i] = p8[i] * 257 + (i % 200);
  await add(
    { file: 'rgb16.png', exact: true },
    sharp(Buffer.from(b16.buffer), { raw: { width: w16, height: h16, channels: 3, depth: 'ushort' } as never })
      .toColourspace('rgb16')
      .png(),
  );
  const g16 = new Uint16Array(w16 * h16);
  for (let i = 0; i < g16.length; i++) g16[i] = p8[i * 3] * 2;
  await add(
    { file: 'grey16.png', exact: true },
    sharp(Buffer.from(g16.buffer), { raw: { width: w16, height: h16, channels: 1, depth: 'ushort' } as never })
      .toColourspace('grey16')
      .png(),
  );
  // EXIF orientation 6: we rotate by default (the reference with exif_transpose), and not with autoOrient false.
  await add({ file: 'exif6.jpg', ref: { exifTranspose: true } }, rgb(400, 300).jpeg().withMetadata({ orientation: 6 }));
  cases.push({ file: 'exif6.jpg', autoOrient: false, model: false });
  // A Display P3 profile: ignored, as PIL ignores it.
  await add({ file: 'p3.jpg' }, rgb(300, 200).withIccProfile('p3').jpeg());
  await add({ file: 'lossless.webp', exact: true }, rgb(300, 200, 4).webp({ lossless: true }));
  await add({ file: 'lossy.webp' }, rgb(300, 200, 5).webp({ quality: 80 }));
  // Odd sizes: upscaling, tall, wide, one side already at the resize size, centre crop at a half pixel.
  await add({ file: 'tiny.png', exact: true }, rgb(37, 23).png());
  await add({ file: 'tall.jpg' }, rgb(199, 601).jpeg());
  await add({ file: 'wide.png', exact: true }, rgb(1001, 257).png());
  await add({ file: 'side256.png', exact: true }, rgb(256, 300).png());
  await add({ file: 'odd.png', exact: true }, rgb(517, 383).png());
  // Other transforms: bicubic, nearest, a crop larger than the resize (zero padding), greyscale models.
  cases.push({ file: 'photo.jpg', ref: { interpolation: 'bicubic' }, t: { interpolation: 'bicubic' }, model: false });
  cases.push({ file: 'wide.png', ref: { interpolation: 'nearest' }, t: { interpolation: 'nearest' }, model: false, exact: true });
  cases.push({ file: 'odd.png', ref: { interpolation: 'lanczos', resize: 232 }, t: { interpolation: 'lanczos', resizeSize: 232 }, model: false, exact: true });
  cases.push({ file: 'tall.jpg', ref: { resize: 200 }, t: { resizeSize: 200 }, model: false });
  cases.push({ file: 'photo.jpg', ref: { mode: 'L', mean: [0.5], std: [0.25] }, t: { channels: 1, mean: [0.5], std: [0.25] }, model: false });
  cases.push({ file: 'grey.png', ref: { mode: 'L', mean: [0.5], std: [0.25] }, t: { channels: 1, mean: [0.5], std: [0.25] }, model: false, exact: true });
}

const out = (i: number) => `case${i}.f32`;
const readF32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};

beforeAll(async () => {
  await writeImages();
  requirePython('torch', 'torchvision', 'PIL');
  const manifest = {
    resize: T.resizeSize,
    crop: T.cropSize,
    mean: MEAN,
    std: STD,
    interpolation: 'bilinear',
    images: cases.map((c, i) => ({ file: c.file, out: out(i), model: c.model !== false, ...c.ref })),
    model: { id: 'resnet18', seed: 0, state: 'state.pt', logits: 'logits.f32' },
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  execFileSync(PY, [SCRIPT, path.join(dir, 'manifest.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Mean and max absolute difference in grey levels (0..255 before normalisation). */
function greyLevels(a: Float32Array, b: Float32Array, std: number[]): { mean: number; max: number } {
  expect(a.length).toBe(b.length);
  const plane = a.length / std.length;
  let sum = 0,
    max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) * std[Math.floor(i / plane)] * 255;
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

describe('preprocessing against torchvision', () => {
  const ours: Float32Array[] = [];

  it('matches the reference input on every kind of image (mean <= 0.5 grey levels; lossless formats exactly)', async () => {
    const report: string[] = [];
    for (const [i, c] of cases.entries()) {
      const t = { ...T, ...c.t };
      const x = await loadImage(path.join(dir, c.file), t, { autoOrient: c.autoOrient });
      ours[i] = x;
      const d = greyLevels(x, readF32(path.join(dir, out(i))), t.std);
      report.push(
        `${c.file}${c.t ? ' ' + JSON.stringify(c.t) : ''}${c.autoOrient === false ? ' autoOrient false' : ''}: mean ${d.mean.toFixed(4)}, max ${d.max.toFixed(2)}`,
      );
      expect(d.mean, report.at(-1)).toBeLessThanOrEqual(0.5);
      if (c.exact) expect(d.max, report.at(-1)).toBeLessThan(1e-3);
    }
    console.log(report.join('\n'));
  });

  it('gives the same top-1 (and logits within 1e-4 relative) with the same seeded torchvision resnet18', async () => {
    const model = await cz.createModel('resnet18', { weights: path.join(dir, 'state.pt') });
    const idx = cases.map((c, i) => (c.model !== false ? i : -1)).filter((i) => i >= 0);
    const ref = readF32(path.join(dir, 'logits.f32'));
    const per = 3 * 224 * 224;
    const buf = new Float32Array(idx.length * per);
    idx.forEach((i, j) => buf.set(ours[i] ?? new Float32Array(per), j * per));
    const logits = cz.inferenceMode(() =>
      cz.tidy(() =>
        model
          .eval()
          .forward(cz.fromBytes(buf, [idx.length, 3, 224, 224], 'float32'))
          .data(),
      ),
    ) as Float32Array;
    const argmax = (a: Float32Array, r: number) => {
      let b = 0;
      for (let k = 1; k < 1000; k++) if (a[r * 1000 + k] > a[r * 1000 + b]) b = k;
      return b;
    };
    // A randomly initialised network answers nearly the same class for every image, so top-1 is also
    // compared on the input-dependent part: each image's logits minus the mean over the images.
    // (The reference's mean for both, so that one image's difference cannot move the others'.)
    const mean = new Float64Array(1000);
    for (let j = 0; j < idx.length; j++) for (let k = 0; k < 1000; k++) mean[k] += ref[j * 1000 + k] / idx.length;
    const centred = (a: Float32Array) => a.map((v, i) => v - mean[i % 1000]);
    const refTop = idx.map((_, j) => argmax(ref, j));
    const ourTop = idx.map((_, j) => argmax(logits, j));
    const refTopC = idx.map((_, j) => argmax(centred(ref), j));
    const ourTopC = idx.map((_, j) => argmax(centred(logits), j));
    console.log(`centred top-1 (reference / ours): ${refTopC.join(',')} / ${ourTopC.join(',')}; distinct ${new Set(refTopC).size}`);
    expect(ourTopC).toEqual(refTopC);
    let num = 0,
      den = 0;
    for (let k = 0; k < ref.length; k++) {
      num += (logits[k] - ref[k]) ** 2;
      den += ref[k] ** 2;
    }
    console.log(
      `top-1 (reference / ours): ${refTop.join(',')} / ${ourTop.join(',')}; distinct reference classes ${new Set(refTop).size}; relative logits difference ${Math.sqrt(num / den).toExponential(2)}`,
    );
    expect(ourTop).toEqual(refTop);
    expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
  });
});

describe('preprocessing pieces', () => {
  it('resizes the shorter side as torchvision does (the longer one truncated)', () => {
    expect(resizedSize(480, 640, 256)).toEqual([256, 341]);
    expect(resizedSize(601, 199, 256)).toEqual([773, 256]);
    expect(resizedSize(300, 256, 256)).toEqual([300, 256]);
  });

  it("computes PIL's bilinear weights: a 2:1 shrink averages 4 pixels 1/8, 3/8, 3/8, 1/8", () => {
    const c = pilCoefficients(8, 4, 'bilinear');
    expect(c.start[1]).toBe(1);
    expect(Array.from(c.k.subarray(c.ksize, c.ksize + c.count[1]))).toEqual([0.125, 0.375, 0.375, 0.125]);
  });

  it('drops alpha without premultiplying, as convert("RGB") does', async () => {
    const px = Buffer.from([200, 100, 50, 0, 10, 20, 30, 128]);
    const d = await decodeImage(
      await sharp(px, raw(2, 1, 4))
        .png()
        .toBuffer(),
    );
    expect(d.channels).toBe(3);
    expect(Array.from(d.data)).toEqual([200, 100, 50, 10, 20, 30]);
  });

  it('keeps a greyscale image as one channel and replicates it for a 3-channel transform', async () => {
    const d = await decodeImage(
      await sharp(Buffer.from([0, 255, 128, 64]), raw(2, 2, 1))
        .toColourspace('b-w')
        .png()
        .toBuffer(),
    );
    expect(d.channels).toBe(1);
    const x = preprocessPixels(d, { ...T, resizeSize: 2, cropSize: 2, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(Array.from(x.subarray(0, 4))).toEqual(Array.from(x.subarray(8, 12)));
    expect(x[1]).toBeCloseTo(1, 6);
  });

  it('rejects a bad transform with E_ARG naming the field', async () => {
    expect(() => checkTransform({ ...T, cropSize: 0 })).toThrow(/transform\.cropSize/);
    expect(() => checkTransform({ ...T, interpolation: 'cubic' })).toThrow(/interpolation 'cubic'/);
    expect(() => checkTransform({ ...T, mean: [0.5, 0.5] })).toThrow(/transform\.mean/);
    await expect(loadImage(path.join(dir, 'tiny.png'), { ...T, std: [0, 1, 1] })).rejects.toMatchObject({ code: 'E_ARG' });
  });
});
