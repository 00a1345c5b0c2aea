// Training checkpoints: one safetensors file holding the model (`model.*`), the optimizer's buffers
// (`optimizer.*`) and the RNG state (`rng_state`), with everything else (epoch, options, optimizer
// groups, scheduler, metrics, class names) as JSON in its metadata. Written atomically by cz.save
// (temporary file, fsync, rename), so a kill at any moment leaves the previous checkpoint intact.
import { Tensor } from '../tensor/tensor.js';
import { getRngState, setRngState } from '../tensor/creation.js';
import { save, loadWithMetadata } from '../io/index.js';
import { ConvzooError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';

export const CHECKPOINT_FORMAT = 'convzoo-checkpoint-1';

export interface CheckpointInfo {
  epoch: number;
  modelId: string;
  options: Record<string, unknown>;
  classes: string[];
  best: number;
  history: unknown[];
  scheduler?: unknown;
}

export interface Checkpoint extends CheckpointInfo {
  model: Record<string, Tensor>;
  optimizer?: { state: Record<string, Tensor>; groups: unknown[] };
  rngState?: Tensor;
  /** Frees every tensor of the checkpoint. */
  dispose(): void;
}

export async function saveCheckpoint(path: string, info: CheckpointInfo, model: Module, optimizer?: Optimizer<any>): Promise<void> {
  const record: Record<string, Tensor> = {};
  const owned: Tensor[] = [];
  try {
    for (const [k, t] of Object.entries(model.stateDict())) { record[`model.${k}`] = t; owned.push(t); }
    let groups: unknown[] = [];
    if (optimizer) {
      const sd = optimizer.stateDict();
      groups = sd.groups;
      for (const [k, t] of Object.entries(sd.state)) { record[`optimizer.${k}`] = t; owned.push(t); }
    }
    const rng = getRngState();
    owned.push(rng);
    record.rng_state = rng;
    await save(path, record, {
      format: CHECKPOINT_FORMAT,
      info: JSON.stringify(info),
      optimizer_groups: JSON.stringify(groups),
    });
  } finally {
    for (const t of owned) t.dispose();
  }
}

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const { tensors, metadata } = await loadWithMetadata(path);
  const all = Object.values(tensors);
  const fail = (msg: string): never => { for (const t of all) t.dispose(); throw new ConvzooError(`${path}: ${msg}`, 'E_FORMAT'); };
  if (metadata?.format !== CHECKPOINT_FORMAT) fail(`not a convzoo checkpoint (metadata format is ${JSON.stringify(metadata?.format ?? null)})`);
  let info: CheckpointInfo;
  let groups: unknown[];
  try {
    info = JSON.parse(metadata!.info);
    groups = JSON.parse(metadata!.optimizer_groups ?? '[]');
  } catch (e) {
    return fail(`corrupt checkpoint metadata: ${(e as Error).message}`);
  }
  const model: Record<string, Tensor> = {};
  const optState: Record<string, Tensor> = {};
  let rngState: Tensor | undefined;
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) model[k.slice(6)] = t;
    else if (k.startsWith('optimizer.')) optState[k.slice(10)] = t;
    else if (k === 'rng_state') rngState = t;
    else t.dispose();
  }
  return {
    ...info!, model, optimizer: { state: optState, groups: groups! }, rngState,
    dispose() { for (const t of all) t.dispose(); },
  };
}

/** Restores the global RNG from a checkpoint (for an exact resume). */
export function restoreRng(ckpt: Checkpoint): void {
  if (ckpt.rngState) setRngState(ckpt.rngState);
}
