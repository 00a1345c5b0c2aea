// Training checkpoints: one safetensors file holding the model (`model.*`), the optimizer's buffers
// (`optimizer.*`) and the RNG state (`rng_state`), with everything else (epoch, options, optimizer
// groups, scheduler, metrics, class names) as JSON in its metadata. Written atomically by cz.save
// (temporary file, fsync, rename), so a kill at any moment leaves the previous checkpoint intact.
//
// A checkpoint is input like any other file: its JSON is checked for shape here, and what the trainer
// takes from it (the run's options) is validated like command-line options. Fields that say where to
// write or what to fetch (`out`, `resume`, `weights`) are never acted on when a checkpoint is read.
import { existsSync, statSync } from 'node:fs';
import type { Tensor } from '../tensor/tensor.js';
import { getRngState, setRngState } from '../tensor/creation.js';
import { save, loadWithMetadata } from '../io/index.js';
import { FileSource } from '../io/source.js';
import { readSafetensorsHeader, looksLikeSafetensors } from '../io/safetensors.js';
import { ConvzooError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';

export const CHECKPOINT_FORMAT = 'convzoo-checkpoint-1';
/** The model's state dict is stored under this prefix (`model.conv1.weight`). */
export const MODEL_PREFIX = 'model.';
/** A run with an EMA of its weights (--ema) stores the average under this prefix (`ema.conv1.weight`). */
export const EMA_PREFIX = 'ema.';

export interface CheckpointInfo {
  epoch: number;
  modelId: string;
  options: Record<string, unknown>;
  classes: string[];
  best: number;
  history: unknown[];
  scheduler?: unknown;
  /** Input channels of the model (1 for Fashion-MNIST, 3 for image folders); absent in older checkpoints. */
  inChans?: number;
}

export interface Checkpoint extends CheckpointInfo {
  model: Record<string, Tensor>;
  /** The EMA of the weights (a run with --ema); empty otherwise. */
  ema: Record<string, Tensor>;
  optimizer?: { state: Record<string, Tensor>; groups: unknown[] };
  rngState?: Tensor;
  /** Frees every tensor of the checkpoint. */
  dispose(): void;
}

/** A checkpoint's description, read from its header alone (see readCheckpointMeta). */
export interface CheckpointMeta {
  modelId: string;
  classes: string[];
  /** The epoch the checkpoint was written after, and the best test accuracy so far. */
  epoch: number;
  best: number;
  /** The run's options (data, inputSize, augment, modelOptions, ...), less `out`, `resume` and `weights`. */
  options: Record<string, unknown>;
  /** The run's input size, if it set one (else the data's default: 28 for Fashion-MNIST, 224 for folders). */
  inputSize?: number;
  /** Input channels of the trained model. */
  inChans: number;
  /** Extra architecture options of the run (e.g. dropRate); {} when none. */
  modelOptions: Record<string, unknown>;
  /**
   * The weights the run started from ('DEFAULT', a tag, ...), if any: they decide the architecture options
   * and preprocessing the run used. Only a name here; nothing is fetched because of it.
   */
  startWeights?: string;
}

/** Keys of a checkpoint's options that name places to write or things to fetch: never acted on when read. */
const UNTRUSTED_OPTION_KEYS = ['out', 'resume', 'weights'] as const;

/** Writes a checkpoint atomically: the model, the optimizer's state if given, the EMA model's weights if given. */
export async function saveCheckpoint(path: string, info: CheckpointInfo, model: Module, optimizer?: Optimizer<any>, ema?: Module): Promise<void> {
  const record: Record<string, Tensor> = {};
  const owned: Tensor[] = [];
  try {
    for (const [prefix, m] of [[MODEL_PREFIX, model], ...(ema ? [[EMA_PREFIX, ema] as const] : [])] as const) {
      for (const [k, t] of Object.entries(m.stateDict())) {
        record[`${prefix}${k}`] = t;
        owned.push(t);
      }
    }
    let groups: unknown[] = [];
    if (optimizer) {
      const sd = optimizer.stateDict();
      groups = sd.groups;
      for (const [k, t] of Object.entries(sd.state)) {
        record[`optimizer.${k}`] = t;
        owned.push(t);
      }
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

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and checks the shape of a checkpoint's info JSON; throws a plain Error with the reason. */
function parseInfo(metadata: Record<string, string>): CheckpointInfo {
  const info: unknown = JSON.parse(metadata.info ?? 'null');
  if (!isPlainObject(info)) throw new Error('info is not a JSON object');
  const bad = (what: string): never => {
    throw new Error(`info.${what}`);
  };
  if (!Number.isInteger(info.epoch) || (info.epoch as number) < 1) bad(`epoch is ${JSON.stringify(info.epoch)}, expected an integer >= 1`);
  if (typeof info.modelId !== 'string' || !info.modelId) bad('modelId is not a model id');
  if (!isPlainObject(info.options)) bad('options is not an object');
  if (!Array.isArray(info.classes) || !info.classes.every((c) => typeof c === 'string')) bad('classes is not a list of names');
  if (typeof info.best !== 'number' || !Number.isFinite(info.best)) bad('best is not a number');
  if (!Array.isArray(info.history) || !info.history.every(isPlainObject)) bad('history is not a list of objects');
  if (info.inChans !== undefined && (!Number.isInteger(info.inChans) || (info.inChans as number) < 1)) bad('inChans is not a positive integer');
  const options = info.options as Record<string, unknown>;
  if (options.modelOptions !== undefined && !isPlainObject(options.modelOptions)) bad('options.modelOptions is not an object');
  return { ...(info as unknown as CheckpointInfo), history: (info.history as Record<string, unknown>[]).map(normalizeHistoryRow) };
}

/** Metrics rows of older checkpoints called the test split's numbers valLoss / valAccuracy. */
export function normalizeHistoryRow(row: Record<string, unknown>): Record<string, unknown> {
  const renamed: Record<string, string> = { valLoss: 'testLoss', valAccuracy: 'testAccuracy' };
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    const name = renamed[k] ?? k;
    if (!Object.hasOwn(r, name) || !renamed[k]) Object.defineProperty(r, name, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return r;
}

/** Sets a key as an own property, so that a file's '__proto__' key cannot touch the prototype. */
function put(out: Record<string, Tensor>, name: string, t: Tensor): void {
  Object.defineProperty(out, name, { value: t, enumerable: true, writable: true, configurable: true });
}

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const { tensors, metadata } = await loadWithMetadata(path);
  const all = Object.values(tensors);
  const fail = (msg: string): never => {
    for (const t of all) t.dispose();
    throw new ConvzooError(`${path}: ${msg}`, 'E_FORMAT');
  };
  if (metadata?.format !== CHECKPOINT_FORMAT) fail(`not a convzoo checkpoint (metadata format is ${JSON.stringify(metadata?.format ?? null)})`);
  let info: CheckpointInfo;
  let groups: unknown[];
  try {
    info = parseInfo(metadata);
    groups = JSON.parse(metadata.optimizer_groups ?? '[]');
    if (!Array.isArray(groups)) throw new Error('optimizer_groups is not a list');
  } catch (e) {
    return fail(`corrupt checkpoint metadata: ${(e as Error).message}`);
  }
  const model: Record<string, Tensor> = {};
  const ema: Record<string, Tensor> = {};
  const optState: Record<string, Tensor> = {};
  let rngState: Tensor | undefined;
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith(MODEL_PREFIX)) put(model, k.slice(MODEL_PREFIX.length), t);
    else if (k.startsWith(EMA_PREFIX)) put(ema, k.slice(EMA_PREFIX.length), t);
    else if (k.startsWith('optimizer.')) put(optState, k.slice(10), t);
    else if (k === 'rng_state') rngState = t;
    else t.dispose();
  }
  return {
    ...info!,
    model,
    ema,
    optimizer: { state: optState, groups: groups! },
    rngState,
    dispose() {
      for (const t of all) t.dispose();
    },
  };
}

/**
 * Whether `path` is a convzoo training checkpoint (a safetensors file whose metadata format is
 * 'convzoo-checkpoint-1'). Reads only the header; false for a missing, unreadable or other file.
 */
export async function isCheckpointFile(path: string): Promise<boolean> {
  try {
    if (!existsSync(path) || !statSync(path).isFile()) return false;
  } catch {
    return false;
  }
  let src: FileSource | undefined;
  try {
    src = await FileSource.open(path);
    if (src.size < 9 || !looksLikeSafetensors(await src.read(0, 9))) return false;
    const { metadata } = await readSafetensorsHeader(src);
    return metadata.format === CHECKPOINT_FORMAT;
  } catch {
    return false;
  } finally {
    await src?.close().catch(() => {});
  }
}

/** The input channels of a checkpoint's model: stored, else from the run's data (Fashion-MNIST: 1). */
function checkpointInChans(info: CheckpointInfo): number {
  if (info.inChans !== undefined) return info.inChans;
  const data = info.options.data;
  if (data === undefined || data === 'fashion-mnist') return 1;
  if (typeof data === 'string' && ['train-images-idx3-ubyte', 'train-images-idx3-ubyte.gz'].some((f) => existsSync(`${data}/${f}`))) return 1;
  return 3;
}

/**
 * The description of a convzoo checkpoint from its safetensors header `metadata`: null when the file
 * is not a checkpoint (another format), an E_FORMAT error naming `file` when it is one with corrupt
 * metadata. The run's `out`, `resume` and `weights` options are left out of `options`: a checkpoint
 * never decides where to write or what to fetch.
 */
export function checkpointMeta(metadata: Record<string, string>, file: string): CheckpointMeta | null {
  if (metadata.format !== CHECKPOINT_FORMAT) return null;
  let info: CheckpointInfo;
  try {
    info = parseInfo(metadata);
  } catch (e) {
    throw new ConvzooError(`${file}: corrupt checkpoint metadata: ${(e as Error).message}`, 'E_FORMAT');
  }
  if (!info.classes.length) throw new ConvzooError(`${file}: corrupt checkpoint metadata: info.classes is empty`, 'E_FORMAT');
  const options = { ...info.options };
  for (const k of UNTRUSTED_OPTION_KEYS) delete options[k];
  const inputSize = Number.isInteger(options.inputSize) && (options.inputSize as number) > 0 ? (options.inputSize as number) : undefined;
  const weights = info.options.weights;
  return {
    modelId: info.modelId,
    classes: info.classes,
    epoch: info.epoch,
    best: info.best,
    options,
    inputSize,
    inChans: checkpointInChans(info),
    modelOptions: { ...(options.modelOptions as Record<string, unknown> | undefined) },
    startWeights: typeof weights === 'string' ? weights : undefined,
  };
}

/**
 * Reads a checkpoint's description from its header only (no tensor is read): for building the model
 * elsewhere (createModel with the checkpoint as weights, eval, predict) and for deciding on its data.
 */
export async function readCheckpointMeta(path: string): Promise<CheckpointMeta> {
  const src = await FileSource.open(path); // a missing or unreadable file fails with its own message (E_NOT_FOUND, E_IO)
  try {
    const meta = src.size >= 9 && looksLikeSafetensors(await src.read(0, 9)) ? checkpointMeta((await readSafetensorsHeader(src)).metadata, path) : null;
    if (!meta)
      throw new ConvzooError(`${path}: not a convzoo training checkpoint (a safetensors file with metadata format '${CHECKPOINT_FORMAT}')`, 'E_FORMAT');
    return meta;
  } finally {
    await src.close().catch(() => {});
  }
}

/** Restores the global RNG from a checkpoint (for an exact resume). */
export function restoreRng(ckpt: Checkpoint): void {
  if (ckpt.rngState) setRngState(ckpt.rngState);
}
