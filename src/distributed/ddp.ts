// DistributedDataParallel: c10d's Reducer (PyTorch's own) over a model's parameters. Gradients are
// bucketed and all-reduced while backward still runs, and averaged over the ranks; at the start every
// rank takes rank 0's parameters and buffers, and before each training forward its buffers (batch-norm
// statistics). SyncBatchNorm makes batch statistics span the ranks' batches, so N processes at a global
// batch B compute what one process does at B.
import { ConvzooError } from '../errors.js';
import { ops } from '../native.js';
import { BatchNorm2d } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { isGradEnabled, noGrad } from '../tensor/creation.js';
import { Tensor } from '../tensor/tensor.js';
import { broadcastCoalesced, collective, getWorldSize, isInitialized } from './process_group.js';

export interface DistributedDataParallelOptions {
  /** Gradient bucket size in MiB (default 25, PyTorch's). */
  bucketCapMB?: number;
  /** Copy rank 0's buffers to every rank before each training forward (default true, PyTorch's). */
  broadcastBuffers?: boolean;
  /** Allow parameters that get no gradient in a step (the reducer then searches the graph; default false). */
  findUnusedParameters?: boolean;
}

const FIRST_BUCKET_BYTES = 1 << 20; // PyTorch's: a small first bucket starts communication early

export class DistributedDataParallel<M extends Module = Module> {
  readonly module: M;
  readonly broadcastBuffers: boolean;
  readonly findUnusedParameters: boolean;
  private reducer: number | null;

  constructor(module: M, opts: DistributedDataParallelOptions = {}) {
    if (!isInitialized()) throw new ConvzooError('DistributedDataParallel: no process group; call distributed.initProcessGroup() first', 'E_ARG');
    const capMB = opts.bucketCapMB ?? 25;
    if (!(capMB > 0 && capMB <= 4096)) throw new ConvzooError(`DistributedDataParallel: bucketCapMB must be in (0, 4096], got ${capMB}`, 'E_ARG');
    this.module = module;
    this.broadcastBuffers = opts.broadcastBuffers ?? true;
    this.findUnusedParameters = opts.findUnusedParameters ?? false;
    // Every rank starts from rank 0's weights and statistics.
    noGrad(() => broadcastCoalesced([...module.parameters(), ...module.buffers()]));
    const params = module.parameters().filter((p) => p.requiresGrad);
    this.reducer = collective('DistributedDataParallel setup', () =>
      ops.ddp_reducer_new(
        params.map((p) => p.handle),
        Math.round(capMB * 2 ** 20),
        FIRST_BUCKET_BYTES,
        this.findUnusedParameters,
      ),
    );
  }

  /**
   * Runs a forward of the module with the reducer armed for the backward that follows (when gradients
   * are on and the module is training); anything else runs as the plain module would.
   */
  run<T>(forward: () => T): T {
    const training = this.module.training && isGradEnabled();
    if (!training) return forward();
    const id = this.id();
    collective('DistributedDataParallel forward', () => ops.ddp_prepare_forward(id));
    if (this.broadcastBuffers && getWorldSize() > 1) noGrad(() => broadcastCoalesced(this.module.buffers()));
    const out = forward();
    const outputs = this.findUnusedParameters ? tensorsIn(out).map((t) => t.handle) : [];
    ops.ddp_prepare_backward(id, outputs);
    return out;
  }

  forward(x: Tensor): Tensor {
    return this.run(() => (this.module as unknown as { forward(x: Tensor): Tensor }).forward(x));
  }

  /** Frees the reducer (the module stays usable on its own). */
  dispose(): void {
    if (this.reducer !== null) ops.ddp_reducer_free(this.reducer);
    this.reducer = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private id(): number {
    if (this.reducer === null) throw new ConvzooError('DistributedDataParallel: disposed', 'E_DISPOSED');
    return this.reducer;
  }
}

function tensorsIn(v: unknown): Tensor[] {
  if (v instanceof Tensor) return [v];
  if (Array.isArray(v)) return v.flatMap(tensorsIn);
  if (v && typeof v === 'object') return Object.values(v).flatMap(tensorsIn);
  return [];
}

/**
 * Batch statistics over every rank's batch (torch.nn.SyncBatchNorm), in the addon: the channel sums and
 * squared deviations are accumulated in double and all-reduced, libtorch's batch-norm kernel normalises,
 * and backward all-reduces the two sums of the input's gradient. Running statistics are updated as
 * BatchNorm2d does (unbiased variance over the global count).
 */
function syncBatchNorm(bn: BatchNorm2d, x: Tensor, momentum: number): Tensor {
  return new Tensor(
    collective('SyncBatchNorm', () =>
      ops.dist_sync_batch_norm(x.handle, bn.weight?.handle, bn.bias?.handle, bn.running_mean?.handle, bn.running_var?.handle, momentum, bn.eps),
    ),
  );
}

/**
 * Makes every BatchNorm2d of the model compute its training statistics over all ranks' batches
 * (torch.nn.SyncBatchNorm.convert_sync_batchnorm). Outside a process group of more than one rank, or in
 * eval mode, they behave as before. Returns how many were converted.
 */
export function convertSyncBatchNorm(model: Module): number {
  let converted = 0;
  for (const m of model.modules()) {
    if (m instanceof BatchNorm2d) {
      m._batchStats = (x, momentum) => (getWorldSize() > 1 ? syncBatchNorm(m, x, momentum) : null);
      converted++;
    }
  }
  return converted;
}
