// How the server and the static page describe a model: GET /v1/models's entries and
// GET /v1/models/{name}/info (the layer table of `convzoo info` and the model's top-level stages).
import { check } from '../errors.js';
import type { ClassifierModel } from '../models/base.js';
import { summary, type LayerRow } from '../summary.js';
import { evalTransformFor, imagenetCategories, type EvalTransform } from '../vision/preprocess.js';

/** One served model as GET /v1/models lists it. */
export interface ModelListing {
  /** The served name: the id, or the name given as `--model name=id`. */
  name: string;
  id: string;
  backend: string;
  numClasses: number;
  /** [C, H, W] of one preprocessed image. */
  inputSize: [number, number, number];
  transform: EvalTransform;
  labels: string[];
  paper: { title: string; year: number };
}

export interface StageInfo {
  name: string;
  outputShape: number[];
  params: number;
  macs: number;
}

/** GET /v1/models/{name}/info: `convzoo info`'s layer table and the model's top-level stages. */
export interface ModelInfo {
  name: string;
  id: string;
  paper: { title: string; year: number };
  params: number;
  macs: number;
  inputSize: number[];
  layers: LayerRow[];
  stages: StageInfo[];
}

/** A model to describe or build, under the name it is served as. */
export interface NamedModel {
  name: string;
  model: ClassifierModel;
}

/** Served names become URL path segments and folder names: letters, digits, '.', '_' and '-' only. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkServedName(name: string, fn = 'web build'): void {
  check(typeof name === 'string' && NAME.test(name), fn, `model name '${String(name)}' must be letters, digits, '.', '_' or '-' (at most 128)`);
}

const labelsOf = (model: ClassifierModel): string[] =>
  model.classes ?? (model.numClasses === 1000 ? imagenetCategories() : Array.from({ length: model.numClasses }, (_, i) => `class ${i}`));

/** `model` as GET /v1/models lists it. */
export function modelListing(name: string, model: ClassifierModel, backend: string): ModelListing {
  const meta = model.meta;
  check(meta !== undefined, 'modelListing', 'expected a registered convzoo model (it has no meta)');
  const transform = evalTransformFor(model);
  return {
    name,
    id: meta.id,
    backend,
    numClasses: model.numClasses,
    inputSize: [transform.channels, transform.cropSize, transform.cropSize],
    transform,
    labels: [...labelsOf(model)],
    paper: { title: meta.paper.title, year: meta.paper.year },
  };
}

/**
 * `model`'s layer table at its evaluation input size, and its stages: the top-level children in the
 * order forward runs them, each with the output shape of its last layer and the sums of its rows.
 */
export function modelInfo(name: string, model: ClassifierModel): ModelInfo {
  const meta = model.meta;
  check(meta !== undefined, 'modelInfo', 'expected a registered convzoo model (it has no meta)');
  const t = evalTransformFor(model);
  const s = summary(model, [t.channels, t.cropSize, t.cropSize]);
  const stages: StageInfo[] = [];
  for (const row of s.rows) {
    const top = row.name.split('.')[0];
    const last = stages[stages.length - 1];
    if (last?.name === top) {
      last.outputShape = row.outputShape.slice(1);
      last.params += row.params;
      last.macs += row.macs;
    } else stages.push({ name: top, outputShape: row.outputShape.slice(1), params: row.params, macs: row.macs });
  }
  return {
    name,
    id: meta.id,
    paper: { title: meta.paper.title, year: meta.paper.year },
    params: s.totalParams,
    macs: s.totalMacs,
    inputSize: s.inputShape,
    layers: s.rows.map((r) => ({ ...r, outputShape: r.outputShape.slice(1) })),
    stages,
  };
}
