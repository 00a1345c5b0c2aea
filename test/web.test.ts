// The web page in a real browser (Debian's chromium, driven by playwright-core): it lists the served
// model, classifies a Fashion-MNIST image through the server's API and in the browser (onnxruntime-web
// on the model's ONNX export) with the same top-5 as cz.predict, shows the architecture, and works as a
// static build (`convzoo web build`) served by a plain file server. A screenshot goes to test-artifacts/.
//
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { modelInfo } from '../src/serve/describe.js';
import { buildWebSite } from '../src/serve/web_build.js';
import { diagramStages } from '../web/stages.js';
import { FILTERS, preprocess } from '../web/preprocess.js';

const CHROMIUM = '/usr/bin/chromium';
const CLI = path.resolve('dist/cli/main.js');
const cli = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-web-'));
const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

let checkpoint = '';
let model: cz.ClassifierModel;
/** A second served model, to pick: resnet20 with random weights for CIFAR-sized RGB input (32 x 32 crop of 37). */
let other: cz.ClassifierModel;
/** A Fashion-MNIST test image at the model's crop (28 x 28), tinted (black stays black) so that the page's luma matters. */
let atCrop = '';
/** Another one enlarged to 50 x 70: the page must resize and crop it as the library does. */
let resized = '';
let app: cz.ConvzooServer & { url: string };
let base = '';
let browser: Browser;

/** Test image `i` of Fashion-MNIST as 28 x 28 grey pixels. */
function fashionImage(i: number): Buffer {
  const idx = gunzipSync(readFileSync(path.join(cz.data.FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz')));
  return idx.subarray(16 + i * 784, 16 + (i + 1) * 784);
}

/** `convzoo serve`'s server with both models (the page is served at /). */
async function apiServer(): Promise<cz.ConvzooServer & { url: string }> {
  return cz.serve({
    port: 0,
    logger: false,
    models: [
      { name: 'resnet20', model },
      { name: 'cifar', model: other },
    ],
  });
}

/** A plain static file server for `root` (what any static host does). */
function staticServer(root: string): Promise<{ url: string; close: () => Promise<void> }> {
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.css': 'text/css',
    '.json': 'application/json',
    '.wasm': 'application/wasm',
  };
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(root, path.normalize(rel.endsWith('/') ? `${rel}index.html` : rel));
    if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

interface Shown {
  label: string;
  probability: number;
}

/** Waits for the page's answer in `mode` and reads its top-5 rows. */
async function shownPredictions(page: Page, mode: 'server' | 'browser'): Promise<Shown[]> {
  await page.waitForSelector(`#results[data-state="done"][data-mode="${mode}"]`, { timeout: 60_000 });
  return page.$$eval('#results li', (items) => items.map((li) => ({ label: li.dataset.label!, probability: Number(li.dataset.probability) })));
}

/** cz.predict's top-5 of `file`, after checking its probabilities are far enough apart for the order to mean something. */
async function libraryTop5(file: string, m = model): Promise<Shown[]> {
  const [r] = await cz.predict(m, [file], { topk: 5 });
  if ('error' in r) throw new Error(r.error);
  for (let i = 1; i < 5; i++) expect(r.predictions[i - 1].probability - r.predictions[i].probability).toBeGreaterThan(1e-4);
  return r.predictions.map((p) => ({ label: p.label, probability: p.probability }));
}

function expectSameTop5(shown: Shown[], expected: Shown[]): void {
  expect(shown.map((p) => p.label)).toEqual(expected.map((p) => p.label));
  shown.forEach((p, i) => expect(Math.abs(p.probability - expected[i].probability)).toBeLessThan(1e-3));
}

/** The page's console errors and failed requests, so that a failing wait says why. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  return problems;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium (apt-get install chromium)`);
  // A resnet20 that has seen Fashion-MNIST (one short epoch): real labels and a real preference.
  await cz.train({ model: 'resnet20', data: 'fashion-mnist', subset: 512, batchSize: 64, epochs: 1, threads: 2, out: path.join(dir, 'run') });
  checkpoint = path.join(dir, 'run', 'best.ckpt');
  model = await cz.loadModel(checkpoint);
  cz.manualSeed(11);
  other = cz.buildModel('resnet20');
  const grey = fashionImage(0);
  const rgb = Buffer.alloc(28 * 28 * 3);
  for (let p = 0; p < 784; p++) [rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]] = [grey[p], (grey[p] * 3) >> 2, grey[p] >> 1];
  atCrop = path.join(dir, 'boot-28.png');
  await sharp(rgb, { raw: { width: 28, height: 28, channels: 3 } })
    .png()
    .toFile(atCrop);
  resized = path.join(dir, 'garment-50x70.png');
  await sharp(fashionImage(1), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(50, 70, { kernel: 'cubic', fit: 'fill' })
    .toColourspace('srgb')
    .png()
    .toFile(resized);
  app = await apiServer();
  base = `${app.url}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  model?.dispose();
  other?.dispose();
});

describe("the page's own logic", () => {
  it("equals the library's bit for bit: every filter, shrinking, enlarging, padding, RGB and luma", () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    const img = { data: Uint8Array.from({ length: 53 * 37 * 3 }, rand), width: 53, height: 37, channels: 3 as const };
    expect([...FILTERS].sort()).toEqual(['bicubic', 'bilinear', 'box', 'hamming', 'lanczos', 'nearest']);
    for (const interpolation of FILTERS)
      for (const [resizeSize, cropSize] of [
        [24, 20],
        [37, 37],
        [64, 56],
        [16, 24],
      ])
        for (const channels of [3, 1]) {
          const t = {
            resizeSize,
            cropSize,
            interpolation,
            channels,
            mean: [0.485, 0.456, 0.406].slice(0, channels),
            std: [0.229, 0.224, 0.225].slice(0, channels),
          };
          const mine = preprocess(img, t);
          const library = cz.preprocessPixels(img, t);
          expect(mine.length).toBe(library.length);
          const differing = mine.findIndex((v, i) => v !== library[i]);
          expect(differing, `${interpolation} ${resizeSize}/${cropSize} ${channels}ch: element ${differing}`).toBe(-1);
        }
  });
});

describe('the architecture view', () => {
  it("draws a torchvision-style model's parts (its top level is only features and classifier)", () => {
    const m = cz.buildModel('mobilenet_v3_small');
    try {
      const info = modelInfo('mobilenet_v3_small', m);
      expect(info.stages.map((s) => s.name)).toEqual(['features', 'classifier']);
      expect(info.stages.map((s) => s.outputShape)).toEqual([[576, 7, 7], [1000]]);
      const drawn = diagramStages(info);
      expect(drawn.map((s) => s.name)).toEqual([...Array.from({ length: 13 }, (_, i) => `features.${i}`), ...[0, 1, 2, 3].map((i) => `classifier.${i}`)]);
      expect(drawn.at(-1)?.outputShape).toEqual([1000]);
      // Nothing lost: the parts add up to the stages.
      expect(drawn.reduce((a, s) => a + s.params, 0)).toBe(info.params);
      expect(drawn.reduce((a, s) => a + s.macs, 0)).toBe(info.macs);
    } finally {
      m.dispose();
    }
  });
});

describe('the web page served with the API', () => {
  it('classifies on the server and in the browser with the library top-5, and shows the architecture', async () => {
    const expected = await libraryTop5(atCrop);
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const problems = watch(page);
    try {
      await page.goto(base);
      await page.waitForSelector('body[data-ready="server"]', { timeout: 30_000 });
      expect(await page.$$eval('#model option', (o) => o.map((x) => x.getAttribute('value')))).toEqual(['resnet20', 'cifar']);

      await page.setInputFiles('#file', atCrop);
      expectSameTop5(await shownPredictions(page, 'server'), expected);
      expect(expected.every((p) => FASHION.includes(p.label))).toBe(true);

      await page.check('input[name="mode"][value="browser"]');
      expectSameTop5(await shownPredictions(page, 'browser'), expected);

      // Another model picked: the image is classified again, in the browser (enlarged to 37, cropped to 32) and on the server.
      const expectedOther = await libraryTop5(atCrop, other);
      await page.selectOption('#model', 'cifar');
      await page.waitForSelector('#results[data-model="cifar"]', { timeout: 60_000 });
      expectSameTop5(await shownPredictions(page, 'browser'), expectedOther);
      expect(expectedOther[0].label).toMatch(/^class \d$/);
      await page.check('input[name="mode"][value="server"]');
      expectSameTop5(await shownPredictions(page, 'server'), expectedOther);
      await page.selectOption('#model', 'resnet20');
      await page.check('input[name="mode"][value="browser"]');
      await page.waitForSelector('#results[data-model="resnet20"]', { timeout: 60_000 });
      expectSameTop5(await shownPredictions(page, 'browser'), expected);

      // The architecture view: convzoo info's rows and one diagram box per stage (plus the input).
      const info = modelInfo('resnet20', model);
      await page.waitForFunction(`document.querySelectorAll('#layers-body tr').length === ${info.layers.length}`, undefined, { timeout: 30_000 });
      const firstRow = await page.$$eval('#layers-body tr:first-child td', (tds) => tds.map((td) => td.textContent));
      expect(firstRow.slice(0, 3)).toEqual([info.layers[0].name, info.layers[0].type, info.layers[0].outputShape.join(' × ')]);
      const stages = await page.$$eval('#diagram g.stage', (gs) => gs.map((g) => g.getAttribute('data-stage')));
      expect(stages).toEqual(['input', ...diagramStages(info).map((s) => s.name)]);
      expect(stages).toEqual(expect.arrayContaining(['conv1', 'layer1', 'layer2', 'layer3', 'fc']));

      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/web.png', fullPage: true });
      expect(statSync('test-artifacts/web.png').size).toBeGreaterThan(10_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${problems.join('\n')}`);
    } finally {
      await page.close();
    }
  }, 180_000);

  it('serves the assets with their types and leaves unknown paths to the API', async () => {
    // Every body is read: an unread one keeps its connection busy, and the server's close waits for it.
    const index = await fetch(base);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    expect(await index.text()).toMatch(/<title>convzoo/);
    const wasm = await fetch(`${base}ort-wasm-simd-threaded.wasm`);
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect((await wasm.arrayBuffer()).byteLength).toBe(statSync('dist/web/ort-wasm-simd-threaded.wasm').size);
    for (const missing of ['no-such-file.js', 'v1/models/nope/info']) {
      const r = await fetch(base + missing);
      expect(r.status, missing).toBe(404);
      await r.text();
    }
  });
});

describe('convzoo web build', () => {
  it('writes a static site that classifies in the browser (a 50 x 70 image, resized by the page as by the library)', async () => {
    const out = path.join(dir, 'site');
    const r = cli(['web', 'build', out, '--checkpoint', checkpoint, '--model', 'boots=resnet20', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const written = JSON.parse(r.stdout) as { files: string[]; models: { name: string; id: string }[] };
    expect(written.models).toEqual([{ name: 'boots', id: 'resnet20' }]);
    for (const f of ['index.html', 'app.js', 'style.css', 'ort-wasm-simd-threaded.wasm', 'config.json', 'models/boots/model.onnx', 'models/boots/info.json'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.models[0]).toMatchObject({ name: 'boots', id: 'resnet20', numClasses: 10, inputSize: [1, 28, 28], labels: FASHION });
    expect(JSON.parse(readFileSync(path.join(out, 'models/boots/info.json'), 'utf8')).layers.length).toBe(modelInfo('boots', model).layers.length);

    const expected = await libraryTop5(resized);
    const site = await staticServer(out);
    const page = await browser.newPage();
    const problems = watch(page);
    try {
      await page.goto(site.url);
      await page.waitForSelector('body[data-ready="static"]', { timeout: 30_000 });
      expect(await page.isDisabled('input[name="mode"][value="server"]')).toBe(true);
      // Dropped, as a person would drag it onto the page.
      // (The page's code runs in the browser: a string, since this file is type-checked for Node.)
      const png = readFileSync(resized).toString('base64');
      await page.evaluate(`{
        const dt = new DataTransfer();
        const bytes = Uint8Array.from(atob('${png}'), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], 'garment.png', { type: 'image/png' }));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      }`);
      expectSameTop5(await shownPredictions(page, 'browser'), expected);
      // A file that is not an image is refused with a message; the last answer stays.
      await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') });
      await page.waitForSelector('#status.error', { timeout: 10_000 });
      expect(await page.textContent('#status')).toMatch(/notes\.txt is not an image/);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${problems.join('\n')}`);
    } finally {
      await page.close();
      await site.close();
    }
  }, 180_000);

  it('refuses a file as the folder, a bad model name, and a call without a model', () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const asFile = cli(['web', 'build', file, '--model', 'resnet20']);
    expect(asFile.status).toBe(2);
    expect(asFile.stderr).toMatch(/exists and is not a folder/);
    expect(readFileSync(file, 'utf8')).toBe('x');
    const badName = cli(['web', 'build', path.join(dir, 'x'), '--model', '../up=resnet20']);
    expect(badName.status).toBe(2);
    expect(badName.stderr).toMatch(/model name '\.\.\/up' must be letters, digits/);
    expect(existsSync(path.join(dir, 'x'))).toBe(false);
    const none = cli(['web', 'build', path.join(dir, 'y')]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/give --model ID/);
  });

  it('never writes through a link that leaves the folder', () => {
    const out = path.join(dir, 'linked');
    const outside = path.join(dir, 'outside');
    mkdirSync(out);
    mkdirSync(outside);
    spawnSync('ln', ['-s', outside, path.join(out, 'models')]);
    expect(() => buildWebSite(out, [{ name: 'resnet20', model }])).toThrow(/is not a folder \(a symbolic link would lead outside/);
    expect(existsSync(path.join(outside, 'resnet20'))).toBe(false);
  });
});
