// Messages between an OnnxInferenceModel and its worker thread. Tensor data crosses as Float32Arrays
// in the transfer list: the buffer moves to the other thread instead of being copied.
import type { ErrorCode } from '../errors.js';

/** workerData of a runtime worker. */
export interface RuntimeWorkerInit {
  /** A file (its external data, if any, is found next to it) or the model's bytes. */
  source: { path: string } | { bytes: Uint8Array };
  /** onnxruntime's intra-op threads. */
  threads: number;
}

/** An input or output of the graph as onnxruntime reports it; a string dimension is symbolic ('batch'). */
export interface RuntimeValueInfo {
  name: string;
  /** 'float32', 'int64', ...; undefined for a value that is not a tensor. */
  type?: string;
  shape: (number | string)[];
}

export type RuntimeRequest =
  | { type: 'run'; req: number; data: Float32Array; dims: number[] }
  /** Skip the queued runs, release the session after the current one, and end the thread. */
  | { type: 'close' };

export type RuntimeReply =
  | { type: 'ready'; inputs: RuntimeValueInfo[]; outputs: RuntimeValueInfo[]; metadata: Record<string, string> }
  | { type: 'result'; req: number; data: Float32Array; dims: number[] }
  /** req -1: the worker could not start (no onnxruntime, or a file it cannot load). */
  | { type: 'error'; req: number; message: string; code: ErrorCode };
