// `convzoo eval`: a model from a checkpoint or from an id with weights, evaluated on a dataset.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ConvzooError } from '../errors.js';
import { buildModel, createModel } from '../models/builder.js';
import { makeData } from './datasets.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { loadCheckpoint } from './checkpoint.js';
import { plotConfusion } from './plots.js';

export interface EvalCommandOptions {
  model?: string;
  weights?: string;
  checkpoint?: string;
  data?: string;
  batchSize?: number;
  tenCrop?: number;
  inputSize?: number;
  numWorkers?: number;
  out?: string;
}

export async function evaluateCommand(o: EvalCommandOptions): Promise<EvalResult & { model: string; classes: string[] }> {
  if (!o.checkpoint && !o.model) throw new ConvzooError('eval: give --checkpoint FILE, or --model ID with --weights', 'E_ARG');
  let inputSize = o.inputSize;
  let ckpt = o.checkpoint ? await loadCheckpoint(o.checkpoint) : null;
  const modelId = o.model ?? ckpt!.modelId;
  if (ckpt && inputSize === undefined) inputSize = ckpt.options.inputSize as number | undefined;
  // Ten-crop takes crops from images one step larger than the network's input.
  const loadSize = o.tenCrop && inputSize === undefined ? Math.round(o.tenCrop / 0.875) : inputSize;
  const data = await makeData({ data: o.data ?? (ckpt?.options.data as string | undefined), batchSize: o.batchSize ?? 256, inputSize: loadSize, augment: 'none', numWorkers: o.numWorkers });
  try {
    let model;
    if (ckpt) {
      model = buildModel(modelId, { ...(ckpt.options.modelOptions as object), numClasses: ckpt.classes.length, inChans: data.channels });
      model.loadStateDict(ckpt.model);
      ckpt.dispose();
      ckpt = null;
    } else {
      model = await createModel(modelId, { weights: o.weights, inChans: data.channels, numClasses: data.classes.length });
    }
    const r = await evaluate(model, data.test, { numClasses: data.classes.length, tenCrop: o.tenCrop });
    const result = { model: modelId, classes: data.classes, ...r };
    if (o.out) {
      mkdirSync(o.out, { recursive: true });
      writeFileSync(path.join(o.out, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
      await plotConfusion(r.confusion, data.classes, o.out);
    }
    return result;
  } finally {
    ckpt?.dispose();
    await data.close();
  }
}
