// Messages between a ModelWorker and its thread. Tensors cross as ids of parked libtorch references
// (zero-copy: both threads see the same memory); every id sent is adopted exactly once by the receiver.
export interface WorkerTrainConfig {
  optimizer: 'sgd' | 'adamw' | 'rmsprop';
  lr: number;
  momentum?: number;
  weightDecay?: number;
  labelSmoothing?: number;
}

export type WorkerRequest =
  | { type: 'init'; id: string; options: Record<string, unknown>; state: Record<string, bigint> | null; threads?: number; train?: WorkerTrainConfig }
  | { type: 'forward'; req: number; input: bigint }
  | { type: 'trainStep'; req: number; input: bigint; target: bigint }
  | { type: 'stateDict'; req: number }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'ready'; numClasses: number }
  | { type: 'result'; req: number; output: bigint }
  | { type: 'trained'; req: number; loss: number; correct: number }
  | { type: 'state'; req: number; state: Record<string, bigint> }
  | { type: 'error'; req: number; message: string; code: string };
