// Image classifiers run by onnxruntime instead of libtorch: an ONNX file (convzoo's export or any
// single-input NCHW classifier) behind the same forward/predict surface as ClassifierModel, inference
// only. onnxruntime-node's run() blocks the thread it runs on, so each model owns a worker thread that
// holds the session; tensor data crosses in transfer lists (moved, not copied).
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvzooError, check, checkInt } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { fromBytes, zeros } from '../tensor/creation.js';
import type { ClassifierModel } from '../models/base.js';
import { getModelEntry, type ModelMeta } from '../models/registry.js';
import { checkTransform, evalTransformFor, type EvalTransform } from '../vision/preprocess.js';
import { DEFAULT_CROP_PCT, defaultDataConfig, weightsDataConfig } from '../vision/data_config.js';
import { exportOnnxBytes } from './export.js';
import type { RuntimeReply, RuntimeRequest, RuntimeValueInfo, RuntimeWorkerInit } from './runtime_protocol.js';

/** The metadata_props keys convzoo's exporter (export.ts) writes that this loader reads. */
export const ONNX_METADATA_KEYS = {
  /** The convzoo model id ('resnet50'). */
  id: 'convzoo.id',
  /** The weights tag or file the model was exported with. */
  weights: 'convzoo.weights',
  /** convzoo's version. */
  version: 'convzoo.version',
  /** Class names, a JSON array of strings (index i names logit i). */
  labels: 'convzoo.labels',
  /** Logits per image (JSON integer), for a graph whose output leaves it symbolic. */
  numClasses: 'convzoo.num_classes',
  /** Normalisation, JSON arrays of numbers (one per channel). */
  mean: 'convzoo.mean',
  std: 'convzoo.std',
  /** The input [C, H, W] as JSON. */
  inputSize: 'convzoo.input_size',
  /** The whole evaluation preprocessing, a JSON EvalTransform; when present it decides (mean, std and input_size are then informative). */
  transform: 'convzoo.transform',
} as const;

export interface OnnxInferenceOptions {
  /**
   * onnxruntime's intra-op threads, an integer >= 1. Default: as convzoo's libtorch, OMP_NUM_THREADS
   * when set, else one per available core (os.availableParallelism()).
   */
  threads?: number;
  /** A convzoo model id whose registry entry gives the preprocessing's defaults (default: the file's convzoo.id). */
  id?: string;
  /** Class names, one per logit (default: the file's convzoo.labels; predict then names 1000 classes by ImageNet's). */
  labels?: string[];
  /** The preprocessing predict applies (default: from the file's metadata, its id's weights entry, else ImageNet's at the input size). */
  transform?: EvalTransform;
}

/** The thread count convzoo's libtorch uses by default (src/native.ts): OMP_NUM_THREADS, else every core. */
export function defaultThreads(): number {
  const env = Number(process.env.OMP_NUM_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : os.availableParallelism();
}

function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const local = path.join(here, 'runtime_worker.js');
  // From the TypeScript sources (tests), run the compiled copy (test/global_setup.ts builds dist/ first).
  return existsSync(local) ? local : path.resolve(here, '../../dist/onnx/runtime_worker.js');
}

type Pending = { resolve: (r: { data: Float32Array; dims: number[] }) => void; reject: (e: Error) => void };

/**
 * An image classifier run by onnxruntime on its own worker thread: `forward` never blocks the
 * caller's event loop, and several calls queue up and resolve in order. Inference only (`training`
 * is false, `train()` throws). Made by `OnnxInferenceModel.fromFile` or by
 * `createModel(id, { backend: 'onnxruntime' })`; `cz.predict` takes it like a libtorch model.
 * Free it with `await model.dispose()` (or `await using`), which ends the worker.
 */
export class OnnxInferenceModel {
  /** Always false: the model cannot be trained. */
  readonly training = false;
  /** Logits per image. */
  readonly numClasses: number;
  /** Channels of the input (1 for grayscale). */
  readonly inChans: number;
  /** The input's [C, H, W] when the graph (or its metadata) fixes it; any size runs otherwise. */
  readonly inputSize?: [number, number, number];
  /** The convzoo model id (from the options or the file's metadata). */
  readonly id?: string;
  /** The registry entry of `id`, when convzoo knows that id. */
  readonly meta?: ModelMeta;
  /** Class names, index i for logit i, when the options or the file name them. */
  readonly classes?: string[];
  /** The preprocessing that `cz.predict` applies to images for this model. */
  readonly evalTransform: EvalTransform;
  /** The file's metadata_props, as written. */
  readonly metadata: Readonly<Record<string, string>>;
  /** onnxruntime's intra-op threads. */
  readonly threads: number;
  /** Names of the graph's image input and logits output. */
  readonly inputName: string;
  readonly outputName: string;

  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextRequest = 0;
  private disposed = false;
  /** Set when the worker died: every later call rejects with it. */
  private failure: ConvzooError | null = null;
  private readonly exited: Promise<void>;

  private constructor(worker: Worker, ready: Extract<RuntimeReply, { type: 'ready' }>, threads: number, opts: OnnxInferenceOptions) {
    this.worker = worker;
    this.threads = threads;
    this.metadata = Object.freeze({ ...ready.metadata });
    const info = describeGraph(ready.inputs, ready.outputs);
    this.inputName = info.inputName;
    this.outputName = info.outputName;
    const props = parseMetadata(ready.metadata);
    this.id = opts.id ?? props.id;
    this.meta = this.id === undefined ? undefined : registeredMeta(this.id);
    // Only the graph decides which sizes run; the metadata's input size is a default for preprocessing.
    this.inputSize = info.chw;
    this.inChans = info.channels ?? props.inputSize?.[0] ?? this.meta?.inputSize[0] ?? 3;
    const numClasses = info.numClasses ?? props.numClasses ?? opts.labels?.length ?? props.labels?.length;
    if (numClasses === undefined) {
      throw new ConvzooError(
        `OnnxInferenceModel: cannot tell the class count: output '${info.outputName}' has a symbolic second dimension and no labels were given`,
        'E_FORMAT',
      );
    }
    this.numClasses = numClasses;
    if (opts.labels) check(opts.labels.length === numClasses, 'OnnxInferenceModel', `got ${opts.labels.length} labels for ${numClasses} classes`);
    else if (props.labels && props.labels.length !== numClasses) {
      throw new ConvzooError(
        `OnnxInferenceModel: the file's ${ONNX_METADATA_KEYS.labels} names ${props.labels.length} classes, its output has ${numClasses}`,
        'E_FORMAT',
      );
    }
    this.classes = opts.labels ? [...opts.labels] : props.labels;
    this.evalTransform = opts.transform ? { ...opts.transform } : transformFromMetadata(props, this.meta, this.inChans, info.chw ?? props.inputSize);
    const inputSize = info.chw;
    if (inputSize) {
      const t = this.evalTransform;
      check(
        t.channels === inputSize[0] && t.cropSize === inputSize[1] && t.cropSize === inputSize[2],
        'OnnxInferenceModel',
        `the transform makes ${t.channels} x ${t.cropSize} x ${t.cropSize} inputs, the graph takes ${inputSize.join(' x ')}`,
        opts.transform ? 'E_ARG' : 'E_FORMAT',
      );
    }

    worker.on('message', (m: RuntimeReply) => {
      if (m.type === 'result') this.settle(m.req)?.resolve({ data: m.data, dims: m.dims });
      else if (m.type === 'error')
        this.settle(m.req)?.reject(new ConvzooError(`OnnxInferenceModel.forward: ${m.message}`, m.code, 'OnnxInferenceModel.forward'));
    });
    worker.on('error', (e) => this.fail(new ConvzooError(`OnnxInferenceModel: the onnxruntime worker failed: ${e.message}`, 'E_NATIVE')));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        if (!this.disposed) this.fail(new ConvzooError(`OnnxInferenceModel: the onnxruntime worker exited unexpectedly (exit code ${code})`, 'E_NATIVE'));
        resolve();
      }),
    );
    // An idle model does not keep the process alive; a pending forward does (see request()).
    worker.unref();
  }

  /**
   * Loads an ONNX image classifier (a file path, or the file's bytes) into onnxruntime on a new
   * worker thread. The graph must have one float32 input [N, C, H, W] and float32 logits [N, classes]
   * as its first output. The file's metadata_props (written by convzoo's exporter) give the model
   * id, class names and preprocessing unless the options do. Throws E_IO for a file that cannot be
   * read, E_FORMAT for one that onnxruntime cannot load or that is not such a classifier, E_ARG for
   * bad options, E_NATIVE when onnxruntime-node is missing.
   */
  static async fromFile(source: string | Uint8Array, opts: OnnxInferenceOptions = {}): Promise<OnnxInferenceModel> {
    const fn = 'OnnxInferenceModel.fromFile';
    check(
      typeof source === 'string' || source instanceof Uint8Array,
      fn,
      `expected a file path or the model's bytes (a Uint8Array), got ${source === null ? 'null' : typeof source}`,
    );
    if (typeof source === 'string') {
      const s = await stat(source).catch((e: Error) => {
        throw new ConvzooError(`${fn}: cannot read ${source}: ${e.message}`, 'E_IO', fn);
      });
      check(s.isFile(), fn, `${source} is not a regular file`, 'E_IO');
    } else check(source.byteLength > 0, fn, 'the model bytes are empty', 'E_FORMAT');
    return OnnxInferenceModel.start(typeof source === 'string' ? { path: source } : { bytes: source }, opts, false, fn);
  }

  /**
   * A libtorch model as an onnxruntime one: exported to ONNX in memory (dynamic batch), loaded on a
   * worker thread, with the model's id, class names and preprocessing. `model` stays the caller's.
   */
  static async fromModel(model: ClassifierModel, opts: Pick<OnnxInferenceOptions, 'threads'> = {}): Promise<OnnxInferenceModel> {
    const fn = 'OnnxInferenceModel.fromModel';
    check(model !== null && typeof model === 'object' && typeof model.forward === 'function', fn, 'expected a ClassifierModel');
    checkOptions(opts, fn); // before the export, which can take a while
    // The channels the first convolution takes (1 for a grayscale model), as the exporter reads them.
    const channels = model.meta ? model.stateShapes().get(`${model.meta.firstConv}.weight`)?.[1] : 3;
    const transform = evalTransformFor(model, channels);
    // Traced at the crop predict feeds it (a Fashion-MNIST run's 28, not the architecture's 32), any batch.
    const bytes = exportOnnxBytes(model, { batch: 'dynamic', inputSize: transform.cropSize });
    return OnnxInferenceModel.start({ bytes }, { threads: opts.threads, id: model.meta?.id, labels: model.classes, transform }, true, fn);
  }

  private static async start(source: RuntimeWorkerInit['source'], opts: OnnxInferenceOptions, ownBytes: boolean, fn: string): Promise<OnnxInferenceModel> {
    checkOptions(opts, fn);
    const threads = opts.threads ?? defaultThreads();
    const init: RuntimeWorkerInit = { source, threads };
    // Bytes we made (an export) move to the worker; a caller's bytes are copied, so theirs stay usable.
    const transfer = ownBytes && 'bytes' in source && isWholeBuffer(source.bytes) ? [source.bytes.buffer as ArrayBuffer] : [];
    const worker = new Worker(workerScript(), { workerData: init, transferList: transfer });
    type Ready = Extract<RuntimeReply, { type: 'ready' }>;
    try {
      let onMessage: (m: RuntimeReply) => void = () => {};
      let onError: (e: Error) => void = () => {};
      let onExit: (code: number) => void = () => {};
      const ready = await new Promise<Ready>((resolve, reject) => {
        onMessage = (m) => {
          if (m.type === 'ready') resolve(m);
          else if (m.type === 'error') reject(new ConvzooError(`${fn}: ${m.message}`, m.code, fn));
        };
        onError = (e) => reject(new ConvzooError(`${fn}: the onnxruntime worker failed: ${e.message}`, 'E_NATIVE', fn));
        onExit = (code) => reject(new ConvzooError(`${fn}: the onnxruntime worker exited during loading (exit code ${code})`, 'E_NATIVE', fn));
        worker.on('message', onMessage).on('error', onError).on('exit', onExit);
      }).finally(() => {
        // Only these: removeAllListeners() would also drop the Worker's own hooks that keep its port working.
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
      });
      return new OnnxInferenceModel(worker, ready, threads, opts);
    } catch (e) {
      await worker.terminate();
      throw e;
    }
  }

  /**
   * The logits [N, numClasses] of a float32 batch [N, C, H, W], computed by onnxruntime on the
   * worker thread. `x` stays the caller's; the result is a new tensor for the caller to dispose.
   * Calls made before earlier ones finish queue up and resolve in order. Rejects with E_DISPOSED
   * after dispose(), E_DTYPE/E_SHAPE for an input the graph cannot take, E_NATIVE when onnxruntime
   * fails or its worker died.
   */
  async forward(x: Tensor): Promise<Tensor> {
    const fn = 'OnnxInferenceModel.forward';
    this.checkUsable(fn);
    check(x instanceof Tensor, fn, `expected a Tensor, got ${x === null ? 'null' : typeof x}`);
    check(x.dtype === 'float32', fn, `expected a float32 input, got ${x.dtype}`, 'E_DTYPE');
    const shape = x.shape;
    check(shape.length === 4, fn, `expected an input [N, C, H, W], got shape [${shape.join(', ')}]`, 'E_SHAPE');
    if (this.inputSize) {
      const [c, h, w] = this.inputSize;
      check(shape[1] === c && shape[2] === h && shape[3] === w, fn, `the graph takes [N, ${c}, ${h}, ${w}], got [${shape.join(', ')}]`, 'E_SHAPE');
    } else check(shape[1] === this.inChans, fn, `expected ${this.inChans} input channels, got shape [${shape.join(', ')}]`, 'E_SHAPE');
    if (shape[0] === 0) return zeros([0, this.numClasses]);
    const out = await this.request(x.data() as Float32Array, shape);
    return fromBytes(out.data, out.dims, 'float32');
  }

  /** For predict and other ClassifierModel callers: the model is always in evaluation mode. */
  eval(): this {
    return this;
  }

  /** Always throws: an onnxruntime model is inference-only (train the libtorch model, then export it). */
  train(_mode = true): never {
    throw new ConvzooError(
      'OnnxInferenceModel.train: an onnxruntime model is inference-only; train the libtorch model (createModel without backend) and export it',
      'E_ARG',
      'OnnxInferenceModel.train',
    );
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Ends the worker thread and frees the session. Forwards still pending reject with E_DISPOSED at
   * once, as does every later call. Resolves when the thread has exited (after the run in progress,
   * if any); calling it again is harmless.
   */
  async dispose(): Promise<void> {
    if (!this.disposed) {
      this.disposed = true;
      this.rejectAll(new ConvzooError('OnnxInferenceModel.forward: the model was disposed before the result came', 'E_DISPOSED', 'OnnxInferenceModel.forward'));
      if (!this.failure) {
        // The worker ends itself after the run in progress (terminating it mid-run would abort the
        // process); until then it keeps the event loop alive, so an awaited dispose() settles.
        this.worker.ref();
        this.worker.postMessage({ type: 'close' } satisfies RuntimeRequest);
      }
    }
    await this.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  private checkUsable(fn: string): void {
    if (this.disposed) throw new ConvzooError(`${fn}: the model was disposed`, 'E_DISPOSED', fn);
    if (this.failure) throw this.failure;
  }

  private request(data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    const req = this.nextRequest++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref(); // keep the process alive until the answer comes
      this.pending.set(req, { resolve, reject });
      // data is x.data()'s own copy: its buffer moves to the worker.
      this.worker.postMessage({ type: 'run', req, data, dims } satisfies RuntimeRequest, [data.buffer as ArrayBuffer]);
    });
  }

  private settle(req: number): Pending | undefined {
    const p = this.pending.get(req);
    this.pending.delete(req);
    if (this.pending.size === 0 && !this.disposed) this.worker.unref();
    return p;
  }

  private rejectAll(e: ConvzooError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }

  private fail(e: ConvzooError): void {
    this.failure ??= e;
    this.rejectAll(this.failure);
  }
}

// ---- helpers

function isWholeBuffer(a: Uint8Array): boolean {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
}

function checkOptions(opts: OnnxInferenceOptions, fn: string): void {
  check(opts !== null && typeof opts === 'object', fn, `expected options to be an object, got ${String(opts)}`);
  if (opts.threads !== undefined) checkInt(opts.threads, fn, 'threads', 1);
  if (opts.id !== undefined) getModelEntry(opts.id); // an unknown id: E_NOT_FOUND with suggestions
  if (opts.labels !== undefined) {
    check(Array.isArray(opts.labels) && opts.labels.every((l) => typeof l === 'string'), fn, 'expected labels to be an array of strings');
  }
  if (opts.transform !== undefined) checkTransform(opts.transform, fn);
}

/** The registry entry of `id`, or undefined for an id this convzoo does not know (a newer version's). */
function registeredMeta(id: string): ModelMeta | undefined {
  try {
    return getModelEntry(id).meta;
  } catch {
    return undefined;
  }
}

/** What the loader needs of the graph: an image classifier's one input and logits output. */
function describeGraph(
  inputs: RuntimeValueInfo[],
  outputs: RuntimeValueInfo[],
): { inputName: string; outputName: string; channels?: number; chw?: [number, number, number]; numClasses?: number } {
  const notClassifier = (why: string) =>
    new ConvzooError(`OnnxInferenceModel: not an image classifier convzoo can run: ${why}`, 'E_FORMAT', 'OnnxInferenceModel.fromFile');
  const describe = (v: RuntimeValueInfo) => `'${v.name}' (${v.type ?? 'not a tensor'} [${v.shape.join(', ')}])`;
  if (inputs.length !== 1) throw notClassifier(`expected one input, the graph has ${inputs.length}: ${inputs.map(describe).join(', ')}`);
  const input = inputs[0];
  if (input.type !== 'float32' || input.shape.length !== 4) throw notClassifier(`expected a float32 input [N, C, H, W], got ${describe(input)}`);
  const output = outputs[0];
  if (output?.type !== 'float32' || output.shape.length !== 2) {
    throw notClassifier(`expected float32 logits [N, classes] as the first output, got ${output ? describe(output) : 'no output'}`);
  }
  const [, c, h, w] = input.shape;
  const chw = typeof c === 'number' && typeof h === 'number' && typeof w === 'number' ? ([c, h, w] as [number, number, number]) : undefined;
  const numClasses = typeof output.shape[1] === 'number' ? output.shape[1] : undefined;
  return { inputName: input.name, outputName: output.name, channels: typeof c === 'number' ? c : undefined, chw, numClasses };
}

/** convzoo's metadata_props, parsed; a key that is present but malformed is an E_FORMAT error naming it. */
interface ParsedMetadata {
  id?: string;
  weights?: string;
  labels?: string[];
  mean?: number[];
  std?: number[];
  numClasses?: number;
  inputSize?: [number, number, number];
  transform?: EvalTransform;
}

function isTransform(v: unknown): boolean {
  try {
    checkTransform(v as EvalTransform, 'OnnxInferenceModel');
    return true;
  } catch {
    return false;
  }
}

export function parseMetadata(props: Readonly<Record<string, string>>): ParsedMetadata {
  const K = ONNX_METADATA_KEYS;
  const json = <T>(key: string, ok: (v: unknown) => boolean, expected: string): T | undefined => {
    const text = props[key];
    if (text === undefined) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      v = undefined;
    }
    if (!ok(v)) {
      throw new ConvzooError(
        `OnnxInferenceModel: metadata ${key} should be ${expected}, got ${JSON.stringify(text.slice(0, 80))}`,
        'E_FORMAT',
        'OnnxInferenceModel.fromFile',
      );
    }
    return v as T;
  };
  const numbers = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  const positiveInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
  return {
    id: props[K.id] || undefined,
    weights: props[K.weights] || undefined,
    labels: json<string[]>(K.labels, (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'a JSON array of strings'),
    mean: json<number[]>(K.mean, numbers, 'a JSON array of numbers'),
    std: json<number[]>(K.std, numbers, 'a JSON array of numbers'),
    inputSize: json<[number, number, number]>(
      K.inputSize,
      (v) => Array.isArray(v) && v.length === 3 && v.every(positiveInt),
      'a JSON [C, H, W] of positive integers',
    ),
    numClasses: json<number>(K.numClasses, positiveInt, 'a positive integer'),
    transform: json<EvalTransform>(
      K.transform,
      isTransform,
      'a JSON object of a valid EvalTransform (resizeSize, cropSize, mean, std, interpolation, channels)',
    ),
  };
}

/**
 * The preprocessing for a model loaded from a file: the exporter's whole transform when it wrote one;
 * else its id's weights entry (or registered defaults) as the base, the input size the graph fixes,
 * and the metadata's mean and std.
 */
function transformFromMetadata(props: ParsedMetadata, meta: ModelMeta | undefined, channels: number, inputSize?: [number, number, number]): EvalTransform {
  if (props.transform) return { ...props.transform, mean: [...props.transform.mean], std: [...props.transform.std] };
  const base = (meta && weightsDataConfig(meta, props.weights, channels)) || defaultDataConfig(meta, channels);
  const crop = inputSize?.[1] ?? base.cropSize;
  const t: EvalTransform = {
    ...base,
    cropSize: crop,
    resizeSize: crop === base.cropSize ? base.resizeSize : Math.round(crop / DEFAULT_CROP_PCT),
    mean: props.mean ?? base.mean,
    std: props.std ?? base.std,
    channels,
  };
  try {
    checkTransform(t, 'OnnxInferenceModel');
  } catch (e) {
    throw new ConvzooError(`${(e as Error).message} (from the file's metadata)`, 'E_FORMAT', 'OnnxInferenceModel.fromFile');
  }
  return t;
}
