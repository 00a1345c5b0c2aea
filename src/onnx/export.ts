// exportOnnx: a model's eval-mode forward as an ONNX file, with the model's metadata in metadata_props.
import { createRequire } from 'node:module';
import { ConvzooError, check } from '../errors.js';
import { fromBytes, noGrad } from '../tensor/creation.js';
import type { ClassifierModel } from '../models/base.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { evalTransformFor } from '../vision/preprocess.js';
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';
import { OP_MAPPINGS } from './op_map.js';
import { traceOps } from './trace.js';
import { writeOnnx, encodeOnnx } from './serialize.js';
import { foldBatchNorm } from '../nn/fold_batch_norm.js';
import { calibrateRanges, quantizeOnnxModel, type QuantizeOptions } from './quantize.js';

const { version: CONVZOO_VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Opsets the exporter writes (ONNX's checker in Debian 12 knows up to 17). */
export const ONNX_OPSETS = { min: 13, max: 18, default: 17 } as const;

export interface ExportOnnxOptions {
  /** Input size: n (n x n), [H, W] or [C, H, W] (default: the crop the weights are evaluated at). */
  inputSize?: number | readonly number[];
  /** A fixed batch size (default 1), or 'dynamic' for a symbolic batch dimension. */
  batch?: number | 'dynamic';
  /** ONNX opset, 13 to 18 (default 17). */
  opset?: number;
  /** Fold each batch norm into the convolution before it (default true). */
  foldBatchNorm?: boolean;
  /** Extra metadata_props entries (keys must not start with 'convzoo.'). */
  metadata?: Record<string, string>;
}

export interface Int8ExportOptions {
  /**
   * Calibration images: batches of [N, C, H, W] float32 tensors preprocessed as the model expects (a few
   * hundred images of the training data). Each batch is disposed by the caller.
   */
  calibration: Iterable<Tensor> | AsyncIterable<Tensor>;
  /** Called after each calibration batch with the images seen so far. */
  onProgress?: (images: number) => void;
  /** 8- or 7-bit weights; 'auto' (default): 7 on an x86 CPU without VNNI, where 8 would saturate (see QuantizeOptions). */
  weightBits?: QuantizeOptions['weightBits'];
}

export interface ExportOnnxFileOptions extends ExportOnnxOptions {
  /**
   * Static int8 quantization: activation ranges calibrated on these images, per-channel symmetric int8
   * weights, QuantizeLinear/DequantizeLinear pairs that onnxruntime runs as integer convolutions.
   */
  int8?: Int8ExportOptions;
  /** Weights in a separate `<file>.data` (default 'auto': only when the file would pass protobuf's 2 GB limit). */
  externalData?: boolean | 'auto';
}

export interface ExportOnnxResult {
  path: string;
  bytes: number;
  externalDataPath?: string;
  nodes: number;
  opset: number;
  inputShape: (number | string)[];
  outputShape: (number | string)[];
}

/** Input channels: the first convolution's, read from its weight (a 1-channel Fashion-MNIST run has 1). */
function inputChannels(model: ClassifierModel): number {
  const first = model.meta?.firstConv;
  if (first) {
    for (const [k, p] of model.namedParameters()) if (k === `${first}.weight`) return p.shape[1];
  }
  for (const p of model.parameters()) if (p.ndim === 4) return p.shape[1];
  return 3;
}

function checkRange(value: unknown, fn: string, name: string, min: number, max: number): asserts value is number {
  check(
    Number.isInteger(value) && (value as number) >= min && (value as number) <= max,
    fn,
    `expected ${name} to be an integer from ${min} to ${max}, got ${String(value)}`,
  );
}

function resolveInputSize(model: ClassifierModel, size: ExportOnnxOptions['inputSize']): [number, number, number] {
  const fn = 'exportOnnx';
  const chans = inputChannels(model);
  // The weights' own evaluation crop (a Fashion-MNIST checkpoint's 28, efficientnet_b3's 300).
  if (size === undefined) {
    const crop = evalTransformFor(model, chans).cropSize;
    return [chans, crop, crop];
  }
  const list = typeof size === 'number' ? [size, size] : [...size];
  check(list.length >= 1 && list.length <= 3, fn, `expected inputSize to be n, [H, W] or [C, H, W], got ${JSON.stringify(size)}`);
  list.forEach((v, i) => checkRange(v, fn, `inputSize[${i}]`, 1, 16384));
  if (list.length === 1) return [chans, list[0], list[0]];
  if (list.length === 2) return [chans, list[0], list[1]];
  check(list[0] === chans, fn, `inputSize has ${list[0]} channels but the model takes ${chans}`);
  return [list[0], list[1], list[2]];
}

/** A deterministic, non-constant trace input: the trace must not touch the user's random state. */
function traceInput(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.731 + 0.3);
  return data;
}

/** Removes nodes that do not lead to the output and initializers no node uses. */
function pruneDeadNodes(model: OnnxModel): void {
  const g = model.graph;
  const needed = new Set(g.outputs.map((o) => o.name));
  const kept: OnnxNode[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const node = g.nodes[i];
    if (!node.outputs.some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const inp of node.inputs) if (inp) needed.add(inp);
  }
  g.nodes = kept.reverse();
  g.initializers = g.initializers.filter((t) => needed.has(t.name));
}

function floatValues(t: OnnxTensor): Float64Array {
  const { raw } = t;
  if (t.dataType === 'float32') return Float64Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
  if (t.dataType === 'float64') return new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  throw new ConvzooError(`exportOnnx: internal: ${t.name} is not a float tensor`, 'E_UNSUPPORTED');
}

function floatTensorLike(like: OnnxTensor, name: string, values: Float64Array, dims: number[]): OnnxTensor {
  const typed = like.dataType === 'float64' ? values : Float32Array.from(values);
  return { name, dataType: like.dataType, dims, raw: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) };
}

/** For each value: how many node inputs and graph outputs read it, and the node that makes it. */
function valueUses(g: OnnxModel['graph']): { consumers: Map<string, number>; producer: Map<string, OnnxNode> } {
  const consumers = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  for (const o of g.outputs) consumers.set(o.name, (consumers.get(o.name) ?? 0) + 1);
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  return { consumers, producer };
}

/**
 * Folds BatchNormalization into the Conv that feeds it (when the conv's output goes nowhere else):
 * W' = W * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * gamma / sqrt(var + eps) + beta,
 * computed in float64.
 */
function foldBatchNorms(model: OnnxModel): number {
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const { consumers, producer } = valueUses(g);
  const removed = new Set<OnnxNode>();
  let folded = 0;
  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const conv = producer.get(bn.inputs[0]);
    if (conv?.opType !== 'Conv' || consumers.get(bn.inputs[0]) !== 1) continue;
    const [w, b] = [inits.get(conv.inputs[1]), conv.inputs[2] ? inits.get(conv.inputs[2]) : undefined];
    const [gamma, beta, mean, variance] = bn.inputs.slice(1).map((n) => inits.get(n));
    if (!w || (conv.inputs[2] && !b) || !gamma || !beta || !mean || !variance) continue;
    const eps = bn.attributes.epsilon?.type === 'float' ? bn.attributes.epsilon.value : 1e-5;
    const [gv, bv, mv, vv] = [gamma, beta, mean, variance].map(floatValues);
    const out = w.dims[0];
    const { weight: fw, bias: fb } = foldBatchNorm({
      weight: floatValues(w),
      bias: b ? floatValues(b) : null,
      gamma: gv,
      beta: bv,
      mean: mv,
      variance: vv,
      eps,
      channels: out,
    });
    const wName = `${w.name}_bn_folded`;
    const bName = `${bn.name}_folded_bias`;
    g.initializers.push(floatTensorLike(w, wName, fw, w.dims), floatTensorLike(w, bName, fb, [out]));
    inits.set(wName, g.initializers[g.initializers.length - 2]);
    conv.inputs = [conv.inputs[0], wName, bName];
    conv.outputs = [bn.outputs[0]];
    producer.set(bn.outputs[0], conv);
    removed.add(bn);
    folded++;
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  return folded;
}

/**
 * Concat(a, Concat(b, c)) on one axis becomes Concat(a, b, c) when the inner result goes nowhere else:
 * one copy of the data instead of two. DPN's dense path makes these at each stage (torch.onnx.export
 * flattens them too); onnxruntime does not.
 */
function flattenNestedConcats(model: OnnxModel): number {
  const g = model.graph;
  const { consumers, producer } = valueUses(g);
  const axis = (n: OnnxNode): number | undefined => (n.attributes.axis?.type === 'int' ? n.attributes.axis.value : undefined);
  const removed = new Set<OnnxNode>();
  for (const node of g.nodes) {
    if (node.opType !== 'Concat') continue;
    // Nodes are in topological order, so an inner Concat has already taken in its own inner ones.
    node.inputs = node.inputs.flatMap((i) => {
      const inner = producer.get(i);
      if (inner?.opType !== 'Concat' || axis(inner) !== axis(node) || consumers.get(i) !== 1) return [i];
      removed.add(inner);
      return inner.inputs;
    });
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  return removed.size;
}

/** Renames a value everywhere (the graph's output becomes 'logits'). */
function renameValue(model: OnnxModel, from: string, to: string): void {
  for (const n of model.graph.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    n.outputs = n.outputs.map((o) => (o === from ? to : o));
  }
}

interface TraceSpec {
  opset: number;
  /** The batch the trace runs at, or 'dynamic' (traced at 2, written as a symbolic 'batch'). */
  batch: number | 'dynamic';
  foldBatchNorm: boolean;
}

/**
 * @internal Traces `forward` on a deterministic input of `inputShape` (without the batch) into an ONNX
 * model with input 'input' and output 'logits'. `owner` names parameters and nodes. The op mapping tests
 * use it directly; exportOnnxModel adds the model's metadata.
 */
export function traceToOnnx(owner: Module<unknown, unknown>, forward: (x: Tensor) => Tensor, inputShape: readonly number[], spec: TraceSpec): OnnxModel {
  // A dynamic batch is traced at 2, so a reshape that keeps the batch is told apart from one that keeps a 1.
  const traceBatch = spec.batch === 'dynamic' ? 2 : spec.batch;
  const shape = [traceBatch, ...inputShape];
  const x = fromBytes(traceInput(shape), shape, 'float32');
  let y: Tensor | undefined;
  let traced: ReturnType<typeof traceOps>;
  try {
    traced = noGrad(() =>
      traceOps(
        owner,
        x.handle,
        () => {
          y = forward(x);
          return y.handle;
        },
        OP_MAPPINGS,
        { opset: spec.opset, dynamicBatch: spec.batch === 'dynamic' ? traceBatch : undefined },
      ),
    );
  } catch (e) {
    y?.dispose();
    throw e;
  } finally {
    x.dispose();
  }
  const outShape = y!.shape;
  y!.dispose();
  const { builder } = traced;
  const dim0 = (n: number): number | string => (spec.batch === 'dynamic' ? 'batch' : n);
  const onnx: OnnxModel = {
    irVersion: 8,
    opsetImports: [{ domain: '', version: spec.opset }],
    producerName: 'convzoo',
    producerVersion: CONVZOO_VERSION,
    graph: {
      name: 'model',
      nodes: builder.nodes,
      initializers: [...builder.initializers.values()],
      inputs: [{ name: traced.inputName, dataType: 'float32', shape: [dim0(traceBatch), ...inputShape] }],
      outputs: [{ name: 'logits', dataType: 'float32', shape: [dim0(outShape[0]), ...outShape.slice(1)] }],
    },
    metadata: {},
  };
  renameValue(onnx, traced.outputName, 'logits');
  if (spec.foldBatchNorm) foldBatchNorms(onnx);
  flattenNestedConcats(onnx);
  pruneDeadNodes(onnx);
  return onnx;
}

/**
 * Traces `model` (in eval mode, without gradients) into an in-memory ONNX model. The model's
 * training mode is restored afterwards.
 */
export function exportOnnxModel(model: ClassifierModel, opts: ExportOnnxOptions = {}): OnnxModel {
  const fn = 'exportOnnx';
  check(opts !== null && typeof opts === 'object', fn, 'expected options to be an object');
  const opset = opts.opset ?? ONNX_OPSETS.default;
  checkRange(opset, fn, 'opset', ONNX_OPSETS.min, ONNX_OPSETS.max);
  const batch = opts.batch ?? 1;
  if (batch !== 'dynamic') checkRange(batch, fn, 'batch', 1, 4096);
  for (const k of Object.keys(opts.metadata ?? {})) {
    check(!k.startsWith('convzoo.'), fn, `metadata key '${k}' is reserved (convzoo.* keys are written by the exporter)`);
    check(typeof opts.metadata?.[k] === 'string', fn, `metadata '${k}' must be a string`);
  }
  const [c, h, w] = resolveInputSize(model, opts.inputSize);
  const wasTraining = model.training;
  model.eval();
  let onnx: OnnxModel;
  try {
    onnx = traceToOnnx(model, (x) => model.forward(x), [c, h, w], { opset, batch, foldBatchNorm: opts.foldBatchNorm ?? true });
  } finally {
    model.train(wasTraining);
  }
  const meta = model.meta;
  const transform = evalTransformFor(model);
  const metadata: Record<string, string> = {
    'convzoo.version': CONVZOO_VERSION,
    'convzoo.id': meta?.id ?? model.constructor.name,
    'convzoo.input_size': JSON.stringify([c, h, w]),
    'convzoo.num_classes': String(model.numClasses),
    'convzoo.mean': JSON.stringify(transform.mean),
    'convzoo.std': JSON.stringify(transform.std),
    'convzoo.transform': JSON.stringify(transform),
  };
  if (model._weightsTag) metadata['convzoo.weights'] = model._weightsTag;
  if (model.classes) metadata['convzoo.labels'] = JSON.stringify(model.classes);
  if (meta?.paper) metadata['convzoo.paper'] = `${meta.paper.title} (${meta.paper.year})`;
  Object.assign(metadata, opts.metadata ?? {});
  onnx.metadata = metadata;
  onnx.graph.name = meta?.id ?? 'model';
  if (meta) onnx.docString = `${meta.id}: ${meta.paper.title} (${meta.paper.year})`;
  return onnx;
}

/** The exported model as ONNX bytes (weights inside the file). */
export function exportOnnxBytes(model: ClassifierModel, opts: ExportOnnxOptions = {}): Uint8Array {
  return encodeOnnx(exportOnnxModel(model, opts)).model;
}

/**
 * Writes `model` to `path` as ONNX: its eval-mode forward (dropout and drop path gone, batch norms folded
 * into convolutions), with id, labels, preprocessing, input size and weights tag in metadata_props.
 *
 * ```ts
 * const model = await cz.createModel('resnet18', { weights: 'DEFAULT' });
 * await cz.exportOnnx(model, 'resnet18.onnx', { batch: 'dynamic' });
 * ```
 */
export async function exportOnnx(model: ClassifierModel, path: string, opts: ExportOnnxFileOptions = {}): Promise<ExportOnnxResult> {
  check(typeof path === 'string' && path.length > 0, 'exportOnnx', 'expected path to be a non-empty string');
  let onnx = exportOnnxModel(model, opts);
  if (opts.int8) {
    check(opts.int8.calibration !== null && typeof opts.int8.calibration === 'object', 'exportOnnx', 'int8.calibration must be an iterable of image batches');
    const ranges = await calibrateRanges(model, opts.int8.calibration, {
      batch: opts.batch ?? 1,
      opset: onnx.opsetImports[0].version,
      onProgress: opts.int8.onProgress,
    });
    onnx = quantizeOnnxModel(onnx, ranges, { weightBits: opts.int8.weightBits }).model;
  }
  const written = await writeOnnx(path, onnx, { externalData: opts.externalData ?? 'auto' });
  return {
    path: written.path,
    bytes: written.bytes,
    externalDataPath: written.externalDataPath,
    nodes: onnx.graph.nodes.length,
    opset: onnx.opsetImports[0].version,
    inputShape: onnx.graph.inputs[0].shape,
    outputShape: onnx.graph.outputs[0].shape,
  };
}
