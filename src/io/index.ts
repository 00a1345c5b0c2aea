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
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConvzooError } from '../errors.js';
import { DTYPE_BYTES, type DType, type Tensor } from '../tensor/tensor.js';
import { empty, fromBytes } from '../tensor/creation.js';
import { PyDict, StorageRef, TensorRef, type PyValue } from './pickle.js';
import { bufferSource, byteSwapped, CHUNK_BYTES, FileSource, formatError, HOST_LITTLE_ENDIAN, ioError, readChunks, type Source } from './source.js';
import { looksLikeZip } from './zip.js';
import { looksLikeLegacyTorch, readLegacyCheckpoint, readZipCheckpoint, type Checkpoint } from './torch.js';
import { looksLikeSafetensors, readSafetensorsHeader, safetensorsLayout } from './safetensors.js';

export interface LoadOptions {
  /**
   * Which part of the file to return. For a PyTorch checkpoint, a key of the saved dict
   * ('state_dict', 'model') or a dotted path into nested dicts ('ema.module'); it turns off the
   * automatic unwrapping. For safetensors, a key prefix: 'model' returns the tensors named
   * 'model.*' with the prefix removed.
   */
  key?: string;
}

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
export async function save(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const { header, order } = safetensorsLayout(tensors, metadata);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(tmp, 'wx');
    await fh.write(header);
    // One chunk of one tensor in memory at a time.
    for (const [, t] of order) for (const chunk of tensorChunksLE(t)) await fh.write(chunk);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw ioError('save', file, e as NodeJS.ErrnoException);
  }
  // Make the rename itself durable; not every platform can fsync a directory, hence best effort.
  try {
    const dir = await open(path.dirname(file), 'r');
    try { await dir.sync(); } finally { await dir.close(); }
  } catch { /* best effort */ }
}

/** The bytes `save` would write. */
export function saveBuffer(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const { header, order } = safetensorsLayout(tensors, metadata);
  const chunks = order.flatMap(([, t]) => [...tensorChunksLE(t)]);
  const out = new Uint8Array(header.byteLength + chunks.reduce((a, c) => a + c.byteLength, 0));
  out.set(header, 0);
  let at = header.byteLength;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
}

/**
 * A tensor's bytes, C-contiguous and little-endian, in pieces of about CHUNK_BYTES: blocks of rows
 * along dim 0, so that neither a large tensor nor a large non-contiguous view is copied whole.
 */
function* tensorChunksLE(t: Tensor): Generator<Uint8Array> {
  const swap = (b: Uint8Array) => (HOST_LITTLE_ENDIAN ? b : byteSwapped(b, DTYPE_BYTES[t.dtype]));
  const nbytes = t.numel() * DTYPE_BYTES[t.dtype];
  if (nbytes <= CHUNK_BYTES || t.ndim === 0) { yield swap(t.bytes()); return; }
  const rows = t.shape[0];
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (nbytes / rows)));
  for (let i = 0; i < rows; i += perChunk) {
    const block = t.narrow(0, i, Math.min(perChunk, rows - i));
    try { yield swap(block.bytes()); } finally { block.dispose(); }
  }
}

// ---------------------------------------------------------------------------------------------

/** What a format's reader knows after its header: the entries, and how to read some of them. */
interface Plan {
  entries: WeightsFileEntry[];
  metadata: Record<string, string>;
  /** `picked`: indices into `entries`, ascending. */
  read(picked: number[]): Promise<Record<string, Tensor>>;
}

async function openSource(src: Source, opts: LoadOptions, closeSource: () => Promise<void>): Promise<WeightsFile> {
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
        if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new ConvzooError('load: expected names to be an array of strings', 'E_ARG', 'load');
        const missing = names.filter((n) => !index.has(n));
        if (missing.length) {
          throw new ConvzooError(`load: ${src.name}: no tensor ${missing.slice(0, 5).map((n) => `'${n}'`).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''} in the file`, 'E_NOT_FOUND', 'load');
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

async function planFor(src: Source, opts: LoadOptions): Promise<Plan> {
  const head = await src.read(0, Math.min(src.size, 16));
  if (looksLikeZip(head)) return planCheckpoint(src, await readZipCheckpoint(src), opts);
  if (looksLikeLegacyTorch(head)) return planCheckpoint(src, await readLegacyCheckpoint(src), opts);
  if (looksLikeSafetensors(head)) return planSafetensors(src, opts);
  // Neither signature: still read it as safetensors (whose header has no magic number), and if
  // that fails say both what the file is not and what the safetensors reader found.
  return planSafetensors(src, opts).catch((e: unknown) => {
    if (!(e instanceof ConvzooError) || e.code !== 'E_FORMAT') throw e;
    const start = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw formatError(src, `not a PyTorch checkpoint (zip or legacy format) nor a safetensors file (starts with ${start || 'nothing: empty file'}; `
      + `as safetensors: ${e.message.slice(`load: ${src.name}: `.length)})`);
  });
}

/** Sets a key as an own property, so that a file's '__proto__' key cannot touch the prototype. */
function put(out: Record<string, Tensor>, name: string, t: Tensor): void {
  Object.defineProperty(out, name, { value: t, enumerable: true, writable: true, configurable: true });
}

async function planSafetensors(src: Source, opts: LoadOptions): Promise<Plan> {
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
          const chunks = mapChunks(readChunks(src, e.begin, e.end - e.begin, { transient: true }), (c) => (HOST_LITTLE_ENDIAN ? c : byteSwapped(c, DTYPE_BYTES[e.dtype])));
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

async function* mapChunks(chunks: AsyncIterable<Uint8Array>, fn: (c: Uint8Array) => Uint8Array): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) yield fn(c);
}

/**
 * A tensor holding the bytes of `chunks`, each copied before the next is asked for (so chunks may
 * share one buffer). Small data is one chunk and one copy. Large data goes
 * into a tensor allocated up front, chunk by chunk, so that a 500 MB storage never sits in memory
 * twice (file bytes and tensor): only one chunk at a time does.
 */
async function tensorFromChunks(chunks: AsyncIterable<Uint8Array>, shape: number[], dtype: DType): Promise<Tensor> {
  const numel = shape.reduce((a, b) => a * b, 1);
  const elementSize = DTYPE_BYTES[dtype];
  let out: Tensor | undefined;
  let flat: Tensor | undefined;
  let at = 0;
  try {
    for await (const c of chunks) {
      if (!out && c.byteLength === numel * elementSize) {
        out = fromBytes(c, shape, dtype);
        at = numel;
        continue;
      }
      if (!out) { out = empty(shape, { dtype }); flat = out.view(-1); }
      const n = c.byteLength / elementSize;
      if (!Number.isInteger(n) || at + n > numel) throw new ConvzooError(`load: more data than ${numel} elements of ${dtype}`, 'E_FORMAT', 'load');
      const piece = fromBytes(c, [n], dtype);
      const slot = flat!.narrow(0, at, n);
      try { slot.copy_(piece); } finally { slot.dispose(); piece.dispose(); }
      at += n;
    }
  } catch (e) {
    out?.dispose();
    throw e;
  } finally {
    flat?.dispose();
  }
  if (!out || at !== numel) {
    out?.dispose();
    throw new ConvzooError(`load: read ${at} of ${numel} elements of ${dtype}`, 'E_FORMAT', 'load');
  }
  return out;
}

// ---- PyTorch checkpoints: pick the tensors out of the unpickled tree, then read their storages

/** Guards against hostile pickles: shared sub-lists nested n deep make 2^n paths. */
const MAX_VISITS = 10_000_000;
const MAX_DEPTH = 200;

/** Dict keys as they appear in dotted names: str as is, int as digits, True/None as Python spells them. */
function keyName(k: unknown): string | undefined {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  return undefined; // tuple keys: no tensor of a state dict sits under one
}

function children(v: PyValue): [string, PyValue][] {
  if (v instanceof PyDict) {
    const out: [string, PyValue][] = [];
    for (const [k, x] of v.map) { const name = keyName(k); if (name !== undefined) out.push([name, x]); }
    return out;
  }
  if (Array.isArray(v)) return v.map((x, i) => [String(i), x]);
  return [];
}

/** Whether any tensor sits inside v (memoised per container, so shared sub-trees cost once). */
function holdsTensors(v: PyValue, memo: Map<unknown, boolean>, depth = 0): boolean {
  if (v instanceof TensorRef) return true;
  if (!(v instanceof PyDict) && !Array.isArray(v)) return false;
  const known = memo.get(v);
  if (known !== undefined) return known;
  memo.set(v, false); // a cycle back to v adds nothing
  if (depth > MAX_DEPTH) return false;
  const r = children(v).some(([, x]) => holdsTensors(x, memo, depth + 1));
  memo.set(v, r);
  return r;
}

function selectRoot(src: Source, root: PyValue, key: string | undefined): PyValue {
  if (key !== undefined) {
    if (root instanceof PyDict && root.map.has(key)) return root.map.get(key)!;
    // A dotted path through nested dicts (keys that contain dots are matched whole, above).
    let v: PyValue = root;
    for (const part of key.split('.')) {
      const next: PyValue | undefined = children(v).find(([k]) => k === part)?.[1];
      if (next === undefined) {
        const top = children(root).map(([k]) => `'${k}'`).slice(0, 20).join(', ');
        throw new ConvzooError(`load: ${src.name}: no entry '${key}' in the checkpoint (top-level keys: ${top || 'none'})`, 'E_NOT_FOUND', 'load');
      }
      v = next;
    }
    return v;
  }
  const memo = new Map<unknown, boolean>();
  let v = root;
  while (v instanceof PyDict) {
    const entries = children(v);
    if (entries.some(([, x]) => x instanceof TensorRef)) break;
    const holders = entries.filter(([, x]) => holdsTensors(x, memo));
    if (holders.length !== 1 || !(holders[0][1] instanceof PyDict)) break;
    v = holders[0][1];
  }
  return v;
}

function flatten(src: Source, root: PyValue): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  const names = new Set<string>();
  const onPath = new Set<unknown>();
  let visits = 0;
  const walk = (v: PyValue, name: string, depth: number): void => {
    if (++visits > MAX_VISITS) throw formatError(src, 'the checkpoint\'s object graph is too large (shared or cyclic containers?)');
    if (v instanceof TensorRef) {
      if (names.has(name)) throw formatError(src, `two tensors flatten to the same key '${name}'`);
      names.add(name);
      out.push([name, v]);
      return;
    }
    if (!(v instanceof PyDict) && !Array.isArray(v)) return;
    if (onPath.has(v)) return; // a cycle
    if (depth > MAX_DEPTH) throw formatError(src, `containers nested deeper than ${MAX_DEPTH}`);
    onPath.add(v);
    for (const [k, x] of children(v)) walk(x, name === '' ? k : `${name}.${k}`, depth + 1);
    onPath.delete(v);
  };
  walk(root, '', 0);
  return out;
}

function planCheckpoint(src: Source, ckpt: Checkpoint, opts: LoadOptions): Plan {
  const picks = flatten(src, selectRoot(src, ckpt.root, opts.key));
  if (opts.key !== undefined && !picks.length) throw new ConvzooError(`load: ${src.name}: entry '${opts.key}' holds no tensors`, 'E_NOT_FOUND', 'load');
  // Check every view against its storage before reading anything.
  for (const [name, t] of picks) checkView(src, name, t);
  return {
    entries: picks.map(([name, t]) => ({ name, shape: t.shape, dtype: t.storage.dtype })),
    metadata: {},
    async read(indices) {
      const byStorage = new Map<StorageRef, [string, TensorRef][]>();
      for (const i of indices) {
        const [name, t] = picks[i];
        const list = byStorage.get(t.storage);
        if (list) list.push([name, t]);
        else byStorage.set(t.storage, [[name, t]]);
      }
      const made = new Map<string, Tensor>();
      try {
        // One libtorch tensor per storage, then each saved tensor as a strided view of it: shared
        // storages stay shared and non-contiguous tensors keep their strides. The views keep the
        // storage's memory alive, so the storage tensor itself is disposed at once.
        for (const [s, views] of byStorage) {
          const base = await tensorFromChunks(ckpt.storageChunks(s), [s.numel], s.dtype);
          try {
            for (const [name, t] of views) made.set(name, base.asStrided(t.shape, t.stride, t.offset));
          } finally {
            base.dispose();
          }
        }
      } catch (e) {
        for (const t of made.values()) t.dispose();
        throw e;
      }
      // Return in the checkpoint's order, not storage order.
      const out: Record<string, Tensor> = {};
      for (const i of indices) put(out, picks[i][0], made.get(picks[i][0])!);
      return out;
    },
  };
}

/** The view must stay inside its storage (libtorch would also refuse, with a less helpful message). */
function checkView(src: Source, name: string, t: TensorRef): void {
  const numel = t.shape.reduce((a, d) => a * BigInt(d), 1n);
  if (numel === 0n) {
    if (t.offset > t.storage.numel) throw formatError(src, `tensor '${name}' starts at element ${t.offset} but its storage holds ${t.storage.numel}`);
    return;
  }
  let last = BigInt(t.offset);
  t.shape.forEach((d, i) => { last += BigInt(d - 1) * BigInt(t.stride[i]); });
  if (last >= BigInt(t.storage.numel)) {
    throw formatError(src, `tensor '${name}' (shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset}) needs ${last + 1n} elements but its storage holds ${t.storage.numel}`);
  }
}
