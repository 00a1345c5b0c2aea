// Reads an ONNX file's metadata_props (onnxruntime-node does not expose them) with protobufjs and ONNX's
// schema, through a view of ModelProto that holds only that field: the graph and its weights are skipped
// by their length prefix, not decoded.
import { readFileSync, statSync } from 'node:fs';
import { ConvzooError } from '../errors.js';
import { decodeModelMetadata } from './proto.js';

/**
 * The key/value pairs of an ONNX model's metadata_props, from a file path or the model's bytes. A key
 * given twice keeps its last value. Throws E_FORMAT when the bytes are not a protobuf, E_IO when the file
 * cannot be read.
 */
export function readOnnxMetadataProps(source: string | Uint8Array): Record<string, string> {
  const fn = 'readOnnxMetadataProps';
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      if (!statSync(source).isFile()) throw new Error('not a regular file');
      bytes = readFileSync(source);
    } catch (e) {
      throw new ConvzooError(`${fn}: cannot read ${source}: ${(e as Error).message}`, 'E_IO', fn);
    }
  } else {
    bytes = source;
  }
  let entries: { key?: string; value?: string }[];
  try {
    entries = decodeModelMetadata(bytes);
  } catch (e) {
    const what = typeof source === 'string' ? source : 'the model bytes';
    throw new ConvzooError(`${fn}: ${what} is not an ONNX model (${(e as Error).message})`, 'E_FORMAT', fn);
  }
  const props: Record<string, string> = {};
  for (const e of entries) props[e.key ?? ''] = e.value ?? '';
  return props;
}
