// Messages between a ModelWorker and its thread. Tensors cross as ids of parked libtorch references
// (zero-copy: both threads see the same memory); every id sent is adopted exactly once by the receiver.
import type { OptimizeForInferenceOptions } from '../models/optimize.js';
import type { ExportOnnxOptions } from '../onnx/export.js';
import type { EvalTransform } from '../vision/preprocess.js';

export interface WorkerTrainConfig {
  optimizer: 'sgd' | 'adamw' | 'rmsprop';
  lr: number;
  momentum?: number;
  weightDecay?: number;
  labelSmoothing?: number;
}

export type WorkerRequest =
  | {
      type: 'init';
      id: string;
      options: Record<string, unknown>;
      state: Record<string, bigint> | null;
      threads?: number;
      train?: WorkerTrainConfig;
      /** createModel's optimize, applied after the copied state is in. */
      optimize?: boolean | OptimizeForInferenceOptions;
      /** What the copied model carries beside its tensors (its exports' metadata needs them). */
      identity?: { classes?: string[]; weightsTag?: string; evalTransform?: EvalTransform };
    }
  | { type: 'exportOnnx'; req: number; options: ExportOnnxOptions }
  | { type: 'forward'; req: number; input: bigint }
  | { type: 'trainStep'; req: number; input: bigint; target: bigint }
  | { type: 'stateDict'; req: number }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'ready'; numClasses: number }
  | { type: 'result'; req: number; output: bigint }
  | { type: 'trained'; req: number; loss: number; correct: number }
  | { type: 'state'; req: number; state: Record<string, bigint> }
  | { type: 'onnx'; req: number; bytes: Uint8Array }
  | { type: 'error'; req: number; message: string; code: string };
