// Reads an ONNX file's metadata_props (ModelProto field 14: repeated StringStringEntryProto {key = 1,
// value = 2}) without decoding the rest: onnxruntime-node does not expose them, and the graph and its
// weights (most of the file) are skipped by their length prefixes, so a large file costs a few small reads.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ConvzooError } from '../errors.js';

const METADATA_PROPS = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

/** Reads `length` bytes at `offset` (fewer at the end of the data). */
type ReadAt = (offset: number, length: number) => Uint8Array;

/**
 * The key/value pairs of an ONNX model's metadata_props, from a file path or the model's bytes. A
 * key given twice keeps its last value. Throws E_FORMAT when the protobuf framing is broken, E_IO when
 * the file cannot be read.
 */
export function readOnnxMetadataProps(source: string | Uint8Array): Record<string, string> {
  if (typeof source !== 'string') return readProps((offset, length) => source.subarray(offset, offset + length), source.byteLength, 'the model bytes');
  let fd: number;
  try {
    fd = openSync(source, 'r');
  } catch (e) {
    throw new ConvzooError(`readOnnxMetadataProps: cannot open ${source}: ${(e as Error).message}`, 'E_IO', 'readOnnxMetadataProps');
  }
  try {
    const readAt: ReadAt = (offset, length) => {
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    };
    return readProps(readAt, fstatSync(fd).size, source);
  } finally {
    closeSync(fd);
  }
}

function readProps(readAt: ReadAt, size: number, what: string): Record<string, string> {
  const broken = (why: string) => new ConvzooError(`readOnnxMetadataProps: ${what} is not an ONNX model (${why})`, 'E_FORMAT', 'readOnnxMetadataProps');
  const props: Record<string, string> = {};
  let pos = 0;
  while (pos < size) {
    // A tag and a length are at most 10 bytes each.
    const head = readAt(pos, 20);
    const tag = readVarint(head, 0, broken);
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    let at = tag.next;
    if (field === 0) throw broken(`field number 0 at byte ${pos}`);
    let end: number;
    if (wire === 0) end = pos + readVarint(head, at, broken).next;
    else if (wire === 1) end = pos + at + 8;
    else if (wire === 5) end = pos + at + 4;
    else if (wire === 2) {
      const len = readVarint(head, at, broken);
      at = len.next;
      end = pos + at + len.value;
      if (field === METADATA_PROPS) {
        if (end > size) throw broken(`metadata entry at byte ${pos} runs past the end`);
        const entry = readEntry(readAt(pos + at, len.value), broken);
        props[entry.key] = entry.value;
      }
    } else throw broken(`wire type ${wire} at byte ${pos}`);
    if (end > size) throw broken(`field ${field} at byte ${pos} runs past the end`);
    pos = end;
  }
  return props;
}

function readEntry(bytes: Uint8Array, broken: (why: string) => ConvzooError): { key: string; value: string } {
  const text = new TextDecoder('utf-8', { fatal: false });
  let key = '';
  let value = '';
  let pos = 0;
  while (pos < bytes.length) {
    const tag = readVarint(bytes, pos, broken);
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (wire === 0) {
      pos = readVarint(bytes, tag.next, broken).next;
      continue;
    }
    if (wire !== 2) throw broken(`wire type ${wire} in a metadata entry`);
    const len = readVarint(bytes, tag.next, broken);
    const end = len.next + len.value;
    if (end > bytes.length) throw broken('a metadata entry runs past its end');
    const s = text.decode(bytes.subarray(len.next, end));
    if (field === ENTRY_KEY) key = s;
    else if (field === ENTRY_VALUE) value = s;
    pos = end;
  }
  return { key, value };
}

/** A base-128 varint at `pos`; numbers above 2^53 lose precision (no field length gets there). */
function readVarint(bytes: Uint8Array, pos: number, broken: (why: string) => ConvzooError): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < Math.min(bytes.length, pos + 10); i++) {
    const b = bytes[i];
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return { value, next: i + 1 };
  }
  throw broken(bytes.length <= pos ? 'truncated' : 'a varint longer than 10 bytes');
}
