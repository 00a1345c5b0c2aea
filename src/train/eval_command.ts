// `convzoo eval`: a model from a checkpoint or from an id with weights, evaluated on a dataset. A
// checkpoint is evaluated on its own run's data and test split unless told otherwise, and data whose
// class names differ from the checkpoint's is refused (labels would be compared by index).
import type { OptimizeForInferenceOptions } from '../models/optimize.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ConvzooError, checkInt } from '../errors.js';
import { createModel } from '../models/builder.js';
import { modelMeta } from '../models/registry.js';
import { makeData, classDifference } from './datasets.js';
import { pretrainedDataConfig } from '../vision/data_config.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { readCheckpointMeta } from './checkpoint.js';
import { validateTrainOptions } from './options.js';
import { plotConfusion } from './plots.js';

export interface EvalCommandOptions {
  model?: string;
  weights?: string;
  checkpoint?: string;
  /** The data: with a checkpoint, its run's data (and held-out split) by default; else 'fashion-mnist'. */
  data?: string;
  batchSize?: number;
  tenCrop?: number;
  inputSize?: number;
  numWorkers?: number;
  out?: string;
  /** The inference fast path (createModel's optimize): true for float32, or `{ dtype: 'bfloat16' }`. */
  optimize?: boolean | OptimizeForInferenceOptions;
  /** Evaluate the checkpoint's moving average of the weights (a run trained with --ema). */
  ema?: boolean;
  /** Called with each problem that does not stop the evaluation (an unreadable image is skipped). */
  onWarning?: (message: string) => void;
}

export async function evaluateCommand(o: EvalCommandOptions): Promise<EvalResult & { model: string; classes: string[]; data: string }> {
  if (!o.checkpoint && !o.model) throw new ConvzooError('eval: give --checkpoint FILE, or --model ID with --weights', 'E_ARG');
  validateTrainOptions({ data: o.data, batchSize: o.batchSize, inputSize: o.inputSize, numWorkers: o.numWorkers, model: o.model, weights: o.weights }, 'eval');
  if (o.tenCrop !== undefined) checkInt(o.tenCrop, 'eval', 'tenCrop', 1);
  let inputSize = o.inputSize;
  // The checkpoint's header decides the data; its weights are read once the data is known to fit.
  const ckpt = o.checkpoint ? await readCheckpointMeta(o.checkpoint) : null;
  const modelId = o.model ?? ckpt!.modelId;
  let dataName = o.data ?? 'fashion-mnist';
  let split: { valSplit?: number; seed?: number } = {};
  if (ckpt) {
    // The run's own options, checked like command-line input (a checkpoint is a file from anywhere).
    const stored = {
      data: ckpt.options.data,
      inputSize: ckpt.options.inputSize,
      valSplit: ckpt.options.valSplit,
      seed: ckpt.options.seed,
      modelOptions: ckpt.options.modelOptions,
    };
    validateTrainOptions(stored, `eval: the checkpoint ${o.checkpoint} holds an invalid option`);
    if (inputSize === undefined) inputSize = stored.inputSize as number | undefined;
    if (o.data === undefined) dataName = (stored.data as string | undefined) ?? 'fashion-mnist';
    // A folder split by the run: the same held-out images (same fraction and seed).
    split = { valSplit: stored.valSplit as number | undefined, seed: stored.seed as number | undefined };
  }
  // Ten-crop takes crops from images one step larger than the network's input.
  const loadSize = o.tenCrop && inputSize === undefined ? Math.round(o.tenCrop / 0.875) : inputSize;
  // Evaluated as the weights ask (resnet50's IMAGENET1K_V2: resize 232, crop 224), or as the run trained.
  const pretrained = pretrainedDataConfig(modelMeta(modelId), ckpt ? ckpt.startWeights : o.weights);
  const data = await makeData({
    data: dataName,
    batchSize: o.batchSize ?? 256,
    inputSize: loadSize,
    augment: 'none',
    numWorkers: o.numWorkers,
    pretrained,
    onWarning: o.onWarning,
    ...split,
  }).catch((e: unknown) => {
    if (ckpt && o.data === undefined && e instanceof ConvzooError && e.code === 'E_DATA') {
      throw new ConvzooError(`eval: the checkpoint's data: ${e.message} (give --data to evaluate on other data with the same classes)`, 'E_DATA');
    }
    throw e;
  });
  try {
    if (ckpt && ckpt.classes.join('\0') !== data.classes.join('\0')) {
      throw new ConvzooError(
        `eval: the data ${dataName} does not have the classes the checkpoint ${o.checkpoint} was trained on: ` +
          `${classDifference(ckpt.classes, data.classes)} (checkpoint vs data)`,
        'E_DATA',
      );
    }
    const model = ckpt
      ? await createModel(modelId, { weights: o.checkpoint, inChans: data.channels, optimize: o.optimize, ema: o.ema })
      : await createModel(modelId, { weights: o.weights, inChans: data.channels, numClasses: data.classes.length, optimize: o.optimize, ema: o.ema });
    try {
      const r = await evaluate(model, data.test, { numClasses: data.classes.length, tenCrop: o.tenCrop });
      if (r.count === 0)
        throw new ConvzooError(`eval: none of the ${data.testSize} test images of ${dataName} could be decoded; no accuracy to report`, 'E_DATA');
      const result = { model: modelId, data: dataName, classes: data.classes, ...r };
      if (o.out) {
        mkdirSync(o.out, { recursive: true });
        writeFileSync(path.join(o.out, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
        await plotConfusion(r.confusion, data.classes, o.out);
      }
      return result;
    } finally {
      model.dispose();
    }
  } finally {
    await data.close();
  }
}
