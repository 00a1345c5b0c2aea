// The shapes shared by the weight-file readers and their public façade (index.ts).
import type { DType, Tensor } from '../tensor/tensor.js';

export interface LoadOptions {
  /**
   * Which part of the file to return. For a PyTorch checkpoint, a key of the saved dict
   * ('state_dict', 'model') or a dotted path into nested dicts ('ema.module'); it turns off the
   * automatic unwrapping. For safetensors, a key prefix: 'model' returns the tensors named
   * 'model.*' with the prefix removed.
   */
  key?: string;
}

/** A tensor of a weights file, as `openWeights` lists it before reading anything. */
export interface WeightsFileEntry {
  /** The key `load` returns it under. */
  name: string;
  shape: number[];
  dtype: DType;
}

/** An opened weights file: its tensors' names, shapes and dtypes, read on demand. */
export interface WeightsFile {
  /** Every tensor `load` would return, in the same order and under the same names (with `key` applied). */
  readonly entries: WeightsFileEntry[];
  /** The safetensors `__metadata__` strings ({} for a PyTorch checkpoint). */
  readonly metadata: Record<string, string>;
  /**
   * Reads the named tensors (all of them without `names`), returned in file order. Only their
   * storages are read; tensors of one read that shared a storage in the file share one here too.
   * An unknown name fails with E_NOT_FOUND before anything is read. The caller owns the tensors.
   */
  read(names?: string[]): Promise<Record<string, Tensor>>;
  /** Closes the file; `read` fails afterwards. Closing twice is harmless. */
  close(): Promise<void>;
}

/** What a format's reader knows after its header: the entries, and how to read some of them. */
export interface ReadPlan {
  entries: WeightsFileEntry[];
  metadata: Record<string, string>;
  /** `picked`: indices into `entries`, ascending. */
  read(picked: number[]): Promise<Record<string, Tensor>>;
}
