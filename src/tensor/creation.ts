// Tensor factories, joins, random state, threads and autograd switches.
import { ops, native, type Handle } from '../native.js';
import { ConvzooError, check } from '../errors.js';
import { Tensor, _wrap as wrap, _wrapAll as wrapAll, type DType, type Shape, type TypedArray, DTYPE_BYTES } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

type Nested = number | boolean | bigint | readonly Nested[];

function inferShape(values: Nested): number[] {
  const shape: number[] = [];
  let v: Nested = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

function flattenNested(values: Nested, shape: number[], depth: number, out: (number | boolean | bigint)[]): void {
  if (depth === shape.length) {
    if (Array.isArray(values)) throw new ConvzooError('tensor: ragged nested array (deeper than its first element)', 'E_SHAPE');
    const type = typeof values;
    if (type !== 'number' && type !== 'boolean' && type !== 'bigint') {
      throw new ConvzooError(`tensor: expected numbers, booleans or bigints, got ${values === null ? 'null' : type}`, 'E_ARG', 'tensor');
    }
    out.push(values as number);
    return;
  }
  if (!Array.isArray(values) || values.length !== shape[depth]) {
    throw new ConvzooError(`tensor: ragged nested array: expected length ${shape[depth]} at depth ${depth}`, 'E_SHAPE');
  }
  for (const v of values) flattenNested(v, shape, depth + 1, out);
}

const typedDType = (v: TypedArray): DType =>
  v instanceof Float32Array
    ? 'float32'
    : v instanceof Float64Array
      ? 'float64'
      : v instanceof BigInt64Array
        ? 'int64'
        : v instanceof Int32Array
          ? 'int32'
          : v instanceof Int16Array
            ? 'int16'
            : v instanceof Int8Array
              ? 'int8'
              : 'uint8';

function toTyped(values: (number | boolean | bigint)[], dtype: DType): TypedArray {
  switch (dtype) {
    case 'float64':
      return Float64Array.from(values as number[], Number);
    case 'int64':
      return BigInt64Array.from(values, (x) => BigInt(typeof x === 'bigint' ? x : Math.trunc(Number(x))));
    case 'int32':
      return Int32Array.from(values as number[], Number);
    case 'int16':
      return Int16Array.from(values as number[], Number);
    case 'int8':
      return Int8Array.from(values as number[], Number);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values as number[], Number);
    default:
      return Float32Array.from(values as number[], Number);
  }
}

/**
 * A tensor from values: a (nested) array, a typed array (with `shape`), or a number.
 * Like torch.tensor, whole numbers default to int64, booleans to bool, anything else to float32.
 */
export function tensor(values: Nested | TypedArray, shape?: Shape, opts: CreateOptions = {}): Tensor {
  let flat: TypedArray;
  let dims: number[];
  let dtype = opts.dtype;
  if (ArrayBuffer.isView(values)) {
    const ta = values as TypedArray;
    dims = shape ? [...shape] : [ta.length];
    const natural = typedDType(ta);
    flat = ta;
    const t = fromBytes(ta, dims, natural);
    if (!dtype || dtype === natural) return finish(t, opts);
    const converted = t.to(dtype);
    t.dispose();
    return finish(converted, opts);
  }
  dims = inferShape(values as Nested);
  const list: (number | boolean | bigint)[] = [];
  flattenNested(values as Nested, dims, 0, list);
  if (shape) {
    const n = shape.reduce((a, b) => a * b, 1);
    check(n === list.length, 'tensor', `shape [${shape.join(', ')}] holds ${n} values, got ${list.length}`, 'E_SHAPE');
    dims = [...shape];
  }
  if (!dtype) {
    dtype =
      list.length && list.every((x) => typeof x === 'boolean')
        ? 'bool'
        : list.length && list.every((x) => typeof x === 'bigint' || Number.isInteger(x))
          ? 'int64'
          : 'float32';
  }
  const direct: DType = dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype;
  flat = toTyped(list, direct);
  let t = fromBytes(flat, dims, direct);
  if (direct !== dtype) {
    const c = t.to(dtype);
    t.dispose();
    t = c;
  }
  return finish(t, opts);
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.device && opts.device !== 'cpu') {
    const m = t.to(opts.device);
    t.dispose();
    t = m;
  }
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** A tensor holding a copy of raw bytes laid out as `dtype` with `shape`. */
export function fromBytes(bytes: ArrayBufferView, shape: Shape, dtype: DType): Tensor {
  check(Object.hasOwn(DTYPE_BYTES, dtype), 'fromBytes', `unknown dtype '${String(dtype)}'`, 'E_DTYPE');
  const n = shape.reduce((a, b) => a * b, 1);
  check(
    bytes.byteLength === n * DTYPE_BYTES[dtype],
    'fromBytes',
    `${bytes.byteLength} bytes given, shape [${shape.join(', ')}] of ${dtype} needs ${n * DTYPE_BYTES[dtype]}`,
    'E_SHAPE',
  );
  return wrap(ops.from_bytes(bytes, [...shape], dtype));
}

const factory =
  (name: 'empty' | 'zeros' | 'ones' | 'rand' | 'randn') =>
  (shape: Shape, opts: CreateOptions = {}): Tensor =>
    wrap(ops[name]([...shape], opts.dtype ?? 'float32', opts.device, opts.requiresGrad ?? false));

export const empty = factory('empty');
export const zeros = factory('zeros');
export const ones = factory('ones');
/** Uniform on [0, 1). */
export const rand = factory('rand');
/** Standard normal. */
export const randn = factory('randn');

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  return wrap(ops.full([...shape], value, opts.dtype ?? (Number.isInteger(value) ? 'int64' : 'float32'), opts.device, opts.requiresGrad ?? false));
}
/** Integers uniform on [low, high). */
export function randint(low: number, high: number, shape: Shape, opts: CreateOptions = {}): Tensor {
  return wrap(ops.randint(low, high, [...shape], opts.dtype ?? 'int64', opts.device));
}
export function randperm(n: number, opts: CreateOptions = {}): Tensor {
  return wrap(ops.randperm(n, opts.dtype ?? 'int64', opts.device));
}
/** `arange(end)` or `arange(start, end, step)`. */
export function arange(startOrEnd: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  const ints = [s, e, step].every(Number.isInteger);
  return wrap(ops.arange(s, e, step, opts.dtype ?? (ints ? 'int64' : 'float32'), opts.device));
}
export function eye(n: number, opts: CreateOptions = {}): Tensor {
  return wrap(ops.eye(n, opts.dtype ?? 'float32', opts.device));
}
export function zerosLike(t: Tensor): Tensor {
  return wrap(ops.zeros_like(t?.handle));
}
export function onesLike(t: Tensor): Tensor {
  return wrap(ops.ones_like(t?.handle));
}
export function emptyLike(t: Tensor): Tensor {
  return wrap(ops.empty_like(t?.handle));
}
export function fullLike(t: Tensor, value: number): Tensor {
  return wrap(ops.full_like(t?.handle, value));
}
export function scalarTensor(value: number, opts: CreateOptions = {}): Tensor {
  return wrap(ops.scalar_tensor(value, opts.dtype ?? 'float32', opts.device));
}

// ---- joins and selections
function handles(tensors: readonly Tensor[], fn: string): Handle[] {
  check(Array.isArray(tensors), fn, `expected an array of tensors, got ${tensors === null ? 'null' : typeof tensors}`);
  return tensors.map((t) => t?.handle);
}
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(ops.cat(handles(tensors, 'cat'), dim));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(ops.stack(handles(tensors, 'stack'), dim));
}
export function split(t: Tensor, sizeOrSizes: number | number[], dim = 0): Tensor[] {
  return t.split(sizeOrSizes, dim);
}
export function chunk(t: Tensor, chunks: number, dim = 0): Tensor[] {
  return t.chunk(chunks, dim);
}
export function where(condition: Tensor, x: Tensor, y: Tensor | number): Tensor {
  return wrap(ops.where(condition?.handle, x?.handle, y instanceof Tensor ? y.handle : y));
}
export function oneHot(t: Tensor, numClasses = -1): Tensor {
  return wrap(ops.one_hot(t?.handle, numClasses));
}

// ---- random state and threads
export function manualSeed(seed: number): void {
  ops.manual_seed(seed);
}
/** The CPU generator's state, a uint8 tensor (for checkpoints). */
export function getRngState(): Tensor {
  return wrap(ops.get_rng_state());
}
export function setRngState(state: Tensor): void {
  ops.set_rng_state(state?.handle);
}
export function setNumThreads(n: number): void {
  check(Number.isInteger(n) && n > 0, 'setNumThreads', `expected a positive integer, got ${n}`);
  ops.set_num_threads(n);
}
export function getNumThreads(): number {
  return ops.get_num_threads();
}
export function cudaAvailable(): boolean {
  return ops.cuda_available();
}
/** The libtorch version the addon runs on. */
export const torchVersion: string = native.torchVersion;

// ---- autograd switches (synchronous functions)
function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = ops.set_grad_enabled(enabled);
  try {
    return fn();
  } finally {
    ops.set_grad_enabled(prev);
  }
}
/** Runs fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}
/** Runs fn with gradient recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
export function isGradEnabled(): boolean {
  return ops.is_grad_enabled();
}
export interface AutocastOptions {
  /** The lower-precision dtype (default bfloat16, the CPU's; float16 is CUDA's usual choice). */
  dtype?: 'bfloat16' | 'float16';
  /** Which device's ops autocast (default 'cpu'). */
  device?: 'cpu' | 'cuda';
  /** false runs fn with autocast off (as torch.autocast(enabled=False)). */
  enabled?: boolean;
}
/**
 * Runs fn with automatic mixed precision (torch.autocast): convolutions and matrix products compute in
 * `dtype`, precision-sensitive ops (losses, softmax, norms' statistics) stay in float32, and float32
 * weights are cast once per region. Synchronous, like noGrad; the state is per thread.
 */
export function autocast<T>(fn: () => T, opts: AutocastOptions = {}): T {
  const device = opts.device ?? 'cpu';
  const [wasEnabled, previousDtype] = ops.autocast_enter(device, opts.enabled ?? true, opts.dtype ?? 'bfloat16');
  try {
    return fn();
  } finally {
    ops.autocast_exit(device, wasEnabled, previousDtype);
  }
}
/** Runs fn in libtorch's inference mode: no autograd bookkeeping at all, the fastest forward. */
export function inferenceMode<T>(fn: () => T): T {
  ops.enter_inference_mode();
  try {
    return fn();
  } finally {
    ops.exit_inference_mode();
  }
}

export { wrapAll as _wrapAll };
