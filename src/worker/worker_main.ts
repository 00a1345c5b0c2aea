// The body of a ModelWorker thread: builds the model (and an optimizer when it trains), then answers
// requests one at a time: forward passes, training steps, and snapshots of the state dict.
import { parentPort } from 'node:worker_threads';
import { ops } from '../native.js';
import { Tensor } from '../tensor/tensor.js';
import { inferenceMode, setNumThreads } from '../tensor/creation.js';
import { createModel } from '../models/index.js'; // registers every family
import { applyOptimize } from '../models/builder.js';
import { makeOptimizer } from '../train/recipe.js';
import { trainStep } from '../train/step.js';
import { exportOnnxBytes } from '../onnx/export.js';
import type { ClassifierModel } from '../models/base.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Handle } from '../native.js';
import type { WorkerRequest, WorkerReply, WorkerTrainConfig } from './protocol.js';

const port = parentPort!;
const adopt = (id: bigint): Tensor => new Tensor(ops.adopt(id) as Handle);
const send = (m: WorkerReply) => port.postMessage(m);
let model: ClassifierModel | null = null;
let optimizer: Optimizer<any> | null = null;
let trainConfig: WorkerTrainConfig | undefined;

function fail(req: number, e: unknown): void {
  send({ type: 'error', req, message: (e as Error).message, code: (e as { code?: string }).code ?? 'E_TORCH' });
}

port.on('message', async (m: WorkerRequest) => {
  switch (m.type) {
    case 'init':
      try {
        if (m.threads) setNumThreads(m.threads);
        model = await createModel(m.id, m.options);
        if (m.state) {
          const sd = Object.fromEntries(Object.entries(m.state).map(([k, id]) => [k, adopt(id)]));
          try {
            model.loadStateDict(sd);
          } finally {
            for (const t of Object.values(sd)) t.dispose();
          }
        }
        trainConfig = m.train;
        if (trainConfig) {
          optimizer = makeOptimizer(trainConfig.optimizer, model, {
            lr: trainConfig.lr,
            momentum: trainConfig.momentum ?? 0.9,
            weightDecay: trainConfig.weightDecay ?? 0,
          });
        }
        if (m.optimize) applyOptimize(model, m.optimize === true ? {} : m.optimize);
        if (m.identity) {
          model.classes = m.identity.classes;
          model._weightsTag = m.identity.weightsTag;
          model._evalTransform = m.identity.evalTransform;
        }
        model.eval();
        send({ type: 'ready', numClasses: model.numClasses });
      } catch (e) {
        fail(-1, e);
      }
      break;
    case 'forward': {
      const input = adopt(m.input);
      try {
        model!.eval();
        const out = inferenceMode(() => model!.forward(input));
        send({ type: 'result', req: m.req, output: ops.share(out.handle) });
        out.dispose();
      } catch (e) {
        fail(m.req, e);
      } finally {
        input.dispose();
      }
      break;
    }
    case 'trainStep': {
      const input = adopt(m.input),
        target = adopt(m.target);
      try {
        if (!optimizer) throw Object.assign(new Error('ModelWorker.trainStep: create the worker with a `train` configuration'), { code: 'E_ARG' });
        model!.train();
        const r = trainStep(model!, optimizer, { images: input, labels: target }, { labelSmoothing: trainConfig?.labelSmoothing ?? 0 });
        send({ type: 'trained', req: m.req, ...r });
      } catch (e) {
        fail(m.req, e);
      } finally {
        input.dispose();
        target.dispose();
      }
      break;
    }
    case 'stateDict': {
      const sd = model!.stateDict();
      send({ type: 'state', req: m.req, state: Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, ops.share(t.handle) as bigint])) });
      for (const t of Object.values(sd)) t.dispose();
      break;
    }
    case 'exportOnnx': {
      try {
        const bytes = exportOnnxBytes(model!, m.options);
        port.postMessage({ type: 'onnx', req: m.req, bytes } satisfies WorkerReply, [bytes.buffer as ArrayBuffer]);
      } catch (e) {
        fail(m.req, e);
      }
      break;
    }
    case 'close':
      port.close();
      break;
  }
});
