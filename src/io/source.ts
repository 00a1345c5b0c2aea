// Random-access byte sources. The readers ask for byte ranges instead of holding whole files, so a
// 500 MB checkpoint is never in memory twice: each storage is read, copied into its tensor, dropped.
import { constants as fsConstants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { ConvzooError } from '../errors.js';

export interface Source {
  /** What the error messages call it (a path, or "buffer"). */
  readonly name: string;
  readonly size: number;
  /**
   * Exactly `length` bytes from `offset` (a view, not a copy, for in-memory sources). With `into`
   * (at least `length` bytes), a file source reads into it instead of allocating.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** A format error: what is wrong with the file's bytes. */
export function formatError(src: { name: string }, message: string): ConvzooError {
  return new ConvzooError(`load: ${src.name}: ${message}`, 'E_FORMAT', 'load');
}

function checkRange(src: Source, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size) {
    throw formatError(src, `needs bytes ${offset}..${offset + length} but the file has ${src.size} (truncated?)`);
  }
}

/**
 * Large reads and writes come in pieces of this size (a multiple of every element size). Small
 * enough that the pieces add little to the peak memory of loading a storage: it is allocated once,
 * and the pieces are copied into it one at a time.
 */
export let CHUNK_BYTES = 16 << 20;

/** @internal Lets tests run the chunked paths on small files. */
export function _setChunkBytes(n: number): number {
  if (!Number.isInteger(n) || n <= 0 || n % 8) throw new RangeError('chunk size must be a positive multiple of 8');
  const prev = CHUNK_BYTES;
  CHUNK_BYTES = n;
  return prev;
}

export interface ChunkOptions {
  /** At most this many bytes per chunk (CHUNK_BYTES). */
  chunkBytes?: number;
  /**
   * Read every chunk into one reused buffer: each chunk is valid only until the next one is asked
   * for. For consumers that copy each chunk at once; it spares a garbage buffer per chunk, which
   * the collector frees late enough to add several chunks to the peak memory.
   */
  transient?: boolean;
}

/** `length` bytes from `offset`, as consecutive chunks (one empty chunk if `length` is 0). */
export async function* readChunks(src: Source, offset: number, length: number, opts: ChunkOptions = {}): AsyncGenerator<Uint8Array> {
  checkRange(src, offset, length);
  if (length === 0) {
    yield new Uint8Array(0);
    return;
  }
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const scratch = opts.transient ? Buffer.allocUnsafe(Math.min(chunkBytes, length)) : undefined;
  for (let done = 0; done < length; done += chunkBytes) yield await src.read(offset + done, Math.min(chunkBytes, length - done), scratch);
}

export function bufferSource(bytes: Uint8Array, name = 'buffer'): Source {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(this, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** Reads are positioned (pread), so several can be planned without a shared file cursor. */
export class FileSource implements Source {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string): Promise<FileSource> {
    // Opening a FIFO for reading blocks until a writer appears (forever, for a stray pipe or a
    // device), so the type is checked before opening. O_NONBLOCK makes the open itself return at
    // once if the path is swapped for a FIFO after that check, and fstat then catches the swap;
    // for a regular file O_NONBLOCK changes nothing.
    const notRegular = () => new ConvzooError(`load: ${path} is not a regular file`, 'E_IO', 'load');
    const before = await stat(path).catch((e: NodeJS.ErrnoException) => {
      throw ioError('load', path, e);
    });
    if (!before.isFile()) throw notRegular();
    const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
      throw ioError('load', path, e);
    });
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notRegular();
      return new FileSource(path, st.size, fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const buf = into && into.byteLength >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      // fs reads are capped near 2 GiB per call, so large storages are read in slices.
      const { bytesRead } = await this.fh.read(buf, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) throw formatError(this, `ended at byte ${offset + done} while reading (was the file truncated while loading?)`);
      done += bytesRead;
    }
    return buf;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** A file-system error as a ConvzooError: E_NOT_FOUND for a missing file, E_IO otherwise. */
export function ioError(fn: string, path: string, e: NodeJS.ErrnoException): ConvzooError {
  if (e instanceof ConvzooError) return e;
  const code = e.code === 'ENOENT' ? 'E_NOT_FOUND' : 'E_IO';
  return new ConvzooError(`${fn}: ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, code, fn);
}

export const HOST_LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Converts elements of `elementSize` bytes between little- and big-endian. Returns a new array: the
 * input may be a view of the caller's buffer, which must not change under them.
 */
export function byteSwapped(bytes: Uint8Array, elementSize: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += elementSize) {
    for (let j = 0; j < elementSize; j++) out[i + j] = bytes[i + elementSize - 1 - j];
  }
  return out;
}
