// The TypeScript contract of the native op table (native/src/ops.cc's kOps), one line per op, in the
// table's order. tsc checks every call against it; test/native.test.ts checks that it lists exactly the
// ops the addon exports. Arguments are positional as in ops.cc; `?` marks those the op may omit.
import type { Handle } from './native.js';
import type { DType } from './tensor/tensor.js';

/** A number operand becomes an integer or a floating scalar as in Python; booleans are bool scalars. */
type Scalar = number | boolean;
type Reduction = 'mean' | 'sum' | 'none';
/** Ops that return two tensors (values and indices, output and indices). */
type Pair = [Handle, Handle];
export type MemoryFormat = 'contiguous' | 'channels_last';

export interface NativeOps {
  // ---- creation
  empty(shape: number[], dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  zeros(shape: number[], dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  ones(shape: number[], dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  full(shape: number[], value: Scalar, dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  rand(shape: number[], dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  randn(shape: number[], dtype?: DType, device?: string, requiresGrad?: boolean): Handle;
  randint(low: number, high: number, shape: number[], dtype?: DType, device?: string): Handle;
  randperm(n: number, dtype?: DType, device?: string): Handle;
  arange(start: number, end: number, step: number, dtype?: DType, device?: string): Handle;
  eye(n: number, dtype?: DType, device?: string): Handle;
  zeros_like(x: Handle): Handle;
  ones_like(x: Handle): Handle;
  empty_like(x: Handle): Handle;
  full_like(x: Handle, value: Scalar): Handle;
  scalar_tensor(value: Scalar, dtype?: DType, device?: string): Handle;

  // ---- conversion and layout
  to_dtype(x: Handle, dtype: DType): Handle;
  to_device(x: Handle, device: string): Handle;
  clone(x: Handle): Handle;
  /** A contiguous copy (or x itself), in the given memory format (default 'contiguous'). */
  contiguous(x: Handle, memoryFormat?: MemoryFormat): Handle;
  detach(x: Handle): Handle;
  view(x: Handle, shape: number[]): Handle;
  reshape(x: Handle, shape: number[]): Handle;
  permute(x: Handle, dims: number[]): Handle;
  transpose(x: Handle, dim0: number, dim1: number): Handle;
  flatten(x: Handle, startDim?: number, endDim?: number): Handle;
  narrow(x: Handle, dim: number, start: number, length: number): Handle;
  select(x: Handle, dim: number, index: number): Handle;
  slice(x: Handle, dim: number, start?: number, end?: number, step?: number): Handle;
  index_select(x: Handle, dim: number, index: Handle): Handle;
  index_tensor(x: Handle, index: Handle): Handle;
  gather(x: Handle, dim: number, index: Handle): Handle;
  scatter(x: Handle, dim: number, index: Handle, src: Handle): Handle;
  unsqueeze(x: Handle, dim: number): Handle;
  squeeze(x: Handle, dim?: number): Handle;
  expand(x: Handle, shape: number[]): Handle;
  repeat(x: Handle, repeats: number[]): Handle;
  flip(x: Handle, dims: number[]): Handle;
  roll(x: Handle, shifts: number[], dims: number[]): Handle;
  as_strided(x: Handle, shape: number[], strides: number[], offset: number): Handle;
  cat(xs: Handle[], dim?: number): Handle;
  stack(xs: Handle[], dim?: number): Handle;
  split(x: Handle, sizeOrSizes: number | number[], dim: number): Handle[];
  chunk(x: Handle, chunks: number, dim: number): Handle[];
  where(condition: Handle, x: Handle, y: Handle | Scalar): Handle;
  masked_fill(x: Handle, mask: Handle, value: Scalar): Handle;
  one_hot(x: Handle, numClasses?: number): Handle;

  // ---- elementwise
  add(x: Handle, other: Handle | Scalar): Handle;
  sub(x: Handle, other: Handle | Scalar): Handle;
  mul(x: Handle, other: Handle | Scalar): Handle;
  div(x: Handle, other: Handle | Scalar): Handle;
  pow(x: Handle, exponent: Handle | Scalar): Handle;
  remainder(x: Handle, other: Handle | Scalar): Handle;
  eq(x: Handle, other: Handle | Scalar): Handle;
  ne(x: Handle, other: Handle | Scalar): Handle;
  lt(x: Handle, other: Handle | Scalar): Handle;
  le(x: Handle, other: Handle | Scalar): Handle;
  gt(x: Handle, other: Handle | Scalar): Handle;
  ge(x: Handle, other: Handle | Scalar): Handle;
  add_scaled(x: Handle, other: Handle, alpha: Scalar): Handle;
  maximum(x: Handle, other: Handle): Handle;
  minimum(x: Handle, other: Handle): Handle;
  clamp(x: Handle, min?: Scalar, max?: Scalar): Handle;
  logical_and(x: Handle, other: Handle): Handle;
  logical_or(x: Handle, other: Handle): Handle;
  neg(x: Handle): Handle;
  abs(x: Handle): Handle;
  exp(x: Handle): Handle;
  log(x: Handle): Handle;
  sqrt(x: Handle): Handle;
  rsqrt(x: Handle): Handle;
  reciprocal(x: Handle): Handle;
  sign(x: Handle): Handle;
  floor(x: Handle): Handle;
  ceil(x: Handle): Handle;
  round(x: Handle): Handle;
  sin(x: Handle): Handle;
  cos(x: Handle): Handle;
  erf(x: Handle): Handle;
  erfinv(x: Handle): Handle;
  square(x: Handle): Handle;
  logical_not(x: Handle): Handle;
  isfinite(x: Handle): Handle;
  isnan(x: Handle): Handle;
  log1p(x: Handle): Handle;
  relu(x: Handle): Handle;
  sigmoid(x: Handle): Handle;
  tanh(x: Handle): Handle;
  silu(x: Handle): Handle;
  hardswish(x: Handle): Handle;
  hardsigmoid(x: Handle): Handle;
  mish(x: Handle): Handle;

  // ---- in place: each returns its first argument
  add_(x: Handle, other: Handle | Scalar): Handle;
  sub_(x: Handle, other: Handle | Scalar): Handle;
  mul_(x: Handle, other: Handle | Scalar): Handle;
  div_(x: Handle, other: Handle | Scalar): Handle;
  add_scaled_(x: Handle, other: Handle, alpha: Scalar): Handle;
  copy_(x: Handle, src: Handle): Handle;
  fill_(x: Handle, value: Scalar): Handle;
  zero_(x: Handle): Handle;
  relu_(x: Handle): Handle;
  hardswish_(x: Handle): Handle;
  hardsigmoid_(x: Handle): Handle;
  relu6_(x: Handle): Handle;
  threshold_(x: Handle, threshold: Scalar, value: Scalar): Handle;
  sqrt_(x: Handle): Handle;
  erfinv_(x: Handle): Handle;
  sigmoid_(x: Handle): Handle;
  neg_(x: Handle): Handle;
  exp_(x: Handle): Handle;
  clamp_(x: Handle, min?: Scalar, max?: Scalar): Handle;
  addcmul_(x: Handle, t1: Handle, t2: Handle, value: Scalar): Handle;
  addcdiv_(x: Handle, t1: Handle, t2: Handle, value: Scalar): Handle;
  lerp_(x: Handle, end: Handle, weight: Scalar): Handle;
  normal_(x: Handle, mean: number, std: number): Handle;
  uniform_(x: Handle, from: number, to: number): Handle;
  bernoulli_(x: Handle, p: number): Handle;
  masked_fill_(x: Handle, mask: Handle, value: Scalar): Handle;
  maximum_(x: Handle, other: Handle): Handle;

  // ---- reductions
  sum(x: Handle, dims?: number[], keepdim?: boolean): Handle;
  mean(x: Handle, dims?: number[], keepdim?: boolean): Handle;
  amax(x: Handle, dims?: number[], keepdim?: boolean): Handle;
  amin(x: Handle, dims?: number[], keepdim?: boolean): Handle;
  prod(x: Handle, dim?: number, keepdim?: boolean): Handle;
  var(x: Handle, dims?: number[], correction?: number, keepdim?: boolean): Handle;
  std(x: Handle, dims?: number[], correction?: number, keepdim?: boolean): Handle;
  norm(x: Handle, p: Scalar, dims?: number[], keepdim?: boolean): Handle;
  logsumexp(x: Handle, dims: number[], keepdim?: boolean): Handle;
  cumsum(x: Handle, dim: number): Handle;
  max_dim(x: Handle, dim: number, keepdim?: boolean): Pair;
  min_dim(x: Handle, dim: number, keepdim?: boolean): Pair;
  max(x: Handle): Handle;
  min(x: Handle): Handle;
  all(x: Handle): Handle;
  any(x: Handle): Handle;
  argmax(x: Handle, dim?: number, keepdim?: boolean): Handle;
  argmin(x: Handle, dim?: number, keepdim?: boolean): Handle;
  topk(x: Handle, k: number, dim?: number, largest?: boolean, sorted?: boolean): Pair;
  sort(x: Handle, dim?: number, descending?: boolean): Pair;

  // ---- linear algebra
  matmul(x: Handle, other: Handle): Handle;
  mm(x: Handle, other: Handle): Handle;
  bmm(x: Handle, other: Handle): Handle;

  // ---- neural network functions
  conv2d(
    x: Handle,
    weight: Handle,
    bias: Handle | undefined,
    stride: number[],
    padding: number[] | 'same' | 'valid',
    dilation: number[],
    groups: number,
  ): Handle;
  linear(x: Handle, weight: Handle, bias?: Handle): Handle;
  max_pool2d(x: Handle, kernelSize: number[], stride: number[], padding: number[], dilation: number[], ceilMode: boolean): Handle;
  max_pool2d_with_indices(x: Handle, kernelSize: number[], stride: number[], padding: number[], dilation: number[], ceilMode: boolean): Pair;
  avg_pool2d(
    x: Handle,
    kernelSize: number[],
    stride: number[],
    padding: number[],
    ceilMode: boolean,
    countIncludePad: boolean,
    divisorOverride?: number,
  ): Handle;
  avg_pool3d(
    x: Handle,
    kernelSize: number[],
    stride: number[],
    padding: number[],
    ceilMode: boolean,
    countIncludePad: boolean,
    divisorOverride?: number,
  ): Handle;
  adaptive_avg_pool2d(x: Handle, outputSize: number[]): Handle;
  adaptive_max_pool2d(x: Handle, outputSize: number[]): Pair;
  batch_norm(
    x: Handle,
    weight: Handle | undefined,
    bias: Handle | undefined,
    runningMean: Handle | undefined,
    runningVar: Handle | undefined,
    training: boolean,
    momentum: number,
    eps: number,
  ): Handle;
  layer_norm(x: Handle, normalizedShape: number[], weight: Handle | undefined, bias: Handle | undefined, eps: number): Handle;
  group_norm(x: Handle, numGroups: number, weight: Handle | undefined, bias: Handle | undefined, eps: number): Handle;
  dropout(x: Handle, p: number, training: boolean): Handle;
  feature_dropout(x: Handle, p: number, training: boolean): Handle;
  hardtanh(x: Handle, min: Scalar, max: Scalar): Handle;
  /** x where x > threshold, else value (torch.nn.functional.threshold). */
  threshold(x: Handle, threshold: Scalar, value: Scalar): Handle;
  leaky_relu(x: Handle, negativeSlope: Scalar): Handle;
  elu(x: Handle, alpha: Scalar): Handle;
  gelu(x: Handle, approximate?: 'none' | 'tanh'): Handle;
  softplus(x: Handle, beta: Scalar, threshold: Scalar): Handle;
  softmax(x: Handle, dim: number): Handle;
  log_softmax(x: Handle, dim: number): Handle;
  cross_entropy(logits: Handle, target: Handle, weight?: Handle, reduction?: Reduction, ignoreIndex?: number, labelSmoothing?: number): Handle;
  nll_loss(logProbs: Handle, target: Handle, weight?: Handle, reduction?: Reduction, ignoreIndex?: number): Handle;
  mse_loss(input: Handle, target: Handle, reduction?: Reduction): Handle;
  bce_with_logits(input: Handle, target: Handle, weight?: Handle, reduction?: Reduction): Handle;
  constant_pad_nd(x: Handle, pad: number[], value: Scalar): Handle;
  reflection_pad2d(x: Handle, pad: number[]): Handle;
  replication_pad2d(x: Handle, pad: number[]): Handle;
  upsample_nearest2d(x: Handle, size: number[], scaleH?: number, scaleW?: number): Handle;
  upsample_bilinear2d(x: Handle, size: number[], alignCorners: boolean, scaleH?: number, scaleW?: number): Handle;

  // ---- autograd
  backward(x: Handle, grad: Handle | undefined, retainGraph: boolean): void;
  grad(x: Handle): Handle | null;
  set_grad(x: Handle, grad?: Handle): void;
  requires_grad(x: Handle): boolean;
  set_requires_grad(x: Handle, requiresGrad: boolean): void;
  is_leaf(x: Handle): boolean;
  /** Returns the previous setting. */
  set_grad_enabled(enabled: boolean): boolean;
  /** Enters an autocast region on this thread; returns the state to restore on exit. */
  autocast_enter(device: 'cpu' | 'cuda', enabled: boolean, dtype: DType): [boolean, DType];
  autocast_exit(device: 'cpu' | 'cuda', enabled: boolean, dtype: DType): void;
  is_grad_enabled(): boolean;
  enter_inference_mode(): void;
  exit_inference_mode(): void;

  // ---- metadata and data out
  shape(x: Handle): number[];
  strides(x: Handle): number[];
  dtype(x: Handle): DType;
  device(x: Handle): string;
  is_contiguous(x: Handle, memoryFormat?: MemoryFormat): boolean;
  item(x: Handle): number | boolean;
  /** A copy of the values, contiguous, in the tensor's dtype. */
  bytes(x: Handle): ArrayBuffer;
  from_bytes(bytes: ArrayBufferView, shape: number[], dtype: DType): Handle;

  // ---- random state, threads, build
  manual_seed(seed: number): void;
  get_rng_state(): Handle;
  set_rng_state(state: Handle): void;
  set_num_threads(n: number): void;
  get_num_threads(): number;
  cuda_available(): boolean;

  // ---- passing tensors between worker threads
  /** Parks a reference to x for another thread; returns its id. */
  share(x: Handle): bigint;
  /** Takes a parked tensor back as a handle of this thread; each id is adopted once. */
  adopt(id: bigint): Handle;

  // ---- the layers toolkit
  conv1d(x: Handle, weight: Handle, bias: Handle | undefined, stride: number[], padding: number[], dilation: number[], groups: number): Handle;
  /** The tensor's in-place version counter (ScaledStdConv2d's cache notices weight updates by it). */
  tensor_version(x: Handle): number;

  // ---- c10d: one process group per process (src/distributed)
  /** Whether this build has c10d (gloo); the other dist_ ops raise E_UNSUPPORTED when not. */
  dist_available(): boolean;
  /** Joins the group (rank 0 serves the TCPStore at host:port); returns when all have joined, or throws after timeoutMs. */
  dist_init(host: string, port: number, rank: number, worldSize: number, timeoutMs: number): void;
  dist_destroy(): void;
  dist_initialized(): boolean;
  dist_rank(): number;
  dist_world_size(): number;
  /** In place over every rank; x must be contiguous. */
  dist_all_reduce(x: Handle, op: 'sum' | 'product' | 'min' | 'max'): Handle;
  dist_broadcast(x: Handle, src: number): Handle;
  dist_broadcast_coalesced(xs: Handle[], src: number, bufferBytes: number): void;
  dist_barrier(): void;
  /** Training-mode batch norm with statistics over every rank's batch (updates the running statistics when given). */
  dist_sync_batch_norm(
    x: Handle,
    weight: Handle | undefined,
    bias: Handle | undefined,
    runningMean: Handle | undefined,
    runningVar: Handle | undefined,
    momentum: number,
    eps: number,
  ): Handle;
  /** DistributedDataParallel's Reducer over these parameters; returns its id. */
  ddp_reducer_new(params: Handle[], bucketBytes: number, firstBucketBytes: number, findUnused: boolean): number;
  /** Before a training forward; true when it rebuilt the buckets (once, after the first backward). */
  ddp_prepare_forward(id: number): boolean;
  ddp_prepare_backward(id: number, outputs: Handle[]): void;
  ddp_reducer_free(id: number): void;
}
