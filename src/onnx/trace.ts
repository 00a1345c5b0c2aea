// Captures a model's eval-mode forward as an ONNX graph by recording the libtorch ops it calls.
//
// Every op of the native table goes through `ops` (src/native.ts). While tracing, each entry of that
// table is wrapped: the real op still runs (so shapes, TF "same" padding and any other shape-dependent
// Python-style logic see real tensors), and when one of its tensor arguments depends on the graph input,
// the op's ONNX mapping (op_map.ts) appends nodes. An op whose arguments are all constants (parameters,
// buffers, tensors made inside forward) is not recorded: its result is a constant, captured as an
// initializer when a recorded op first uses it. That folds NFNet's weight standardisation, TF padding
// amounts and similar computations into the weights for free.
import { ops, type Handle, type NativeOps } from '../native.js';
import { ConvzooError } from '../errors.js';
import type { DType } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { OnnxDataType, OnnxNode, OnnxTensor, OnnxAttribute } from './ir.js';

/** Ops that read metadata or flip modes; they never add nodes. */
const PASSIVE_OPS = new Set<string>([
  'shape',
  'strides',
  'dtype',
  'device',
  'is_contiguous',
  'requires_grad',
  'set_requires_grad',
  'is_leaf',
  'grad',
  'set_grad',
  'set_grad_enabled',
  'autocast_enter',
  'autocast_exit',
  'is_grad_enabled',
  'enter_inference_mode',
  'exit_inference_mode',
  'tensor_version',
  'get_num_threads',
  'set_num_threads',
  'cuda_available',
  'manual_seed',
  'get_rng_state',
  'set_rng_state',
  // Tensors shaped like a graph value but not computed from it: constants (at the traced batch size).
  'zeros_like',
  'ones_like',
  'empty_like',
  'full_like',
]);

/** Ops that read a tensor's values into JavaScript: a graph cannot depend on them. */
const VALUE_READS = new Set<string>(['item', 'bytes', 'share']);

const ONNX_DTYPE: Partial<Record<DType, OnnxDataType>> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

export function onnxDataType(dtype: DType, where: string): OnnxDataType {
  const t = ONNX_DTYPE[dtype];
  if (!t) throw new ConvzooError(`exportOnnx: ${where} has dtype ${dtype}, which ONNX export does not write`, 'E_UNSUPPORTED');
  return t;
}

/** An op's ONNX mapping: appends nodes and returns the name of each output (undefined: not available). */
export type OpMapping = (g: GraphBuilder, args: unknown[], out: Handle | Handle[]) => string | (string | undefined)[];

export interface TraceOptions {
  opset: number;
  /** When set, the batch dimension is symbolic; this is the batch the trace runs at. */
  dynamicBatch?: number;
  /** Called with each new graph value as it is computed (int8 calibration reads activation ranges). */
  observe?: (name: string, h: Handle, real: NativeOps) => void;
  /** Record constants without reading their data (a calibration pass needs names, not weights). */
  skipConstantData?: boolean;
}

/**
 * The graph being recorded: nodes, initializers, and which value name each live handle holds now.
 * Op mappings call its methods; nothing outside src/onnx uses it.
 */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers = new Map<string, OnnxTensor>();
  /** Traced shape and dtype of every graph value. */
  readonly shapes = new Map<string, number[]>();
  readonly dtypes = new Map<string, DType>();
  /** The module path the trace is inside ('' at the top): names nodes after the layers that made them. */
  scope = '';
  private readonly values = new Map<Handle, string>();
  private readonly constants = new Map<Handle, string>();
  /** Names of constants derived only from named parameters (NFNet's standardised weights keep their conv's name). */
  private readonly derivedNames = new Map<Handle, string>();
  private readonly intConstants = new Map<string, string>();
  private readonly usedNames = new Set<string>();
  /** Per base name: how many names were made from it (names then depend only on the graph's structure). */
  private readonly baseCounts = new Map<string, number>();

  constructor(
    readonly real: NativeOps,
    readonly options: TraceOptions,
    private readonly paramNames: Map<Handle, string>,
  ) {}

  get opset(): number {
    return this.options.opset;
  }

  /** Whether a value passed to an op depends on the graph input. */
  isGraphValue(v: unknown): boolean {
    return v !== null && typeof v === 'object' && this.values.has(v as Handle);
  }

  /** The graph name of a tensor argument: the value it holds, or a constant captured now. */
  input(h: unknown): string {
    if (h === undefined || h === null) return '';
    const handle = h as Handle;
    const v = this.values.get(handle) ?? this.constants.get(handle);
    if (v !== undefined) return v;
    return this.captureConstant(handle);
  }

  /** Binds a handle to a graph value (the input, or an op's output; in-place ops rebind their target). */
  bind(h: Handle, name: string): void {
    this.values.set(h, name);
    this.constants.delete(h);
    if (!this.shapes.has(name)) {
      this.shapes.set(name, this.real.shape(h));
      this.dtypes.set(name, this.real.dtype(h));
      this.options.observe?.(name, h, this.real);
    }
  }

  /** Notes that an op computed `out` from constants only (for the initializer's name). */
  noteConstantResult(args: unknown[], out: unknown): void {
    const outs = Array.isArray(out) ? out : [out];
    let source: string | undefined;
    for (const a of args) {
      if (a === null || typeof a !== 'object' || Array.isArray(a)) continue;
      source = this.paramNames.get(a as Handle) ?? this.derivedNames.get(a as Handle);
      if (source !== undefined) break;
    }
    for (const o of outs) {
      if (o === null || typeof o !== 'object') continue;
      // A constant that overwrites a graph value in place (x.zero_()) stops being one.
      this.values.delete(o as Handle);
      if (source !== undefined && !this.paramNames.has(o as Handle)) this.derivedNames.set(o as Handle, source);
    }
  }

  shapeOf(name: string): number[] {
    const s = this.shapes.get(name);
    if (s) return s.slice();
    const init = this.initializers.get(name);
    if (init) return init.dims.slice();
    throw new ConvzooError(`exportOnnx: internal: no shape for value '${name}'`, 'E_UNSUPPORTED');
  }

  dtypeOf(name: string): DType {
    const d = this.dtypes.get(name);
    if (d) return d;
    const init = this.initializers.get(name);
    if (init) return init.dataType as DType;
    return 'float32';
  }

  /** A fresh, unique value name. */
  freshName(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) {
      const n = (this.baseCounts.get(base) ?? 0) + 1;
      this.baseCounts.set(base, n);
      name = `${base}_${n}`;
    }
    this.usedNames.add(name);
    return name;
  }

  /** Appends a node; returns its output names. */
  node(opType: string, inputs: string[], attributes: Record<string, OnnxAttribute> = {}, outputs = 1): string[] {
    const prefix = this.scope ? `/${this.scope.replaceAll('.', '/')}` : '';
    const nodeName = this.freshName(`${prefix}/${opType}`);
    const outs = Array.from({ length: outputs }, (_, i) => this.freshName(`${nodeName}_output_${i}`));
    // Trailing omitted optional inputs are dropped; interior ones stay as ''.
    const ins = inputs.slice();
    while (ins.length > 0 && ins[ins.length - 1] === '') ins.pop();
    this.nodes.push({ opType, inputs: ins, outputs: outs, name: nodeName, attributes });
    return outs;
  }

  /** Appends a node with one output whose shape and dtype are given (for values no handle holds). */
  derived(opType: string, inputs: string[], attributes: Record<string, OnnxAttribute>, shape: number[], dtype: DType): string {
    const [out] = this.node(opType, inputs, attributes);
    this.shapes.set(out, shape);
    this.dtypes.set(out, dtype);
    return out;
  }

  /** An int64 1-D constant (shapes, axes, pads), shared between nodes that use the same values. */
  ints(values: readonly number[]): string {
    const key = values.join(',');
    const known = this.intConstants.get(key);
    if (known) return known;
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    const name = this.addInitializer(`const_ints_${values.length}`, 'int64', [values.length], raw);
    this.intConstants.set(key, name);
    return name;
  }

  /** A scalar constant of the given floating dtype (0-d, broadcasts against anything). */
  scalar(value: number, dtype: DType): string {
    let raw: Uint8Array;
    if (dtype === 'float64') raw = new Uint8Array(new Float64Array([value]).buffer);
    else if (dtype === 'float32') raw = new Uint8Array(new Float32Array([value]).buffer);
    else if (dtype === 'int64') raw = new Uint8Array(new BigInt64Array([BigInt(value)]).buffer);
    else if (dtype === 'int32') raw = new Uint8Array(new Int32Array([value]).buffer);
    else if (dtype === 'bool') raw = new Uint8Array([value ? 1 : 0]);
    else throw new ConvzooError(`exportOnnx: a scalar operand of a ${dtype} tensor is not supported`, 'E_UNSUPPORTED');
    return this.addInitializer('const_scalar', onnxDataType(dtype, 'a scalar'), [], raw);
  }

  /** A float tensor constant made during export (ones for a missing BN weight, transposed weights). */
  floatTensor(base: string, data: Float32Array | Float64Array, dims: number[]): string {
    const dataType: OnnxDataType = data instanceof Float64Array ? 'float64' : 'float32';
    return this.addInitializer(base, dataType, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  addInitializer(base: string, dataType: OnnxDataType, dims: number[], raw: Uint8Array): string {
    const name = this.freshName(base);
    this.initializers.set(name, { name, dataType, dims, raw });
    return name;
  }

  private captureConstant(h: Handle): string {
    const dtype = this.real.dtype(h);
    const dims = this.real.shape(h);
    const base = this.paramNames.get(h) ?? this.derivedNames.get(h) ?? 'const';
    const raw = this.options.skipConstantData ? new Uint8Array(0) : new Uint8Array(this.real.bytes(h));
    const name = this.addInitializer(base, onnxDataType(dtype, `constant '${base}'`), dims, raw);
    this.constants.set(h, name);
    return name;
  }
}

export interface TraceResult {
  builder: GraphBuilder;
  inputName: string;
  outputName: string;
}

/**
 * Runs `forward()` once with every native op recorded. `forward` must return the handle of the output;
 * `input` is bound to `inputName` before it runs.
 */
export function traceOps(
  model: Module<unknown, unknown>,
  input: Handle,
  forward: () => Handle,
  mappings: Record<string, OpMapping>,
  options: TraceOptions,
): TraceResult {
  const table = ops as unknown as Record<string, (...a: unknown[]) => unknown>;
  const real = { ...table } as unknown as NativeOps & Record<string, (...a: unknown[]) => unknown>;
  const paramNames = new Map<Handle, string>();
  for (const [k, p] of model.namedParameters()) paramNames.set(p.handle, k);
  for (const [k, b] of model.namedBuffers()) paramNames.set(b.handle, k);
  const g = new GraphBuilder(real, options, paramNames);
  const inputName = 'input';
  g.freshName(inputName);
  g.bind(input, inputName);

  const record = (op: string, args: unknown[], out: unknown): void => {
    if (PASSIVE_OPS.has(op)) return;
    const dependsOnInput = args.some((a) => g.isGraphValue(a) || (Array.isArray(a) && a.some((e) => g.isGraphValue(e))));
    if (VALUE_READS.has(op)) {
      if (dependsOnInput) {
        throw new ConvzooError(
          `exportOnnx: the forward pass reads tensor values into JavaScript (${op}${g.scope ? ` in ${g.scope}` : ''}), so its graph depends on the data and cannot be exported`,
          'E_UNSUPPORTED',
        );
      }
      return;
    }
    if (!dependsOnInput) {
      g.noteConstantResult(args, out);
      return;
    }
    const mapping = mappings[op];
    if (!mapping) {
      throw new ConvzooError(`exportOnnx: op '${op}'${g.scope ? ` (in ${g.scope})` : ''} has no ONNX mapping`, 'E_UNSUPPORTED');
    }
    const names = mapping(g, args, out as Handle | Handle[]);
    if (Array.isArray(out)) {
      const list = names as (string | undefined)[];
      out.forEach((h, i) => {
        const n = list[i];
        if (n !== undefined) g.bind(h as Handle, n);
      });
    } else {
      g.bind(out as Handle, names as string);
    }
  };

  // Module paths name the nodes: wrap each module's forward for the duration of the trace.
  const wrapped: [Module<unknown, unknown>, PropertyDescriptor | undefined][] = [];
  for (const [path, m] of model.namedModules()) {
    const own = m as unknown as { forward: (x: unknown) => unknown };
    const original = own.forward;
    wrapped.push([m, Object.getOwnPropertyDescriptor(m, 'forward')]);
    own.forward = function (this: unknown, x: unknown) {
      const outer = g.scope;
      g.scope = path;
      try {
        return original.call(this, x);
      } finally {
        g.scope = outer;
      }
    };
  }
  for (const key of Object.keys(real)) {
    const fn = real[key];
    if (typeof fn !== 'function') continue;
    table[key] = (...args: unknown[]) => {
      const out = fn(...args);
      record(key, args, out);
      return out;
    };
  }
  try {
    const out = forward();
    if (!g.isGraphValue(out)) throw new ConvzooError('exportOnnx: the model output does not depend on its input', 'E_UNSUPPORTED');
    return { builder: g, inputName, outputName: g.input(out) };
  } finally {
    Object.assign(table, real);
    for (const [m, descriptor] of wrapped) {
      if (descriptor) Object.defineProperty(m, 'forward', descriptor);
      else delete (m as unknown as { forward?: unknown }).forward;
    }
  }
}
