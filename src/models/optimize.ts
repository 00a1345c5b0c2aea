// The inference fast path (model.optimizeForInference): batch norms folded into the convolutions that
// feed them, weights and activations channels-last (NHWC, the layout oneDNN's convolutions run in without
// reordering), and optionally everything in bfloat16 (AVX512-BF16). The result serves forward/predict only.
import { ConvzooError, check } from '../errors.js';
import { noGrad, tensor } from '../tensor/creation.js';
import { foldBatchNorm } from '../nn/fold_batch_norm.js';
import type { Tensor } from '../tensor/tensor.js';
import { type AnyModule, Parameter } from '../nn/module.js';
import { BatchNorm2d, Conv2d } from '../nn/layers.js';
import { traceToOnnx } from '../onnx/export.js';
import type { ClassifierModel } from './base.js';

export type InferencePrecision = 'float32' | 'bfloat16';

export interface OptimizeForInferenceOptions {
  /** float32 (default) or bfloat16: weights and activations in bf16, logits returned as float32. */
  dtype?: InferencePrecision;
  /** Keep 4-d weights and activations channels-last (default true). */
  channelsLast?: boolean;
  /** Fold each batch norm into the convolution that feeds it (default true). */
  foldBatchNorm?: boolean;
}

/** What optimizeForInference did (it returns this and keeps it as model._inference). */
export interface InferenceOptimization {
  dtype: InferencePrecision;
  channelsLast: boolean;
  /** Batch norms folded into a convolution. */
  foldedBatchNorms: number;
  /** Batch norms left as they are (their input is not a convolution's output alone). */
  batchNorms: number;
}

const FN = 'optimizeForInference';

/**
 * Finds each BatchNorm2d whose input is the output of one Conv2d and nothing else, from a trace of the
 * eval forward (the ONNX tracer names every weight by its state-dict key), and folds it into the conv:
 * W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), computed in float64. The
 * conv gains a bias where it had none (oneDNN adds it inside the convolution) and the batch norm passes
 * its input through, so the state dict no longer matches the architecture's: save weights before.
 */
export function foldBatchNorms(model: ClassifierModel, inputShape: readonly number[]): { folded: number; total: number } {
  const graph = traceToOnnx(model, (x) => model.forward(x), inputShape, { opset: 17, batch: 1, foldBatchNorm: false }).graph;
  const modules = new Map<string, AnyModule>(model.namedModules());
  const consumers = new Map<string, number>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  for (const o of graph.outputs) consumers.set(o.name, (consumers.get(o.name) ?? 0) + 1);
  const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const ownerOf = (key: string | undefined, field: string): AnyModule | undefined =>
    key?.endsWith(`.${field}`) ? modules.get(key.slice(0, -field.length - 1)) : key === field ? modules.get('') : undefined;

  const pairs: [Conv2d, BatchNorm2d][] = [];
  for (const bn of graph.nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const conv = producer.get(bn.inputs[0]);
    if (conv?.opType !== 'Conv' || consumers.get(bn.inputs[0]) !== 1) continue;
    const convModule = ownerOf(conv.inputs[1], 'weight');
    const bnModule = ownerOf(bn.inputs[3], 'running_mean');
    // The weight must be the conv's own parameter (not a standardised or otherwise derived one), used by
    // this node alone (a conv module called twice would be folded for both calls).
    if (!(convModule instanceof Conv2d) || !(bnModule instanceof BatchNorm2d)) continue;
    if (consumers.get(conv.inputs[1]) !== 1 || consumers.get(bn.inputs[3]) !== 1) continue;
    if ((conv.inputs[2] || undefined) !== (convModule.bias ? ownerKey(conv.inputs[1], 'bias') : undefined)) continue;
    pairs.push([convModule, bnModule]);
  }
  noGrad(() => {
    for (const [conv, bn] of pairs) foldInto(conv, bn);
  });
  const total = graph.nodes.filter((n) => n.opType === 'BatchNormalization').length;
  return { folded: pairs.length, total };
}

function ownerKey(weightKey: string, field: string): string {
  return `${weightKey.slice(0, -'weight'.length)}${field}`;
}

function foldInto(conv: Conv2d, bn: BatchNorm2d): void {
  const values = (t: Tensor | null): Float64Array | null => (t ? Float64Array.from(t.data() as ArrayLike<number>) : null);
  const folded = foldBatchNorm({
    weight: values(conv.weight)!,
    bias: values(conv.bias),
    gamma: values(bn.weight),
    beta: values(bn.bias),
    mean: values(bn.running_mean),
    variance: values(bn.running_var),
    eps: bn.eps,
    channels: bn.numFeatures,
  });
  const weight = tensor(folded.weight, conv.weight.shape, { dtype: 'float64' });
  const bias = tensor(folded.bias, [bn.numFeatures], { dtype: 'float64' });
  conv.weight.copy_(weight);
  if (conv.bias) conv.bias.copy_(bias);
  else conv.bias = new Parameter(bias.to(conv.weight.dtype), false);
  bn._folded = true;
  weight.dispose();
  bias.dispose();
}

/** @internal ClassifierModel.optimizeForInference's body. */
export function optimizeModelForInference(model: ClassifierModel, opts: OptimizeForInferenceOptions = {}): InferenceOptimization {
  check(opts !== null && typeof opts === 'object', FN, 'expected options to be an object');
  const known = new Set(['dtype', 'channelsLast', 'foldBatchNorm']);
  for (const k of Object.keys(opts)) check(known.has(k), FN, `unknown option '${k}' (expected ${[...known].join(', ')})`);
  const dtype = opts.dtype ?? 'float32';
  check(dtype === 'float32' || dtype === 'bfloat16', FN, `dtype must be 'float32' or 'bfloat16', got '${String(dtype)}'`);
  const channelsLast = opts.channelsLast ?? true;
  if (model._inference) throw new ConvzooError(`${FN}: this model is already optimized for inference (${describe(model._inference)})`, 'E_UNSUPPORTED', FN);

  model.eval();
  for (const p of model.parameters()) p.requiresGrad = false;
  const size = model.meta?.inputSize ?? [3, 224, 224];
  const { folded, total } = opts.foldBatchNorm === false ? { folded: 0, total: 0 } : foldBatchNorms(model, [inputChannels(model), size[1], size[2]]);
  if (dtype !== 'float32') model.to(dtype);
  if (channelsLast) model.toMemoryFormat('channels_last');
  model._inference = { dtype, channelsLast, foldedBatchNorms: folded, batchNorms: total - folded };
  return model._inference;
}

function inputChannels(model: ClassifierModel): number {
  const built = model._buildOptions?.inChans;
  if (typeof built === 'number') return built;
  const first = model.parameters().find((p) => p.ndim === 4);
  return first ? first.shape[1] : 3;
}

export function describe(o: InferenceOptimization): string {
  return `${o.dtype}${o.channelsLast ? ', channels-last' : ''}, ${o.foldedBatchNorms} batch norms folded`;
}
