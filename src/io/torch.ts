// torch.save files: the zip format (torch >= 1.6) and the legacy stream format before it. Both hold a
// pickle of the saved object, whose tensors name storages by key, and the storages' raw bytes. This
// file turns one into a tree of PyValues plus a way to read a storage's bytes on demand.
import { DTYPE_BYTES } from '../tensor/tensor.js';
import { MAX_PICKLE_BYTES, PickleTruncated, PyDict, PyGlobal, StorageRef, STORAGE_DTYPES, unpickle, type PyValue } from './pickle.js';
import { formatError, HOST_LITTLE_ENDIAN, byteSwapped, readChunks, type Source } from './source.js';
import { readZipDirectory, readZipEntry, zipEntryChunks } from './zip.js';

export interface Checkpoint {
  /** The unpickled object (usually a dict of tensors). */
  root: PyValue;
  /**
   * The storage's bytes in the host's byte order, numel * element size in all, as chunks; each is
   * valid only until the next one is asked for (they share one buffer).
   */
  storageChunks(s: StorageRef): AsyncIterable<Uint8Array>;
}

/**
 * persistent_load for storages: the pickle names a storage with a tuple
 * ('storage', <torch.XStorage class>, key, location, numel[, view_metadata (legacy only)]).
 * One StorageRef per key, so that tensors viewing the same storage share it after loading too.
 */
class StorageLoader {
  readonly byKey = new Map<string, StorageRef>();
  constructor(
    private readonly src: Source,
    private readonly legacy: boolean,
  ) {}

  readonly load = (pid: PyValue): StorageRef => {
    const { src, legacy, byKey } = this;
    const bad = (why: string): never => {
      throw formatError(src, `bad storage reference: ${why}`);
    };
    if (!Array.isArray(pid) || pid[0] !== 'storage') return bad("expected a ('storage', ...) tuple");
    if (pid.length !== (legacy ? 6 : 5)) return bad(`expected ${legacy ? 6 : 5} fields, got ${pid.length}`);
    const [, cls, key, location, numel] = pid;
    if (!(cls instanceof PyGlobal)) return bad('storage type is not a class');
    const dtype = STORAGE_DTYPES[cls.qualname.replace(/^torch\./, '')];
    if (!dtype) return bad(`${cls.qualname} is not a storage type`);
    if (typeof key !== 'string' || !/^[\w.-]+$/.test(key)) return bad('storage key must be a plain string');
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) return bad('storage size must be a non-negative integer');
    // Views of storages (view_metadata) were dropped in torch 0.4; files that old are not supported.
    if (legacy && pid[5] !== null) return bad('storage views (torch < 0.4 files) are not supported');
    const prev = byKey.get(key);
    if (prev) {
      if (prev.dtype !== dtype || prev.numel !== numel) return bad(`storage '${key}' is referenced with two different types or sizes`);
      return prev;
    }
    const s = new StorageRef(key, dtype, numel, typeof location === 'string' ? location : 'cpu');
    byKey.set(key, s);
    return s;
  };
}

function toHostOrder(bytes: Uint8Array, littleEndian: boolean, elementSize: number): Uint8Array {
  return littleEndian === HOST_LITTLE_ENDIAN || elementSize === 1 ? bytes : byteSwapped(bytes, elementSize);
}

/** The zip format: `<name>/data.pkl`, `<name>/data/<key>` per storage, `<name>/byteorder` (torch >= 2.1). */
export async function readZipCheckpoint(src: Source): Promise<Checkpoint> {
  const entries = await readZipDirectory(src);
  // torch puts everything under one top-level folder whose name varies ("archive", the file's stem).
  const pkl = [...entries.keys()].filter((n) => /^([^/]+\/)?data\.pkl$/.test(n)).sort((a, b) => a.length - b.length)[0];
  if (pkl === undefined) {
    const hint = [...entries.keys()].some((n) => n.endsWith('constants.pkl')) ? ' (a TorchScript archive? save a state_dict instead)' : '';
    throw formatError(src, `zip archive has no data.pkl: not a torch.save file${hint}`);
  }
  const prefix = pkl.slice(0, -'data.pkl'.length);
  let littleEndian = true;
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    if (order.size > 16) throw formatError(src, `${prefix}byteorder holds ${order.size} bytes, expected 'little' or 'big'`);
    const s = new TextDecoder().decode(await readZipEntry(src, order)).trim();
    if (s !== 'little' && s !== 'big') throw formatError(src, `unknown byteorder '${s}'`);
    littleEndian = s === 'little';
  }
  const pklEntry = entries.get(pkl)!;
  if (pklEntry.size > MAX_PICKLE_BYTES) {
    throw formatError(
      src,
      `${pkl} is ${pklEntry.size} bytes, over the limit of ${MAX_PICKLE_BYTES} (a state dict's pickle takes ~100 bytes per tensor; hostile or not a state dict)`,
    );
  }
  const program = await readZipEntry(src, pklEntry);
  const { value, end } = unpickle(program, 0, `load: ${src.name}`, new StorageLoader(src, false).load);
  if (end !== program.byteLength) throw formatError(src, `${pkl} has ${program.byteLength - end} bytes after the pickle's end`);
  return {
    root: value,
    async *storageChunks(s) {
      const name = `${prefix}data/${s.key}`;
      const e = entries.get(name);
      if (!e) throw formatError(src, `storage '${s.key}' is missing from the archive (no ${name})`);
      const need = s.numel * DTYPE_BYTES[s.dtype];
      if (e.size !== need) throw formatError(src, `storage '${s.key}' holds ${e.size} bytes, expected ${need} (${s.numel} x ${s.dtype})`);
      for await (const c of zipEntryChunks(src, e, { transient: true })) yield toHostOrder(c, littleEndian, DTYPE_BYTES[s.dtype]);
    },
  };
}

// The legacy format starts with a pickled magic number: PROTO n, LONG1 of 10 bytes, 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

export function looksLikeLegacyTorch(head: Uint8Array): boolean {
  return head.byteLength >= 2 + LEGACY_MAGIC.length && head[0] === 0x80 && LEGACY_MAGIC.every((b, i) => head[2 + i] === b);
}

/**
 * The legacy stream (torch.save(..., _use_new_zipfile_serialization=False), and files from torch
 * < 1.6): five pickles in a row (magic number, protocol version 1001, sys_info, the object, the list
 * of storage keys) and then, per key in that list, an int64 element count and the raw elements.
 */
export async function readLegacyCheckpoint(src: Source): Promise<Checkpoint> {
  const where = `load: ${src.name}`;
  const noStorages = (): never => {
    throw formatError(src, 'storage reference in a header pickle');
  };
  // The pickles are small but their total length is only known by running them: read a window of
  // the file's start and grow it until they all fit, up to MAX_PICKLE_BYTES.
  const maxWindow = Math.min(src.size, MAX_PICKLE_BYTES);
  let window = Math.min(maxWindow, 1 << 20);
  let parsed: { sysInfo: PyValue; root: PyValue; keys: PyValue; dataStart: number; storages: StorageLoader };
  for (;;) {
    const head = await src.read(0, window);
    try {
      const magic = unpickle(head, 0, where, noStorages); // its value was checked by looksLikeLegacyTorch
      const version = unpickle(head, magic.end, where, noStorages);
      if (version.value !== 1001) throw formatError(src, `unsupported legacy protocol version ${String(version.value)}`);
      const sysInfo = unpickle(head, version.end, where, noStorages);
      const storages = new StorageLoader(src, true);
      const obj = unpickle(head, sysInfo.end, where, storages.load);
      const keys = unpickle(head, obj.end, where, noStorages);
      parsed = { sysInfo: sysInfo.value, root: obj.value, keys: keys.value, dataStart: keys.end, storages };
      break;
    } catch (e) {
      if (!(e instanceof PickleTruncated) || window === src.size) throw e;
      if (window === maxWindow) throw formatError(src, `the legacy header pickles take more than ${MAX_PICKLE_BYTES} bytes (hostile or not a state dict)`);
      window = Math.min(maxWindow, window * 4);
    }
  }
  const sysInfo = parsed.sysInfo instanceof PyDict ? parsed.sysInfo : null;
  const littleEndian = sysInfo?.map.get('little_endian') !== false;
  const keys = parsed.keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw formatError(src, 'storage key list is not a list of strings');

  // Walk the storage records to find where each one's bytes start. Every key in the list was named by
  // the object's pickle, which is what gives its element size.
  const offsets = new Map<string, number>();
  let p = parsed.dataStart;
  for (const key of keys as string[]) {
    const s = parsed.storages.byKey.get(key);
    if (!s) throw formatError(src, `storage '${key}' is listed but no tensor uses it`);
    const head = await src.read(p, 8);
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, littleEndian);
    if (n !== BigInt(s.numel)) throw formatError(src, `storage '${key}' records ${n} elements, expected ${s.numel}`);
    offsets.set(key, p + 8);
    p += 8 + s.numel * DTYPE_BYTES[s.dtype];
    if (p > src.size) throw formatError(src, `storage '${key}' extends past the end of the file (truncated)`);
  }
  return {
    root: parsed.root,
    async *storageChunks(s) {
      const at = offsets.get(s.key);
      if (at === undefined) throw formatError(src, `storage '${s.key}' is not in the file's storage list`);
      const n = DTYPE_BYTES[s.dtype];
      for await (const c of readChunks(src, at, s.numel * n, { transient: true })) yield toHostOrder(c, littleEndian, n);
    },
  };
}
