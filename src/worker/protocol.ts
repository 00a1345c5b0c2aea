// Messages between a ModelWorker and its thread. Tensors cross as ids of parked libtorch references
// (zero-copy: both threads see the same memory); every id sent is adopted exactly once by the receiver.
export type WorkerRequest =
  | { type: 'init'; id: string; options: Record<string, unknown>; state: Record<string, bigint> | null; threads?: number }
  | { type: 'forward'; req: number; input: bigint }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'ready'; numClasses: number }
  | { type: 'result'; req: number; output: bigint }
  | { type: 'error'; req: number; message: string; code: string };
