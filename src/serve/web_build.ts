// The static build of the page: `convzoo web build DIR` writes what a static host needs for in-browser
// classification (the page, config.json, each model's ONNX export and layer table).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, ConvzooError } from '../errors.js';
import { exportOnnxBytes } from '../onnx/export.js';
import { checkServedName, modelInfo, modelListing, type ModelListing, type NamedModel } from './describe.js';

/** The built page: dist/web, two folders above this module both as src/serve/*.ts and as dist/serve/*.js. */
export const WEB_DIST = fileURLToPath(new URL('../../dist/web/', import.meta.url));

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
