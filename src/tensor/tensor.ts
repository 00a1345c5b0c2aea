// The Tensor: a TypeScript face over one libtorch tensor. Method names mirror PyTorch in camelCase;
// required tensors are positional, the rest in options objects. In-place methods end in `_` and return this.
import { native, ops, type Handle } from '../native.js';
import { ConvzooError } from '../errors.js';
import { track } from './scope.js';
import type { MemoryFormat } from '../native_ops.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Shape = readonly number[];
export type Scalar = number | boolean;
export type TypedArray = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array;

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isFloatingDType(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

/** The 16-bit floats (autocast's outputs), which some libtorch CPU kernels and typed arrays lack. */
export function isHalfDType(d: DType | undefined): boolean {
  return d === 'float16' || d === 'bfloat16';
}

// Helpers that touch handles on behalf of an op; skipped when naming the op in an error.
const HELPERS = new Set(['handle', 'handles', 'operand', 'wrap', 'map', 'disposedError']);

/**
 * The E_DISPOSED error, named after the op that was given the disposed tensor. Only this error path
 * pays for reading the stack: the outermost Tensor method of the innermost run of them (`data`, not
 * the `dtype` getter it calls), or else the first named function (`conv2d`, `cat`).
 */
function disposedError(): ConvzooError {
  let op = '';
  for (const line of (new Error().stack ?? '').split('\n').slice(1)) {
    const m = /^\s*at (?:new )?(?:([\w$]+)\.)?(get |set )?([\w$]+)(?: \[as [\w$]+\])? \(/.exec(line);
    if (!m || HELPERS.has(m[3])) continue;
    const method = m[1] === 'Tensor' || m[1] === 'Parameter' || m[2] !== undefined; // V8 shows getters as "get dtype"
    if (method) {
      op = m[3];
      continue;
    }
    if (!op) op = m[3];
    break;
  }
  op ||= 'tensor';
  return new ConvzooError(`${op}: tensor used after dispose()`, 'E_DISPOSED', op);
}

const wrap = (h: Handle): Tensor => new Tensor(h);
const wrapAll = (hs: Handle[]): Tensor[] => hs.map(wrap);
const dimList = (d: number | readonly number[]): number[] => (typeof d === 'number' ? [d] : [...d]);

export class Tensor {
  /** @internal */
  _h: Handle | null;
  private _shape: number[] | undefined;
  private _dtype: DType | undefined;

  /** @internal Use cz.tensor() and the other factories. */
  constructor(handle: Handle) {
    this._h = handle;
    track(this);
  }

  /** @internal The native handle; throws if the tensor was disposed. */
  get handle(): Handle {
    if (this._h === null) throw disposedError();
    return this._h;
  }

  get isDisposed(): boolean {
    return this._h === null;
  }

  /** Drops this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    if (this._h !== null) {
      native.dispose(this._h);
      this._h = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- metadata
  get shape(): number[] {
    return (this._shape ??= ops.shape(this.handle)).slice();
  }
  get ndim(): number {
    return (this._shape ??= ops.shape(this.handle)).length;
  }
  get dtype(): DType {
    return (this._dtype ??= ops.dtype(this.handle));
  }
  get device(): string {
    return ops.device(this.handle);
  }
  get strides(): number[] {
    return ops.strides(this.handle);
  }
  numel(): number {
    return (this._shape ??= ops.shape(this.handle)).reduce((a, b) => a * b, 1);
  }
  size(dim?: number): number | number[] {
    if (dim === undefined) return this.shape;
    const s = (this._shape ??= ops.shape(this.handle));
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new ConvzooError(`size: dim ${dim} out of range for a ${s.length}-d tensor`, 'E_SHAPE');
    return s[d];
  }
  /** Whether the strides are the dense ones of `memoryFormat` (default: row-major). */
  isContiguous(memoryFormat?: MemoryFormat): boolean {
    return ops.is_contiguous(this.handle, memoryFormat);
  }

  // ---- data out
  /** A copy of the values as a typed array (float16/bfloat16 as Float32Array, bool as Uint8Array, int64 as BigInt64Array). */
  data(): TypedArray {
    const dt = this.dtype;
    if (isHalfDType(dt)) {
      const f = this.to('float32');
      try {
        return f.data();
      } finally {
        f.dispose();
      }
    }
    const buf: ArrayBuffer = ops.bytes(this.handle);
    switch (dt) {
      case 'float32':
        return new Float32Array(buf);
      case 'float64':
        return new Float64Array(buf);
      case 'int64':
        return new BigInt64Array(buf);
      case 'int32':
        return new Int32Array(buf);
      case 'int16':
        return new Int16Array(buf);
      case 'int8':
        return new Int8Array(buf);
      default:
        return new Uint8Array(buf);
    }
  }
  /** The raw bytes, contiguous, in this tensor's dtype. */
  bytes(): Uint8Array {
    return new Uint8Array(ops.bytes(this.handle));
  }
  /** The values as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  /** The value of a one-element tensor. */
  item(): number {
    const v = ops.item(this.handle);
    return typeof v === 'boolean' ? Number(v) : v;
  }
  /**
   * The values, nested like PyTorch's repr: tensors of more than 1000 elements show the first and last
   * three entries of each long dimension around '...'.
   */
  toString(): string {
    if (this._h === null) return 'Tensor(disposed)';
    const summarize = this.numel() > 1000;
    const num = (v: number | boolean) =>
      typeof v === 'boolean'
        ? v
          ? 'true'
          : 'false'
        : isFloatingDType(this.dtype)
          ? Number.isInteger(v) && Math.abs(v) < 1e16
            ? `${v}.`
            : String(+v.toPrecision(5))
          : String(v);
    const format = (t: Tensor, indent: string): string => {
      if (t.ndim === 0) return num(this.dtype === 'bool' ? Boolean(t.item()) : t.item());
      const n = t.shape[0];
      const rows = summarize && n > 6 ? [0, 1, 2, -1, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, i) => i);
      const parts = rows.map((i) => {
        if (i < 0) return '...';
        const sub = t.select(0, i);
        try {
          return format(sub, indent + ' ');
        } finally {
          sub.dispose();
        }
      });
      return `[${parts.join(t.ndim > 1 ? `,\n${indent} ` : ', ')}]`;
    };
    return `tensor(${format(this, '       ')}, shape=[${this.shape.join(', ')}], dtype=${this.dtype})`;
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return ops.requires_grad(this.handle);
  }
  set requiresGrad(v: boolean) {
    ops.set_requires_grad(this.handle, v);
  }
  requiresGrad_(v = true): this {
    ops.set_requires_grad(this.handle, v);
    return this;
  }
  /** The accumulated gradient (a new handle on each access, or null). */
  get grad(): Tensor | null {
    const g = ops.grad(this.handle);
    return g === null ? null : wrap(g);
  }
  set grad(g: Tensor | null) {
    ops.set_grad(this.handle, g === null ? undefined : g.handle);
  }
  get isLeaf(): boolean {
    return ops.is_leaf(this.handle);
  }
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    ops.backward(this.handle, grad?.handle, opts.retainGraph ?? false);
  }
  detach(): Tensor {
    return wrap(ops.detach(this.handle));
  }

  // ---- conversion
  to(target: DType | Device | string): Tensor {
    if (typeof target === 'string' && target.startsWith('cuda') && !ops.cuda_available()) {
      this.handle; // a disposed tensor reports that first
      throw new ConvzooError(`to: cannot move a tensor to '${target}': this libtorch has no CUDA device available`, 'E_ARG', 'to');
    }
    // Any other string is taken as a dtype name; the addon refuses unknown ones (E_ARG).
    return target === 'cpu' || target.startsWith('cuda') ? wrap(ops.to_device(this.handle, target)) : wrap(ops.to_dtype(this.handle, target as DType));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  clone(): Tensor {
    return wrap(ops.clone(this.handle));
  }
  /** This tensor with dense strides in `memoryFormat` ('channels_last': NHWC in memory, still NCHW in shape); itself when it has them. */
  contiguous(memoryFormat?: MemoryFormat): Tensor {
    return wrap(ops.contiguous(this.handle, memoryFormat));
  }

  // ---- shape
  view(...shape: number[]): Tensor {
    return wrap(ops.view(this.handle, shape));
  }
  reshape(...shape: number[]): Tensor {
    return wrap(ops.reshape(this.handle, shape));
  }
  permute(...dims: number[]): Tensor {
    return wrap(ops.permute(this.handle, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(ops.transpose(this.handle, dim0, dim1));
  }
  t(): Tensor {
    return this.transpose(0, 1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(ops.flatten(this.handle, startDim, endDim));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(ops.narrow(this.handle, dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return wrap(ops.select(this.handle, dim, index));
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(ops.slice(this.handle, dim, start, end, step));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(ops.index_select(this.handle, dim, index?.handle));
  }
  /** Boolean-mask or integer-index selection along dim 0 (PyTorch's `t[idx]`). */
  index(idx: Tensor): Tensor {
    return wrap(ops.index_tensor(this.handle, idx?.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(ops.gather(this.handle, dim, index?.handle));
  }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(ops.scatter(this.handle, dim, index?.handle, src?.handle));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(ops.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return wrap(ops.squeeze(this.handle, dim));
  }
  expand(...shape: number[]): Tensor {
    return wrap(ops.expand(this.handle, shape));
  }
  expandAs(other: Tensor): Tensor {
    return this.expand(...other.shape);
  }
  repeat(...reps: number[]): Tensor {
    return wrap(ops.repeat(this.handle, reps));
  }
  flip(dims: number | number[]): Tensor {
    return wrap(ops.flip(this.handle, dimList(dims)));
  }
  roll(shifts: number | number[], dims: number | number[]): Tensor {
    return wrap(ops.roll(this.handle, dimList(shifts), dimList(dims)));
  }
  asStrided(shape: Shape, strides: Shape, offset = 0): Tensor {
    return wrap(ops.as_strided(this.handle, [...shape], [...strides], offset));
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return wrapAll(ops.split(this.handle, sizeOrSizes, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapAll(ops.chunk(this.handle, chunks, dim));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(ops.masked_fill(this.handle, mask?.handle, value));
  }

  // ---- arithmetic (tensor or number operands)
  add(other: Tensor | number, opts: { alpha?: number } = {}): Tensor {
    if (opts.alpha !== undefined && other instanceof Tensor) return wrap(ops.add_scaled(this.handle, other.handle, opts.alpha));
    return wrap(ops.add(this.handle, operand(other)));
  }
  sub(other: Tensor | number): Tensor {
    return wrap(ops.sub(this.handle, operand(other)));
  }
  mul(other: Tensor | number): Tensor {
    return wrap(ops.mul(this.handle, operand(other)));
  }
  div(other: Tensor | number): Tensor {
    return wrap(ops.div(this.handle, operand(other)));
  }
  pow(other: Tensor | number): Tensor {
    return wrap(ops.pow(this.handle, operand(other)));
  }
  remainder(other: Tensor | number): Tensor {
    return wrap(ops.remainder(this.handle, operand(other)));
  }
  eq(other: Tensor | number): Tensor {
    return wrap(ops.eq(this.handle, operand(other)));
  }
  ne(other: Tensor | number): Tensor {
    return wrap(ops.ne(this.handle, operand(other)));
  }
  lt(other: Tensor | number): Tensor {
    return wrap(ops.lt(this.handle, operand(other)));
  }
  le(other: Tensor | number): Tensor {
    return wrap(ops.le(this.handle, operand(other)));
  }
  gt(other: Tensor | number): Tensor {
    return wrap(ops.gt(this.handle, operand(other)));
  }
  ge(other: Tensor | number): Tensor {
    return wrap(ops.ge(this.handle, operand(other)));
  }
  maximum(other: Tensor): Tensor {
    return wrap(ops.maximum(this.handle, other?.handle));
  }
  minimum(other: Tensor): Tensor {
    return wrap(ops.minimum(this.handle, other?.handle));
  }
  clamp(opts: { min?: number; max?: number }): Tensor {
    return wrap(ops.clamp(this.handle, opts.min, opts.max));
  }
  matmul(other: Tensor): Tensor {
    return wrap(ops.matmul(this.handle, other?.handle));
  }
  mm(other: Tensor): Tensor {
    return wrap(ops.mm(this.handle, other?.handle));
  }
  bmm(other: Tensor): Tensor {
    return wrap(ops.bmm(this.handle, other?.handle));
  }
  logicalAnd(other: Tensor): Tensor {
    return wrap(ops.logical_and(this.handle, other?.handle));
  }
  logicalOr(other: Tensor): Tensor {
    return wrap(ops.logical_or(this.handle, other?.handle));
  }
  neg(): Tensor {
    return wrap(ops.neg(this.handle));
  }
  abs(): Tensor {
    return wrap(ops.abs(this.handle));
  }
  exp(): Tensor {
    return wrap(ops.exp(this.handle));
  }
  log(): Tensor {
    return wrap(ops.log(this.handle));
  }
  log1p(): Tensor {
    return wrap(ops.log1p(this.handle));
  }
  sqrt(): Tensor {
    return wrap(ops.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrap(ops.rsqrt(this.handle));
  }
  square(): Tensor {
    return wrap(ops.square(this.handle));
  }
  reciprocal(): Tensor {
    return wrap(ops.reciprocal(this.handle));
  }
  sign(): Tensor {
    return wrap(ops.sign(this.handle));
  }
  floor(): Tensor {
    return wrap(ops.floor(this.handle));
  }
  ceil(): Tensor {
    return wrap(ops.ceil(this.handle));
  }
  round(): Tensor {
    return wrap(ops.round(this.handle));
  }
  sin(): Tensor {
    return wrap(ops.sin(this.handle));
  }
  cos(): Tensor {
    return wrap(ops.cos(this.handle));
  }
  erf(): Tensor {
    return wrap(ops.erf(this.handle));
  }
  erfinv(): Tensor {
    return wrap(ops.erfinv(this.handle));
  }
  logicalNot(): Tensor {
    return wrap(ops.logical_not(this.handle));
  }
  isfinite(): Tensor {
    return wrap(ops.isfinite(this.handle));
  }
  isnan(): Tensor {
    return wrap(ops.isnan(this.handle));
  }
  relu(): Tensor {
    return wrap(ops.relu(this.handle));
  }
  sigmoid(): Tensor {
    return wrap(ops.sigmoid(this.handle));
  }
  tanh(): Tensor {
    return wrap(ops.tanh(this.handle));
  }
  softmax(dim: number): Tensor {
    return wrap(ops.softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return wrap(ops.log_softmax(this.handle, dim));
  }

  // ---- in place
  add_(other: Tensor | number, opts: { alpha?: number } = {}): this {
    if (opts.alpha !== undefined && other instanceof Tensor) ops.add_scaled_(this.handle, other.handle, opts.alpha);
    else ops.add_(this.handle, operand(other));
    return this;
  }
  sub_(other: Tensor | number): this {
    ops.sub_(this.handle, operand(other));
    return this;
  }
  mul_(other: Tensor | number): this {
    ops.mul_(this.handle, operand(other));
    return this;
  }
  div_(other: Tensor | number): this {
    ops.div_(this.handle, operand(other));
    return this;
  }
  copy_(src: Tensor): this {
    ops.copy_(this.handle, src?.handle);
    return this;
  }
  fill_(value: number): this {
    ops.fill_(this.handle, value);
    return this;
  }
  zero_(): this {
    ops.zero_(this.handle);
    return this;
  }
  relu_(): this {
    ops.relu_(this.handle);
    return this;
  }
  hardswish_(): this {
    ops.hardswish_(this.handle);
    return this;
  }
  hardsigmoid_(): this {
    ops.hardsigmoid_(this.handle);
    return this;
  }
  relu6_(): this {
    if (isHalfDType(this.dtype) && this.requiresGrad) {
      // As F.hardtanh: libtorch 1.13's CPU hardtanh backward has no bfloat16 kernel; max(x, 0), then
      // min(., 6) as -max(-., -6), in place.
      ops.threshold_(this.handle, 0, 0);
      ops.neg_(this.handle);
      ops.threshold_(this.handle, -6, -6);
      ops.neg_(this.handle);
    } else ops.relu6_(this.handle);
    return this;
  }
  sqrt_(): this {
    ops.sqrt_(this.handle);
    return this;
  }
  exp_(): this {
    ops.exp_(this.handle);
    return this;
  }
  neg_(): this {
    ops.neg_(this.handle);
    return this;
  }
  sigmoid_(): this {
    ops.sigmoid_(this.handle);
    return this;
  }
  erfinv_(): this {
    ops.erfinv_(this.handle);
    return this;
  }
  clamp_(opts: { min?: number; max?: number }): this {
    ops.clamp_(this.handle, opts.min, opts.max);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, opts: { value?: number } = {}): this {
    ops.addcmul_(this.handle, t1?.handle, t2?.handle, opts.value ?? 1);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, opts: { value?: number } = {}): this {
    ops.addcdiv_(this.handle, t1?.handle, t2?.handle, opts.value ?? 1);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    ops.lerp_(this.handle, end?.handle, weight);
    return this;
  }
  maximum_(other: Tensor): this {
    ops.maximum_(this.handle, other?.handle);
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this {
    ops.masked_fill_(this.handle, mask?.handle, value);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    ops.normal_(this.handle, mean, std);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    ops.uniform_(this.handle, from, to);
    return this;
  }
  bernoulli_(p = 0.5): this {
    ops.bernoulli_(this.handle, p);
    return this;
  }

  // ---- reductions
  sum(dim?: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.sum(this.handle, dim === undefined ? undefined : dimList(dim), opts.keepdim ?? false));
  }
  mean(dim?: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.mean(this.handle, dim === undefined ? undefined : dimList(dim), opts.keepdim ?? false));
  }
  var(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrap(ops.var(this.handle, dim === undefined ? undefined : dimList(dim), opts.correction ?? 1, opts.keepdim ?? false));
  }
  std(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrap(ops.std(this.handle, dim === undefined ? undefined : dimList(dim), opts.correction ?? 1, opts.keepdim ?? false));
  }
  norm(p = 2, dim?: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.norm(this.handle, p, dim === undefined ? undefined : dimList(dim), opts.keepdim ?? false));
  }
  amax(dim: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.amax(this.handle, dimList(dim), opts.keepdim ?? false));
  }
  amin(dim: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.amin(this.handle, dimList(dim), opts.keepdim ?? false));
  }
  prod(dim?: number, opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.prod(this.handle, dim, opts.keepdim ?? false));
  }
  logsumexp(dim: number | number[], opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.logsumexp(this.handle, dimList(dim), opts.keepdim ?? false));
  }
  cumsum(dim: number): Tensor {
    return wrap(ops.cumsum(this.handle, dim));
  }
  /** Without dim: the maximum value. With dim: `{values, indices}`. */
  max(): Tensor;
  max(dim: number, opts?: { keepdim?: boolean }): { values: Tensor; indices: Tensor };
  max(dim?: number, opts: { keepdim?: boolean } = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(ops.max(this.handle));
    const [values, indices] = wrapAll(ops.max_dim(this.handle, dim, opts.keepdim ?? false));
    return { values, indices };
  }
  min(): Tensor;
  min(dim: number, opts?: { keepdim?: boolean }): { values: Tensor; indices: Tensor };
  min(dim?: number, opts: { keepdim?: boolean } = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(ops.min(this.handle));
    const [values, indices] = wrapAll(ops.min_dim(this.handle, dim, opts.keepdim ?? false));
    return { values, indices };
  }
  all(): Tensor {
    return wrap(ops.all(this.handle));
  }
  any(): Tensor {
    return wrap(ops.any(this.handle));
  }
  argmax(dim?: number, opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.argmax(this.handle, dim, opts.keepdim ?? false));
  }
  argmin(dim?: number, opts: { keepdim?: boolean } = {}): Tensor {
    return wrap(ops.argmin(this.handle, dim, opts.keepdim ?? false));
  }
  topk(k: number, opts: { dim?: number; largest?: boolean; sorted?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapAll(ops.topk(this.handle, k, opts.dim ?? -1, opts.largest ?? true, opts.sorted ?? true));
    return { values, indices };
  }
  sort(opts: { dim?: number; descending?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapAll(ops.sort(this.handle, opts.dim ?? -1, opts.descending ?? false));
    return { values, indices };
  }
}

function operand(x: Tensor | number | boolean): Handle | number | boolean {
  return x instanceof Tensor ? x.handle : x;
}

/** @internal */
export { wrap as _wrap, wrapAll as _wrapAll };
