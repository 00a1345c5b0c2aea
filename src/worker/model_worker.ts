// Runs a model's forward pass on a worker thread, so that the JavaScript thread (a server's event loop)
// stays responsive during long inference. Tensors cross threads without copying.
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ops, type Handle } from '../native.js';
import { Tensor } from '../tensor/tensor.js';
import { ConvzooError, type ErrorCode } from '../errors.js';
import type { ClassifierModel } from '../models/base.js';
import type { CreateModelOptions } from '../models/builder.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const local = path.join(here, 'worker_main.js');
  // From the TypeScript sources (tests), run the compiled copy.
  return existsSync(local) ? local : path.resolve(here, '../../dist/worker/worker_main.js');
}

export interface ModelWorkerOptions extends Omit<CreateModelOptions, 'onProgress'> {
  /** libtorch threads inside the worker. */
  threads?: number;
}

export class ModelWorker {
  readonly numClasses: number;
  private readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (t: Tensor) => void; reject: (e: Error) => void }>();
  private closed = false;

  private constructor(worker: Worker, numClasses: number) {
    this.worker = worker;
    this.numClasses = numClasses;
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'result') {
        const p = this.pending.get(m.req);
        this.pending.delete(m.req);
        const out = new Tensor(ops.adopt(m.output) as Handle);
        if (p) p.resolve(out); else out.dispose();
      } else if (m.type === 'error') {
        const p = this.pending.get(m.req);
        this.pending.delete(m.req);
        p?.reject(new ConvzooError(m.message, m.code as ErrorCode));
      }
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', () => this.failAll(new ConvzooError('model worker exited', 'E_TORCH')));
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /**
   * Starts a worker holding model `id` built with `options` (weights are loaded in the worker). With
   * `from`, the worker's model takes that model's current parameters and buffers.
   */
  static async create(id: string, options: ModelWorkerOptions = {}, from?: ClassifierModel): Promise<ModelWorker> {
    const { threads, ...modelOptions } = options;
    let state: Record<string, bigint> | null = null;
    if (from) {
      const sd = from.stateDict();
      state = Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, ops.share(t.handle) as bigint]));
      for (const t of Object.values(sd)) t.dispose();
    }
    const worker = new Worker(workerScript());
    const numClasses = await new Promise<number>((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        worker.off('message', onMessage);
        if (m.type === 'ready') resolve(m.numClasses);
        else if (m.type === 'error') reject(new ConvzooError(`model worker: ${m.message}`, m.code as ErrorCode));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.postMessage({ type: 'init', id, options: modelOptions, state, threads } satisfies WorkerRequest);
    }).catch(async (e) => { await worker.terminate(); throw e; });
    return new ModelWorker(worker, numClasses);
  }

  /** The model's logits for `x`, computed on the worker thread. `x` stays owned by the caller. */
  forward(x: Tensor): Promise<Tensor> {
    if (this.closed) return Promise.reject(new ConvzooError('ModelWorker.forward: the worker is closed', 'E_ARG'));
    const req = this.next++;
    return new Promise<Tensor>((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      this.worker.postMessage({ type: 'forward', req, input: ops.share(x.handle) } satisfies WorkerRequest);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
