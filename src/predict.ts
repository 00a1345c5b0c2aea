// Classifies images with a model: decode and preprocess with the weights' own transform, batch,
// softmax, top-k. A file that cannot be decoded gets its own error; the others still get answers.
// Images are streamed: only the current batch is decoded (a few at a time), run, and dropped, so
// memory does not grow with the number of images.
import { fromBytes, inferenceMode } from './tensor/creation.js';
import { tidy } from './tensor/scope.js';
import { ConvzooError, check, checkInt } from './errors.js';
import type { ClassifierModel } from './models/base.js';
import type { Tensor } from './tensor/tensor.js';
import { evalTransformFor, loadImage, imagenetCategories, checkTransform, type EvalTransform } from './vision/preprocess.js';

export interface Prediction {
  label: string;
  index: number;
  probability: number;
}
/**
 * A classifier whose forward runs elsewhere and resolves later: an OnnxInferenceModel (onnxruntime on
 * a worker thread). predict awaits each batch's logits; between batches the event loop runs.
 */
export interface AsyncClassifier {
  readonly numClasses: number;
  /** Class names, index i for logit i. */
  readonly classes?: string[];
  /** The preprocessing its images need (used unless the options give a transform). */
  readonly evalTransform: EvalTransform;
  /** Logits [N, numClasses] of a float32 [N, C, H, W] batch; the input stays the caller's. */
  forward(x: Tensor): Promise<Tensor>;
}

/** What predict classifies with: a libtorch ClassifierModel, or an AsyncClassifier such as OnnxInferenceModel. */
export type PredictModel = ClassifierModel | AsyncClassifier;

/** A libtorch model (its forward returns the logits at once): it has no public evalTransform. */
const isLibtorch = (model: PredictModel): model is ClassifierModel => !('evalTransform' in model);

export type PredictResult = { source: string; predictions: Prediction[] } | { source: string; error: string; code: string };

export interface PredictOptions {
  /** Classes per image, an integer >= 1 (default 5); more than the model has is clamped to its class count. */
  topk?: number;
  /** Images per forward pass, an integer >= 1 (default 16); also the most decoded images alive at once. */
  batchSize?: number;
  /** Class names (default: the weights' categories, ImageNet for 1000 classes, else "class N"). */
  labels?: string[];
  transform?: EvalTransform;
  /** Apply EXIF orientation (default true). torchvision's loader does not; false matches it on rotated photos. */
  autoOrient?: boolean;
  /** Images decoded at the same time, an integer >= 1 (default min(batchSize, 8)). */
  concurrency?: number;
}

/** Test hook: decoded inputs alive now and at most since the last reset (see test/predict.test.ts). */
export const _predictProbe = {
  live: 0,
  peak: 0,
  reset(): void {
    this.live = 0;
    this.peak = 0;
  },
};

interface Plan {
  sources: (string | Buffer)[];
  topk: number;
  batchSize: number;
  concurrency: number;
  transform: EvalTransform;
  labels: string[];
  autoOrient: boolean;
}

function plan(model: PredictModel, sources: (string | Buffer)[], opts: PredictOptions): Plan {
  const fn = 'predict';
  check(
    model !== null && typeof model === 'object' && typeof model.forward === 'function',
    fn,
    `expected a model (a ClassifierModel or an OnnxInferenceModel), got ${model === null ? 'null' : typeof model}`,
  );
  check(opts !== null && typeof opts === 'object', fn, `expected options to be an object, got ${String(opts)}`);
  check(Array.isArray(sources), fn, `expected sources to be an array of file paths or Buffers, got ${sources === null ? 'null' : typeof sources}`);
  sources.forEach((s, i) =>
    check(
      typeof s === 'string' || (s as unknown) instanceof Uint8Array,
      fn,
      `expected sources[${i}] to be a file path or a Buffer, got ${s === null ? 'null' : typeof s}`,
    ),
  );
  const topk = opts.topk ?? 5;
  checkInt(topk, fn, 'topk', 1);
  const batchSize = opts.batchSize ?? 16;
  checkInt(batchSize, fn, 'batchSize', 1);
  const concurrency = opts.concurrency ?? Math.min(batchSize, 8);
  checkInt(concurrency, fn, 'concurrency', 1);
  if (opts.autoOrient !== undefined) check(typeof opts.autoOrient === 'boolean', fn, `expected autoOrient to be a boolean, got ${String(opts.autoOrient)}`);
  if (opts.labels !== undefined) {
    check(Array.isArray(opts.labels) && opts.labels.every((l) => typeof l === 'string'), fn, 'expected labels to be an array of strings');
  }
  const transform = opts.transform ?? (isLibtorch(model) ? evalTransformFor(model, model.meta ? undefined : 3) : model.evalTransform);
  checkTransform(transform, fn);
  const labels =
    opts.labels ?? model.classes ?? (model.numClasses === 1000 ? imagenetCategories() : Array.from({ length: model.numClasses }, (_, i) => `class ${i}`));
  return { sources: [...sources], topk: Math.min(topk, model.numClasses), batchSize, concurrency, transform, labels, autoOrient: opts.autoOrient ?? true };
}

/** Runs `fn(0 .. n-1)` with at most `limit` calls pending at once. */
async function eachLimited(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** The top `k` probabilities and class indices of each image of `buf` ([n, C, H, W]). */
async function topkOf(model: PredictModel, buf: Float32Array, shape: number[], k: number): Promise<{ values: Float32Array; indices: BigInt64Array }> {
  const top = (logits: Tensor) => {
    const t = logits.softmax(1).topk(k, { dim: 1 });
    return { values: t.values.data() as Float32Array, indices: t.indices.data() as BigInt64Array };
  };
  if (isLibtorch(model)) return inferenceMode(() => tidy(() => top(model.forward(fromBytes(buf, shape, 'float32')))));
  const x = fromBytes(buf, shape, 'float32');
  let logits: Tensor;
  try {
    logits = await model.forward(x);
  } finally {
    x.dispose();
  }
  try {
    return inferenceMode(() => tidy(() => top(logits)));
  } finally {
    logits.dispose();
  }
}

async function* stream(model: PredictModel, p: Plan): AsyncGenerator<PredictResult[], void, undefined> {
  const { sources, batchSize, transform, topk, labels } = p;
  const name = (s: string | Buffer, i: number) => (typeof s === 'string' ? s : `buffer #${i}`);
  const per = transform.channels * transform.cropSize * transform.cropSize;
  if (isLibtorch(model)) model.eval();
  for (let b = 0; b < sources.length; b += batchSize) {
    const n = Math.min(batchSize, sources.length - b);
    const results: PredictResult[] = new Array(n);
    const decoded: (Float32Array | null)[] = new Array(n).fill(null);
    const held = new Array<boolean>(n).fill(false); // counted in the probe
    const release = (k: number): void => {
      if (held[k]) {
        held[k] = false;
        _predictProbe.live--;
      }
    };
    try {
      await eachLimited(n, p.concurrency, async (k) => {
        const src = sources[b + k];
        held[k] = true;
        _predictProbe.live++;
        _predictProbe.peak = Math.max(_predictProbe.peak, _predictProbe.live);
        try {
          decoded[k] = await loadImage(Buffer.isBuffer(src) || typeof src === 'string' ? src : Buffer.from(src), transform, { autoOrient: p.autoOrient });
        } catch (e) {
          release(k);
          const err = e instanceof ConvzooError ? e : new ConvzooError(String((e as Error)?.message ?? e), 'E_IMAGE');
          results[k] = { source: name(src, b + k), error: err.message, code: err.code };
        }
      });
      const ok = decoded.map((d, k) => (d ? k : -1)).filter((k) => k >= 0);
      if (ok.length > 0) {
        const buf = new Float32Array(ok.length * per);
        ok.forEach((k, j) => buf.set(decoded[k]!, j * per));
        for (const k of ok) {
          decoded[k] = null;
          release(k);
        } // copied into the batch: let them go before the forward
        const { values, indices } = await topkOf(model, buf, [ok.length, transform.channels, transform.cropSize, transform.cropSize], topk);
        ok.forEach((k, j) => {
          const predictions: Prediction[] = [];
          for (let t = 0; t < topk; t++) {
            const index = Number(indices[j * topk + t]);
            predictions.push({ index, label: labels[index] ?? `class ${index}`, probability: values[j * topk + t] });
          }
          results[k] = { source: name(sources[b + k], b + k), predictions };
        });
      }
    } finally {
      for (let k = 0; k < n; k++) release(k);
    }
    yield results;
  }
}

/**
 * Classifies `sources` batch by batch, yielding each batch's results (in input order, a per-image
 * `{source, error, code}` for one that could not be read or decoded) as soon as it is done. Only
 * one batch of images is decoded at a time. Arguments are checked at once (E_ARG).
 */
export function predictStream(model: PredictModel, sources: (string | Buffer)[], opts: PredictOptions = {}): AsyncGenerator<PredictResult[], void, undefined> {
  return stream(model, plan(model, sources, opts));
}

/** Classifies `sources`; one result per source, in order (see predictStream). */
export async function predict(model: PredictModel, sources: (string | Buffer)[], opts: PredictOptions = {}): Promise<PredictResult[]> {
  const p = plan(model, sources, opts);
  const out: PredictResult[] = [];
  for await (const batch of stream(model, p)) out.push(...batch);
  return out;
}
