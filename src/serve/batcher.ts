// Dynamic batching for one model: requests (each with one or more images) wait in a queue; a batch
// runs when it holds maxBatch images or maxDelayMs after its oldest input arrived, with one batch in
// flight at a time (the next one forms meanwhile). Each request gets back its own rows of the logits.
import { HttpError } from './errors.js';

export interface BatcherOptions {
  /** Images per forward pass, at most (a single larger request still runs, alone). */
  maxBatch: number;
  /** How long the oldest queued input waits for others before its batch runs. */
  maxDelayMs: number;
  /** Images waiting (not in flight) at most; a request that would pass it is refused with 503. */
  maxQueue: number;
  /** Floats per image (C x H x W). */
  imageSize: number;
  /** Logits per image. */
  numClasses: number;
  /** Runs a batch: `n` images, flat NCHW; resolves to the flat [n, numClasses] logits. */
  run: (input: Float32Array, n: number) => Promise<Float32Array>;
  /** Called with each batch's image count, before it runs. */
  onBatch?: (images: number) => void;
  /** Called whenever the number of queued images changes. */
  onQueueDepth?: (images: number) => void;
}

interface Job {
  input: Float32Array;
  images: number;
  arrived: number;
  resolve: (logits: Float32Array) => void;
  reject: (e: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Batcher {
  private readonly queue: Job[] = [];
  private queuedImages = 0;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: BatcherOptions) {}

  /** Images waiting for a batch now. */
  get depth(): number {
    return this.queuedImages;
  }

  /**
   * Queues `images` images (flat NCHW in `input`) and resolves to their logits ([images, numClasses],
   * flat). Refuses at once with HttpError 503 when the queue is full; an aborted `signal` takes a
   * still-queued request out of the queue (its promise rejects with the signal's reason).
   */
  submit(input: Float32Array, images: number, signal?: AbortSignal): Promise<Float32Array> {
    if (this.queuedImages + images > this.opts.maxQueue) {
      return Promise.reject(new HttpError(503, `the queue is full (${this.queuedImages} images waiting, at most ${this.opts.maxQueue})`, 'E_OVERLOADED', 1));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Float32Array>((resolve, reject) => {
      const job: Job = { input, images, arrived: Date.now(), resolve, reject, signal };
      if (signal) {
        job.onAbort = () => {
          const at = this.queue.indexOf(job);
          if (at >= 0) {
            this.queue.splice(at, 1);
            this.setDepth(this.queuedImages - job.images);
          }
          reject(signal.reason);
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.setDepth(this.queuedImages + images);
      this.schedule();
    });
  }

  /** Resolves once nothing is queued or in flight. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && !this.inFlight) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private setDepth(images: number): void {
    this.queuedImages = images;
    this.opts.onQueueDepth?.(images);
  }

  /** Runs a batch now if one is due, else sets the timer for when the oldest input's wait ends. */
  private schedule(): void {
    if (this.inFlight) return; // the batch that ends next calls schedule() again
    if (this.queue.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    const wait = this.queue[0].arrived + this.opts.maxDelayMs - Date.now();
    if (this.queuedImages >= this.opts.maxBatch || wait <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.inFlight = this.runBatch().finally(() => {
        this.inFlight = null;
        this.schedule();
      });
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, wait);
    }
  }

  /** Takes whole requests from the front of the queue up to maxBatch images (at least one request) and runs them. */
  private async runBatch(): Promise<void> {
    const jobs: Job[] = [];
    let images = 0;
    while (this.queue.length > 0 && (jobs.length === 0 || images + this.queue[0].images <= this.opts.maxBatch)) {
      const job = this.queue.shift()!;
      if (job.signal && job.onAbort) job.signal.removeEventListener('abort', job.onAbort);
      jobs.push(job);
      images += job.images;
    }
    this.setDepth(this.queuedImages - images);
    const { imageSize, numClasses } = this.opts;
    let input: Float32Array;
    if (jobs.length === 1) input = jobs[0].input;
    else {
      input = new Float32Array(images * imageSize);
      let at = 0;
      for (const job of jobs) {
        input.set(job.input.subarray(0, job.images * imageSize), at);
        at += job.images * imageSize;
      }
    }
    this.opts.onBatch?.(images);
    let logits: Float32Array;
    try {
      logits = await this.opts.run(input, images);
    } catch (e) {
      for (const job of jobs) job.reject(e as Error);
      return;
    }
    let row = 0;
    for (const job of jobs) {
      // A copy, so that one request's answer does not keep the whole batch's logits alive.
      job.resolve(logits.slice(row * numClasses, (row + job.images) * numClasses));
      row += job.images;
    }
  }
}
