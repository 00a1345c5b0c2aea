// A model as the server holds it: the libtorch model on the main thread (its metadata, preprocessing,
// layer table and ONNX export) and an inference engine off the event loop that runs the batches: a
// ModelWorker (libtorch on a worker thread) or an OnnxInferenceModel (onnxruntime on a worker thread).
import { ConvzooError } from '../errors.js';
import { createModel, loadModel, getModelEntry } from '../models/index.js'; // the index registers every family
import type { ClassifierModel } from '../models/base.js';
import { fromBytes } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { modelInfo, modelListing, type ModelInfo, type ModelListing } from './describe.js';
import { exportOnnxBytes } from '../onnx/export.js';
import { OnnxInferenceModel } from '../onnx/runtime.js';
import { ModelWorker } from '../worker/model_worker.js';
import { evalTransformFor, imagenetCategories, type EvalTransform } from '../vision/preprocess.js';
import type { ServedModelSpec } from './options.js';

/** One row of the page's stage diagram: a top-level child of the model, its layers summed. */
interface Engine {
  forward(x: Tensor): Promise<Tensor>;
  /** The model as ONNX, made off the event loop (or once, before serving starts). */
  exportOnnx(): Promise<Uint8Array>;
  close(): Promise<void>;
}

export class ServedModel {
  readonly name: string;
  readonly id: string;
  readonly backend: 'libtorch' | 'onnxruntime';
  readonly model: ClassifierModel;
  readonly transform: EvalTransform;
  readonly labels: string[];
  private readonly engine: Engine;
  /** The caller's model (given in the spec): not disposed by close(). */
  private readonly borrowed: boolean;
  private onnxBytes?: Promise<Uint8Array>;
  private cachedInfo?: ModelInfo;

  private constructor(spec: ServedModelSpec, model: ClassifierModel, engine: Engine, borrowed: boolean) {
    this.name = spec.name;
    this.backend = spec.backend ?? 'libtorch';
    this.model = model;
    this.id = model.meta!.id;
    this.engine = engine;
    this.borrowed = borrowed;
    this.transform = evalTransformFor(model);
    const n = model.numClasses;
    this.labels = model.classes ?? (n === 1000 ? imagenetCategories() : Array.from({ length: n }, (_, i) => `class ${i}`));
  }

  /** Builds the model from its spec and starts its engine (weights load in the main thread and the worker). */
  static async load(spec: ServedModelSpec, threads?: number): Promise<ServedModel> {
    const borrowed = spec.model !== undefined;
    let model: ClassifierModel;
    if (spec.model) model = spec.model;
    else if (spec.checkpoint) model = await loadModel(spec.checkpoint);
    else model = await createModel(spec.id!, spec.weights ? { weights: spec.weights } : {});
    try {
      if (spec.id && model.meta && spec.id !== model.meta.id && !spec.model) {
        // loadModel resolves aliases: compare registered ids.
        const wanted = getModelEntry(spec.id).meta.id;
        if (wanted !== model.meta.id) throw new ConvzooError(`serve: ${spec.checkpoint} holds ${model.meta.id}, not ${spec.id}`, 'E_ARG');
      }
      if (!model.meta) throw new ConvzooError(`serve: model '${spec.name}' has no registry entry (build it with createModel)`, 'E_ARG');
      model.eval();
      let engine: Engine;
      if (spec.backend === 'onnxruntime') {
        // Exported once, before serving starts: onnxruntime runs it, and model.onnx serves it.
        const transform = evalTransformFor(model);
        const bytes = exportOnnxBytes(model, { batch: 'dynamic', inputSize: transform.cropSize });
        const onnx = await OnnxInferenceModel.fromFile(bytes.slice(), { threads, id: model.meta.id, labels: model.classes, transform });
        engine = { forward: (x) => onnx.forward(x), exportOnnx: async () => bytes, close: () => onnx.dispose() };
      } else {
        // A weights file or checkpoint loads again in the worker; otherwise the worker copies this model's state.
        const source = spec.checkpoint ?? spec.weights;
        const optimize = spec.optimize;
        const worker = source
          ? await ModelWorker.create(model.meta.id, { weights: source, threads, optimize })
          : await ModelWorker.create(model.meta.id, { ...model._buildOptions, numClasses: model.numClasses, threads, optimize }, model);
        const exportOpts = { batch: 'dynamic' as const, inputSize: evalTransformFor(model).cropSize };
        let exported: Promise<Uint8Array> | undefined;
        engine = {
          forward: (x) => worker.forward(x),
          // The worker's model is exported where it is float32 eager; a fast-path one (bf16, folded) from this
          // thread's copy, once.
          exportOnnx: () => (optimize ? (exported ??= Promise.resolve().then(() => exportOnnxBytes(model, exportOpts))) : worker.exportOnnx(exportOpts)),
          close: () => worker.close(),
        };
      }
      const served = new ServedModel(spec, model, engine, borrowed);
      served.info(); // the layer table runs a forward here, before serving, not on a request's event loop
      return served;
    } catch (e) {
      if (!borrowed) model.dispose();
      throw e;
    }
  }

  /** [C, H, W] of one input. */
  get inputSize(): [number, number, number] {
    const t = this.transform;
    return [t.channels, t.cropSize, t.cropSize];
  }

  get numClasses(): number {
    return this.model.numClasses;
  }

  /** Logits of `n` images (flat NCHW), flat [n, numClasses], computed off the event loop. */
  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const x = fromBytes(input, [n, ...this.inputSize], 'float32');
    let logits: Tensor;
    try {
      logits = await this.engine.forward(x);
    } finally {
      x.dispose();
    }
    try {
      return new Float32Array(logits.contiguous().data() as Float32Array);
    } finally {
      logits.dispose();
    }
  }

  /** One batch of zeros of every size from maxBatch down to 1, through the engine (see ServeOptions.warmup). */
  async warmUp(maxBatch: number): Promise<void> {
    const image = this.inputSize.reduce((a, b) => a * b, 1);
    for (let n = maxBatch; n >= 1; n--) await this.run(new Float32Array(n * image), n);
  }

  /** The model as ONNX (dynamic batch, at the weights' crop), exported off the event loop on first use and kept. */
  onnx(): Promise<Uint8Array> {
    this.onnxBytes ??= this.engine.exportOnnx();
    return this.onnxBytes;
  }

  /** GET /v1/models/{name}/info: the layer table of `convzoo info` and the stages (made once). */
  info(): ModelInfo {
    this.cachedInfo ??= modelInfo(this.name, this.model);
    return this.cachedInfo;
  }

  /** This model's entry of GET /v1/models. */
  listing(): ModelListing {
    return modelListing(this.name, this.model, this.backend);
  }

  /** Ends the engine's worker and frees the model (unless it was the caller's). */
  async close(): Promise<void> {
    try {
      await this.engine.close();
    } finally {
      if (!this.borrowed) this.model.dispose();
    }
  }
}
