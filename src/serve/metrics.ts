// The server's Prometheus metrics, in a registry of its own (two servers in one process do not mix).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { memory } from '../tensor/scope.js';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'convzoo_http_requests_total',
    help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'convzoo_http_request_duration_seconds',
    help: 'Time from request to response, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'convzoo_batch_size',
    help: 'Images per forward pass, by model',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'convzoo_queue_depth',
    help: 'Images waiting for a batch, by model',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });

  /** libtorch's memory in this process (every worker thread's tensors): live tensors and what the caching allocator keeps. */
  readonly tensorBytes = new Gauge({
    name: 'convzoo_tensor_bytes',
    help: 'Storage bytes of live tensors (all threads)',
    registers: [this.registry],
    collect() {
      this.set(memory().bytes);
    },
  });
  readonly allocatorCachedBytes = new Gauge({
    name: 'convzoo_allocator_cached_bytes',
    help: 'Freed bytes the caching CPU allocator keeps for reuse (bounded by CONVZOO_CPU_CACHE_MB)',
    registers: [this.registry],
    collect() {
      this.set(memory().cachedBytes);
    },
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'convzoo_' });
  }
}
