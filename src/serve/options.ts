// The server's options, their defaults, and their checks (E_ARG naming the option).
import type { OptimizeForInferenceOptions } from '../models/optimize.js';
import type { FastifyServerOptions } from 'fastify';
import { check, checkInt, checkNumber } from '../errors.js';
import type { ClassifierModel } from '../models/base.js';

/** One model to serve. Give exactly one of `id` (with optional `weights`), `checkpoint` or `model`. */
export interface ServedModelSpec {
  /** The name in URLs (/v2/models/{name}); default: the model id. */
  name: string;
  /** A registered model id ('resnet50'); with a checkpoint, checked against the checkpoint's model. */
  id?: string;
  /** 'DEFAULT', a tag, a weights file or a URL (default: random weights). */
  weights?: string;
  /** A convzoo training checkpoint: its model, weights, classes and preprocessing. */
  checkpoint?: string;
  /**
   * A model already built (stays the caller's: the server does not dispose it). The libtorch worker
   * rebuilds it from its id and class count and copies its state.
   */
  model?: ClassifierModel;
  /** What runs the batches: libtorch on a ModelWorker thread (default) or onnxruntime on its worker thread. */
  backend?: 'libtorch' | 'onnxruntime';
  /** libtorch only: the inference fast path in the worker (createModel's optimize; true for float32). */
  optimize?: boolean | OptimizeForInferenceOptions;
}

/** Memory and event-loop limits past which @fastify/under-pressure answers 503 (0 turns a check off). */
export interface PressureLimits {
  /** Event-loop delay in ms (default 1000). */
  maxEventLoopDelay?: number;
  /** V8 heap in use, bytes (default off). */
  maxHeapUsedBytes?: number;
  /** Resident set size, bytes (default off). */
  maxRssBytes?: number;
  /** How often they are sampled, ms (default 1000). */
  sampleIntervalMs?: number;
}

export interface ServeOptions {
  models: ServedModelSpec[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Images per forward pass at most (default 16); 1 serves every image alone. */
  maxBatch?: number;
  /** How long a queued input waits for others to join its batch, ms (default 5). */
  maxDelayMs?: number;
  /** Images waiting per model at most before requests get 503 (default 256). */
  maxQueue?: number;
  /** A request's deadline, ms, decoding and queueing included: past it the answer is 504 (default 30000). */
  requestTimeoutMs?: number;
  /** Request bodies larger than this many bytes get 413 (default 20 MB). */
  bodyLimit?: number;
  /** Images with more pixels get 413, checked from the header before decoding (default 40e6). */
  maxPixels?: number;
  /** Classes per image of /classify without ?topk (default 5). */
  topk?: number;
  /** Images per multipart request at most (default 64). */
  maxFiles?: number;
  /** libtorch / onnxruntime threads per model worker (default: one per core). */
  threads?: number;
  /**
   * Before a model reports ready, run one batch of every size from maxBatch down to 1 (default true), as
   * Triton's model warm-up does: the first requests do not pay for first-use setup, and the allocator's
   * cache fills with the blocks dynamic batching needs, so resident memory is settled when serving starts.
   */
  warmup?: boolean;
  /** fastify's (pino's) logger: true, false, or pino options (default true: info level on stdout). */
  logger?: FastifyServerOptions['logger'];
  underPressure?: PressureLimits;
}

export type ResolvedServeOptions = Required<Omit<ServeOptions, 'threads' | 'underPressure' | 'logger'>> &
  Pick<ServeOptions, 'threads' | 'logger'> & { underPressure: Required<PressureLimits> };

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  maxBatch: 16,
  maxDelayMs: 5,
  maxQueue: 256,
  requestTimeoutMs: 30_000,
  bodyLimit: 20 * 1024 * 1024,
  maxPixels: 40e6,
  topk: 5,
  maxFiles: 64,
  warmup: true,
} as const;

/** Checks `opts` (E_ARG naming the option) and fills in the defaults. */
export function resolveServeOptions(opts: ServeOptions): ResolvedServeOptions {
  const fn = 'serve';
  check(opts !== null && typeof opts === 'object', fn, 'expected an options object');
  check(Array.isArray(opts.models) && opts.models.length > 0, fn, 'expected models to be a non-empty array of { name, id | checkpoint | model }');
  const names = new Set<string>();
  for (const [i, m] of opts.models.entries()) {
    check(m !== null && typeof m === 'object', fn, `expected models[${i}] to be an object`);
    check(
      typeof m.name === 'string' && /^[A-Za-z0-9_.-]+$/.test(m.name),
      fn,
      `expected models[${i}].name to be letters, digits, '_', '.' or '-', got ${JSON.stringify(m.name)}`,
    );
    check(!names.has(m.name), fn, `two models are named '${m.name}'`);
    names.add(m.name);
    const sources = [m.checkpoint, m.model].filter((s) => s !== undefined).length;
    check(sources <= 1 && !(sources === 1 && m.weights !== undefined), fn, `models[${i}] ('${m.name}'): give weights, checkpoint or model, not several`);
    check(m.id !== undefined || sources === 1, fn, `models[${i}] ('${m.name}'): give an id, a checkpoint or a model`);
    for (const key of ['id', 'weights', 'checkpoint'] as const) {
      if (m[key] !== undefined) check(typeof m[key] === 'string' && m[key] !== '', fn, `expected models[${i}].${key} to be a non-empty string`);
    }
    if (m.backend !== undefined)
      check(
        m.backend === 'libtorch' || m.backend === 'onnxruntime',
        fn,
        `expected models[${i}].backend to be 'libtorch' or 'onnxruntime', got ${JSON.stringify(m.backend)}`,
      );
  }
  const o = { ...SERVE_DEFAULTS, ...definedOnly(opts) };
  check(typeof o.host === 'string' && o.host !== '', fn, `expected host to be a non-empty string, got ${String(o.host)}`);
  checkInt(o.port, fn, 'port', 0);
  check(o.port <= 65535, fn, `expected port to be at most 65535, got ${o.port}`);
  checkInt(o.maxBatch, fn, 'maxBatch', 1);
  checkNumber(o.maxDelayMs, fn, 'maxDelayMs', 0, 60_000);
  checkInt(o.maxQueue, fn, 'maxQueue', 1);
  checkNumber(o.requestTimeoutMs, fn, 'requestTimeoutMs', 1);
  checkInt(o.bodyLimit, fn, 'bodyLimit', 1);
  checkNumber(o.maxPixels, fn, 'maxPixels', 1);
  checkInt(o.topk, fn, 'topk', 1);
  checkInt(o.maxFiles, fn, 'maxFiles', 1);
  if (o.threads !== undefined) checkInt(o.threads, fn, 'threads', 1);
  check(typeof o.warmup === 'boolean', fn, `expected warmup to be true or false, got ${JSON.stringify(o.warmup)}`);
  const p = opts.underPressure ?? {};
  const underPressure = {
    maxEventLoopDelay: p.maxEventLoopDelay ?? 1000,
    maxHeapUsedBytes: p.maxHeapUsedBytes ?? 0,
    maxRssBytes: p.maxRssBytes ?? 0,
    sampleIntervalMs: p.sampleIntervalMs ?? 1000,
  };
  for (const [k, v] of Object.entries(underPressure)) checkNumber(v, fn, `underPressure.${k}`, 0);
  return { ...o, models: opts.models.map((m) => ({ ...m })), underPressure } as ResolvedServeOptions;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
