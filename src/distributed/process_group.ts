// The process group of distributed training: libtorch's c10d (a TCPStore rendezvous and gloo's
// collectives), one group per process, as torch.distributed's default group. Collectives block until
// every rank has joined them; a rank that died or hangs makes the others fail with E_DISTRIBUTED after
// the group's timeout (gloo usually notices a closed connection at once).
import { ConvzooError, checkInt } from '../errors.js';
import { ops } from '../native.js';
import { isFloatingDType, type Tensor } from '../tensor/tensor.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'avg' | 'product' | 'min' | 'max';

export interface InitProcessGroupOptions {
  /** 'gloo' (CPU; the default). 'nccl' needs a CUDA build of libtorch, which this one is not. */
  backend?: Backend;
  /** This process's rank (default: $RANK). */
  rank?: number;
  /** How many processes (default: $WORLD_SIZE). */
  worldSize?: number;
  /** Where rank 0 serves the rendezvous (default: $MASTER_ADDR, else 127.0.0.1). */
  masterAddr?: string;
  /** Its port (default: $MASTER_PORT, else 29500). */
  masterPort?: number;
  /** How long the rendezvous and each collective may wait for the other ranks (default 300 s). */
  timeoutSeconds?: number;
}

export const DEFAULT_TIMEOUT_SECONDS = 300;

let state: { rank: number; worldSize: number; timeoutSeconds: number } | null = null;

/** Whether this libtorch has c10d's gloo process group (convzoo's build found its headers). */
export function isAvailable(): boolean {
  return ops.dist_available();
}

/** Throws E_UNSUPPORTED, saying what to install, when this build has no c10d. */
export function requireDistributed(who: string): void {
  if (!isAvailable()) {
    throw new ConvzooError(
      `${who}: this build of convzoo has no distributed support (its libtorch lacks c10d, or gloo's headers were missing at build time: on Debian, apt-get install libgloo-dev, then npm rebuild convzoo)`,
      'E_UNSUPPORTED',
    );
  }
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ConvzooError(`initProcessGroup: $${name} must be a whole number >= 0, got '${v}'`, 'E_ARG');
  return n;
}

/**
 * Joins the process group: every rank calls it with the same world size and rendezvous address; it
 * returns when all have joined. Reads the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
 * for what is not given.
 */
export function initProcessGroup(opts: InitProcessGroupOptions = {}): { rank: number; worldSize: number } {
  const who = 'initProcessGroup';
  const backend = opts.backend ?? 'gloo';
  if (backend === 'nccl') {
    throw new ConvzooError(`${who}: backend 'nccl' needs libtorch built with CUDA and NCCL; this one has neither (use 'gloo')`, 'E_UNSUPPORTED');
  }
  if (backend !== 'gloo') throw new ConvzooError(`${who}: backend must be 'gloo' or 'nccl', got '${String(backend)}'`, 'E_ARG');
  requireDistributed(who);
  if (state) throw new ConvzooError(`${who}: this process is already rank ${state.rank} of ${state.worldSize}; call destroyProcessGroup() first`, 'E_ARG');
  const rank = opts.rank ?? envInt('RANK');
  const worldSize = opts.worldSize ?? envInt('WORLD_SIZE');
  if (rank === undefined || worldSize === undefined)
    throw new ConvzooError(`${who}: give rank and worldSize (or set $RANK and $WORLD_SIZE, as torchrun does)`, 'E_ARG');
  checkInt(worldSize, who, 'worldSize', 1);
  checkInt(rank, who, 'rank', 0);
  if (rank >= worldSize) throw new ConvzooError(`${who}: rank ${rank} is outside world size ${worldSize}`, 'E_ARG');
  const host = opts.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const port = opts.masterPort ?? envInt('MASTER_PORT') ?? 29500;
  checkInt(port, who, 'masterPort', 1);
  if (port > 65535) throw new ConvzooError(`${who}: masterPort ${port} is above 65535`, 'E_ARG');
  const timeoutSeconds = opts.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 86400)) throw new ConvzooError(`${who}: timeoutSeconds must be in (0, 86400], got ${timeoutSeconds}`, 'E_ARG');
  collective(`rendezvous at ${host}:${port} (rank ${rank} of ${worldSize})`, () =>
    ops.dist_init(host, port, rank, worldSize, Math.round(timeoutSeconds * 1000)),
  );
  state = { rank, worldSize, timeoutSeconds };
  return { rank, worldSize };
}

/** Leaves the group (its reducers go with it). */
export function destroyProcessGroup(): void {
  ops.dist_destroy();
  state = null;
}

export function isInitialized(): boolean {
  return state !== null;
}

/** This process's rank, 0 when there is no group. */
export function getRank(): number {
  return state?.rank ?? 0;
}

/** How many processes, 1 when there is no group. */
export function getWorldSize(): number {
  return state?.worldSize ?? 1;
}

/** Runs a collective; a failure (a rank gone, a timeout) becomes E_DISTRIBUTED saying which rank saw it. */
export function collective<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ConvzooError && (e.code === 'E_ARG' || e.code === 'E_UNSUPPORTED')) throw e;
    const where = state ? `rank ${state.rank} of ${state.worldSize}` : 'this process';
    const hint = state ? ` (another rank has probably died or stopped; the timeout is ${state.timeoutSeconds} s)` : '';
    throw new ConvzooError(`distributed: ${what} failed on ${where}${hint}: ${(e as Error).message}`, 'E_DISTRIBUTED', 'distributed');
  }
}

function requireGroup(who: string): void {
  if (!state) throw new ConvzooError(`${who}: no process group; call distributed.initProcessGroup() first`, 'E_ARG');
}

/** Reduces x over every rank, in place (x must be contiguous); 'avg' divides the sum by the world size. Returns x. */
export function allReduce(x: Tensor, op: ReduceOp = 'sum'): Tensor {
  if (!['sum', 'avg', 'product', 'min', 'max'].includes(op))
    throw new ConvzooError(`allReduce: op must be sum, avg, product, min or max, got '${op}'`, 'E_ARG');
  if (op === 'avg' && !isFloatingDType(x.dtype))
    throw new ConvzooError(`allReduce: 'avg' needs a floating-point tensor, got ${x.dtype} (use 'sum')`, 'E_DTYPE');
  requireGroup('allReduce');
  collective('allReduce', () => ops.dist_all_reduce(x.handle, op === 'avg' ? 'sum' : op));
  if (op === 'avg') x.div_(getWorldSize());
  return x;
}

/** Copies rank src's x into every rank's x, in place. Returns x. */
export function broadcast(x: Tensor, src = 0): Tensor {
  requireGroup('broadcast');
  collective('broadcast', () => ops.dist_broadcast(x.handle, src));
  return x;
}

/** Broadcasts many tensors from src in few messages (flattened into buffers of bufferBytes). */
export function broadcastCoalesced(xs: Tensor[], src = 0, bufferBytes = 256 * 2 ** 20): void {
  requireGroup('broadcastCoalesced');
  if (xs.length)
    collective('broadcast', () =>
      ops.dist_broadcast_coalesced(
        xs.map((x) => x.handle),
        src,
        bufferBytes,
      ),
    );
}

/** Waits until every rank has reached it. */
export function barrier(): void {
  requireGroup('barrier');
  collective('barrier', () => ops.dist_barrier());
}
