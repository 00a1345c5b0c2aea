// Weight files: cz.load / cz.loadBuffer read PyTorch checkpoints (.pth/.pt, zip or legacy format)
// and safetensors, told apart by their bytes; cz.save / cz.saveBuffer write safetensors.
// cz.openWeights lists a file's tensors (names, shapes, dtypes) before reading any of them; load is
// openWeights + read() + close(), so both go through one code path.
//
// What a PyTorch checkpoint loads as: the returned record holds every tensor of the saved object,
// nested dicts and lists flattened with dotted keys ({'a': {'b': t}} gives 'a.b'; list items by
// index); other values (epoch numbers, strings, None) are skipped. Training checkpoints usually wrap
// the weights ({'state_dict': sd, 'epoch': 3}), so when the top level holds no tensor itself and
// exactly one of its entries holds tensors, and that entry is a dict, that dict is unwrapped
// (repeatedly). Otherwise ({'model': sd, 'model_ema': sd2}) everything comes back flattened, and
// `{key: 'model'}` picks one part. A bare saved tensor comes back under the key ''.
import type { Tensor } from '../tensor/tensor.js';
import { ConvzooError } from '../errors.js';
import { bufferSource, FileSource } from './source.js';
import { openSource } from './weights_file.js';
import { writeSafetensors, safetensorsBytes } from './safetensors.js';
import type { LoadOptions, WeightsFile } from './types.js';

export type { LoadOptions, WeightsFile, WeightsFileEntry } from './types.js';

/**
 * Loads the tensors of a PyTorch `.pth`/`.pt` file (torch.save's zip or legacy format) or a
 * `.safetensors` file; the format is recognised from the content, not the extension. PyTorch files
 * are read weights-only: the pickle may build dicts, lists and tensors and nothing else, so a file
 * naming other Python code fails with E_UNSAFE_PICKLE instead of running it. Tensors that shared a
 * storage in PyTorch share one here too, with the same strides and offsets. All tensors are on the
 * CPU; the caller owns them (dispose them, or hand them to loadStateDict and then dispose them).
 */
export async function load(file: string, opts: LoadOptions = {}): Promise<Record<string, Tensor>> {
  return (await loadWithMetadata(file, opts)).tensors;
}

/** `load` for bytes already in memory (a fetched file, an embedded asset). */
export async function loadBuffer(bytes: Uint8Array, opts: LoadOptions = {}): Promise<Record<string, Tensor>> {
  if (!(bytes instanceof Uint8Array)) throw new ConvzooError('loadBuffer: expected a Uint8Array or Buffer', 'E_ARG', 'loadBuffer');
  return (await openSource(bufferSource(bytes), opts, async () => {})).read();
}

/**
 * `load`, plus the file's safetensors `__metadata__` strings ({} for a PyTorch checkpoint or a
 * safetensors file without metadata).
 */
export async function loadWithMetadata(file: string, opts: LoadOptions = {}): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  const weights = await openWeights(file, opts);
  try {
    return { tensors: await weights.read(), metadata: weights.metadata };
  } finally {
    await weights.close();
  }
}

/**
 * Opens a weights file (like `load`: PyTorch zip or legacy, or safetensors) and reads only its
 * header, so that callers can check keys, shapes and dtypes before any tensor data is read or
 * allocated. The pickle or JSON header is fully validated here (unsafe pickles, views outside their
 * storage, malformed headers all fail now). Close it when done.
 */
export async function openWeights(file: string, opts: LoadOptions = {}): Promise<WeightsFile> {
  const src = await FileSource.open(file);
  try {
    return await openSource(src, opts, () => src.close());
  } catch (e) {
    await src.close();
    throw e;
  }
}

/**
 * Writes tensors as a safetensors file (whatever the extension), with optional `__metadata__`
 * strings. The file is replaced atomically: written to a temporary file beside it, flushed to disk,
 * then renamed over the target, so a crash leaves either the old file or the new one. Views are
 * written as their own contiguous copies (safetensors has no shared storage).
 */
export function save(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  return writeSafetensors(file, tensors, metadata);
}

/** The bytes `save` would write. */
export function saveBuffer(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return safetensorsBytes(tensors, metadata);
}
