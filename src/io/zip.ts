// A small zip reader: the central directory and single entries, read on demand from a Source.
// torch.save writes a plain zip (stored, i.e. uncompressed, entries aligned to 64 bytes, zip64 past
// 4 GiB), so a reader of ~150 lines beats a dependency; deflate is handled too in case a file was
// re-zipped. Layout per PKWARE's APPNOTE.TXT, sections 4.3 and 4.5.
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { ConvzooError } from '../errors.js';
import { CHUNK_BYTES, formatError, readChunks, type Source } from './source.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A 64-bit field as a number; offsets past 2^53 cannot be real. */
function u64(src: Source, v: DataView, at: number): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(src, 'zip64 field out of range (corrupt archive)');
  return Number(n);
}

/** True if the source starts like a zip archive (a local file header). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.byteLength >= 4 && dv(head).getUint32(0, true) === SIG_LOCAL;
}

/** Reads the central directory: entry name -> entry. */
export async function readZipDirectory(src: Source): Promise<Map<string, ZipEntry>> {
  // The end-of-central-directory record sits at the very end, after an optional comment of up to
  // 64 KiB; a zip64 locator sits right before it. Read that tail once and scan it backwards.
  const tailLen = Math.min(src.size, EOCD_SIZE + 0xffff + ZIP64_LOCATOR_SIZE);
  const tailStart = src.size - tailLen;
  const tail = await src.read(tailStart, tailLen);
  const t = dv(tail);
  let eocd = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    // The comment length must reach exactly to the end of the file, which rules out a stray signature.
    if (t.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + t.getUint16(i + 20, true) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw formatError(src, 'not a complete zip archive: no end-of-central-directory record (the file is truncated or corrupt)');

  let count = t.getUint16(eocd + 10, true);
  let cdSize = t.getUint32(eocd + 12, true);
  let cdOffset = t.getUint32(eocd + 16, true);
  if (t.getUint16(eocd + 4, true) !== 0 || t.getUint16(eocd + 6, true) !== 0) throw formatError(src, 'multi-disk zip archives are not supported');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // Zip64: the locator points at the zip64 end record, which holds the 64-bit values.
    const loc = eocd - ZIP64_LOCATOR_SIZE;
    if (loc < 0 || t.getUint32(loc, true) !== SIG_ZIP64_LOCATOR) throw formatError(src, 'zip64 end-of-central-directory locator missing (corrupt archive)');
    const z64At = u64(src, t, loc + 8);
    const z = dv(await src.read(z64At, ZIP64_EOCD_SIZE));
    if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) throw formatError(src, 'zip64 end-of-central-directory record missing (corrupt archive)');
    count = u64(src, z, 32);
    cdSize = u64(src, z, 40);
    cdOffset = u64(src, z, 48);
  }
  if (cdOffset + cdSize > tailStart + eocd) throw formatError(src, 'central directory lies outside the archive (truncated or corrupt)');

  const cd = await src.read(cdOffset, cdSize);
  const c = dv(cd);
  const entries = new Map<string, ZipEntry>();
  const names = new TextDecoder();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || c.getUint32(p, true) !== SIG_CENTRAL) throw formatError(src, `central directory entry ${i} is corrupt`);
    const nameLen = c.getUint16(p + 28, true);
    const extraLen = c.getUint16(p + 30, true);
    const commentLen = c.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw formatError(src, `central directory entry ${i} is corrupt`);
    const e: ZipEntry = {
      name: names.decode(cd.subarray(p + 46, p + 46 + nameLen)),
      flags: c.getUint16(p + 8, true),
      method: c.getUint16(p + 10, true),
      crc32: c.getUint32(p + 16, true),
      compressedSize: c.getUint32(p + 20, true),
      size: c.getUint32(p + 24, true),
      localHeaderOffset: c.getUint32(p + 42, true),
    };
    // A 32-bit field of all ones means "see the zip64 extra field (id 1)", which lists only those
    // fields, in the order: size, compressed size, local header offset.
    if (e.size === 0xffffffff || e.compressedSize === 0xffffffff || e.localHeaderOffset === 0xffffffff) {
      let q = p + 46 + nameLen;
      const end = q + extraLen;
      let found = false;
      while (q + 4 <= end) {
        const id = c.getUint16(q, true);
        const len = c.getUint16(q + 2, true);
        if (q + 4 + len > end) break;
        if (id === 1) {
          let f = q + 4;
          const next = (): number => {
            if (f + 8 > q + 4 + len) throw formatError(src, `zip64 extra field of '${e.name}' is too short`);
            const v = u64(src, c, f);
            f += 8;
            return v;
          };
          if (e.size === 0xffffffff) e.size = next();
          if (e.compressedSize === 0xffffffff) e.compressedSize = next();
          if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = next();
          found = true;
          break;
        }
        q += 4 + len;
      }
      if (!found) throw formatError(src, `zip entry '${e.name}' lacks its zip64 extra field`);
    }
    entries.set(e.name, e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/**
 * Deflate cannot expand data by more than 1032:1 (a 258-byte match coded in 2 bits), so an entry
 * declaring more than this times its compressed size is lying, and is refused before anything is
 * allocated for it.
 */
export const MAX_DEFLATE_RATIO = 1032;

/** Compressed input is read in pieces this large at most: each can inflate 1032-fold. */
const DEFLATE_INPUT_BYTES = 1 << 20;
/**
 * Inflated output is handed on in pieces this large at most: one reused buffer for transient
 * consumers, otherwise a new buffer per piece, whose garbage small pieces keep small (64 MiB
 * pieces let a 256 MiB storage peak at 2x its size before the collector ran).
 */
const INFLATED_CHUNK_BYTES = 4 << 20;

/**
 * The entry's bytes, decompressed, as chunks of up to CHUNK_BYTES (the last one shorter; one
 * empty chunk for an empty entry), checked against the directory's size and CRC-32. The CRC is checked after
 * the last chunk, so a consumer must finish the iteration before trusting what it built. Nothing
 * is allocated from the declared size beyond one chunk, and inflating stops as soon as the output
 * passes the declared size, so a lying or hostile entry costs bounded memory. `transient`: as in
 * readChunks, every chunk shares one buffer and is valid until the next is asked for.
 */
export async function* zipEntryChunks(src: Source, e: ZipEntry, opts: { transient?: boolean } = {}): AsyncGenerator<Uint8Array> {
  if (e.flags & 1) throw formatError(src, `zip entry '${e.name}' is encrypted`);
  if (e.method !== 0 && e.method !== 8)
    throw formatError(src, `zip entry '${e.name}' uses compression method ${e.method} (only stored and deflate are supported)`);
  if (e.method === 0 && e.compressedSize !== e.size) throw formatError(src, `zip entry '${e.name}' is stored but its sizes differ`);
  if (e.method === 8 && e.size > 0 && e.size / MAX_DEFLATE_RATIO > e.compressedSize) {
    throw formatError(
      src,
      `zip entry '${e.name}' declares ${e.size} bytes from ${e.compressedSize} compressed, more than deflate's maximum ratio of ${MAX_DEFLATE_RATIO}:1 (corrupt or hostile archive)`,
    );
  }
  const lh = dv(await src.read(e.localHeaderOffset, 30));
  if (lh.getUint32(0, true) !== SIG_LOCAL) throw formatError(src, `zip entry '${e.name}': local header missing (corrupt archive)`);
  // The local header's name and extra lengths can differ from the central directory's (torch pads
  // the local extra field so that data starts on a 64-byte boundary), so take them from here.
  const start = e.localHeaderOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
  if (start + e.compressedSize > src.size) throw formatError(src, `zip entry '${e.name}' extends past the end of the file (truncated)`);
  // zlib.crc32 arrived in Node 20.15; on older 20.x the check is skipped.
  const crc32 = (zlib as unknown as { crc32?: (d: Uint8Array, prev?: number) => number }).crc32;
  let crc = 0;
  const transient = opts.transient ?? false;
  const chunks = e.method === 8 ? inflatedChunks(src, e, start, transient) : readChunks(src, start, e.size, { transient });
  for await (const chunk of chunks) {
    if (crc32) crc = crc32(chunk, crc);
    yield chunk;
  }
  if (crc32 && crc !== e.crc32) throw formatError(src, `zip entry '${e.name}' fails its CRC-32 check (corrupt data)`);
}

/** A deflated entry inflated as a stream, regrouped into chunks of INFLATED_CHUNK_BYTES (or CHUNK_BYTES if smaller). */
async function* inflatedChunks(src: Source, e: ZipEntry, start: number, transient: boolean): AsyncGenerator<Uint8Array> {
  // Not transient: the inflater may hold on to its input pieces.
  const compressed = Readable.from(readChunks(src, start, e.compressedSize, { chunkBytes: Math.min(CHUNK_BYTES, DEFLATE_INPUT_BYTES) }), { objectMode: false });
  const inflater = zlib.createInflateRaw({ chunkSize: 1 << 16 });
  // Errors (a read failing, corrupt data) reach the loop below through the inflater.
  pipeline(compressed, inflater, () => {});
  const chunkBytes = Math.min(CHUNK_BYTES, INFLATED_CHUNK_BYTES);
  const scratch = transient ? Buffer.allocUnsafe(Math.min(chunkBytes, e.size)) : undefined;
  const nextChunk = (yielded: number) => {
    const n = Math.min(chunkBytes, e.size - yielded);
    return scratch ? scratch.subarray(0, n) : Buffer.allocUnsafe(n);
  };
  let total = 0;
  let yielded = 0;
  let out = nextChunk(0);
  let filled = 0;
  try {
    for await (const piece of inflater as AsyncIterable<Buffer>) {
      total += piece.byteLength;
      if (total > e.size)
        throw formatError(src, `zip entry '${e.name}' inflates to more than the ${e.size} bytes its directory declares (corrupt or hostile archive)`);
      for (let p = 0; p < piece.byteLength; ) {
        const n = piece.copy(out, filled, p);
        filled += n;
        p += n;
        if (filled === out.byteLength) {
          yield out;
          yielded += filled;
          out = nextChunk(yielded);
          filled = 0;
        }
      }
    }
  } catch (err) {
    if (err instanceof ConvzooError) throw err;
    throw formatError(src, `zip entry '${e.name}' does not inflate (corrupt data: ${(err as Error).message})`);
  } finally {
    inflater.destroy();
    compressed.destroy();
  }
  if (total !== e.size) throw formatError(src, `zip entry '${e.name}' inflates to ${total} bytes, expected ${e.size}`);
  if (e.size === 0) yield out; // the one empty chunk, like readChunks
}

/**
 * The whole entry in one array (for the small ones: data.pkl, byteorder; callers bound e.size).
 * Allocated once the entry's checks have passed, and filled chunk by chunk.
 */
export async function readZipEntry(src: Source, e: ZipEntry): Promise<Uint8Array> {
  let out: Uint8Array | undefined;
  let at = 0;
  for await (const c of zipEntryChunks(src, e, { transient: true })) {
    out ??= new Uint8Array(e.size);
    out.set(c, at);
    at += c.byteLength;
  }
  return out ?? new Uint8Array(0);
}
