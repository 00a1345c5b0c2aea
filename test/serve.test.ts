// convzoo serve (src/serve/): every route's answer checked against the library (classify against
// cz.predict, KServe infer against the model's forward, on both backends), dynamic batching seen in the
// batch-size metric, every error status with its message, and SIGTERM on the real CLI while a request
// is in flight. resnet20 (32 x 32 inputs) with random weights keeps it quick.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import * as cz from '../src/index.js';
import { Batcher } from '../src/serve/batcher.js';

const CLI = path.resolve('dist/cli/main.js');

type Prediction = { index: number; label: string; probability: number };

/**
 * /classify's answer for one image against cz.predict's: the same classes in the same order, probabilities
 * within 1e-5 (the server's worker runs 1 thread and this process 2; oneDNN's sums differ in the last bits).
 */
function expectSameResults(body: { results: { filename: string | null; predictions: Prediction[] }[] }, want: Prediction[]): void {
  expect(body.results.length).toBe(1);
  expect(body.results[0].filename).toBeNull();
  const got = body.results[0].predictions;
  expect(got.map((p) => [p.index, p.label])).toEqual(want.map((p) => [p.index, p.label]));
  got.forEach((p, i) => expect(Math.abs(p.probability - want[i].probability)).toBeLessThan(1e-5));
}

/** A PNG of solid colour (small once compressed). */
const png = (width: number, height: number, r: number, g: number, b: number): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();

/**
 * A PNG whose header claims width x height followed by a few bytes of pixel data: a decompression
 * bomb's front (decoding it would fail on the missing rows, so a 413 shows it was refused first).
 */
function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A multipart/form-data body with these files. */
function multipart(files: { filename: string; type: string; data: Buffer }[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'cz-test-boundary-7d3f';
  const parts = files.map((f, i) =>
    Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image${i}"; filename="${f.filename}"\r\nContent-Type: ${f.type}\r\n\r\n`),
      f.data,
      Buffer.from('\r\n'),
    ]),
  );
  return { payload: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** A KServe v2 infer body of `n` random images [n, 3, 32, 32] and the same values as a tensor. */
function randomInput(n: number, seed: number): { body: object; data: Float32Array } {
  let s = seed;
  const data = Float32Array.from({ length: n * 3 * 32 * 32 }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
  return { body: { id: `req-${seed}`, inputs: [{ name: 'input', shape: [n, 3, 32, 32], datatype: 'FP32', data: Array.from(data) }] }, data };
}

/** The model's own logits for `data` ([n, 3, 32, 32]). */
function forwardOf(model: cz.ClassifierModel, data: Float32Array, n: number): Float32Array {
  return cz.inferenceMode(() => cz.tidy(() => new Float32Array(model.forward(cz.fromBytes(data, [n, 3, 32, 32], 'float32')).data() as Float32Array)));
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** count and sum of the batch-size histogram of `model`. */
async function batches(server: cz.ConvzooServer, model: string): Promise<{ count: number; sum: number }> {
  const { values } = await server.metrics.batchSize.get();
  const of = (name: string) => values.find((v) => v.metricName === name && v.labels.model === model)?.value ?? 0;
  return { count: of('convzoo_batch_size_count'), sum: of('convzoo_batch_size_sum') };
}

let model: cz.ClassifierModel;
let server: cz.ConvzooServer;
let red: Buffer;
let blue: Buffer;

beforeAll(async () => {
  model = await cz.createModel('resnet20');
  model.eval();
  server = await cz.createServer({
    models: [
      { name: 'r20', model },
      { name: 'r20ort', model, backend: 'onnxruntime' },
    ],
    logger: false,
    maxDelayMs: 50,
    threads: 1,
    // Image preprocessing runs on the event loop; on a machine busy with other work its delay can pass
    // the 1 s limit and turn the next requests into 503s. The pressure limits have their own test below.
    underPressure: { maxEventLoopDelay: 0 },
  });
  await server.loaded;
  red = await png(40, 36, 220, 30, 40);
  blue = await png(33, 50, 20, 60, 230);
});

afterAll(async () => {
  await server?.close();
  model?.dispose();
});

describe('Batcher', () => {
  /** A batcher over a fake model whose logits are [image's first value, batch size], resolving when `release` is called. */
  function fake(opts: { maxBatch: number; maxDelayMs: number; maxQueue?: number }) {
    const runs: number[] = [];
    const releases: (() => void)[] = [];
    const batcher = new Batcher({
      ...opts,
      maxQueue: opts.maxQueue ?? 100,
      imageSize: 2,
      numClasses: 2,
      run: (x, n) => {
        runs.push(n);
        return new Promise((resolve) => releases.push(() => resolve(Float32Array.from({ length: n * 2 }, (_, i) => (i % 2 ? n : x[(i >> 1) * 2])))));
      },
    });
    const image = (...firsts: number[]) => Float32Array.from(firsts.flatMap((f) => [f, 0]));
    return { batcher, runs, releases, image };
  }
  const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

  it('one batch in flight; the next forms meanwhile, up to maxBatch whole requests; rows go back to their requests', async () => {
    const { batcher, runs, releases, image } = fake({ maxBatch: 4, maxDelayMs: 1000 });
    const a = batcher.submit(image(1, 2, 3, 4), 4); // full: runs at once
    await tick();
    expect(runs).toEqual([4]);
    const b = batcher.submit(image(5), 1);
    const c = batcher.submit(image(6, 7), 2);
    const d = batcher.submit(image(8, 9), 2); // would make 5: waits for the batch after
    expect(batcher.depth).toBe(5);
    releases[0]();
    expect(Array.from(await a)).toEqual([1, 4, 2, 4, 3, 4, 4, 4]);
    await tick();
    expect(runs).toEqual([4, 3]); // b and c, as soon as the first ended (their queue already passed maxBatch)
    releases[1]();
    expect(Array.from(await b)).toEqual([5, 3]);
    expect(Array.from(await c)).toEqual([6, 3, 7, 3]);
    await tick();
    expect(runs).toEqual([4, 3]); // d alone waits for its delay
    const big = batcher.submit(image(1, 2, 3, 4, 5, 6), 6); // larger than maxBatch: its own batch
    await tick();
    expect(runs).toEqual([4, 3, 2]);
    releases[2]();
    expect(Array.from(await d)).toEqual([8, 2, 9, 2]);
    await tick();
    expect(runs).toEqual([4, 3, 2, 6]);
    releases[3]();
    expect((await big).length).toBe(12);
    await batcher.drain();
  });

  it('maxDelayMs after the first input, a partial batch runs; an aborted request leaves the queue; a full queue refuses', async () => {
    const { batcher, runs, releases, image } = fake({ maxBatch: 8, maxDelayMs: 40, maxQueue: 3 });
    const ac = new AbortController();
    const a = batcher.submit(image(1), 1);
    const gone = batcher.submit(image(2), 1, ac.signal);
    await expect(batcher.submit(image(3, 4), 2)).rejects.toMatchObject({ status: 503, retryAfter: 1 });
    ac.abort(new Error('deadline'));
    await expect(gone).rejects.toThrow('deadline');
    expect(batcher.depth).toBe(1);
    await tick(10);
    expect(runs).toEqual([]);
    await tick(60);
    expect(runs).toEqual([1]);
    releases[0]();
    expect(Array.from(await a)).toEqual([1, 1]);
  });
});

describe('routes', () => {
  it('health, model metadata and readiness (KServe v2)', async () => {
    expect((await server.app.inject('/v2')).json()).toEqual({
      name: 'convzoo',
      version: JSON.parse(readFileSync('package.json', 'utf8')).version,
      extensions: [],
    });
    expect((await server.app.inject('/v2/health/live')).json()).toEqual({ live: true });
    const ready = await server.app.inject('/v2/health/ready');
    expect([ready.statusCode, ready.json()]).toEqual([200, { ready: true }]);
    const r = await server.app.inject('/v2/models/r20/ready');
    expect([r.statusCode, r.json()]).toEqual([200, { name: 'r20', ready: true }]);
    expect((await server.app.inject('/v2/models/r20')).json()).toEqual({
      name: 'r20',
      versions: ['1'],
      platform: 'convzoo-libtorch',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 32, 32] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
    });
    expect((await server.app.inject('/v2/models/r20ort')).json().platform).toBe('onnxruntime');
  });

  it('KServe infer answers the model forward, flat or nested data', async () => {
    const { body, data } = randomInput(3, 1);
    const res = await server.app.inject({ method: 'POST', url: '/v2/models/r20/infer', payload: body });
    expect(res.statusCode).toBe(200);
    const out = res.json();
    expect(out.model_name).toBe('r20');
    expect(out.id).toBe('req-1');
    expect(out.outputs).toHaveLength(1);
    expect(out.outputs[0]).toMatchObject({ name: 'logits', shape: [3, 10], datatype: 'FP32' });
    expect(maxAbsDiff(out.outputs[0].data, forwardOf(model, data, 3))).toBeLessThan(1e-5);

    // Nested arrays [N][C][H][W] are the same tensor.
    const flat = Array.from(data.subarray(0, 3 * 32 * 32));
    const nested = [Array.from({ length: 3 }, (_, c) => Array.from({ length: 32 }, (_, h) => flat.slice((c * 32 + h) * 32, (c * 32 + h + 1) * 32)))];
    const res2 = await server.app.inject({
      method: 'POST',
      url: '/v2/models/r20/infer',
      payload: { inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: nested }] },
    });
    expect(res2.statusCode).toBe(200);
    expect(maxAbsDiff(res2.json().outputs[0].data, out.outputs[0].data.slice(0, 10))).toBeLessThan(1e-5);
  });

  it('classify a raw image body: the top-k of cz.predict', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/v1/models/r20/classify?topk=3', headers: { 'content-type': 'image/png' }, payload: red });
    expect(res.statusCode).toBe(200);
    const [want] = await cz.predict(model, [red], { topk: 3 });
    if (!('predictions' in want)) throw new Error(want.error);
    expectSameResults(res.json(), want.predictions);
  });

  it('classify several multipart images; an undecodable one gets its own error', async () => {
    const { payload, headers } = multipart([
      { filename: 'red.png', type: 'image/png', data: red },
      { filename: 'junk.png', type: 'image/png', data: Buffer.from('not an image at all') },
      { filename: 'blue.png', type: 'image/png', data: blue },
    ]);
    const res = await server.app.inject({ method: 'POST', url: '/v1/models/r20/classify', headers, payload });
    expect(res.statusCode).toBe(200);
    const want = await cz.predict(model, [red, blue], { topk: 5 });
    const { results } = res.json();
    expect(results).toHaveLength(3);
    expect(results[0]).toEqual({ filename: 'red.png', predictions: (want[0] as { predictions: unknown }).predictions });
    expect(results[1]).toMatchObject({ filename: 'junk.png', code: 'E_IMAGE' });
    expect(results[1].error).toMatch(/not a decodable image/);
    expect(results[2]).toEqual({ filename: 'blue.png', predictions: (want[1] as { predictions: unknown }).predictions });
  });

  it('the onnxruntime backend answers as libtorch does', async () => {
    const { body, data } = randomInput(2, 7);
    const res = await server.app.inject({ method: 'POST', url: '/v2/models/r20ort/infer', payload: body });
    expect(res.statusCode).toBe(200);
    expect(maxAbsDiff(res.json().outputs[0].data, forwardOf(model, data, 2))).toBeLessThan(1e-4);
    const cls = await server.app.inject({ method: 'POST', url: '/v1/models/r20ort/classify', headers: { 'content-type': 'image/png' }, payload: blue });
    const [want] = await cz.predict(model, [blue]);
    const got = cls.json().results[0].predictions;
    expect(got.map((p: cz.Prediction) => p.index)).toEqual((want as { predictions: cz.Prediction[] }).predictions.map((p) => p.index));
  });

  it('/v1/models, /info (layers and stages) and model.onnx', async () => {
    const { models } = (await server.app.inject('/v1/models')).json();
    expect(models.map((m: { name: string }) => m.name)).toEqual(['r20', 'r20ort']);
    expect(models[0]).toEqual({
      name: 'r20',
      id: 'resnet20',
      backend: 'libtorch',
      numClasses: 10,
      inputSize: [3, 32, 32],
      transform: cz.evalTransformFor(model),
      labels: Array.from({ length: 10 }, (_, i) => `class ${i}`),
      paper: { title: model.meta!.paper.title, year: model.meta!.paper.year },
    });
    const info = (await server.app.inject('/v1/models/r20/info')).json();
    const s = cz.summary(model, [3, 32, 32]);
    expect(info).toMatchObject({ name: 'r20', id: 'resnet20', params: s.totalParams, macs: s.totalMacs, inputSize: [3, 32, 32] });
    // Shapes without the batch dimension: the layer table of one image.
    expect(info.layers).toEqual(s.rows.map((r) => ({ ...r, outputShape: r.outputShape.slice(1) })));
    expect(info.stages.map((st: { name: string }) => st.name)).toEqual(['conv1', 'bn1', 'relu', 'layer1', 'layer2', 'layer3', 'fc']);
    expect(info.stages.find((st: { name: string }) => st.name === 'layer3').outputShape).toEqual([64, 8, 8]);
    expect(info.stages.reduce((n: number, st: { macs: number }) => n + st.macs, 0)).toBe(s.totalMacs);

    const onnx = await server.app.inject('/v1/models/r20/model.onnx');
    expect(onnx.statusCode).toBe(200);
    expect(onnx.headers['content-type']).toBe('application/octet-stream');
    // The file runs in onnxruntime and answers as the model does.
    const ort = await cz.OnnxInferenceModel.fromFile(new Uint8Array(onnx.rawPayload), { threads: 1 });
    try {
      const { data } = randomInput(2, 3);
      const x = cz.fromBytes(data, [2, 3, 32, 32], 'float32');
      const y = await ort.forward(x);
      expect(maxAbsDiff(y.data() as Float32Array, forwardOf(model, data, 2))).toBeLessThan(1e-4);
      x.dispose();
      y.dispose();
    } finally {
      await ort.dispose();
    }
  });

  it('dynamic batching: 8 concurrent requests within max-delay run as at most 2 batches', async () => {
    const before = await batches(server, 'r20');
    const inputs = Array.from({ length: 8 }, (_, i) => randomInput(1, 100 + i));
    const answers = await Promise.all(inputs.map(({ body }) => server.app.inject({ method: 'POST', url: '/v2/models/r20/infer', payload: body })));
    const after = await batches(server, 'r20');
    expect(after.sum - before.sum).toBe(8);
    expect(after.count - before.count).toBeLessThanOrEqual(2);
    // Each request got its own rows back.
    answers.forEach((res, i) => expect(maxAbsDiff(res.json().outputs[0].data, forwardOf(model, inputs[i].data, 1))).toBeLessThan(1e-5));
  });

  it('/metrics: requests by route and status, latency, batch sizes, queue depth', async () => {
    await server.app.inject('/v2/models/nope');
    const text = (await server.app.inject('/metrics')).body;
    expect(text).toMatch(/convzoo_http_requests_total\{route="\/v2\/models\/:name\/infer",method="POST",status="200"\} \d+/);
    expect(text).toMatch(/convzoo_http_requests_total\{route="\/v2\/models\/:name",method="GET",status="404"\} 1/);
    expect(text).toMatch(/convzoo_http_request_duration_seconds_bucket\{le="[\d.]+",route="\/v1\/models\/:name\/classify"\} \d+/);
    expect(text).toMatch(/convzoo_batch_size_count\{model="r20"\} \d+/);
    expect(text).toMatch(/convzoo_queue_depth\{model="r20"\} 0/);
  });
});

describe('a training checkpoint', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cz-serve-'));
  const ckpt = path.join(dir, 'last.ckpt');
  beforeAll(() => {
    // One epoch on 128 Fashion-MNIST images: a real checkpoint with its classes and grayscale 28 x 28 preprocessing.
    const r = spawnSync(process.execPath, [CLI, 'train', '--model', 'resnet20', '--epochs', '1', '--subset', '128', '--threads', '1', '--out', dir, '--json'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves its classes and preprocessing; classify equals cz.predict on the loaded checkpoint', async () => {
    const fm = await cz.createServer({ models: [{ name: 'fm', checkpoint: ckpt }], logger: false, maxDelayMs: 1, threads: 1 });
    const loaded = await cz.loadModel(ckpt);
    try {
      await fm.loaded;
      expect((await fm.app.inject('/v2/models/fm')).json().inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
      const [entry] = (await fm.app.inject('/v1/models')).json().models;
      expect(entry.labels).toEqual(loaded.classes);
      expect(entry.labels[0]).toBe('T-shirt/top');
      expect(entry.transform).toEqual(cz.evalTransformFor(loaded));
      const res = await fm.app.inject({ method: 'POST', url: '/v1/models/fm/classify?topk=10', headers: { 'content-type': 'image/png' }, payload: blue });
      const [want] = await cz.predict(loaded, [blue], { topk: 10 });
      expectSameResults(res.json(), (want as { predictions: Prediction[] }).predictions);
    } finally {
      await fm.close();
      loaded.dispose();
    }
  });
});

describe('errors', () => {
  const post = (url: string, payload: unknown, type = 'application/json') =>
    server.app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload: payload as string });
  const infer = (input: object) => post('/v2/models/r20/infer', { inputs: [input] });
  const good = { name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3 * 32 * 32).fill(0.5) };

  it('400 naming the problem: undecodable image, malformed tensors, bad topk', async () => {
    const cases: [Promise<{ statusCode: number; json: () => { error: string; code: string } }>, RegExp][] = [
      [post('/v1/models/r20/classify', Buffer.from('GIF89a but not really'), 'image/gif'), /image buffer: not a decodable image/],
      [infer({ ...good, datatype: 'INT64' }), /expected datatype FP32, got "INT64"/],
      [infer({ ...good, shape: [1, 3, 28, 28] }), /the model takes shape \[N, 3, 32, 32\], got \[1, 3, 28, 28\]/],
      [infer({ ...good, shape: [3, 32, 32] }), /expected shape to be \[N, C, H, W\] of positive integers/],
      [infer({ ...good, data: good.data.slice(1) }), /needs 3072 values, got 3071/],
      [infer({ ...good, data: [...good.data.slice(1), 'x'] }), /data\[3071\] is not a finite number \("x"\)/],
      [infer({ ...good, data: [null, ...good.data.slice(1)] }), /data\[0\] is not a finite number \(null\)/],
      [post('/v2/models/r20/infer', { inputs: [] }), /expected inputs to be an array of one tensor, got 0 tensors/],
      [post('/v2/models/r20/infer', '{"inputs": [', 'application/json'), /JSON/i],
      [post('/v1/models/r20/classify?topk=0', red, 'image/png'), /topk: expected an integer >= 1, got '0'/],
    ];
    for (const [pending, message] of cases) {
      const res = await pending;
      expect(res.statusCode, String(message)).toBe(400);
      expect(res.json().error).toMatch(message);
      expect(res.json().code).toMatch(/^E_/);
    }
  });

  it('413 for a header claiming more pixels than maxPixels, before decoding', async () => {
    const res = await post('/v1/models/r20/classify', pngHeaderOnly(20000, 30000), 'image/png');
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ error: 'image buffer: 20000 x 30000 = 600000000 pixels, more than the limit of 40000000', code: 'E_TOO_LARGE' });
  });

  it('404 for an unknown model or route', async () => {
    for (const url of ['/v2/models/vgg99', '/v2/models/vgg99/ready', '/v1/models/vgg99/info', '/v1/models/vgg99/model.onnx']) {
      const res = await server.app.inject(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error).toMatch(/no model named 'vgg99'/);
    }
    const res = await post('/v2/models/vgg99/infer', { inputs: [good] });
    expect([res.statusCode, res.json().code]).toEqual([404, 'E_NOT_FOUND']);
    const route = await server.app.inject('/v3/anything');
    expect([route.statusCode, route.json()]).toEqual([404, { error: 'no route GET /v3/anything', code: 'E_NOT_FOUND' }]);
  });

  it('limits: 413 body, 413 pixels, 503 queue full with Retry-After, 504 timeout', async () => {
    const limited = await cz.createServer({
      models: [{ name: 'r20', model }],
      logger: false,
      bodyLimit: 30_000,
      maxPixels: 100,
      maxQueue: 2,
      maxDelayMs: 400,
      requestTimeoutMs: 150,
      threads: 1,
    });
    try {
      await limited.loaded;
      const big = await limited.app.inject({
        method: 'POST',
        url: '/v1/models/r20/classify',
        headers: { 'content-type': 'image/png' },
        payload: Buffer.alloc(40_000),
      });
      expect(big.statusCode).toBe(413);
      expect(big.json().code).toBe('E_TOO_LARGE');
      expect(big.json().error).toMatch(/body/i);

      const pixels = await limited.app.inject({ method: 'POST', url: '/v1/models/r20/classify', headers: { 'content-type': 'image/png' }, payload: red });
      expect([pixels.statusCode, pixels.json().error]).toEqual([413, 'image buffer: 40 x 36 = 1440 pixels, more than the limit of 100']);

      // Two images fill the queue (they wait 400 ms for more); a third is refused; the first times out at 150 ms.
      const body = (n: number) => JSON.stringify({ inputs: [{ name: 'input', shape: [n, 3, 32, 32], datatype: 'FP32', data: new Array(n * 3072).fill(0) }] });
      const send = (n: number) =>
        limited.app.inject({ method: 'POST', url: '/v2/models/r20/infer', headers: { 'content-type': 'application/json' }, payload: body(n) });
      const first = send(2);
      await new Promise((r) => setTimeout(r, 40));
      const refused = await send(1);
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.json()).toEqual({ error: 'the queue is full (2 images waiting, at most 2)', code: 'E_OVERLOADED' });
      const late = await first;
      expect(late.statusCode).toBe(504);
      expect(late.json()).toEqual({ error: 'no answer within the request timeout of 150 ms', code: 'E_TIMEOUT' });
      // The timed-out request left the queue without running.
      expect(await batches(limited, 'r20')).toEqual({ count: 0, sum: 0 });
    } finally {
      await limited.close();
    }
  });

  it('503 with Retry-After under memory pressure (@fastify/under-pressure)', async () => {
    const pressed = await cz.createServer({
      models: [{ name: 'r20', model }],
      logger: false,
      underPressure: { maxHeapUsedBytes: 1, maxEventLoopDelay: 0, sampleIntervalMs: 20 },
      threads: 1,
    });
    try {
      await pressed.loaded;
      await new Promise((r) => setTimeout(r, 100));
      const res = await pressed.app.inject('/v2/models/r20');
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json().code).toBe('E_OVERLOADED');
      expect(res.json().error).toMatch(/under pressure \(heapUsedBytes = \d+\)/);
    } finally {
      await pressed.close();
    }
  });

  it('warms up with a batch of every size before reporting ready, unless told not to', async () => {
    for (const warmup of [true, false]) {
      const lines: { msg: string; model?: string; batches?: number }[] = [];
      const stream = { write: (line: string) => lines.push(JSON.parse(line)) };
      const s = await cz.createServer({ models: [{ name: 'r20', model }], logger: { level: 'info', stream }, maxBatch: 3, threads: 1, warmup });
      try {
        await s.loaded;
        const warmed = lines.filter((l) => l.msg === 'model warmed up');
        expect(warmed.map((l) => [l.model, l.batches])).toEqual(warmup ? [['r20', 3]] : []);
        expect((await s.app.inject('/v2/health/ready')).statusCode).toBe(200);
        // Warm-up batches are not requests: the batch-size histogram starts empty.
        expect(await batches(s, 'r20')).toEqual({ count: 0, sum: 0 });
      } finally {
        await s.close();
      }
    }
  });

  it('options are checked (E_ARG naming the option)', async () => {
    await expect(cz.createServer({ models: [] })).rejects.toThrow(/expected models to be a non-empty array/);
    await expect(cz.createServer({ models: [{ name: 'a b', id: 'resnet20' }] })).rejects.toThrow(/models\[0\]\.name/);
    await expect(cz.createServer({ models: [{ name: 'a', id: 'resnet20' }], maxBatch: 0 })).rejects.toThrow(/expected maxBatch to be an integer >= 1, got 0/);
    await expect(cz.createServer({ models: [{ name: 'a', id: 'resnet20' }], warmup: 'yes' as never })).rejects.toThrow(
      /expected warmup to be true or false, got "yes"/,
    );
    await expect(cz.decodeImage(red, { maxPixels: 100 })).rejects.toThrow(/1440 pixels, more than the limit of 100/);
  });
});

describe('convzoo serve (the CLI)', () => {
  it('usage errors exit 2 with one line', () => {
    const cases: [string[], RegExp][] = [
      [[], /convzoo serve: give --model ID \(repeatable\) or --checkpoint FILE/],
      [['--model', 'resnet20', '--model', 'vgg11', '--weights', 'DEFAULT'], /--weights and --checkpoint go with one --model only/],
      [['--model', 'a='], /--model: expected ID or NAME=ID, got 'a='/],
      [['--model', 'resnet20', '--port', '70000'], /--port.*from 0 to 65535/],
      [['--model', 'resnet20', '--max-batch', '0'], /--max-batch.*from 1/],
      [['--model', 'no_such_net'], /no_such_net/],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('SIGTERM while a request is in flight: the request completes, the process exits 0', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--model', 'tiny=resnet20', '--port', '0', '--max-delay-ms', '1500', '--threads', '1', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        const m = /^\{"url":"([^"]+)"/.exec(line);
        if (m) resolve(m[1]);
      });
      child.on('exit', () => reject(new Error(`serve exited early: ${stderr}`)));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const { body } = randomInput(1, 5);
    const started = Date.now();
    const pending = fetch(`${url}/v2/models/tiny/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    const out = (await res.json()) as { outputs: { shape: number[]; data: number[] }[] };
    expect(out.outputs[0].shape).toEqual([1, 10]);
    expect(out.outputs[0].data.every(Number.isFinite)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400); // it waited out its batch delay after the signal
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/resnet20 gets random weights/);
  });
});
