// An opened weights file of any supported format: its header planned (entries, metadata) and its
// tensors read on demand. The formats are told apart by their bytes, not the file name.
import { ConvzooError } from '../errors.js';
import { DTYPE_BYTES, type Tensor } from '../tensor/tensor.js';
import { byteSwapped, formatError, HOST_LITTLE_ENDIAN, readChunks, type Source } from './source.js';
import { looksLikeZip } from './zip.js';
import { looksLikeLegacyTorch, readLegacyCheckpoint, readZipCheckpoint } from './torch.js';
import { looksLikeSafetensors, readSafetensorsHeader } from './safetensors.js';
import { planCheckpoint } from './checkpoint_tree.js';
import { mapChunks, put, tensorFromChunks } from './materialize.js';
import type { LoadOptions, ReadPlan, WeightsFile } from './types.js';

export async function openSource(src: Source, opts: LoadOptions, closeSource: () => Promise<void>): Promise<WeightsFile> {
  if (opts.key !== undefined && typeof opts.key !== 'string') throw new ConvzooError('load: expected key to be a string', 'E_ARG', 'load');
  const plan = await asFormatErrors(src, () => planFor(src, opts));
  const index = new Map(plan.entries.map((e, i) => [e.name, i]));
  let closed = false;
  return {
    // Copies, so that a caller editing them cannot change what read() does.
    entries: plan.entries.map((e) => ({ ...e, shape: [...e.shape] })),
    metadata: { ...plan.metadata },
    async read(names?: string[]) {
      if (closed) throw new ConvzooError(`load: ${src.name}: the weights file was closed`, 'E_ARG', 'load');
      let picked: number[];
      if (names === undefined) picked = plan.entries.map((_, i) => i);
      else {
        if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
          throw new ConvzooError('load: expected names to be an array of strings', 'E_ARG', 'load');
        const missing = names.filter((n) => !index.has(n));
        if (missing.length) {
          throw new ConvzooError(
            `load: ${src.name}: no tensor ${missing
              .slice(0, 5)
              .map((n) => `'${n}'`)
              .join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''} in the file`,
            'E_NOT_FOUND',
            'load',
          );
        }
        picked = [...new Set(names.map((n) => index.get(n)!))].sort((x, y) => x - y);
      }
      return asFormatErrors(src, () => plan.read(picked));
    },
    async close() {
      if (closed) return;
      closed = true;
      await closeSource();
    },
  };
}

/** Runs `fn`; any failure that is not already a ConvzooError (a RangeError from a forged length, say) still means a bad file, not a crash. */
async function asFormatErrors<T>(src: Source, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConvzooError) throw e;
    const err: Error = formatError(src, `unreadable file (${(e as Error).message})`);
    err.cause = e;
    throw err;
  }
}

async function planFor(src: Source, opts: LoadOptions): Promise<ReadPlan> {
  const head = await src.read(0, Math.min(src.size, 16));
  if (looksLikeZip(head)) return planCheckpoint(src, await readZipCheckpoint(src), opts);
  if (looksLikeLegacyTorch(head)) return planCheckpoint(src, await readLegacyCheckpoint(src), opts);
  if (looksLikeSafetensors(head)) return planSafetensors(src, opts);
  // Neither signature: still read it as safetensors (whose header has no magic number), and if
  // that fails say both what the file is not and what the safetensors reader found.
  return planSafetensors(src, opts).catch((e: unknown) => {
    if (!(e instanceof ConvzooError) || e.code !== 'E_FORMAT') throw e;
    const start = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw formatError(
      src,
      `not a PyTorch checkpoint (zip or legacy format) nor a safetensors file (starts with ${start || 'nothing: empty file'}; ` +
        `as safetensors: ${e.message.slice(`load: ${src.name}: `.length)})`,
    );
  });
}

async function planSafetensors(src: Source, opts: LoadOptions): Promise<ReadPlan> {
  const { entries, metadata } = await readSafetensorsHeader(src);
  let picked = entries.map((e) => ({ e, name: e.name }));
  if (opts.key !== undefined) {
    const prefix = `${opts.key}.`;
    picked = picked.filter(({ name }) => name.startsWith(prefix)).map(({ e, name }) => ({ e, name: name.slice(prefix.length) }));
    if (!picked.length) throw new ConvzooError(`load: ${src.name}: no tensor names start with '${prefix}'`, 'E_NOT_FOUND', 'load');
  }
  return {
    entries: picked.map(({ e, name }) => ({ name, shape: e.shape, dtype: e.dtype })),
    metadata,
    async read(indices) {
      const out: Record<string, Tensor> = {};
      try {
        for (const i of indices) {
          const { e, name } = picked[i];
          const chunks = mapChunks(readChunks(src, e.begin, e.end - e.begin, { transient: true }), (c) =>
            HOST_LITTLE_ENDIAN ? c : byteSwapped(c, DTYPE_BYTES[e.dtype]),
          );
          put(out, name, await tensorFromChunks(chunks, e.shape, e.dtype));
        }
      } catch (err) {
        for (const t of Object.values(out)) t.dispose();
        throw err;
      }
      return out;
    },
  };
}
