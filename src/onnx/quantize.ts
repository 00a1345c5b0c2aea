// Static post-training int8 quantization of an exported graph, in the QDQ form onnxruntime fuses into
// integer kernels (QLinearConv, QGemm, QLinearAdd, ...): activations uint8 with an asymmetric range
// calibrated on real images, weights int8 symmetric per output channel, biases int32 at the product of
// the input's and the weight's scales.
//
// Calibration runs the convzoo model itself under the tracer: every graph value gets the same name as in
// the exported graph, so the minimum and maximum of each are read straight from libtorch.
import { native, type Handle, type NativeOps } from '../native.js';
import { readFileSync } from 'node:fs';
import { ConvzooError } from '../errors.js';
import { noGrad } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ClassifierModel } from '../models/base.js';
import { attr, type OnnxModel, type OnnxNode, type OnnxTensor } from './ir.js';
import { OP_MAPPINGS } from './op_map.js';
import { traceOps } from './trace.js';

export interface ValueRange {
  min: number;
  max: number;
}

/**
 * Ops whose float inputs and outputs are quantized (onnxruntime has integer kernels for them). Sigmoid and
 * Mul are there for SiLU and squeeze-excitation (QLinearSigmoid, QLinearMul): left in float, each
 * convolution of an EfficientNet pays a DequantizeLinear/QuantizeLinear round trip around them.
 */
const QUANTIZED_OPS = new Set(['Conv', 'Gemm', 'Add', 'Mul', 'Sigmoid', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool']);
/** Quantized only where every value around them has a range (an op the export split in two, as SiLU into Sigmoid and Mul, has none for the value between). */
const WHERE_CALIBRATED_OPS = new Set(['Mul', 'Sigmoid']);
/** Ops whose output takes its input's quantization, so onnxruntime drops the pair around them. */
const SAME_RANGE_OPS = new Set(['MaxPool', 'Reshape', 'Flatten', 'Transpose', 'Squeeze', 'Unsqueeze']);
/** Activations that become the range of the quantized output before them (zero point at the bottom of the range clips like ReLU). */
const REMOVABLE_ACTIVATIONS = new Set(['Relu', 'Clip']);

export interface CalibrationOptions {
  /** The export's batch mode: calibration must trace the same graph structure. */
  batch: number | 'dynamic';
  opset: number;
  /** Called after each batch with the images seen so far. */
  onProgress?: (images: number) => void;
}

/**
 * Minimum and maximum of every graph value over the calibration batches ([N, C, H, W] float32 tensors,
 * preprocessed as the model expects), keyed by the value names exportOnnxModel gives.
 */
export async function calibrateRanges(
  model: ClassifierModel,
  batches: Iterable<Tensor> | AsyncIterable<Tensor>,
  opts: CalibrationOptions,
): Promise<Map<string, ValueRange>> {
  const ranges = new Map<string, ValueRange>();
  const observe = (name: string, h: Handle, real: NativeOps): void => {
    const lo = real.min(h);
    const hi = real.max(h);
    const [min, max] = [Number(real.item(lo)), Number(real.item(hi))];
    native.dispose(lo);
    native.dispose(hi);
    const r = ranges.get(name);
    if (r) {
      r.min = Math.min(r.min, min);
      r.max = Math.max(r.max, max);
    } else {
      ranges.set(name, { min, max });
    }
  };
  const wasTraining = model.training;
  model.eval();
  let images = 0;
  try {
    for await (const x of batches) {
      let y: Tensor | undefined;
      try {
        const n = x.shape[0];
        const traced = noGrad(() =>
          traceOps(
            model,
            x.handle,
            () => {
              y = model.forward(x);
              return y.handle;
            },
            OP_MAPPINGS,
            { opset: opts.opset, dynamicBatch: opts.batch === 'dynamic' ? n : undefined, observe, skipConstantData: true },
          ),
        );
        // The exporter renames the output to 'logits'.
        const out = ranges.get(traced.outputName);
        if (out) ranges.set('logits', out);
        images += n;
      } finally {
        y?.dispose();
      }
      opts.onProgress?.(images);
    }
  } finally {
    model.train(wasTraining);
  }
  if (images === 0) throw new ConvzooError('quantize: the calibration data gave no images', 'E_DATA');
  return ranges;
}

const f32 = Math.fround;

function floatData(t: OnnxTensor): Float32Array {
  if (t.dataType !== 'float32') throw new ConvzooError(`quantize: ${t.name} is ${t.dataType}; int8 export quantizes float32 models`, 'E_UNSUPPORTED');
  return new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength));
}

const bytesOf = (a: Float32Array | Int8Array | Uint8Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** uint8 parameters of a range widened to hold 0 (so zero padding is exact). */
function activationParams(r: ValueRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  if (!(hi > lo) || !Number.isFinite(hi - lo)) return { scale: 1, zeroPoint: 0 };
  const scale = f32((hi - lo) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

export interface QuantizeOptions {
  /**
   * Weight precision: 8 (+-127) or 7 bits (+-63, "reduce range"). On x86 CPUs without VNNI, onnxruntime's
   * uint8 x int8 kernels add pairs of products in 16 bits (vpmaddubsw), which saturate with full-range
   * weights; 7-bit weights cannot. 'auto' (the default) picks 7 on such a CPU, 8 elsewhere: the file is
   * then best run on a machine like the one that made it.
   */
  weightBits?: 7 | 8 | 'auto';
}

/** Whether this CPU has VNNI (x86: avx512_vnni or avx_vnni), null when it cannot be told (not Linux x86). */
export function cpuHasVnni(): boolean | null {
  if (process.arch !== 'x64') return null;
  try {
    const flags =
      readFileSync('/proc/cpuinfo', 'utf8')
        .match(/^flags\s*:(.*)$/m)?.[1]
        .split(/\s+/) ?? [];
    return flags.includes('avx512_vnni') || flags.includes('avx_vnni');
  } catch {
    return null;
  }
}

/** 7 where onnxruntime's uint8 x int8 products may saturate (x86 without VNNI), else 8. */
export function resolveWeightBits(bits: QuantizeOptions['weightBits'] = 'auto'): 7 | 8 {
  if (bits === 7 || bits === 8) return bits;
  if (bits !== 'auto') throw new ConvzooError(`quantize: weightBits must be 7, 8 or 'auto', got ${String(bits)}`, 'E_ARG');
  return cpuHasVnni() === false ? 7 : 8;
}

export interface QuantizeResult {
  model: OnnxModel;
  /** Values that got a QuantizeLinear/DequantizeLinear pair. */
  quantizedValues: number;
  /** Weights stored as int8. */
  quantizedWeights: number;
  /** 8 (+-127) or 7 (+-63): the weights' range. */
  weightBits: 7 | 8;
}

/**
 * Rewrites a float32 graph (from exportOnnxModel, batch norms folded) into QDQ form with the calibrated
 * ranges. The input model is not modified.
 */
export function quantizeOnnxModel(source: OnnxModel, calibrated: Map<string, ValueRange>, opts: QuantizeOptions = {}): QuantizeResult {
  const weightBits = resolveWeightBits(opts.weightBits);
  const qmax = weightBits === 8 ? 127 : 63;
  const model: OnnxModel = structuredClone(source);
  const g = model.graph;
  // A sigmoid's output lies in [0, 1] whatever the input: its range needs no calibration.
  const ranges = new Map(calibrated);
  for (const n of g.nodes) if (n.opType === 'Sigmoid' && !ranges.has(n.outputs[0])) ranges.set(n.outputs[0], { min: 0, max: 1 });
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const outputs = new Set(g.outputs.map((o) => o.name));
  const consumers = (name: string): OnnxNode[] => g.nodes.filter((n) => n.inputs.includes(name));
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);

  // 1. A ReLU (or a clip from 0) after a quantized op goes: that op's output takes the activation's range,
  //    whose zero point at 0 clips negatives exactly as the activation did.
  const removed = new Set<OnnxNode>();
  for (const act of g.nodes) {
    if (!REMOVABLE_ACTIVATIONS.has(act.opType)) continue;
    if (act.opType === 'Clip') {
      const lo = act.inputs[1] ? inits.get(act.inputs[1]) : undefined;
      if (!lo || floatData(lo)[0] !== 0) continue;
      // The calibrated maximum must be below the clip's top, or the clip would be lost.
      const hi = act.inputs[2] ? inits.get(act.inputs[2]) : undefined;
      const r = ranges.get(act.outputs[0]);
      if (!r || (hi && r.max > floatData(hi)[0])) continue;
    }
    const src = producer.get(act.inputs[0]);
    if (!src || !QUANTIZED_OPS.has(src.opType) || SAME_RANGE_OPS.has(src.opType) || outputs.has(act.inputs[0])) continue;
    if (consumers(act.inputs[0]).length !== 1 || !ranges.has(act.outputs[0])) continue;
    src.outputs = src.outputs.map((o) => (o === act.inputs[0] ? act.outputs[0] : o));
    producer.set(act.outputs[0], src);
    removed.add(act);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));

  // 2. The values to quantize: float activations in and out of the quantized ops (not the integer shape
  //    computations a dynamic batch adds: values made from Shape and integer constants only).
  const integerValues = new Set<string>();
  for (const n of g.nodes) {
    const fromIntegers = n.inputs.every((i) => !i || integerValues.has(i) || (inits.get(i)?.dataType ?? 'float32').startsWith('int'));
    if (n.opType === 'Shape' || (fromIntegers && n.inputs.some((i) => integerValues.has(i)))) for (const o of n.outputs) integerValues.add(o);
  }
  const toQuantize = new Set<string>();
  for (const n of g.nodes) {
    if (!QUANTIZED_OPS.has(n.opType) || n.outputs.some((o) => integerValues.has(o))) continue;
    const acts = n.opType === 'Conv' || n.opType === 'Gemm' ? [n.inputs[0]] : n.inputs.filter((i) => i && !inits.has(i));
    if (WHERE_CALIBRATED_OPS.has(n.opType) && ![...acts, ...n.outputs].every((v) => ranges.has(v) || inits.has(v))) continue;
    for (const v of [...acts, ...n.outputs]) if (!inits.has(v) && !outputs.has(v)) toQuantize.add(v);
  }
  // Same-range ops pass their input's parameters on.
  const paramsOf = new Map<string, { scale: number; zeroPoint: number }>();
  for (const v of toQuantize) {
    const r = ranges.get(v);
    if (!r) throw new ConvzooError(`quantize: no calibration range for '${v}' (was the model changed after export?)`, 'E_UNSUPPORTED');
    paramsOf.set(v, activationParams(r));
  }
  for (const n of g.nodes) {
    if (SAME_RANGE_OPS.has(n.opType) && paramsOf.has(n.inputs[0]) && paramsOf.has(n.outputs[0])) paramsOf.set(n.outputs[0], paramsOf.get(n.inputs[0])!);
  }

  // 3. Weights and biases of Conv and Gemm.
  const newInits: OnnxTensor[] = [];
  const newNodes = new Map<OnnxNode, OnnxNode[]>(); // nodes to put before each node
  let quantizedWeights = 0;
  const addInit = (t: OnnxTensor): string => {
    newInits.push(t);
    return t.name;
  };
  // An integer initializer with per-output-channel scales (axis 0, zero points 0) and the node that
  // dequantizes it before `newNodes`' owner; returns the dequantized value's name.
  let before: OnnxNode[] = [];
  const perChannelDequantized = (base: string, dataType: 'int8' | 'int32', dims: number[], raw: Uint8Array, scales: Float32Array, nodeName: string): string => {
    const q = addInit({ name: `${base}_quantized`, dataType, dims, raw });
    const sc = addInit({ name: `${base}_scale`, dataType: 'float32', dims: [scales.length], raw: bytesOf(scales) });
    const zp = addInit({ name: `${base}_zero_point`, dataType, dims: [scales.length], raw: new Uint8Array((dataType === 'int8' ? 1 : 4) * scales.length) });
    const out = `${base}_dequantized`;
    before.push({ opType: 'DequantizeLinear', inputs: [q, sc, zp], outputs: [out], name: nodeName, attributes: { axis: attr.int(0) } });
    return out;
  };
  for (const n of g.nodes) {
    const isConv = n.opType === 'Conv';
    const isGemm = n.opType === 'Gemm' && n.attributes.transB?.type === 'int' && n.attributes.transB.value === 1 && !n.attributes.transA?.value;
    if (!isConv && !isGemm) continue;
    const w = inits.get(n.inputs[1]);
    const xParams = paramsOf.get(n.inputs[0]);
    if (!w || !xParams || w.dataType !== 'float32') continue;
    const wv = floatData(w);
    const channels = w.dims[0];
    const per = wv.length / channels;
    const scales = new Float32Array(channels);
    const q = new Int8Array(wv.length);
    for (let c = 0; c < channels; c++) {
      let m = 0;
      for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(wv[i]));
      scales[c] = m > 0 ? f32(m / qmax) : 1;
      for (let i = c * per; i < (c + 1) * per; i++) q[i] = Math.max(-qmax, Math.min(qmax, Math.round(wv[i] / scales[c])));
    }
    before = [];
    const wdq = perChannelDequantized(w.name, 'int8', w.dims.slice(), bytesOf(q), scales, `${n.name}/weight_DequantizeLinear`);
    const inputs = [n.inputs[0], wdq];
    const b = n.inputs[2] ? inits.get(n.inputs[2]) : undefined;
    if (b && b.dataType === 'float32' && b.dims.length === 1 && b.dims[0] === channels) {
      const bv = floatData(b);
      const bScales = new Float32Array(channels);
      const bq = new Int32Array(channels);
      for (let c = 0; c < channels; c++) {
        bScales[c] = f32(xParams.scale * scales[c]);
        bq[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(bv[c] / bScales[c])));
      }
      const bdq = perChannelDequantized(b.name, 'int32', [channels], bytesOf(bq), bScales, `${n.name}/bias_DequantizeLinear`);
      inputs.push(bdq);
    } else if (n.inputs[2]) {
      inputs.push(n.inputs[2]);
    }
    n.inputs = inputs;
    newNodes.set(n, before);
    quantizedWeights++;
  }

  // 4. A QuantizeLinear/DequantizeLinear pair after each quantized value; its readers take the dequantized one.
  const pairs = new Map<string, OnnxNode[]>(); // value -> the pair, placed after its producer
  const dequantized = new Map<string, string>();
  for (const v of toQuantize) {
    const p = paramsOf.get(v)!;
    const s = addInit({ name: `${v}_scale`, dataType: 'float32', dims: [], raw: bytesOf(new Float32Array([p.scale])) });
    const z = addInit({ name: `${v}_zero_point`, dataType: 'uint8', dims: [], raw: new Uint8Array([p.zeroPoint]) });
    const qv = `${v}_quantized`;
    const dqv = `${v}_dequantized`;
    pairs.set(v, [
      { opType: 'QuantizeLinear', inputs: [v, s, z], outputs: [qv], name: `${v}_QuantizeLinear`, attributes: {} },
      { opType: 'DequantizeLinear', inputs: [qv, s, z], outputs: [dqv], name: `${v}_DequantizeLinear`, attributes: {} },
    ]);
    dequantized.set(v, dqv);
  }
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => dequantized.get(i) ?? i);

  const ordered: OnnxNode[] = [];
  for (const v of g.inputs.map((i) => i.name)) ordered.push(...(pairs.get(v) ?? []));
  for (const n of g.nodes) {
    ordered.push(...(newNodes.get(n) ?? []), n);
    for (const o of n.outputs) ordered.push(...(pairs.get(o) ?? []));
  }
  g.nodes = ordered;
  // Float weights now unused go; the int8 ones stay.
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  g.initializers = [...g.initializers, ...newInits].filter((t) => used.has(t.name));
  model.metadata = { ...model.metadata, 'convzoo.precision': 'int8', 'convzoo.int8_weight_bits': String(weightBits) };
  return { model, quantizedValues: toQuantize.size, quantizedWeights, weightBits };
}
