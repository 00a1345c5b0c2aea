// The DataLoader: seeded per-epoch shuffling, batches of transformed samples prepared ahead of use
// (in worker threads when numWorkers > 0), and tensors made on the main thread.
import { Worker } from 'node:worker_threads';
import { ConvzooError, check, checkInt, type ErrorCode } from '../errors.js';
import { fromBytes } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { type BatchResult, type BatchTask, loadBatch } from './batch.js';
import type { Dataset, DatasetSpec } from './dataset.js';
import { loadSharp } from './folder.js';
import { Rng, mixSeed } from './rng.js';
import type { Transform, TransformSpec } from './transforms.js';
import type { WorkerInit, WorkerRequest } from './worker.js';
import { workerScriptUrl } from './worker_url.js';

export interface DataLoaderOptions {
  batchSize?: number;
  /** A new seeded order every epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Seeds the shuffles, the random subset and every augmentation (default 0). */
  seed?: number;
  /** Leave out the last batch if it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Applied to every sample with its own Rng, seeded from (seed, epoch, sample index). */
  transform?: Transform;
  /** Worker threads that load, transform and collate batches (default 0: the main thread does it). */
  numWorkers?: number;
  /** Batches prepared ahead (default 2 per worker, 1 without workers). */
  prefetch?: number;
  /** Use only N samples: the first N, or with `{size, random: true}` a seeded random N (fixed across epochs). */
  subset?: number | { size: number; random?: boolean };
  /** The epoch the next pass uses (default 0); each pass over the loader then advances it. */
  epoch?: number;
  /** Told about every sample that could not be read, if the dataset has no reportSkipped of its own. */
  onWarning?: (message: string) => void;
  /**
   * Distributed training: this rank's share of each epoch's order (torch's DistributedSampler): positions
   * rank, rank + worldSize, ... of the whole order, so that the ranks' batches k together are the batch k
   * one process would take at worldSize times the batch size. With pad (default true) the order is first
   * extended from its start to a multiple of worldSize, so every rank has as many samples; evaluation
   * uses pad: false, so that each sample is counted once.
   */
  shard?: { rank: number; worldSize: number; pad?: boolean };
}

export interface Batch {
  /** [N, C, H, W] float32. */
  images: Tensor;
  /** [N] int64. */
  labels: Tensor;
  /** The dataset indices of the N samples. */
  indices: number[];
  /** Disposes both tensors. */
  dispose(): void;
  [Symbol.dispose](): void;
}

/**
 * Iterates a dataset in batches: `for await (const {images, labels} of loader)`, disposing each batch
 * when done with it. Each pass uses the current epoch (shuffle order and augmentations depend only on
 * seed, epoch and sample index, so any numWorkers gives the same batches) and then advances it; call
 * `setEpoch(e)` to choose. Worker threads persist across epochs until `close()`.
 */
export class DataLoader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly transform?: Transform;
  readonly numWorkers: number;
  readonly prefetch: number;
  /** The epoch the next pass over the loader uses. */
  epoch: number;
  /** The dataset indices this loader draws from (all of them, or the subset). */
  readonly sampleIndices: Int32Array;
  private readonly onWarning?: (message: string) => void;
  private readonly specs?: WorkerInit;
  private pool?: Promise<WorkerPool>;
  /** This rank's share of each epoch (options.shard). */
  readonly shard?: { rank: number; worldSize: number; pad: boolean };

  constructor(dataset: Dataset, opts: DataLoaderOptions = {}) {
    const who = 'DataLoader';
    this.dataset = dataset;
    this.batchSize = opts.batchSize ?? 1;
    checkInt(this.batchSize, who, 'batchSize', 1);
    this.shuffle = opts.shuffle ?? false;
    this.seed = opts.seed ?? 0;
    checkInt(this.seed, who, 'seed', 0);
    this.dropLast = opts.dropLast ?? false;
    this.transform = opts.transform;
    this.numWorkers = opts.numWorkers ?? 0;
    checkInt(this.numWorkers, who, 'numWorkers', 0);
    this.prefetch = opts.prefetch ?? (this.numWorkers ? 2 * this.numWorkers : 1);
    checkInt(this.prefetch, who, 'prefetch', 1);
    this.epoch = opts.epoch ?? 0;
    checkInt(this.epoch, who, 'epoch', 0);
    this.onWarning = opts.onWarning;
    this.sampleIndices = pickSubset(dataset.length, opts.subset, this.seed);
    if (opts.shard) {
      const { rank, worldSize } = opts.shard;
      checkInt(worldSize, who, 'shard.worldSize', 1);
      checkInt(rank, who, 'shard.rank', 0);
      check(rank < worldSize, who, `shard.rank ${rank} is outside shard.worldSize ${worldSize}`);
      this.shard = { rank, worldSize, pad: opts.shard.pad ?? true };
    }

    if (this.numWorkers > 0) {
      const dataset = this.dataset.workerSpec?.();
      check(
        dataset,
        who,
        'numWorkers > 0 needs a dataset with workerSpec() (the built-in datasets and Subsets of them have one); use numWorkers: 0 for a custom dataset',
      );
      let transform: TransformSpec | undefined;
      if (this.transform) {
        transform = this.transform.toSpec?.();
        check(transform, who, 'numWorkers > 0 needs transforms that describe themselves (toSpec); a Lambda or custom transform runs only with numWorkers: 0');
      }
      this.specs = { dataset, transform };
    }
  }

  /** Batches per epoch (this rank's, when sharded). */
  get length(): number {
    const n = this.shardSize();
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Samples per epoch: this rank's share when sharded. */
  private shardSize(): number {
    const n = this.sampleIndices.length;
    if (!this.shard) return n;
    const { rank, worldSize, pad } = this.shard;
    return pad ? Math.ceil(n / worldSize) : Math.max(0, Math.ceil((n - rank) / worldSize));
  }

  /** Sets the epoch the next pass uses. */
  setEpoch(epoch: number): void {
    checkInt(epoch, 'DataLoader.setEpoch', 'epoch', 0);
    this.epoch = epoch;
  }

  /** The dataset indices of every batch in `epoch`, in order. */
  batchIndices(epoch = this.epoch): number[][] {
    let order: Int32Array = Int32Array.from(this.sampleIndices);
    if (this.shuffle) new Rng(mixSeed(this.seed, epoch, 0x5348)).shuffle(order);
    if (this.shard) order = shardOf(order, this.shard);
    const out: number[][] = [];
    for (let b = 0; b < this.length; b++) out.push(Array.from(order.subarray(b * this.batchSize, (b + 1) * this.batchSize)));
    return out;
  }

  /** One pass over the current epoch, then advances `epoch`. */
  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    const epoch = this.epoch;
    this.epoch = epoch + 1;
    return this.iterate(epoch);
  }

  /** One pass over the given epoch (the loader's `epoch` is left alone). */
  async *iterate(epoch = this.epoch): AsyncGenerator<Batch> {
    checkInt(epoch, 'DataLoader.iterate', 'epoch', 0);
    const batches = this.batchIndices(epoch);
    const run = this.numWorkers > 0 ? await this.workers() : undefined;
    const pending: Promise<BatchResult>[] = [];
    let next = 0;
    const fill = (): void => {
      while (next < batches.length && pending.length < this.prefetch) {
        const task: BatchTask = { indices: batches[next++], seed: this.seed, epoch };
        const p = run ? run.run(task) : loadBatch(this.dataset, this.transform, task);
        p.catch(() => {}); // rejections are rethrown when the batch's turn comes; this stops "unhandled" reports before
        pending.push(p);
      }
    };
    fill();
    while (pending.length) {
      const p = pending.shift()!;
      fill();
      const r = await p;
      for (const s of r.skipped) this.report(s.index, s.message);
      if (r.indices.length === 0) continue;
      yield makeBatch(r);
    }
  }

  /** Stops the worker threads (after their current batches). The loader starts new ones if iterated again. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await (await pool.catch(() => undefined))?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private report(index: number, message: string): void {
    if (this.dataset.reportSkipped) this.dataset.reportSkipped(index, message);
    else if (this.onWarning) this.onWarning(message);
    else process.emitWarning(message, 'ConvzooDataWarning');
  }

  private async workers(): Promise<WorkerPool> {
    let pool = this.pool;
    if (pool) {
      const p = await pool.catch(() => undefined);
      if (p && !p.broken) return p;
    }
    pool = WorkerPool.start(this.numWorkers, this.specs!);
    this.pool = pool;
    return pool;
  }
}

/** Positions rank, rank + worldSize, ... of order (padded from its start to a multiple of worldSize when pad). */
function shardOf(order: Int32Array, { rank, worldSize, pad }: { rank: number; worldSize: number; pad: boolean }): Int32Array {
  const total = pad ? Math.ceil(order.length / worldSize) * worldSize : order.length;
  const out: number[] = [];
  for (let i = rank; i < total; i += worldSize) out.push(order[i % order.length]);
  return Int32Array.from(out);
}

function pickSubset(n: number, subset: DataLoaderOptions['subset'], seed: number): Int32Array {
  if (subset === undefined) return Int32Array.from({ length: n }, (_, i) => i);
  const size = typeof subset === 'number' ? subset : subset.size;
  checkInt(size, 'DataLoader', 'subset size', 0);
  const k = Math.min(size, n);
  if (typeof subset === 'number' || !subset.random) return Int32Array.from({ length: k }, (_, i) => i);
  return new Rng(mixSeed(seed, 0x5542)).permutation(n).subarray(0, k).sort();
}

function makeBatch(r: BatchResult): Batch {
  const n = r.indices.length;
  const images = fromBytes(r.images, [n, ...r.shape], 'float32');
  let labels: Tensor;
  try {
    labels = fromBytes(r.labels, [n], 'int64');
  } catch (e) {
    images.dispose();
    throw e;
  }
  const dispose = (): void => {
    images.dispose();
    labels.dispose();
  };
  return { images, labels, indices: r.indices, dispose, [Symbol.dispose]: dispose };
}

interface Job {
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
  slot: Slot;
}
interface Slot {
  worker: Worker;
  busy: number;
  index: number;
}

/** Worker threads each rebuilding the dataset and transform; batches go to the least busy one. */
class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private closing = false;
  broken = false;

  static async start(n: number, init: WorkerInit): Promise<WorkerPool> {
    // sharp must be loaded by the main thread before any worker loads it (glibc unloads its libraries
    // when the last thread using them exits).
    if (usesFolder(init.dataset)) await loadSharp();
    return new WorkerPool(n, init, await workerScriptUrl());
  }

  private constructor(n: number, init: WorkerInit, url: URL) {
    for (let i = 0; i < n; i++) {
      const worker = new Worker(url, { workerData: init, execArgv: [] });
      const slot: Slot = { worker, busy: 0, index: i };
      worker.unref();
      worker.on('message', (msg: { id: number; result?: BatchResult; error?: { message: string; code: ErrorCode; stack?: string } }) => {
        const job = this.jobs.get(msg.id);
        if (!job) return;
        this.jobs.delete(msg.id);
        if (--slot.busy === 0) worker.unref();
        if (msg.error) job.reject(new ConvzooError(msg.error.message, msg.error.code, 'DataLoader'));
        else job.resolve(msg.result!);
      });
      worker.on('error', (e) => this.fail(slot, `DataLoader: worker ${i} failed: ${e.message}`));
      worker.on('exit', (code) => {
        if (!this.closing) this.fail(slot, `DataLoader: worker ${i} exited (code ${code})`);
      });
      this.slots.push(slot);
    }
  }

  run(task: BatchTask): Promise<BatchResult> {
    if (this.broken || this.closing)
      return Promise.reject(new ConvzooError('DataLoader: a worker thread failed; iterate again to restart the workers', 'E_DATA', 'DataLoader'));
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    return new Promise<BatchResult>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject, slot });
      if (slot.busy++ === 0) slot.worker.ref();
      slot.worker.postMessage({ id, task } satisfies WorkerRequest);
    });
  }

  private fail(slot: Slot, message: string): void {
    this.broken = true;
    for (const [id, job] of this.jobs) {
      if (job.slot !== slot) continue;
      this.jobs.delete(id);
      job.reject(new ConvzooError(message, 'E_DATA', 'DataLoader'));
    }
    void this.close();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    // Let in-flight batches finish first: terminating a thread inside a native decode is unsafe.
    const inflight = [...this.jobs.values()].map(
      (j) =>
        new Promise<void>((res) => {
          const { resolve, reject } = j;
          j.resolve = (r) => {
            res();
            resolve(r);
          };
          j.reject = (e) => {
            res();
            reject(e);
          };
        }),
    );
    this.closing = true;
    await Promise.all(inflight);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

function usesFolder(spec: DatasetSpec): boolean {
  return spec.kind === 'folder' || (spec.kind === 'subset' && usesFolder(spec.base));
}
