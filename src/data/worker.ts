// The DataLoader's worker thread: rebuilds the dataset and transform from plain data, then answers
// batch requests with transferable buffers. It imports only pure-JS modules (never the libtorch addon).
import { parentPort, workerData } from 'node:worker_threads';
import { ConvzooError } from '../errors.js';
import { datasetFromSpec, loadBatch, type BatchTask } from './batch.js';
import type { DatasetSpec } from './dataset.js';
import { transformFromSpec, type TransformSpec } from './transforms.js';

export interface WorkerInit {
  dataset: DatasetSpec;
  transform?: TransformSpec;
}
export interface WorkerRequest {
  id: number;
  task: BatchTask;
}

const init = workerData as WorkerInit;
const dataset = datasetFromSpec(init.dataset);
const transform = init.transform ? transformFromSpec(init.transform) : undefined;
const port = parentPort!;

port.on('message', async ({ id, task }: WorkerRequest) => {
  try {
    const result = await loadBatch(dataset, transform, task);
    port.postMessage({ id, result }, [result.images.buffer as ArrayBuffer, result.labels.buffer as ArrayBuffer]);
  } catch (e) {
    const err = e as Error;
    port.postMessage({ id, error: { message: err.message, code: e instanceof ConvzooError ? e.code : 'E_DATA', stack: err.stack } });
  }
});
