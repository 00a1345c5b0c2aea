// The body of a ModelWorker thread: builds the model, then answers forward requests one at a time.
import { parentPort } from 'node:worker_threads';
import { ops } from '../native.js';
import { Tensor } from '../tensor/tensor.js';
import { inferenceMode, setNumThreads } from '../tensor/creation.js';
import { createModel } from '../models/index.js'; // registers every family
import type { ClassifierModel } from '../models/base.js';
import type { Handle } from '../native.js';
import type { WorkerRequest, WorkerReply } from './protocol.js';

const port = parentPort!;
const adopt = (id: bigint): Tensor => new Tensor(ops.adopt(id) as Handle);
let model: ClassifierModel | null = null;
const send = (m: WorkerReply) => port.postMessage(m);

port.on('message', async (m: WorkerRequest) => {
  if (m.type === 'init') {
    try {
      if (m.threads) setNumThreads(m.threads);
      model = await createModel(m.id, m.options);
      if (m.state) {
        const sd = Object.fromEntries(Object.entries(m.state).map(([k, id]) => [k, adopt(id)]));
        try { model.loadStateDict(sd); } finally { for (const t of Object.values(sd)) t.dispose(); }
      }
      model.eval();
      send({ type: 'ready', numClasses: model.numClasses });
    } catch (e) {
      send({ type: 'error', req: -1, message: (e as Error).message, code: (e as { code?: string }).code ?? 'E_TORCH' });
    }
  } else if (m.type === 'forward') {
    const input = adopt(m.input);
    try {
      const out = inferenceMode(() => model!.forward(input));
      send({ type: 'result', req: m.req, output: ops.share(out.handle) });
      out.dispose();
    } catch (e) {
      send({ type: 'error', req: m.req, message: (e as Error).message, code: (e as { code?: string }).code ?? 'E_TORCH' });
    } finally {
      input.dispose();
    }
  } else if (m.type === 'close') {
    port.close();
  }
});
