// `convzoo serve`: models behind HTTP with dynamic batching. The Open Inference Protocol's routes
// (KServe v2: health, model metadata, JSON-tensor infer) so that existing clients work, and /v1 routes
// for people and the web page (classify images, model list, layer table, the ONNX file). Batches run
// off the event loop (ModelWorker or onnxruntime's worker); images are decoded with sharp (async)
// and preprocessed with the weights' own transform. Failures map to HTTP statuses in errors.ts.
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import multipart from '@fastify/multipart';
import underPressure from '@fastify/under-pressure';
import { fromBytes, inferenceMode } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { loadImage } from '../vision/preprocess.js';
import type { Prediction } from '../predict.js';
import { Batcher } from './batcher.js';
import { HttpError, httpErrorOf } from './errors.js';
import { ServeMetrics } from './metrics.js';
import { ServedModel } from './models.js';
import { registerWebPage } from './web.js';
import { resolveServeOptions, type ResolvedServeOptions, type ServeOptions } from './options.js';

export type { ServeOptions, ServedModelSpec, PressureLimits } from './options.js';
export { SERVE_DEFAULTS } from './options.js';
export type { ModelInfo, ModelListing, StageInfo } from './describe.js';
export { HttpError } from './errors.js';

const { version: VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** A classify answer per image: its top-k, or why it could not be read. */
export type ClassifyResult = { filename: string | null; predictions: Prediction[] } | { filename: string | null; error: string; code: string };

/** A KServe v2 input tensor (the Open Inference Protocol's JSON form). */
interface InferInput {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

interface Slot {
  name: string;
  served?: ServedModel;
  batcher?: Batcher;
  failure?: Error;
}

export interface ConvzooServer {
  /** The fastify instance (app.inject for tests, app.addresses()). */
  readonly app: FastifyInstance;
  /** The options in force, defaults filled in. */
  readonly options: ResolvedServeOptions;
  /** Resolves when every model is loaded (rejects with the first that failed); /v2/health/ready says so too. */
  readonly loaded: Promise<void>;
  /** The metrics registry behind GET /metrics. */
  readonly metrics: ServeMetrics;
  /** Listens on options.host:options.port and resolves to the URL (http://host:port). */
  listen(): Promise<string>;
  /** Stops accepting, lets the requests in flight finish, then frees the models. */
  close(): Promise<void>;
}

/**
 * Builds the server: routes registered, models loading in the background (see `loaded`). Options
 * are checked first (E_ARG). Use `serve()` to also listen.
 */
export async function createServer(opts: ServeOptions): Promise<ConvzooServer> {
  const o = resolveServeOptions(opts);
  const metrics = new ServeMetrics();
  const app = Fastify({ logger: o.logger ?? true, bodyLimit: o.bodyLimit });
  const slots = new Map<string, Slot>(o.models.map((m) => [m.name, { name: m.name }]));
  let inFlight = 0;
  let idle: (() => void) | null = null;

  const loaded = Promise.all(
    o.models.map(async (spec) => {
      const slot = slots.get(spec.name)!;
      try {
        const served = await ServedModel.load(spec, o.threads);
        if (o.warmup) {
          const t0 = Date.now();
          await served.warmUp(o.maxBatch);
          app.log.info({ model: spec.name, batches: o.maxBatch, ms: Date.now() - t0 }, 'model warmed up');
        }
        const [c, h, w] = served.inputSize;
        slot.served = served;
        slot.batcher = new Batcher({
          maxBatch: o.maxBatch,
          maxDelayMs: o.maxDelayMs,
          maxQueue: o.maxQueue,
          imageSize: c * h * w,
          numClasses: served.numClasses,
          run: (x, n) => served.run(x, n),
          onBatch: (n) => metrics.batchSize.observe({ model: spec.name }, n),
          onQueueDepth: (n) => metrics.queueDepth.set({ model: spec.name }, n),
        });
        metrics.queueDepth.set({ model: spec.name }, 0);
        app.log.info({ model: spec.name, id: served.id, backend: served.backend }, 'model loaded');
      } catch (e) {
        slot.failure = e as Error;
        app.log.error({ model: spec.name, err: e }, 'model failed to load');
        throw e;
      }
    }),
  ).then(() => undefined);
  loaded.catch(() => {}); // reported by serve() or the caller's await; health says not ready

  await app.register(underPressure, {
    maxEventLoopDelay: o.underPressure.maxEventLoopDelay,
    maxHeapUsedBytes: o.underPressure.maxHeapUsedBytes,
    maxRssBytes: o.underPressure.maxRssBytes,
    sampleInterval: o.underPressure.sampleIntervalMs,
    pressureHandler: (_req, reply, type, value) => {
      const e = new HttpError(503, `the server is under pressure (${type}${value === undefined ? '' : ` = ${Math.round(value)}`})`, 'E_OVERLOADED', 5);
      sendError(reply, e);
    },
  });
  await app.register(multipart, { limits: { fileSize: o.bodyLimit, files: o.maxFiles, fields: 16, parts: o.maxFiles + 16 } });
  // Raw image bodies (POST .../classify with Content-Type image/*) arrive as one Buffer.
  const rawBody = { parseAs: 'buffer' as const, bodyLimit: o.bodyLimit };
  app.addContentTypeParser(/^image\/[\w.+-]+$/, rawBody, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/octet-stream', rawBody, (_req, body, done) => done(null, body));

  // Counted on the socket's response: 'close' comes for answers sent and for clients gone mid-request alike.
  app.addHook('onRequest', async (_request, reply) => {
    inFlight++;
    reply.raw.once('close', () => {
      if (--inFlight === 0 && idle) idle();
    });
  });
  // While closing, answers end their connection: a keep-alive client would otherwise hold the close
  // open until its idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((error, request, reply) => {
    const e = httpErrorOf(error);
    if (e.status >= 500 && e.code !== 'E_OVERLOADED' && e.code !== 'E_LOADING') request.log.error({ err: error }, 'request failed');
    return sendError(reply, e);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new HttpError(404, `no route ${request.method} ${request.url.split('?')[0]}`, 'E_NOT_FOUND')));

  /** The loaded model named in the URL: 404 for an unknown name, 503 while it loads, 500 if it failed. */
  const modelOf = (name: string): { served: ServedModel; batcher: Batcher } => {
    const slot = slots.get(name);
    if (!slot) throw new HttpError(404, `no model named '${name}' (serving: ${[...slots.keys()].join(', ')})`, 'E_NOT_FOUND');
    if (slot.failure) throw new HttpError(500, `model '${name}' failed to load: ${slot.failure.message}`, 'E_INTERNAL');
    if (!slot.served || !slot.batcher) throw new HttpError(503, `model '${name}' is still loading`, 'E_LOADING', 1);
    return { served: slot.served, batcher: slot.batcher };
  };

  /** Runs `work` under the request deadline: past it, 504, and a request still queued leaves the queue. */
  const withDeadline = async <T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new HttpError(504, `no answer within the request timeout of ${o.requestTimeoutMs} ms`, 'E_TIMEOUT');
        ac.abort(e);
        reject(e);
      }, o.requestTimeoutMs);
    });
    try {
      return await Promise.race([work(ac.signal), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  // --- KServe v2 (Open Inference Protocol) ---
  app.get('/v2', async () => ({ name: 'convzoo', version: VERSION, extensions: [] }));
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = [...slots.values()].every((s) => s.served);
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  app.get<{ Params: { name: string } }>('/v2/models/:name/ready', async (request, reply) => {
    const slot = slots.get(request.params.name);
    if (!slot) throw new HttpError(404, `no model named '${request.params.name}'`, 'E_NOT_FOUND');
    return reply.code(slot.served ? 200 : 503).send({ name: slot.name, ready: Boolean(slot.served) });
  });
  app.get<{ Params: { name: string } }>('/v2/models/:name', async (request) => {
    const { served } = modelOf(request.params.name);
    return {
      name: served.name,
      versions: ['1'],
      platform: served.backend === 'onnxruntime' ? 'onnxruntime' : 'convzoo-libtorch',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, ...served.inputSize] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, served.numClasses] }],
    };
  });
  app.post<{ Params: { name: string }; Body: unknown }>('/v2/models/:name/infer', async (request) => {
    const { served, batcher } = modelOf(request.params.name);
    const body = request.body as { id?: unknown; inputs?: unknown } | null;
    const { input, n } = inferInput(body, served.inputSize);
    const logits = await withDeadline((signal) => batcher.submit(input, n, signal));
    return {
      model_name: served.name,
      ...(typeof body?.id === 'string' ? { id: body.id } : {}),
      outputs: [{ name: 'logits', shape: [n, served.numClasses], datatype: 'FP32', data: Array.from(logits) }],
    };
  });

  // --- /v1: for people and the web page ---
  app.get('/v1/models', async () => ({ models: [...slots.values()].flatMap((slot) => (slot.served ? [slot.served.listing()] : [])) }));
  app.get<{ Params: { name: string } }>('/v1/models/:name/info', async (request) => modelOf(request.params.name).served.info());
  app.get<{ Params: { name: string } }>('/v1/models/:name/model.onnx', async (request, reply) => {
    const { served } = modelOf(request.params.name);
    const bytes = await served.onnx();
    return reply
      .type('application/octet-stream')
      .header('Content-Disposition', `attachment; filename="${served.name}.onnx"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
  app.post<{ Params: { name: string }; Querystring: { topk?: string } }>('/v1/models/:name/classify', async (request) => {
    const { served, batcher } = modelOf(request.params.name);
    const topk = Math.min(parseTopk(request.query.topk, o.topk), served.numClasses);
    const images: { filename: string | null; data: Buffer }[] = [];
    if (request.isMultipart()) {
      for await (const part of request.files()) images.push({ filename: part.filename ?? null, data: await part.toBuffer() });
    } else if (Buffer.isBuffer(request.body)) images.push({ filename: null, data: request.body });
    else throw new HttpError(415, 'send an image as the body (Content-Type image/*) or images as multipart/form-data', 'E_UNSUPPORTED_MEDIA');
    if (images.length === 0) throw new HttpError(400, 'no image in the request', 'E_ARG');
    return withDeadline(async (signal) => {
      // sharp decodes on its own threads; only the resize and normalisation run here.
      const decoded = await Promise.allSettled(images.map((img) => loadImage(img.data, served.transform, { maxPixels: o.maxPixels })));
      const ok = decoded.flatMap((d, i) => (d.status === 'fulfilled' ? [i] : []));
      if (ok.length === 0) throw (decoded[0] as PromiseRejectedResult).reason;
      const per = served.inputSize[0] * served.inputSize[1] * served.inputSize[2];
      const input = new Float32Array(ok.length * per);
      ok.forEach((i, j) => input.set((decoded[i] as PromiseFulfilledResult<Float32Array>).value, j * per));
      const logits = await batcher.submit(input, ok.length, signal);
      const top = topkOf(logits, ok.length, served.numClasses, topk);
      const results: ClassifyResult[] = images.map(({ filename }, i) => {
        const d = decoded[i];
        if (d.status === 'rejected') {
          const e = httpErrorOf(d.reason);
          return { filename, error: e.message, code: e.code };
        }
        const row = ok.indexOf(i);
        return {
          filename,
          predictions: Array.from({ length: topk }, (_, t) => {
            const index = top.indices[row * topk + t];
            return { label: served.labels[index] ?? `class ${index}`, index, probability: top.values[row * topk + t] };
          }),
        };
      });
      return { results };
    });
  });

  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  await registerWebPage(app);

  app.addHook('onClose', async () => {
    // Requests still in flight (decoding, queued, running) finish before the models go; each has its
    // deadline, so this wait is bounded (a client still uploading is not waited for past it).
    if (inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        idle = resolve;
        timer = setTimeout(resolve, o.requestTimeoutMs + 1000);
      });
      clearTimeout(timer);
    }
    await loaded.catch(() => {});
    for (const slot of slots.values()) await slot.batcher?.drain();
    for (const slot of slots.values()) await slot.served?.close();
  });

  return {
    app,
    options: o,
    loaded,
    metrics,
    async listen() {
      await app.listen({ host: o.host, port: o.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      return `http://${host}:${port}`;
    },
    close: () => app.close(),
  };
}

/**
 * Builds the server, listens, and waits for every model to load; resolves to the server and its URL.
 * A model that fails to load closes the server and rejects with its error.
 */
export async function serve(opts: ServeOptions): Promise<ConvzooServer & { url: string }> {
  const server = await createServer(opts);
  try {
    const url = await server.listen();
    await server.loaded;
    return Object.assign(server, { url });
  } catch (e) {
    await server.close().catch(() => {});
    throw e;
  }
}

function sendError(reply: FastifyReply, e: HttpError): FastifyReply {
  if (e.retryAfter !== undefined) reply.header('Retry-After', String(e.retryAfter));
  return reply.code(e.status).send({ error: e.message, code: e.code });
}

function parseTopk(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const k = Number(raw);
  if (!Number.isInteger(k) || k < 1) throw new HttpError(400, `topk: expected an integer >= 1, got '${raw}'`, 'E_ARG');
  return k;
}

/** Softmax and top-k of [n, classes] logits with the ops cz.predict uses (the same probabilities). */
function topkOf(logits: Float32Array, n: number, classes: number, k: number): { values: Float32Array; indices: number[] } {
  return inferenceMode(() =>
    tidy(() => {
      const t = fromBytes(logits, [n, classes], 'float32').softmax(1).topk(k, { dim: 1 });
      return { values: new Float32Array(t.values.data() as Float32Array), indices: Array.from(t.indices.data() as BigInt64Array, Number) };
    }),
  );
}

/** A KServe v2 infer body's one FP32 input [N, C, H, W] as flat floats; 400 naming the problem otherwise. */
function inferInput(body: { inputs?: unknown } | null, chw: [number, number, number]): { input: Float32Array; n: number } {
  const bad = (msg: string) => new HttpError(400, `infer: ${msg}`, 'E_ARG');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('expected a JSON object { inputs: [...] }');
  if (!Array.isArray(body.inputs) || body.inputs.length !== 1) {
    throw bad(`expected inputs to be an array of one tensor, got ${Array.isArray(body.inputs) ? `${body.inputs.length} tensors` : typeof body.inputs}`);
  }
  const t = body.inputs[0] as InferInput;
  if (t === null || typeof t !== 'object') throw bad('expected inputs[0] to be an object { name, shape, datatype, data }');
  if (t.datatype !== 'FP32') throw bad(`expected datatype FP32, got ${JSON.stringify(t.datatype)}`);
  const shape = t.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw bad(`expected shape to be [N, C, H, W] of positive integers, got ${JSON.stringify(shape)}`);
  }
  if (shape[1] !== chw[0] || shape[2] !== chw[1] || shape[3] !== chw[2]) throw bad(`the model takes shape [N, ${chw.join(', ')}], got [${shape.join(', ')}]`);
  if (!Array.isArray(t.data)) throw bad(`expected data to be an array of numbers, got ${t.data === null ? 'null' : typeof t.data}`);
  const flat = (Array.isArray(t.data[0]) ? t.data.flat(4) : t.data) as unknown[];
  const n = shape[0] as number;
  const expected = n * chw[0] * chw[1] * chw[2];
  if (flat.length !== expected) throw bad(`shape [${shape.join(', ')}] needs ${expected} values, got ${flat.length}`);
  const input = new Float32Array(expected);
  for (let i = 0; i < expected; i++) {
    const v = flat[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`data[${i}] is not a finite number (${JSON.stringify(v)})`);
    input[i] = v;
  }
  return { input, n };
}
