// convzoo's page: pick a model, drop or choose an image, see the top-5 classes, computed by the server
// (POST /v1/models/{name}/classify) or in the browser (onnxruntime-web's wasm backend on the model's
// ONNX export, preprocessing in ./preprocess.ts); and the model's architecture (layers and stages).
import * as ort from 'onnxruntime-web/wasm';
import { stageDiagram, shapeText } from './diagram.js';
import { preprocess, rgbaToRgb, softmax, topk, type Prediction } from './preprocess.js';
import { openSource, type ModelSource } from './source.js';
import type { ModelInfo, ModelListing } from './types.js';

const TOPK = 5;
type Mode = 'server' | 'browser';

// The wasm binary sits beside app.js (its glue code is bundled in app.js, so only the binary is named);
// threads need cross-origin isolation, which a plain static host lacks.
ort.env.wasm.wasmPaths = { wasm: new URL('ort-wasm-simd-threaded.wasm', import.meta.url).href };
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'),
  modelNote: $<HTMLParagraphElement>('model-note'),
  modes: [...document.querySelectorAll<HTMLInputElement>('input[name="mode"]')],
  drop: $<HTMLDivElement>('drop'),
  choose: $<HTMLButtonElement>('choose'),
  file: $<HTMLInputElement>('file'),
  preview: $<HTMLImageElement>('preview'),
  status: $<HTMLParagraphElement>('status'),
  results: $<HTMLOListElement>('results'),
  archSummary: $<HTMLParagraphElement>('arch-summary'),
  diagram: $<HTMLDivElement>('diagram'),
  layers: $<HTMLTableSectionElement>('layers-body'),
};

let source: ModelSource;
let image: Blob | null = null;
let run = 0; // a newer classification makes the answers of older ones stale
const sessions = new Map<string, Promise<ort.InferenceSession>>();

const currentModel = (): ModelListing => source.models.find((m) => m.name === ui.model.value) ?? source.models[0];
const currentMode = (): Mode => (ui.modes.find((r) => r.checked)?.value as Mode) ?? 'browser';
const fmt = (n: number): string => n.toLocaleString('en-US');
const compact = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', kind === 'error');
}

/** One onnxruntime session per model, made on first use from the exported ONNX file. */
function session(name: string): Promise<ort.InferenceSession> {
  let s = sessions.get(name);
  if (!s) {
    s = ort.InferenceSession.create(source.onnxUrl(name), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    s.catch(() => sessions.delete(name)); // let a later try fetch again
    sessions.set(name, s);
  }
  return s;
}

/** The image's pixels as the browser decodes them, without colour management (as PIL reads them). */
async function decodeRgb(blob: Blob): Promise<ReturnType<typeof rgbaToRgb>> {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('no 2D canvas in this browser');
    ctx.drawImage(bitmap, 0, 0);
    return rgbaToRgb(ctx.getImageData(0, 0, bitmap.width, bitmap.height).data, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

async function classifyInBrowser(model: ModelListing, blob: Blob): Promise<Prediction[]> {
  const t = model.transform;
  const [sess, rgb] = await Promise.all([session(model.name), decodeRgb(blob)]);
  const input = new ort.Tensor('float32', preprocess(rgb, t), [1, t.channels, t.cropSize, t.cropSize]);
  const out = await sess.run({ [sess.inputNames[0]]: input });
  const logits = out[sess.outputNames[0]].data as Float32Array;
  return topk(softmax(logits), model.labels, TOPK);
}

async function classifyOnServer(model: ModelListing, blob: Blob): Promise<Prediction[]> {
  if (!source.classify) throw new Error('this is a static build: only in-browser classification is available');
  const r = await source.classify(model.name, blob, TOPK);
  if ('error' in r) throw new Error(`${r.error} (${r.code})`);
  return r.predictions;
}

function showPredictions(preds: Prediction[], mode: Mode, model: ModelListing, seconds: number): void {
  ui.results.replaceChildren(
    ...preds.map((p) => {
      const li = document.createElement('li');
      li.dataset.label = p.label;
      li.dataset.index = String(p.index);
      li.dataset.probability = String(p.probability);
      const pct = `${(p.probability * 100).toFixed(1)}%`;
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = p.label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.setAttribute('aria-hidden', 'true');
      const fill = document.createElement('span');
      fill.style.width = `${Math.max(0.5, p.probability * 100)}%`;
      bar.append(fill);
      const value = document.createElement('span');
      value.className = 'value';
      value.textContent = pct;
      li.append(label, bar, value);
      return li;
    }),
  );
  ui.results.dataset.mode = mode;
  ui.results.dataset.model = model.name;
  ui.results.dataset.state = 'done';
  setStatus(`${model.name}, ${mode === 'server' ? 'on the server' : 'in the browser'}: ${(seconds * 1000).toFixed(0)} ms`);
}

async function classify(): Promise<void> {
  if (!image) return;
  const mine = ++run;
  const model = currentModel(),
    mode = currentMode(),
    blob = image;
  ui.results.dataset.state = 'busy';
  ui.results.setAttribute('aria-busy', 'true');
  setStatus(mode === 'browser' && !sessions.has(model.name) ? `Loading ${model.name} into the browser…` : 'Classifying…');
  const t0 = performance.now();
  try {
    const preds = mode === 'server' ? await classifyOnServer(model, blob) : await classifyInBrowser(model, blob);
    if (mine === run) showPredictions(preds, mode, model, (performance.now() - t0) / 1000);
  } catch (e) {
    if (mine !== run) return;
    ui.results.replaceChildren();
    ui.results.dataset.state = 'error';
    setStatus(`Could not classify: ${e instanceof Error ? e.message : String(e)}`, 'error');
  } finally {
    if (mine === run) ui.results.removeAttribute('aria-busy');
  }
}

function useImage(file: File | undefined): void {
  if (!file) return;
  if (file.type && !file.type.startsWith('image/')) {
    setStatus(`${file.name} is not an image (${file.type})`, 'error');
    return;
  }
  image = file;
  if (ui.preview.src) URL.revokeObjectURL(ui.preview.src);
  ui.preview.src = URL.createObjectURL(file);
  ui.preview.alt = `The image to classify: ${file.name}`;
  ui.preview.hidden = false;
  void classify();
}

function showArchitecture(info: ModelInfo): void {
  ui.archSummary.textContent = `${info.id} — ${info.paper.title} (${info.paper.year}). ${fmt(info.params)} parameters, ${compact(info.macs)}MACs per image of ${shapeText(info.inputSize)}.`;
  ui.diagram.replaceChildren(stageDiagram(info));
  ui.layers.replaceChildren(
    ...info.layers.map((l) => {
      const tr = document.createElement('tr');
      for (const [text, numeric] of [
        [l.name, false],
        [l.type, false],
        [shapeText(l.outputShape), true],
        [fmt(l.params), true],
        [fmt(l.macs), true],
      ] as const) {
        const td = document.createElement('td');
        td.textContent = text;
        if (numeric) td.className = 'num';
        tr.append(td);
      }
      return tr;
    }),
  );
}

async function selectModel(): Promise<void> {
  const model = currentModel();
  const t = model.transform;
  ui.modelNote.textContent = `${model.id} (${model.backend}), ${model.numClasses} classes; input ${t.channels} × ${t.cropSize} × ${t.cropSize} (resize ${t.resizeSize}, ${t.interpolation}).`;
  ui.archSummary.textContent = 'Loading…';
  try {
    const info = await source.info(model.name);
    if (currentModel() === model) showArchitecture(info);
  } catch (e) {
    ui.archSummary.textContent = `Could not load the architecture: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function wire(): void {
  ui.model.addEventListener('change', () => {
    void selectModel();
    void classify();
  });
  for (const r of ui.modes) r.addEventListener('change', () => void classify());
  ui.file.addEventListener('change', () => useImage(ui.file.files?.[0]));
  ui.choose.addEventListener('click', () => ui.file.click());
  ui.drop.addEventListener('click', (e) => {
    if (e.target === ui.drop || e.target === ui.preview) ui.file.click();
  });
  for (const type of ['dragenter', 'dragover'] as const)
    ui.drop.addEventListener(type, (e) => {
      e.preventDefault();
      ui.drop.classList.add('over');
    });
  ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
  ui.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    ui.drop.classList.remove('over');
    useImage(e.dataTransfer?.files[0]);
  });
}

async function main(): Promise<void> {
  try {
    source = await openSource();
  } catch (e) {
    setStatus(`Could not list the models: ${e instanceof Error ? e.message : String(e)}`, 'error');
    return;
  }
  if (source.models.length === 0) {
    setStatus('No models are served.', 'error');
    return;
  }
  ui.model.replaceChildren(...source.models.map((m) => new Option(m.name === m.id ? m.id : `${m.name} (${m.id})`, m.name)));
  const server = ui.modes.find((r) => r.value === 'server')!;
  if (source.kind === 'static') {
    server.disabled = true;
    server.closest('label')?.setAttribute('title', 'a static build has no server: models run in the browser');
    ui.modes.find((r) => r.value === 'browser')!.checked = true;
  }
  wire();
  document.body.dataset.ready = source.kind;
  await selectModel();
}

void main();
