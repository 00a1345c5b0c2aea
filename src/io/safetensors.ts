// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the tensors' bytes, little-endian and C-contiguous. The reader applies the format's own
// validation, so a hostile file fails with a message instead of reading out of bounds.
import { ConvzooError } from '../errors.js';
import { DTYPE_BYTES, type DType, type Tensor } from '../tensor/tensor.js';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { byteSwapped, CHUNK_BYTES, formatError, HOST_LITTLE_ENDIAN, ioError, type Source } from './source.js';

const TO_DTYPE: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/** The format's limit on the JSON header, against memory exhaustion from a forged length. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Cheap content sniffing: 8 bytes of length, then a JSON object. */
export function looksLikeSafetensors(head: Uint8Array): boolean {
  return head.byteLength >= 9 && head[8] === 0x7b; // '{'
}

/** Reads and validates the header. Entries come back in file (offset) order. */
export async function readSafetensorsHeader(src: Source): Promise<SafetensorsHeader> {
  if (src.size < 8) throw formatError(src, `safetensors file of ${src.size} bytes is too short for its header length`);
  const head = await src.read(0, 8);
  const len = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (len > BigInt(MAX_HEADER_BYTES)) throw formatError(src, `safetensors header length ${len} is over the format's limit of ${MAX_HEADER_BYTES} bytes`);
  const n = Number(len);
  if (8 + n > src.size) throw formatError(src, `safetensors header of ${n} bytes runs past the end of the ${src.size}-byte file (truncated)`);
  const raw = await src.read(8, n);
  let json: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    if (!text.startsWith('{')) throw new SyntaxError('header does not start with {');
    json = JSON.parse(text);
  } catch (e) {
    throw formatError(src, `safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) throw formatError(src, 'safetensors header is not a JSON object');

  const dataStart = 8 + n;
  const dataLen = src.size - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (info === null) continue;
      if (!isPlainObject(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        throw formatError(src, 'safetensors __metadata__ must map strings to strings');
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const bad = (why: string): never => {
      throw formatError(src, `safetensors tensor '${name}': ${why}`);
    };
    if (!isPlainObject(info)) bad('entry is not an object');
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string') return bad('dtype missing');
    const dt = TO_DTYPE[dtype];
    if (!dt) bad(`dtype '${dtype}' is not supported (known: ${Object.keys(TO_DTYPE).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) return bad('shape must be a list of non-negative integers');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) return bad('data_offsets must be two non-negative integers');
    const [begin, end] = offsets as number[];
    if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
    // BigInt: a forged shape must not overflow into a matching byte count.
    const nbytes = shape.reduce((a: bigint, d: number) => a * BigInt(d), 1n) * BigInt(DTYPE_BYTES[dt]);
    if (nbytes !== BigInt(end - begin))
      bad(`shape [${shape.join(', ')}] of ${dtype} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    entries.push({ name, dtype: dt, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }

  // The data must be tiled exactly: sorted by offset, each tensor starts where the previous one
  // ended, the first at 0, the last at the end of the file. This rules out overlaps, gaps, bytes
  // hidden after the tensors and tensors pointing past the end.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = dataStart;
  for (const e of entries) {
    if (e.begin !== at) {
      throw formatError(
        src,
        e.begin < at
          ? `safetensors tensor '${e.name}' overlaps the previous tensor (starts at ${e.begin - dataStart}, previous ends at ${at - dataStart})`
          : `safetensors tensor '${e.name}' leaves a gap (starts at ${e.begin - dataStart}, previous ends at ${at - dataStart})`,
      );
    }
    at = e.end;
  }
  if (at - dataStart > dataLen)
    throw formatError(src, `safetensors data needs ${at - dataStart} bytes but the file holds ${dataLen} after the header (truncated)`);
  if (at - dataStart < dataLen) throw formatError(src, `safetensors file has ${dataLen - (at - dataStart)} trailing bytes after the last tensor`);
  return { entries, metadata };
}

/**
 * The file's bytes as chunks to write in order: the header, then each tensor's contiguous bytes.
 * Tensors are ordered like the reference writer (larger element size first, then by name) so that
 * every tensor starts aligned to its element size; the header is padded with spaces to 8 bytes.
 */
export function safetensorsLayout(tensors: Record<string, Tensor>, metadata?: Record<string, string>): { header: Uint8Array; order: [string, Tensor][] } {
  const fn = 'save';
  if (metadata !== undefined) {
    if (!isPlainObject(metadata) || !Object.values(metadata).every((v) => typeof v === 'string')) {
      throw new ConvzooError(`${fn}: metadata must map strings to strings`, 'E_ARG', fn);
    }
  }
  if (!isPlainObject(tensors)) throw new ConvzooError(`${fn}: expected a record of tensors`, 'E_ARG', fn);
  const order = Object.entries(tensors);
  for (const [name, t] of order) {
    if (name === METADATA_KEY) throw new ConvzooError(`${fn}: '${METADATA_KEY}' is reserved and cannot name a tensor`, 'E_ARG', fn);
    if (!t || typeof t !== 'object' || typeof (t as Tensor).dtype !== 'string' || !('_h' in t)) {
      throw new ConvzooError(`${fn}: '${name}' is not a tensor`, 'E_ARG', fn);
    }
    if (t.isDisposed) throw new ConvzooError(`${fn}: tensor '${name}' was disposed`, 'E_DISPOSED', fn);
  }
  order.sort(([a, x], [b, y]) => DTYPE_BYTES[y.dtype] - DTYPE_BYTES[x.dtype] || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, t] of order) {
    const nbytes = t.numel() * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: FROM_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let bytes = enc.encode(json);
  const pad = (8 - (bytes.byteLength % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    bytes = enc.encode(json);
  }
  const head = new Uint8Array(8 + bytes.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(bytes.byteLength), true);
  head.set(bytes, 8);
  return { header: head, order };
}

// ---- writing

/**
 * Writes tensors as a safetensors file (whatever the extension), with optional `__metadata__`
 * strings. The file is replaced atomically: written to a temporary file beside it, flushed to disk,
 * then renamed over the target, so a crash leaves either the old file or the new one. Views are
 * written as their own contiguous copies (safetensors has no shared storage).
 */
export async function writeSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
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
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* best effort */
  }
}

/** The bytes `writeSafetensors` would write. */
export function safetensorsBytes(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const { header, order } = safetensorsLayout(tensors, metadata);
  const chunks = order.flatMap(([, t]) => [...tensorChunksLE(t)]);
  const out = new Uint8Array(header.byteLength + chunks.reduce((a, c) => a + c.byteLength, 0));
  out.set(header, 0);
  let at = header.byteLength;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * A tensor's bytes, C-contiguous and little-endian, in pieces of about CHUNK_BYTES: blocks of rows
 * along dim 0, so that neither a large tensor nor a large non-contiguous view is copied whole.
 */
function* tensorChunksLE(t: Tensor): Generator<Uint8Array> {
  const swap = (b: Uint8Array) => (HOST_LITTLE_ENDIAN ? b : byteSwapped(b, DTYPE_BYTES[t.dtype]));
  const nbytes = t.numel() * DTYPE_BYTES[t.dtype];
  if (nbytes <= CHUNK_BYTES || t.ndim === 0) {
    yield swap(t.bytes());
    return;
  }
  const rows = t.shape[0];
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (nbytes / rows)));
  for (let i = 0; i < rows; i += perChunk) {
    const block = t.narrow(0, i, Math.min(perChunk, rows - i));
    try {
      yield swap(block.bytes());
    } finally {
      block.dispose();
    }
  }
}
