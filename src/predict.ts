// Classifies images with a model: decode and preprocess with the weights' own transform, batch,
// softmax, top-k. A file that cannot be decoded gets its own error; the others still get answers.
import { fromBytes, inferenceMode } from './tensor/creation.js';
import { tidy } from './tensor/scope.js';
import { ConvzooError } from './errors.js';
import type { ClassifierModel } from './models/base.js';
import { evalTransformFor, loadImage, imagenetCategories, type EvalTransform } from './vision/preprocess.js';

export interface Prediction { label: string; index: number; probability: number }
export type PredictResult = { source: string; predictions: Prediction[] } | { source: string; error: string; code: string };

export interface PredictOptions {
  topk?: number;
  batchSize?: number;
  /** Class names (default: the weights' categories, ImageNet for 1000 classes, else "class N"). */
  labels?: string[];
  transform?: EvalTransform;
}

export async function predict(model: ClassifierModel, sources: (string | Buffer)[], opts: PredictOptions = {}): Promise<PredictResult[]> {
  const topk = Math.min(opts.topk ?? 5, model.numClasses);
  const transform = opts.transform ?? evalTransformFor(model, model.meta ? undefined : 3);
  const labels = opts.labels ?? (model.numClasses === 1000 ? imagenetCategories() : Array.from({ length: model.numClasses }, (_, i) => `class ${i}`));
  const batchSize = opts.batchSize ?? 16;
  const results: PredictResult[] = new Array(sources.length);
  const name = (s: string | Buffer, i: number) => (typeof s === 'string' ? s : `buffer #${i}`);
  const decoded = await Promise.all(sources.map(async (s, i) => {
    try { return await loadImage(s, transform); } catch (e) {
      const err = e instanceof ConvzooError ? e : new ConvzooError(String(e), 'E_IMAGE');
      results[i] = { source: name(s, i), error: err.message, code: err.code };
      return null;
    }
  }));
  const ok = decoded.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  model.eval();
  const per = transform.channels * transform.cropSize * transform.cropSize;
  for (let b = 0; b < ok.length; b += batchSize) {
    const idx = ok.slice(b, b + batchSize);
    const buf = new Float32Array(idx.length * per);
    idx.forEach((i, k) => buf.set(decoded[i]!, k * per));
    const { values, indices } = inferenceMode(() => tidy(() => {
      const x = fromBytes(buf, [idx.length, transform.channels, transform.cropSize, transform.cropSize], 'float32');
      const top = model.forward(x).softmax(1).topk(topk, { dim: 1 });
      return { values: top.values.data() as Float32Array, indices: top.indices.data() as BigInt64Array };
    }));
    idx.forEach((i, k) => {
      const predictions: Prediction[] = [];
      for (let j = 0; j < topk; j++) {
        const index = Number(indices[k * topk + j]);
        predictions.push({ index, label: labels[index] ?? `class ${index}`, probability: values[k * topk + j] });
      }
      results[i] = { source: name(sources[i], i), predictions };
    });
  }
  return results;
}
