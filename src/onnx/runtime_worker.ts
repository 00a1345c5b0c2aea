// The body of an OnnxInferenceModel's worker thread: one onnxruntime session. onnxruntime-node's run()
// is synchronous (inside a setImmediate), so it runs here rather than on the caller's thread. Requests
// run one at a time, in arrival order; the next one is already queued here when one finishes.
import { parentPort, workerData } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import { ConvzooError } from '../errors.js';
import { readOnnxMetadataProps } from './metadata_props.js';
import type { RuntimeReply, RuntimeRequest, RuntimeValueInfo, RuntimeWorkerInit } from './runtime_protocol.js';

type Ort = typeof import('onnxruntime-node');

const port = parentPort!;
const init = workerData as RuntimeWorkerInit;
const send = (m: RuntimeReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
const messageOf = (e: unknown): string => String((e as Error)?.message ?? e);

function valueInfos(names: readonly string[], metadata: readonly InferenceSession.ValueMetadata[]): RuntimeValueInfo[] {
  return names.map((name, i) => {
    const m = metadata[i];
    return m?.isTensor ? { name, type: m.type, shape: [...m.shape] } : { name, shape: [] };
  });
}

async function start(): Promise<void> {
  let ort: Ort;
  try {
    const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
    ort = mod.default ?? mod;
  } catch (e) {
    send({
      type: 'error',
      req: -1,
      code: 'E_NATIVE',
      message: `onnxruntime-node cannot be loaded (${messageOf(e)}); install it with \`npm install onnxruntime-node\``,
    });
    return;
  }
  const what = 'path' in init.source ? init.source.path : 'the model bytes';
  const options: InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: init.threads,
    // One op at a time, each using the intra-op threads: what convzoo's libtorch forward does too.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  let session: InferenceSession;
  let metadata: Record<string, string>;
  try {
    session =
      'path' in init.source ? await ort.InferenceSession.create(init.source.path, options) : await ort.InferenceSession.create(init.source.bytes, options);
  } catch (e) {
    send({ type: 'error', req: -1, code: 'E_FORMAT', message: `onnxruntime cannot load ${what}: ${messageOf(e)}` });
    return;
  }
  try {
    metadata = readOnnxMetadataProps('path' in init.source ? init.source.path : init.source.bytes);
  } catch (e) {
    send({ type: 'error', req: -1, code: e instanceof ConvzooError ? e.code : 'E_FORMAT', message: messageOf(e) });
    return;
  }
  const inputs = valueInfos(session.inputNames, session.inputMetadata);
  const outputs = valueInfos(session.outputNames, session.outputMetadata);
  // The file's own bytes are no longer needed (onnxruntime has its copy of the weights).
  if ('bytes' in init.source) (init as { source: unknown }).source = null;

  const inputName = inputs[0]?.name;
  const outputName = outputs[0]?.name;
  const fixedBatch = typeof inputs[0]?.shape[0] === 'number' ? (inputs[0].shape[0] as number) : null;

  /** One session.run of `data` (a whole number of fixed batches, or any batch for a dynamic one). */
  const runOnce = async (data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> => {
    const result = await session.run({ [inputName]: new ort.Tensor('float32', data, dims) }, [outputName]);
    const out = result[outputName];
    if (out.type !== 'float32') throw new Error(`output '${outputName}' is ${out.type}, not float32`);
    return { data: out.data as Float32Array, dims: [...out.dims] };
  };

  /**
   * The logits of `data` ([N, C, H, W]). A graph exported with a fixed batch B runs in pieces of B
   * (the last one padded with zeros), so every batch size works.
   */
  const run = async (data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> => {
    const n = dims[0];
    if (fixedBatch === null || fixedBatch === n || fixedBatch <= 0) return runOnce(data, dims);
    const perImage = data.length / n; // n >= 1: the main thread answers empty batches itself
    let out: Float32Array | null = null;
    let outDims: number[] = [];
    for (let start = 0; start < n; start += fixedBatch) {
      const rows = Math.min(fixedBatch, n - start);
      const piece = new Float32Array(fixedBatch * perImage);
      piece.set(data.subarray(start * perImage, (start + rows) * perImage));
      const r = await runOnce(piece, [fixedBatch, ...dims.slice(1)]);
      const perRow = r.data.length / fixedBatch;
      if (!out) {
        out = new Float32Array(n * perRow);
        outDims = [n, ...r.dims.slice(1)];
      }
      out.set(r.data.subarray(0, rows * perRow), start * perRow);
    }
    return { data: out!, dims: outDims };
  };

  let queue = Promise.resolve();
  let closing = false;
  port.on('message', (m: RuntimeRequest) => {
    if (m.type === 'close') {
      // Never end the thread from outside (Worker.terminate) while onnxruntime runs: its native code then
      // meets a torn-down environment and aborts the whole process. Here the run in progress finishes first.
      closing = true;
      queue = queue.then(async () => {
        await session.release().catch(() => {});
        process.exit(0); // in a worker: ends this thread only
      });
      return;
    }
    // The two sides disagree about the protocol: fail loudly (the main thread rejects every pending call).
    if (m.type !== 'run') throw new Error(`onnxruntime worker: unknown request ${JSON.stringify((m as { type?: unknown }).type)}`);
    queue = queue.then(async () => {
      if (closing) return; // disposed: the caller has had its rejection
      try {
        const r = await run(m.data, m.dims);
        // Move the output's buffer to the main thread; copy first if it shares a buffer with anything else.
        const data = r.data.byteOffset === 0 && r.data.byteLength === r.data.buffer.byteLength ? r.data : r.data.slice();
        send({ type: 'result', req: m.req, data, dims: r.dims }, [data.buffer as ArrayBuffer]);
      } catch (e) {
        send({ type: 'error', req: m.req, code: 'E_NATIVE', message: `onnxruntime: ${messageOf(e)}` });
      }
    });
  });
  send({ type: 'ready', inputs, outputs, metadata });
}

void start();
