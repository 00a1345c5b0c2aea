// How each libtorch op of the native table becomes ONNX nodes (opset 13-18). One entry per op name of
// src/native_ops.ts; an op that is missing here fails the export with its name when a graph value
// reaches it. Arguments are positional, as in native_ops.ts.
import { ConvzooError } from '../errors.js';
import type { Handle } from '../native.js';
import { attr, ONNX_DATA_TYPE, type OnnxDataType } from './ir.js';
import type { GraphBuilder, OpMapping } from './trace.js';

const isScalar = (v: unknown): v is number | boolean => typeof v === 'number' || typeof v === 'boolean';

function unsupported(op: string, why: string): never {
  throw new ConvzooError(`exportOnnx: ${op}: ${why}`, 'E_UNSUPPORTED');
}

/** A tensor or scalar operand of an elementwise op (scalars take the other operand's dtype). */
function operand(g: GraphBuilder, v: unknown, like: string): string {
  if (isScalar(v)) return g.scalar(Number(v), g.dtypeOf(like));
  return g.input(v);
}

const normDim = (d: number, rank: number): number => (d < 0 ? d + rank : d);

function unary(opType: string): OpMapping {
  return (g, a) => g.node(opType, [g.input(a[0])])[0];
}

function binary(opType: string): OpMapping {
  return (g, a) => {
    const x = g.input(a[0]);
    return g.node(opType, [x, operand(g, a[1], x)])[0];
  };
}

function clip(g: GraphBuilder, x: string, min: unknown, max: unknown): string {
  const dtype = g.dtypeOf(x);
  const lo = min === undefined || min === null ? '' : g.scalar(Number(min), dtype);
  const hi = max === undefined || max === null ? '' : g.scalar(Number(max), dtype);
  return g.node('Clip', [x, lo, hi])[0];
}

/** Reduce* over axes: an attribute before opset 18, an input from 18 (ReduceSum: an input from 13). */
function reduce(g: GraphBuilder, opType: string, x: string, axes: number[] | undefined, keepdim: boolean): string {
  const rank = g.shapeOf(x).length;
  const all = axes === undefined || axes.length === 0;
  const list = all ? [] : axes.map((d) => normDim(d, rank));
  const keep = attr.int(keepdim ? 1 : 0);
  if (opType === 'ReduceSum' || g.opset >= 18) {
    return g.node(opType, all ? [x] : [x, g.ints(list)], { keepdims: keep })[0];
  }
  return g.node(opType, [x], all ? { keepdims: keep } : { axes: attr.ints(list), keepdims: keep })[0];
}

/**
 * A Reshape target that follows the batch when it is dynamic: the first dimension is inferred (-1) from
 * the element count, which is right whether or not that count grows with the batch ([2B*25, 4] ->
 * [B, 5, 5, 4] as well as [B, C] -> [B, g, C/g]); where the target already infers another dimension, a
 * first dimension equal to the input's batch is copied (0).
 */
function reshapeTarget(g: GraphBuilder, x: string, shape: number[]): number[] {
  const batch = g.options.dynamicBatch;
  const s = shape.slice();
  if (batch === undefined || s.length === 0) return s;
  if (!s.includes(-1)) s[0] = -1;
  else if (s[0] === batch && g.shapeOf(x)[0] === batch) s[0] = 0;
  return s;
}

/** The full output shape [N, ...tail] as an int64 value, N read from x when the batch is dynamic. */
function batchShape(g: GraphBuilder, x: string, rest: number[], keep: number): string {
  const batch = g.options.dynamicBatch;
  const shape = g.shapeOf(x);
  if (batch === undefined) return g.ints([...shape.slice(0, keep), ...rest]);
  const sh = g.node('Shape', [x])[0];
  const head = g.node('Slice', [sh, g.ints([0]), g.ints([keep])])[0];
  return g.node('Concat', [head, g.ints(rest)], { axis: attr.int(0) })[0];
}

/** Pads for ONNX from per-dimension [begin, end] pairs of the spatial dims. */
const onnxPads = (begins: number[], ends: number[]): number[] => [...begins, ...ends];

/**
 * Output sizes as PyTorch computes them for pooling: with ceil mode, a last window that would start in the
 * right padding is dropped. Returns the extra end padding that gives the same size in floor mode.
 */
function ceilExtraPad(inSize: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = inSize + 2 * p - d * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= inSize + p) out--;
  const floorOut = Math.floor(span / s) + 1;
  return out > floorOut ? (out - 1) * s + d * (k - 1) + 1 - (inSize + 2 * p) : 0;
}

const maxPool2d: OpMapping = (g, a) => {
  const x = g.input(a[0]);
  const [k, s, p, d] = [a[1], a[2], a[3], a[4]] as number[][];
  const ceil = a[5] as boolean;
  const [, , h, w] = g.shapeOf(x);
  const extra = [ceilExtraPad(h, k[0], s[0], p[0], d[0], ceil), ceilExtraPad(w, k[1], s[1], p[1], d[1], ceil)];
  // MaxPool ignores padded positions, so ceil mode is exact as extra end padding.
  return g.node('MaxPool', [x], {
    kernel_shape: attr.ints(k),
    strides: attr.ints(s),
    pads: attr.ints(onnxPads(p, [p[0] + extra[0], p[1] + extra[1]])),
    dilations: attr.ints(d),
  })[0];
};

/**
 * PyTorch's average pooling divides by the window clipped to the padded input (count_include_pad) or to
 * the input (not): explicit zero padding followed by an unpadded AveragePool that counts only real
 * elements gives the first exactly, padding inside AveragePool the second. Ceil mode becomes extra end
 * padding that is never counted.
 */
function avgPool(g: GraphBuilder, a: unknown[], spatial: number): string {
  let x = g.input(a[0]);
  const [k, s, p] = [a[1], a[2], a[3]] as number[][];
  const ceil = a[4] as boolean;
  const countIncludePad = a[5] as boolean;
  const divisor = a[6] as number | undefined;
  const shape = g.shapeOf(x);
  const sizes = shape.slice(shape.length - spatial);
  const extra = sizes.map((n, i) => ceilExtraPad(n, k[i], s[i], p[i], 1, ceil));
  if (divisor !== undefined && divisor !== null) {
    const full = p.every((v) => v === 0) && extra.every((v) => v === 0);
    if (!full) unsupported('avg_pool', 'divisor_override with padding or ceil mode has no ONNX form');
  }
  let begins = p.slice();
  let ends = p.map((v, i) => v + extra[i]);
  if (countIncludePad && p.some((v) => v > 0)) {
    const rank = shape.length;
    const padBegins = [...Array(rank - spatial).fill(0), ...p];
    x = g.node('Pad', [x, g.ints([...padBegins, ...padBegins])], { mode: attr.string('constant') })[0];
    begins = p.map(() => 0);
    ends = extra.slice();
  }
  let y = g.node('AveragePool', [x], {
    kernel_shape: attr.ints(k),
    strides: attr.ints(s),
    pads: attr.ints(onnxPads(begins, ends)),
    count_include_pad: attr.int(0),
  })[0];
  if (divisor !== undefined && divisor !== null) {
    const window = k.reduce((m, v) => m * v, 1);
    y = g.node('Mul', [y, g.scalar(window / divisor, g.dtypeOf(x))])[0];
  }
  return y;
}

function adaptiveAvgPool(g: GraphBuilder, a: unknown[]): string {
  const x = g.input(a[0]);
  const size = a[1] as number[];
  const [, , h, w] = g.shapeOf(x);
  if (size[0] === 1 && size[1] === 1) return g.node('GlobalAveragePool', [x])[0];
  if (h % size[0] === 0 && w % size[1] === 0) {
    const k = [h / size[0], w / size[1]];
    return g.node('AveragePool', [x], { kernel_shape: attr.ints(k), strides: attr.ints(k) })[0];
  }
  // A larger output whose size the input divides: every window is one input pixel, repeated (VGG's
  // 7x7 pool on a small input) -- nearest-neighbour resizing picks the same pixels.
  if (size[0] % h === 0 && size[1] % w === 0) return resize(g, x, size, 'nearest', false);
  return unsupported('adaptive_avg_pool2d', `output ${size.join('x')} from ${h}x${w} has uneven windows (export at an input size that divides evenly)`);
}

function conv(g: GraphBuilder, a: unknown[], spatial: number): string {
  const x = g.input(a[0]);
  const wName = g.input(a[1]);
  const b = g.input(a[2]);
  const stride = a[3] as number[];
  const padding = a[4] as number[] | 'same' | 'valid';
  const dilation = a[5] as number[];
  const groups = a[6] as number;
  const kernel = g.shapeOf(wName).slice(2);
  let begins: number[];
  let ends: number[];
  if (padding === 'valid') {
    begins = kernel.map(() => 0);
    ends = begins.slice();
  } else if (padding === 'same') {
    // PyTorch puts the odd pixel of 'same' padding at the end.
    const total = kernel.map((k, i) => dilation[i] * (k - 1));
    begins = total.map((t) => Math.floor(t / 2));
    ends = total.map((t, i) => t - begins[i]);
  } else {
    begins = padding.slice(0, spatial);
    ends = begins.slice();
  }
  return g.node('Conv', [x, wName, b], {
    kernel_shape: attr.ints(kernel),
    strides: attr.ints(stride),
    pads: attr.ints(onnxPads(begins, ends)),
    dilations: attr.ints(dilation),
    group: attr.int(groups),
  })[0];
}

function linear(g: GraphBuilder, a: unknown[]): string {
  const x = g.input(a[0]);
  const w = g.input(a[1]);
  const b = g.input(a[2]);
  if (g.shapeOf(x).length === 2) return g.node('Gemm', [x, w, b], { transB: attr.int(1) })[0];
  const wt = g.node('Transpose', [w], { perm: attr.ints([1, 0]) })[0];
  const y = g.node('MatMul', [x, wt])[0];
  return b ? g.node('Add', [y, b])[0] : y;
}

function batchNorm(g: GraphBuilder, a: unknown[]): string {
  if (a[5]) unsupported('batch_norm', 'batch statistics (training mode) cannot be exported; call model.eval()');
  const x = g.input(a[0]);
  const channels = g.shapeOf(x)[1];
  const dtype = g.dtypeOf(x);
  const fill = (v: number): string => {
    const data = dtype === 'float64' ? new Float64Array(channels).fill(v) : new Float32Array(channels).fill(v);
    return g.floatTensor('const_bn', data, [channels]);
  };
  const mean = a[3] ? g.input(a[3]) : fill(0);
  const variance = a[4] ? g.input(a[4]) : fill(1);
  const scale = a[1] ? g.input(a[1]) : fill(1);
  const shift = a[2] ? g.input(a[2]) : fill(0);
  return g.node('BatchNormalization', [x, scale, shift, mean, variance], { epsilon: attr.float(a[7] as number) })[0];
}

function mean(g: GraphBuilder, a: unknown[]): string {
  const x = g.input(a[0]);
  const rank = g.shapeOf(x).length;
  const dims = ((a[1] as number[] | undefined) ?? []).map((d) => normDim(d, rank)).sort();
  const keepdim = Boolean(a[2]);
  // The global average pool of a feature map: ONNX's own op, which runtimes implement fastest.
  if (rank === 4 && dims.length === 2 && dims[0] === 2 && dims[1] === 3) {
    const pooled = g.node('GlobalAveragePool', [x])[0];
    return keepdim ? pooled : g.node('Flatten', [pooled], { axis: attr.int(1) })[0];
  }
  return reduce(g, 'ReduceMean', x, dims, keepdim);
}

/** Slice of one dimension (narrow, slice, select). */
function sliceDim(g: GraphBuilder, x: string, dim: number, start: number, end: number, step = 1): string {
  return g.node('Slice', [x, g.ints([start]), g.ints([end]), g.ints([dim]), g.ints([step])])[0];
}

function splitOutputs(g: GraphBuilder, a: unknown[], out: Handle | Handle[], dim: number): string[] {
  const x = g.input(a[0]);
  const outs = out as Handle[];
  const d = normDim(dim, g.shapeOf(x).length);
  const sizes = outs.map((h) => g.real.shape(h)[d]);
  if (g.opset >= 13) return g.node('Split', [x, g.ints(sizes)], { axis: attr.int(d) }, outs.length);
  return g.node('Split', [x], { axis: attr.int(d), split: attr.ints(sizes) }, outs.length);
}

/**
 * Resize as PyTorch's upsampling computes it. Given a scale factor, PyTorch maps coordinates with it (not
 * with the size ratio), as ONNX does with its scales input; given only a size, both use the size ratio.
 */
function resize(g: GraphBuilder, x: string, size: number[], mode: 'nearest' | 'linear', alignCorners: boolean, scales?: (number | undefined)[]): string {
  const transform = mode === 'nearest' ? 'asymmetric' : alignCorners ? 'align_corners' : 'pytorch_half_pixel';
  const attrs = { mode: attr.string(mode), coordinate_transformation_mode: attr.string(transform) };
  if (mode === 'nearest') Object.assign(attrs, { nearest_mode: attr.string('floor') });
  if (!alignCorners && scales && scales[0] !== undefined && scales[1] !== undefined && scales[0] !== null && scales[1] !== null) {
    const factors = g.floatTensor('const_scales', new Float32Array([1, 1, scales[0], scales[1]]), [4]);
    return g.node('Resize', [x, '', factors], attrs)[0];
  }
  return g.node('Resize', [x, '', '', batchShape(g, x, size, 2)], attrs)[0];
}

/** Pads from PyTorch's order (last dimension first, [begin, end] pairs) to ONNX's (all begins, all ends). */
function torchPadsToOnnx(pad: number[], rank: number): number[] {
  const begins = new Array(rank).fill(0);
  const ends = new Array(rank).fill(0);
  for (let i = 0; i < pad.length / 2; i++) {
    begins[rank - 1 - i] = pad[2 * i];
    ends[rank - 1 - i] = pad[2 * i + 1];
  }
  return [...begins, ...ends];
}

function padMode(mode: 'constant' | 'reflect' | 'edge'): OpMapping {
  return (g, a) => {
    const x = g.input(a[0]);
    const pads = torchPadsToOnnx(a[1] as number[], g.shapeOf(x).length);
    const inputs = [x, g.ints(pads)];
    if (mode === 'constant') inputs.push(g.scalar(Number(a[2] ?? 0), g.dtypeOf(x)));
    return g.node('Pad', inputs, { mode: attr.string(mode) })[0];
  };
}

/** erf-based GELU (opset 17 has no Gelu op) and its tanh approximation. */
function gelu(g: GraphBuilder, a: unknown[]): string {
  const x = g.input(a[0]);
  const dt = g.dtypeOf(x);
  const half = g.node('Mul', [x, g.scalar(0.5, dt)])[0];
  let inner: string;
  if (a[1] === 'tanh') {
    const cube = g.node('Mul', [g.node('Mul', [x, x])[0], x])[0];
    const poly = g.node('Add', [x, g.node('Mul', [cube, g.scalar(0.044715, dt)])[0]])[0];
    inner = g.node('Tanh', [g.node('Mul', [poly, g.scalar(Math.sqrt(2 / Math.PI), dt)])[0]])[0];
  } else {
    inner = g.node('Erf', [g.node('Mul', [x, g.scalar(Math.SQRT1_2, dt)])[0]])[0];
  }
  return g.node('Mul', [half, g.node('Add', [inner, g.scalar(1, dt)])[0]])[0];
}

function softplus(g: GraphBuilder, x: string, beta: number): string {
  if (beta === 1) return g.node('Softplus', [x])[0];
  const dt = g.dtypeOf(x);
  const sp = g.node('Softplus', [g.node('Mul', [x, g.scalar(beta, dt)])[0]])[0];
  return g.node('Div', [sp, g.scalar(beta, dt)])[0];
}

/**
 * view / reshape. One to the shape the value already has (eval-mode drop path returns x.view(x.shape))
 * is no node at all: onnxruntime does not remove such Reshapes, and each costs a copy-free but real kernel call.
 */
function reshape(g: GraphBuilder, a: unknown[]): string {
  const x = g.input(a[0]);
  const target = a[1] as number[];
  const shape = g.shapeOf(x);
  const same = target.length === shape.length && target.filter((d) => d === -1).length <= 1 && target.every((d, i) => d === shape[i] || d === -1);
  if (same) return x;
  return g.node('Reshape', [x, g.ints(reshapeTarget(g, x, target))])[0];
}

function alias(g: GraphBuilder, a: unknown[]): string {
  return g.input(a[0]);
}

const silu: OpMapping = (g, a) => {
  const x = g.input(a[0]);
  return g.node('Mul', [x, g.node('Sigmoid', [x])[0]])[0];
};

const hardsigmoid: OpMapping = (g, a) => g.node('HardSigmoid', [g.input(a[0])], { alpha: attr.float(1 / 6), beta: attr.float(0.5) })[0];

const addScaled: OpMapping = (g, a) => {
  const x = g.input(a[0]);
  const other = g.input(a[1]);
  const alpha = Number(a[2]);
  const scaled = alpha === 1 ? other : g.node('Mul', [other, g.scalar(alpha, g.dtypeOf(x))])[0];
  return g.node('Add', [x, scaled])[0];
};

const dropout: OpMapping = (g, a) => {
  if (a[2]) unsupported('dropout', 'dropout in training mode cannot be exported; call model.eval()');
  return alias(g, a);
};

export const OP_MAPPINGS: Record<string, OpMapping> = {
  // ---- conversion and layout
  to_dtype: (g, a) => {
    const x = g.input(a[0]);
    if (g.dtypeOf(x) === a[1]) return x;
    const to = ONNX_DATA_TYPE[a[1] as OnnxDataType];
    if (to === undefined) unsupported('to_dtype', `no ONNX type for ${String(a[1])}`);
    return g.node('Cast', [x], { to: attr.int(to) })[0];
  },
  to_device: alias,
  clone: alias,
  contiguous: alias,
  detach: alias,
  view: (g, a) => reshape(g, a),
  reshape: (g, a) => reshape(g, a),
  permute: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    return g.node('Transpose', [x], { perm: attr.ints((a[1] as number[]).map((d) => normDim(d, rank))) })[0];
  },
  transpose: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const perm = Array.from({ length: rank }, (_, i) => i);
    const [d0, d1] = [normDim(a[1] as number, rank), normDim(a[2] as number, rank)];
    [perm[d0], perm[d1]] = [perm[d1], perm[d0]];
    return g.node('Transpose', [x], { perm: attr.ints(perm) })[0];
  },
  flatten: (g, a, out) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const start = normDim((a[1] as number | undefined) ?? 0, rank);
    const end = normDim((a[2] as number | undefined) ?? -1, rank);
    if (start === 0 && end === rank - 1) return g.node('Reshape', [x, g.ints([-1])])[0];
    // ONNX's Flatten makes 2-d outputs: [N, rest] is exactly flatten(1); other spans are reshapes.
    if (start === 1 && end === rank - 1) return g.node('Flatten', [x], { axis: attr.int(1) })[0];
    return g.node('Reshape', [x, g.ints(reshapeTarget(g, x, g.real.shape(out as Handle)))])[0];
  },
  narrow: (g, a) => {
    const x = g.input(a[0]);
    const dim = normDim(a[1] as number, g.shapeOf(x).length);
    const start = a[2] as number;
    return sliceDim(g, x, dim, start, start + (a[3] as number));
  },
  select: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const dim = normDim(a[1] as number, rank);
    const n = g.shapeOf(x)[dim];
    const i = normDim(a[2] as number, n);
    const s = sliceDim(g, x, dim, i, i + 1);
    return g.node('Squeeze', [s, g.ints([dim])])[0];
  },
  slice: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const dim = normDim(a[1] as number, rank);
    const n = g.shapeOf(x)[dim];
    const start = (a[2] as number | undefined) ?? 0;
    const end = (a[3] as number | undefined) ?? n;
    return sliceDim(g, x, dim, start, Math.min(end, n), (a[4] as number | undefined) ?? 1);
  },
  unsqueeze: (g, a) => {
    const x = g.input(a[0]);
    const dim = normDim(a[1] as number, g.shapeOf(x).length + 1);
    return g.node('Unsqueeze', [x, g.ints([dim])])[0];
  },
  squeeze: (g, a) => {
    const x = g.input(a[0]);
    const shape = g.shapeOf(x);
    if (a[1] === undefined) {
      const dims = shape.flatMap((n, i) => (n === 1 ? [i] : []));
      if (g.options.dynamicBatch !== undefined && dims.includes(0)) unsupported('squeeze', 'squeezing the batch dimension');
      return g.node('Squeeze', [x, g.ints(dims)])[0];
    }
    const dim = normDim(a[1] as number, shape.length);
    if (shape[dim] !== 1) return x;
    return g.node('Squeeze', [x, g.ints([dim])])[0];
  },
  expand: (g, a) => {
    const x = g.input(a[0]);
    const xs = g.shapeOf(x);
    const target = (a[1] as number[]).map((n, i) => (n === -1 ? xs[i - ((a[1] as number[]).length - xs.length)] : n));
    const batch = g.options.dynamicBatch;
    if (batch !== undefined && target[0] === batch && target.length === xs.length) {
      if (xs[0] === batch) return g.node('Expand', [x, g.ints([1, ...target.slice(1)])])[0];
      unsupported('expand', 'expanding a constant to the batch size with a dynamic batch');
    }
    return g.node('Expand', [x, g.ints(target)])[0];
  },
  repeat: (g, a) => g.node('Tile', [g.input(a[0]), g.ints(a[1] as number[])])[0],
  flip: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const dims = (a[1] as number[]).map((d) => normDim(d, rank));
    const big = 2 ** 62;
    return g.node('Slice', [x, g.ints(dims.map(() => -1)), g.ints(dims.map(() => -big)), g.ints(dims), g.ints(dims.map(() => -1))])[0];
  },
  cat: (g, a) => {
    const xs = (a[0] as unknown[]).map((h) => g.input(h));
    const rank = g.shapeOf(xs[0]).length;
    return g.node('Concat', xs, { axis: attr.int(normDim((a[1] as number | undefined) ?? 0, rank)) })[0];
  },
  stack: (g, a) => {
    const xs = (a[0] as unknown[]).map((h) => g.input(h));
    const dim = normDim((a[1] as number | undefined) ?? 0, g.shapeOf(xs[0]).length + 1);
    const parts = xs.map((x) => g.node('Unsqueeze', [x, g.ints([dim])])[0]);
    return g.node('Concat', parts, { axis: attr.int(dim) })[0];
  },
  split: (g, a, out) => splitOutputs(g, a, out, a[2] as number),
  chunk: (g, a, out) => splitOutputs(g, a, out, a[2] as number),
  where: (g, a) => {
    const x = g.input(a[1]);
    return g.node('Where', [g.input(a[0]), x, operand(g, a[2], x)])[0];
  },
  masked_fill: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Where', [g.input(a[1]), g.scalar(Number(a[2]), g.dtypeOf(x)), x])[0];
  },

  // ---- elementwise
  add: binary('Add'),
  sub: binary('Sub'),
  mul: binary('Mul'),
  div: binary('Div'),
  pow: binary('Pow'),
  eq: binary('Equal'),
  lt: binary('Less'),
  gt: binary('Greater'),
  ne: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Not', [g.node('Equal', [x, operand(g, a[1], x)])[0]])[0];
  },
  logical_and: binary('And'),
  logical_or: binary('Or'),
  logical_not: unary('Not'),
  le: binary('LessOrEqual'),
  ge: binary('GreaterOrEqual'),
  add_scaled: addScaled,
  maximum: binary('Max'),
  minimum: binary('Min'),
  clamp: (g, a) => clip(g, g.input(a[0]), a[1], a[2]),
  neg: unary('Neg'),
  abs: unary('Abs'),
  exp: unary('Exp'),
  log: unary('Log'),
  sqrt: unary('Sqrt'),
  rsqrt: (g, a) => g.node('Reciprocal', [g.node('Sqrt', [g.input(a[0])])[0]])[0],
  reciprocal: unary('Reciprocal'),
  sign: unary('Sign'),
  floor: unary('Floor'),
  ceil: unary('Ceil'),
  round: unary('Round'),
  sin: unary('Sin'),
  cos: unary('Cos'),
  erf: unary('Erf'),
  square: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Mul', [x, x])[0];
  },
  log1p: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Log', [g.node('Add', [x, g.scalar(1, g.dtypeOf(x))])[0]])[0];
  },
  relu: unary('Relu'),
  sigmoid: unary('Sigmoid'),
  tanh: unary('Tanh'),
  silu,
  hardswish: unary('HardSwish'),
  hardsigmoid,
  mish: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Mul', [x, g.node('Tanh', [g.node('Softplus', [x])[0]])[0]])[0];
  },

  // ---- in place: the same computation; the tracer rebinds the target handle to the result
  add_: binary('Add'),
  sub_: binary('Sub'),
  mul_: binary('Mul'),
  div_: binary('Div'),
  add_scaled_: addScaled,
  relu_: unary('Relu'),
  hardswish_: unary('HardSwish'),
  hardsigmoid_: hardsigmoid,
  relu6_: (g, a) => clip(g, g.input(a[0]), 0, 6),
  sqrt_: unary('Sqrt'),
  sigmoid_: unary('Sigmoid'),
  neg_: unary('Neg'),
  exp_: unary('Exp'),
  clamp_: (g, a) => clip(g, g.input(a[0]), a[1], a[2]),
  maximum_: binary('Max'),

  // ---- reductions
  sum: (g, a) => reduce(g, 'ReduceSum', g.input(a[0]), a[1] as number[] | undefined, Boolean(a[2])),
  mean,
  amax: (g, a) => reduce(g, 'ReduceMax', g.input(a[0]), a[1] as number[] | undefined, Boolean(a[2])),
  amin: (g, a) => reduce(g, 'ReduceMin', g.input(a[0]), a[1] as number[] | undefined, Boolean(a[2])),
  max_dim: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const values = reduce(g, 'ReduceMax', x, [a[1] as number], Boolean(a[2]));
    const indices = g.node('ArgMax', [x], { axis: attr.int(normDim(a[1] as number, rank)), keepdims: attr.int(a[2] ? 1 : 0) })[0];
    return [values, indices];
  },
  min_dim: (g, a) => {
    const x = g.input(a[0]);
    const rank = g.shapeOf(x).length;
    const values = reduce(g, 'ReduceMin', x, [a[1] as number], Boolean(a[2]));
    const indices = g.node('ArgMin', [x], { axis: attr.int(normDim(a[1] as number, rank)), keepdims: attr.int(a[2] ? 1 : 0) })[0];
    return [values, indices];
  },
  argmax: (g, a) => {
    const x = g.input(a[0]);
    if (a[1] === undefined) unsupported('argmax', 'argmax over all elements');
    const rank = g.shapeOf(x).length;
    return g.node('ArgMax', [x], { axis: attr.int(normDim(a[1] as number, rank)), keepdims: attr.int(a[2] ? 1 : 0) })[0];
  },

  // ---- linear algebra
  matmul: binary('MatMul'),
  mm: binary('MatMul'),
  bmm: binary('MatMul'),

  // ---- neural network functions
  conv2d: (g, a) => conv(g, a, 2),
  conv1d: (g, a) => conv(g, a, 1),
  linear: (g, a) => linear(g, a),
  max_pool2d: maxPool2d,
  max_pool2d_with_indices: (g, a, out) => [maxPool2d(g, a, out) as string, undefined],
  avg_pool2d: (g, a) => avgPool(g, a, 2),
  avg_pool3d: (g, a) => avgPool(g, a, 3),
  adaptive_avg_pool2d: (g, a) => adaptiveAvgPool(g, a),
  adaptive_max_pool2d: (g, a) => {
    const x = g.input(a[0]);
    const size = a[1] as number[];
    if (size[0] !== 1 || size[1] !== 1) unsupported('adaptive_max_pool2d', 'only a 1x1 output is exported');
    return [g.node('GlobalMaxPool', [x])[0], undefined];
  },
  batch_norm: (g, a) => batchNorm(g, a),
  layer_norm: (g, a) => {
    const x = g.input(a[0]);
    if (g.opset < 17) unsupported('layer_norm', 'LayerNormalization needs opset 17');
    const normalized = a[1] as number[];
    const last = normalized.length;
    const dtype = g.dtypeOf(x);
    const n = normalized.reduce((m, v) => m * v, 1);
    const ones = dtype === 'float64' ? new Float64Array(n).fill(1) : new Float32Array(n).fill(1);
    const scale = a[2] ? g.input(a[2]) : g.floatTensor('const_ln', ones, normalized);
    return g.node('LayerNormalization', [x, scale, g.input(a[3])], { axis: attr.int(-last), epsilon: attr.float(a[4] as number) })[0];
  },
  group_norm: (g, a) => {
    // (x - mean) / sqrt(var + eps) over each group's channels and pixels, then the per-channel affine.
    const x = g.input(a[0]);
    const shape = g.shapeOf(x);
    const dt = g.dtypeOf(x);
    const groups = a[1] as number;
    const grouped = g.node('Reshape', [x, g.ints([0, groups, -1])])[0];
    const mu = g.node('ReduceMean', ...reduceArgs(g, grouped, [2]))[0];
    const centred = g.node('Sub', [grouped, mu])[0];
    const variance = g.node('ReduceMean', ...reduceArgs(g, g.node('Mul', [centred, centred])[0], [2]))[0];
    const std = g.node('Sqrt', [g.node('Add', [variance, g.scalar(a[4] as number, dt)])[0]])[0];
    const normed = g.node('Div', [centred, std])[0];
    const back = g.node('Reshape', [normed, g.node('Shape', [x])[0]])[0];
    const affineShape = [shape[1], ...shape.slice(2).map(() => 1)];
    let y = back;
    if (a[2]) y = g.node('Mul', [y, g.node('Reshape', [g.input(a[2]), g.ints(affineShape)])[0]])[0];
    if (a[3]) y = g.node('Add', [y, g.node('Reshape', [g.input(a[3]), g.ints(affineShape)])[0]])[0];
    return y;
  },
  dropout,
  feature_dropout: dropout,
  hardtanh: (g, a) => clip(g, g.input(a[0]), a[1], a[2]),
  leaky_relu: (g, a) => g.node('LeakyRelu', [g.input(a[0])], { alpha: attr.float(Number(a[1])) })[0],
  elu: (g, a) => g.node('Elu', [g.input(a[0])], { alpha: attr.float(Number(a[1])) })[0],
  gelu: (g, a) => gelu(g, a),
  softplus: (g, a) => softplus(g, g.input(a[0]), Number(a[1])),
  softmax: (g, a) => {
    const x = g.input(a[0]);
    return g.node('Softmax', [x], { axis: attr.int(normDim(a[1] as number, g.shapeOf(x).length)) })[0];
  },
  log_softmax: (g, a) => {
    const x = g.input(a[0]);
    return g.node('LogSoftmax', [x], { axis: attr.int(normDim(a[1] as number, g.shapeOf(x).length)) })[0];
  },
  constant_pad_nd: padMode('constant'),
  reflection_pad2d: padMode('reflect'),
  replication_pad2d: padMode('edge'),
  upsample_nearest2d: (g, a) => resize(g, g.input(a[0]), a[1] as number[], 'nearest', false, [a[2] as number, a[3] as number]),
  upsample_bilinear2d: (g, a) => resize(g, g.input(a[0]), a[1] as number[], 'linear', Boolean(a[2]), [a[3] as number, a[4] as number]),
};

/** Arguments of a ReduceMean node over `axes` (attribute or input, by opset) keeping dims. */
function reduceArgs(g: GraphBuilder, x: string, axes: number[]): [string[], Record<string, ReturnType<typeof attr.int>>] {
  if (g.opset >= 18) return [[x, g.ints(axes)], { keepdims: attr.int(1) }];
  return [[x], { axes: attr.ints(axes), keepdims: attr.int(1) }];
}
