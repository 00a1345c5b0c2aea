// The page's view of a model (GET /v1/models's entries, GET /v1/models/{name}/info) and the static
// build of the page: `convzoo web build DIR` writes what a static host needs for in-browser
// classification (the page, config.json, each model's ONNX export and layer table).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, ConvzooError } from '../errors.js';
import type { ClassifierModel } from '../models/base.js';
import { exportOnnxBytes } from '../onnx/export.js';
import { summary, type LayerRow } from '../summary.js';
import { evalTransformFor, imagenetCategories, type EvalTransform } from '../vision/preprocess.js';

/** The built page: dist/web, two folders above this module both as src/serve/*.ts and as dist/serve/*.js. */
export const WEB_DIST = fileURLToPath(new URL('../../dist/web/', import.meta.url));

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

export interface WebBuildResult {
  dir: string;
  /** Every file written, relative to `dir`. */
  files: string[];
  models: ModelListing[];
}

/**
 * Creates `rel`'s folders inside `root` one at a time, refusing any that exists as something other
 * than a real folder (a symbolic link could lead outside `root`), and refusing a link at `rel` itself.
 */
function prepareInside(root: string, rel: string): string {
  const parts = path.normalize(rel).split(path.sep);
  check(!path.isAbsolute(rel) && !parts.includes('..'), 'web build', `${rel} is not inside the folder`, 'E_IO');
  let at = root;
  for (const part of parts.slice(0, -1)) {
    at = path.join(at, part);
    if (!lstatSync(at, { throwIfNoEntry: false })) mkdirSync(at);
    check(lstatSync(at).isDirectory(), 'web build', `${at} is not a folder (a symbolic link would lead outside ${root})`, 'E_IO');
  }
  const target = path.join(root, rel);
  check(
    lstatSync(target, { throwIfNoEntry: false })?.isFile() ?? true,
    'web build',
    `${target} is not a plain file (a symbolic link?); refusing to write through it`,
    'E_IO',
  );
  return target;
}

/**
 * Writes the page as static files into `dir` (created if needed): dist/web's files, `config.json`
 * (GET /v1/models's answer), and per model `models/{name}/model.onnx` (dynamic batch) and
 * `models/{name}/info.json`. Any static host then serves in-browser classification. `dir` must not be
 * a file; nothing is written outside it.
 */
export function buildWebSite(dir: string, models: NamedModel[], opts: { webRoot?: string } = {}): WebBuildResult {
  const fn = 'web build';
  check(typeof dir === 'string' && dir !== '', fn, 'expected the folder to write');
  check(Array.isArray(models) && models.length > 0, fn, 'expected at least one model');
  const names = new Set<string>();
  for (const { name } of models) {
    checkServedName(name, fn);
    check(!names.has(name), fn, `model name '${name}' given twice`);
    names.add(name);
  }
  const webRoot = opts.webRoot ?? WEB_DIST;
  if (!existsSync(path.join(webRoot, 'index.html')))
    throw new ConvzooError(`${fn}: the page is not built (no ${path.join(webRoot, 'index.html')}); run npm run build`, 'E_IO', fn);
  check(!existsSync(dir) || statSync(dir).isDirectory(), fn, `${dir} exists and is not a folder`);
  mkdirSync(dir, { recursive: true });
  const root = realpathSync(dir);
  const files: string[] = [];
  const write = (rel: string, data: string | Uint8Array): void => {
    writeFileSync(prepareInside(root, rel), data);
    files.push(rel);
  };
  // The page first (a flat folder): its files never collide with config.json or models/.
  for (const f of readdirSync(webRoot, { withFileTypes: true })) if (f.isFile()) write(f.name, readFileSync(path.join(webRoot, f.name)));
  const listings = models.map(({ name, model }) => modelListing(name, model, 'onnxruntime-web'));
  models.forEach(({ name, model }) => {
    write(path.join('models', name, 'model.onnx'), exportOnnxBytes(model, { batch: 'dynamic' }));
    write(path.join('models', name, 'info.json'), JSON.stringify(modelInfo(name, model)));
  });
  write('config.json', JSON.stringify({ models: listings }));
  return { dir: root, files: [...files], models: listings };
}
