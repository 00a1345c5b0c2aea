// Runs a model's forward passes and training steps on a worker thread, so that the JavaScript thread
// (a server's event loop) stays responsive during long work. Tensors cross threads without copying.
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ops, type Handle } from '../native.js';
import { Tensor } from '../tensor/tensor.js';
import { ConvzooError, type ErrorCode } from '../errors.js';
import type { OptimizeForInferenceOptions } from '../models/optimize.js';
import type { ClassifierModel } from '../models/base.js';
import type { CreateModelOptions } from '../models/builder.js';
import type { ExportOnnxOptions } from '../onnx/export.js';
import type { WorkerReply, WorkerRequest, WorkerTrainConfig } from './protocol.js';

export type { WorkerTrainConfig };

function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const local = path.join(here, 'worker_main.js');
  // From the TypeScript sources (tests), run the compiled copy.
  return existsSync(local) ? local : path.resolve(here, '../../dist/worker/worker_main.js');
}

export interface ModelWorkerOptions extends Omit<CreateModelOptions, 'onProgress'> {
  /** libtorch threads inside the worker. */
  threads?: number;
  /** Give it to train in the worker with trainStep(). */
  train?: WorkerTrainConfig;
  /** The inference fast path in the worker (createModel's optimize), after the weights are in. */
  optimize?: boolean | OptimizeForInferenceOptions;
}

type Pending = { resolve: (v: any) => void; reject: (e: Error) => void };

export class ModelWorker {
  readonly numClasses: number;
  private readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  private constructor(worker: Worker, numClasses: number) {
    this.worker = worker;
    this.numClasses = numClasses;
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'result') {
        const p = this.take(m.req);
        const out = new Tensor(ops.adopt(m.output) as Handle);
        if (p) p.resolve(out);
        else out.dispose();
      } else if (m.type === 'trained') {
        this.take(m.req)?.resolve({ loss: m.loss, correct: m.correct });
      } else if (m.type === 'state') {
        const sd = Object.fromEntries(Object.entries(m.state).map(([k, id]) => [k, new Tensor(ops.adopt(id) as Handle)]));
        const p = this.take(m.req);
        if (p) p.resolve(sd);
        else for (const t of Object.values(sd)) t.dispose();
      } else if (m.type === 'onnx') {
        this.take(m.req)?.resolve(m.bytes);
      } else if (m.type === 'error') {
        const p = this.pending.get(m.req);
        this.pending.delete(m.req);
        p?.reject(new ConvzooError(m.message, m.code as ErrorCode));
      }
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', () => this.failAll(new ConvzooError('model worker exited', 'E_TORCH')));
  }

  private take(req: number): Pending | undefined {
    const p = this.pending.get(req);
    this.pending.delete(req);
    return p;
  }

  private request<T>(message: (req: number) => WorkerRequest): Promise<T> {
    if (this.closed) return Promise.reject(new ConvzooError('ModelWorker: the worker is closed', 'E_ARG'));
    const req = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      this.worker.postMessage(message(req));
    });
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
    const { threads, train, optimize, ...modelOptions } = options;
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
      const identity = from ? { classes: from.classes, weightsTag: from._weightsTag, evalTransform: from._evalTransform } : undefined;
      worker.postMessage({ type: 'init', id, options: modelOptions, state, threads, train, identity, optimize } satisfies WorkerRequest);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    return new ModelWorker(worker, numClasses);
  }

  /** The model's logits for `x`, computed on the worker thread. `x` stays owned by the caller. */
  forward(x: Tensor): Promise<Tensor> {
    return this.request((req) => ({ type: 'forward', req, input: ops.share(x.handle) }));
  }

  /**
   * One training step on the worker thread (forward, cross-entropy, backward, optimizer step); needs
   * `train` in the create options. Resolves to the batch's mean loss and correct predictions.
   */
  trainStep(x: Tensor, target: Tensor): Promise<{ loss: number; correct: number }> {
    return this.request((req) => ({ type: 'trainStep', req, input: ops.share(x.handle), target: ops.share(target.handle) }));
  }

  /** The worker's model as ONNX (cz.exportOnnxBytes), traced on the worker thread: the caller's event loop keeps running. */
  exportOnnx(options: ExportOnnxOptions = {}): Promise<Uint8Array> {
    return this.request((req) => ({ type: 'exportOnnx', req, options }));
  }

  /** A snapshot of the worker model's state dict (new handles, owned by the caller). */
  stateDict(): Promise<Record<string, Tensor>> {
    return this.request((req) => ({ type: 'stateDict', req }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
