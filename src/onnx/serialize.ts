// ONNX files to and from the in-memory form of ir.ts, through protobufjs and ONNX's schema (proto.ts).
// Writing validates the whole model first, so a malformed value fails naming its tensor or node before any
// byte is written; files are replaced atomically. Initializers can live in one external data file (onnx's
// layout: TensorProto.data_location = EXTERNAL and location/offset/length entries), which is required once
// the protobuf would pass protobuf's 2 GB limit. Reading treats the file as untrusted: decoding errors,
// missing fields, unsupported types and external data paths that leave the model's folder all become
// ConvzooErrors.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DTYPE_BYTES } from '../tensor/tensor.js';
import { ConvzooError, check, type ErrorCode } from '../errors.js';
import { ioError } from '../io/source.js';
import {
  ONNX_DATA_TYPE,
  type OnnxAttribute,
  type OnnxDataType,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './ir.js';
import {
  ATTRIBUTE_TYPE,
  DATA_LOCATION,
  decodeModelProto,
  encodeModelProto,
  modelProtoType,
  type AttributeMsg,
  type DimensionMsg,
  type GraphMsg,
  type Int64,
  type ModelMsg,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from './proto.js';

/** Protobuf cannot encode or parse a message of 2 GiB or more. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Room left for the graph's nodes, names and small tensors when deciding whether weights fit inline. */
export const GRAPH_HEADROOM = 64 * 2 ** 20;
/** Initializers of at least this many bytes go to the external data file (onnx's default threshold). */
export const EXTERNAL_DATA_THRESHOLD = 1024;
/** Offsets in the external data file are multiples of this, the page size, so that readers can mmap tensors. */
export const EXTERNAL_DATA_ALIGNMENT = 4096;

/** Bytes per element: convzoo's dtype table (ONNX's types here are a subset of convzoo's dtypes). */
const ELEMENT_BYTES: Record<OnnxDataType, number> = DTYPE_BYTES;

const DATA_TYPE_BY_NUMBER = new Map<number, OnnxDataType>(Object.entries(ONNX_DATA_TYPE).map(([name, n]) => [n, name as OnnxDataType]));

export interface ExternalDataOptions {
  /** Where the model file says the data is: a path relative to the model's folder ('model.onnx.data'). */
  location: string;
  /** Initializers of at least this many bytes go external (default 1024). */
  threshold?: number;
  /** Offset alignment in the data file (default 4096). */
  alignment?: number;
}

export interface EncodeOnnxOptions {
  /** Moves the larger initializers into one external data blob, returned beside the model bytes. */
  externalData?: ExternalDataOptions;
}

export interface EncodedOnnx {
  /** The ModelProto's bytes (the .onnx file). */
  model: Uint8Array;
  /** The external data file's bytes, when `externalData` was asked for. */
  externalData?: Uint8Array;
}

export interface WriteOnnxOptions {
  /**
   * true: initializers of at least `externalDataThreshold` bytes go to `<file name>.data` beside the model;
   * false: everything inline (fails for models over protobuf's 2 GB); 'auto' (default): external only when
   * the weights would push the protobuf past 2 GB.
   */
  externalData?: boolean | 'auto';
  /** See {@link ExternalDataOptions.threshold}. */
  externalDataThreshold?: number;
}

export interface WriteOnnxResult {
  /** The model file written. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** The external data file, when one was written. */
  externalDataPath?: string;
  /** Its size in bytes. */
  externalDataBytes?: number;
}

export interface ReadOnnxOptions {
  /** The folder external data locations are relative to, when reading from bytes (default: the file's folder). */
  baseDir?: string;
}

// ---- validation (before anything is encoded or written)

function fail(fn: string, message: string, code: ErrorCode = 'E_ARG'): never {
  throw new ConvzooError(`${fn}: ${message}`, code, fn);
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, d) => a * d, 1);
}

function checkTensor(t: OnnxTensor, fn: string, what: string): void {
  const label = `${what} '${t?.name}'`;
  check(t !== null && typeof t === 'object', fn, `${what}: expected a tensor, got ${String(t)}`);
  check(typeof t.name === 'string', fn, `${label}: expected name to be a string`);
  check(
    Object.hasOwn(ELEMENT_BYTES, t.dataType),
    fn,
    `${label}: unknown dataType '${String(t.dataType)}' (expected one of ${Object.keys(ELEMENT_BYTES).join(', ')})`,
  );
  check(Array.isArray(t.dims), fn, `${label}: expected dims to be an array`);
  t.dims.forEach((d, i) => {
    check(Number.isSafeInteger(d) && d >= 0, fn, `${label}: dims[${i}] is ${String(d)}, expected a non-negative integer`);
  });
  check(t.raw instanceof Uint8Array, fn, `${label}: expected raw to be a Uint8Array`);
  const expected = elementCount(t.dims) * ELEMENT_BYTES[t.dataType];
  check(t.raw.byteLength === expected, fn, `${label}: raw has ${t.raw.byteLength} bytes, dims [${t.dims.join(', ')}] of ${t.dataType} need ${expected}`);
}

function checkInt64(v: unknown, fn: string, what: string): void {
  check(typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= 2 ** 63, fn, `${what}: expected a 64-bit integer, got ${String(v)}`);
}

function checkValueInfo(v: OnnxValueInfo, fn: string, what: string): void {
  const label = `${what} '${v?.name}'`;
  check(typeof v?.name === 'string' && v.name !== '', fn, `${what}: expected a non-empty name, got ${String(v?.name)}`);
  check(Object.hasOwn(ELEMENT_BYTES, v.dataType), fn, `${label}: unknown dataType '${String(v.dataType)}'`);
  check(Array.isArray(v.shape), fn, `${label}: expected shape to be an array`);
  v.shape.forEach((d, i) => {
    check(
      typeof d === 'string' || (Number.isSafeInteger(d) && d >= 0),
      fn,
      `${label}: shape[${i}] is ${String(d)}, expected a non-negative integer or a symbolic name`,
    );
  });
}

function checkNode(n: OnnxNode, fn: string, index: number): void {
  const label = `node ${index} '${n?.name}' (${n?.opType})`;
  check(typeof n?.opType === 'string' && n.opType !== '', fn, `node ${index}: expected a non-empty opType`);
  check(typeof n.name === 'string', fn, `${label}: expected name to be a string`);
  check(n.domain === undefined || typeof n.domain === 'string', fn, `${label}: expected domain to be a string`);
  for (const list of ['inputs', 'outputs'] as const) {
    check(Array.isArray(n[list]) && n[list].every((s) => typeof s === 'string'), fn, `${label}: expected ${list} to be an array of strings`);
  }
  check(n.attributes !== null && typeof n.attributes === 'object', fn, `${label}: expected attributes to be an object`);
  for (const [key, a] of Object.entries(n.attributes)) {
    const what = `${label}: attribute '${key}'`;
    switch (a?.type) {
      case 'int':
        checkInt64(a.value, fn, what);
        break;
      case 'ints':
        check(Array.isArray(a.value), fn, `${what}: expected an array`);
        a.value.forEach((v, i) => checkInt64(v, fn, `${what}[${i}]`));
        break;
      case 'float':
        check(typeof a.value === 'number', fn, `${what}: expected a number, got ${String(a.value)}`);
        break;
      case 'floats':
        check(Array.isArray(a.value) && a.value.every((v) => typeof v === 'number'), fn, `${what}: expected an array of numbers`);
        break;
      case 'string':
        check(typeof a.value === 'string', fn, `${what}: expected a string`);
        break;
      case 'tensor':
        checkTensor(a.value, fn, `${what}: tensor`);
        break;
      default:
        fail(fn, `${what}: unknown attribute type '${String((a as { type?: unknown })?.type)}'`);
    }
  }
}

/** Throws an E_ARG ConvzooError naming the first malformed value of `model`. */
export function validateOnnxModel(model: OnnxModel, fn = 'validateOnnxModel'): void {
  check(model !== null && typeof model === 'object', fn, `expected an OnnxModel, got ${String(model)}`);
  check(Number.isSafeInteger(model.irVersion) && model.irVersion > 0, fn, `expected irVersion to be a positive integer, got ${String(model.irVersion)}`);
  check(Array.isArray(model.opsetImports), fn, 'expected opsetImports to be an array');
  for (const o of model.opsetImports) {
    check(typeof o?.domain === 'string', fn, `opset import: expected domain to be a string, got ${String(o?.domain)}`);
    check(Number.isSafeInteger(o.version) && o.version > 0, fn, `opset import '${o.domain}': expected a positive integer version, got ${String(o.version)}`);
  }
  check(typeof model.producerName === 'string' && typeof model.producerVersion === 'string', fn, 'expected producerName and producerVersion to be strings');
  check(model.docString === undefined || typeof model.docString === 'string', fn, 'expected docString to be a string');
  check(model.metadata !== null && typeof model.metadata === 'object', fn, 'expected metadata to be an object');
  for (const [key, value] of Object.entries(model.metadata)) check(typeof value === 'string', fn, `metadata '${key}': expected a string, got ${typeof value}`);
  const g = model.graph;
  check(g !== null && typeof g === 'object', fn, 'expected a graph');
  check(typeof g.name === 'string', fn, 'expected graph.name to be a string');
  check(
    Array.isArray(g.nodes) && Array.isArray(g.initializers) && Array.isArray(g.inputs) && Array.isArray(g.outputs),
    fn,
    'expected graph nodes, initializers, inputs and outputs to be arrays',
  );
  g.nodes.forEach((n, i) => checkNode(n, fn, i));
  for (const t of g.initializers) checkTensor(t, fn, 'initializer');
  for (const v of g.inputs) checkValueInfo(v, fn, 'graph input');
  for (const v of g.outputs) checkValueInfo(v, fn, 'graph output');
  check(g.valueInfo === undefined || Array.isArray(g.valueInfo), fn, 'expected graph.valueInfo to be an array');
  for (const v of g.valueInfo ?? []) checkValueInfo(v, fn, 'value info');
}

// ---- size and external data layout

/** Bytes of tensor payload in `model`: initializers and tensor attributes. */
export function onnxPayloadBytes(model: OnnxModel): number {
  let total = 0;
  for (const t of model.graph.initializers) total += t.raw.byteLength;
  for (const n of model.graph.nodes) for (const a of Object.values(n.attributes)) if (a.type === 'tensor') total += a.value.raw.byteLength;
  return total;
}

/**
 * Whether a model with `payloadBytes` of tensor data must keep its weights in an external file: true when
 * the payload plus room for the graph itself would reach protobuf's 2 GB limit.
 */
export function needsExternalData(payloadBytes: number, limit = PROTOBUF_LIMIT): boolean {
  return payloadBytes + GRAPH_HEADROOM > limit;
}

interface ExternalPlan {
  location: string;
  /** Each external initializer's place in the data file. */
  entries: Map<OnnxTensor, { offset: number; length: number }>;
  /** The data file's size. */
  size: number;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function planExternalData(model: OnnxModel, opts: ExternalDataOptions, fn: string): ExternalPlan {
  const threshold = opts.threshold ?? EXTERNAL_DATA_THRESHOLD;
  const alignment = opts.alignment ?? EXTERNAL_DATA_ALIGNMENT;
  check(Number.isSafeInteger(threshold) && threshold >= 0, fn, `expected externalData.threshold to be a non-negative integer, got ${String(threshold)}`);
  check(Number.isSafeInteger(alignment) && alignment >= 1, fn, `expected externalData.alignment to be a positive integer, got ${String(alignment)}`);
  const problem = unsafeLocation(opts.location);
  check(problem === undefined, fn, `external data location '${opts.location}' ${problem}`);
  const entries = new Map<OnnxTensor, { offset: number; length: number }>();
  let size = 0;
  for (const t of model.graph.initializers) {
    if (t.raw.byteLength < threshold || t.raw.byteLength === 0) continue;
    const offset = alignUp(size, alignment);
    entries.set(t, { offset, length: t.raw.byteLength });
    size = offset + t.raw.byteLength;
  }
  return { location: opts.location, entries, size };
}

/** Why a location from a model file may not be opened (undefined when it may): it must stay inside the model's folder. */
function unsafeLocation(location: string): string | undefined {
  if (typeof location !== 'string' || location === '') return 'is empty';
  if (location.includes('\0')) return 'contains a NUL character';
  if (path.posix.isAbsolute(location) || path.win32.isAbsolute(location)) return 'is an absolute path; it must be relative to the model file';
  if (location.split(/[\\/]/).includes('..')) return "leaves the model's folder ('..')";
  return undefined;
}

// ---- encoding

/** An int64 field's value; 2**63 (what reading INT64_MAX gives as a number) is written as INT64_MAX. */
function int64(v: number): Int64 {
  if (Number.isSafeInteger(v)) return v;
  const big = v >= 2 ** 63 ? 2n ** 63n - 1n : BigInt(v);
  const bits = BigInt.asUintN(64, big);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0 };
}

function tensorMsg(t: OnnxTensor, plan?: ExternalPlan): TensorMsg {
  const msg: TensorMsg = { dims: t.dims.map(int64), data_type: ONNX_DATA_TYPE[t.dataType], name: t.name };
  const place = plan?.entries.get(t);
  if (place && plan) {
    msg.data_location = DATA_LOCATION.EXTERNAL;
    msg.external_data = [
      { key: 'location', value: plan.location },
      { key: 'offset', value: String(place.offset) },
      { key: 'length', value: String(place.length) },
    ];
  } else {
    msg.raw_data = t.raw;
  }
  return msg;
}

const utf8 = new TextEncoder();

function attributeMsg(name: string, a: OnnxAttribute): AttributeMsg {
  switch (a.type) {
    case 'int':
      return { name, type: ATTRIBUTE_TYPE.INT, i: int64(a.value) };
    case 'ints':
      return { name, type: ATTRIBUTE_TYPE.INTS, ints: a.value.map(int64) };
    case 'float':
      return { name, type: ATTRIBUTE_TYPE.FLOAT, f: a.value };
    case 'floats':
      return { name, type: ATTRIBUTE_TYPE.FLOATS, floats: a.value };
    case 'string':
      return { name, type: ATTRIBUTE_TYPE.STRING, s: utf8.encode(a.value) };
    case 'tensor':
      return { name, type: ATTRIBUTE_TYPE.TENSOR, t: tensorMsg(a.value) };
  }
}

function nodeMsg(n: OnnxNode): NodeMsg {
  const msg: NodeMsg = {
    input: n.inputs,
    output: n.outputs,
    name: n.name,
    op_type: n.opType,
    attribute: Object.entries(n.attributes).map(([key, a]) => attributeMsg(key, a)),
  };
  if (n.domain) msg.domain = n.domain;
  return msg;
}

function valueInfoMsg(v: OnnxValueInfo): ValueInfoMsg {
  // '' stands for a dimension of unknown size: a Dimension with neither dim_value nor dim_param.
  const dim = v.shape.map((d): DimensionMsg => (typeof d === 'number' ? { dim_value: d } : d === '' ? {} : { dim_param: d }));
  return { name: v.name, type: { tensor_type: { elem_type: ONNX_DATA_TYPE[v.dataType], shape: { dim } } } };
}

function modelMsg(model: OnnxModel, plan?: ExternalPlan): ModelMsg {
  const g: OnnxGraph = model.graph;
  const graph: GraphMsg = {
    node: g.nodes.map(nodeMsg),
    name: g.name,
    initializer: g.initializers.map((t) => tensorMsg(t, plan)),
    input: g.inputs.map(valueInfoMsg),
    output: g.outputs.map(valueInfoMsg),
    value_info: (g.valueInfo ?? []).map(valueInfoMsg),
  };
  const msg: ModelMsg = {
    ir_version: model.irVersion,
    opset_import: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    graph,
    metadata_props: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  };
  if (model.docString !== undefined) msg.doc_string = model.docString;
  return msg;
}

function checkInlineSize(model: OnnxModel, plan: ExternalPlan | undefined, fn: string): void {
  let inline = onnxPayloadBytes(model);
  for (const { length } of plan?.entries.values() ?? []) inline -= length;
  check(!needsExternalData(inline), fn, `the model's ${inline} bytes of inline tensors would exceed protobuf's 2 GB limit; write it with external data`);
}

/**
 * Encodes `model` as an ONNX ModelProto. With `externalData`, every initializer of at least `threshold`
 * bytes is stored in a separate blob (returned as `externalData`, to be saved at `location` relative to the
 * model file) at an aligned offset, and the model refers to it. Throws an E_ARG ConvzooError naming the
 * tensor, node or field when the model is malformed (NaN dims, unknown dataType, raw length not matching
 * dims, ...), or when the inline part would exceed protobuf's 2 GB.
 */
export function encodeOnnx(model: OnnxModel, opts: EncodeOnnxOptions = {}): EncodedOnnx {
  const fn = 'encodeOnnx';
  validateOnnxModel(model, fn);
  const plan = opts.externalData ? planExternalData(model, opts.externalData, fn) : undefined;
  checkInlineSize(model, plan, fn);
  const bytes = encodeModelProto(modelMsg(model, plan));
  if (!plan) return { model: bytes };
  const blob = new Uint8Array(plan.size);
  for (const [t, { offset }] of plan.entries) blob.set(t.raw, offset);
  return { model: bytes, externalData: blob };
}

// ---- writing

/**
 * Writes `file` atomically: the chunks go to a temporary file in the same folder, which is flushed and then
 * renamed over `file`, so a failure leaves the old file or none, never half of one. Each chunk is written at
 * its offset; the gaps between them read as zeros.
 */
async function writeAtomic(file: string, chunks: Iterable<{ offset: number; bytes: Uint8Array }>): Promise<number> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(tmp, 'wx');
    let end = 0;
    for (const { offset, bytes } of chunks) {
      for (let done = 0; done < bytes.byteLength; ) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, offset + done);
        done += bytesWritten;
      }
      end = Math.max(end, offset + bytes.byteLength);
    }
    await fh.truncate(end);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, file);
    return end;
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw ioError('writeOnnx', file, e as NodeJS.ErrnoException);
  }
}

/**
 * Writes `model` to `file` (atomically; see {@link WriteOnnxOptions.externalData} for when the weights go
 * to `<file name>.data` beside it, referred to by a relative location). The model is validated before
 * anything is written. With external data, the data file is written before the model file, so a model file
 * never refers to data that is not there.
 */
export async function writeOnnx(file: string, model: OnnxModel, opts: WriteOnnxOptions = {}): Promise<WriteOnnxResult> {
  const fn = 'writeOnnx';
  check(typeof file === 'string' && file !== '', fn, `expected a file path, got ${String(file)}`);
  const mode = opts.externalData ?? 'auto';
  check(mode === true || mode === false || mode === 'auto', fn, `expected externalData to be true, false or 'auto', got ${String(mode)}`);
  validateOnnxModel(model, fn);
  const external = mode === true || (mode === 'auto' && needsExternalData(onnxPayloadBytes(model)));
  if (!external) {
    checkInlineSize(model, undefined, fn);
    const bytes = encodeModelProto(modelMsg(model));
    return { path: file, bytes: await writeAtomic(file, [{ offset: 0, bytes }]) };
  }
  const location = `${path.basename(file)}.data`;
  const plan = planExternalData(model, { location, threshold: opts.externalDataThreshold }, fn);
  checkInlineSize(model, plan, fn);
  const modelBytes = encodeModelProto(modelMsg(model, plan));
  const dataPath = path.join(path.dirname(file), location);
  // One tensor at a time: the weights are never copied into one blob.
  const chunks = [...plan.entries].map(([t, { offset }]) => ({ offset, bytes: t.raw }));
  const dataBytes = await writeAtomic(dataPath, chunks);
  const bytes = await writeAtomic(file, [{ offset: 0, bytes: modelBytes }]);
  return { path: file, bytes, externalDataPath: dataPath, externalDataBytes: dataBytes };
}

// ---- reading

/** Reading context: what is read (for messages), where external data lives, and the files opened for it. */
interface Reader {
  label: string;
  baseDir?: string;
  files: Map<string, { fd: number; size: number }>;
}

function bad(r: Reader, message: string): never {
  throw new ConvzooError(`readOnnx: ${r.label}: ${message}`, 'E_FORMAT', 'readOnnx');
}

function int64Value(v: Int64 | undefined): bigint {
  if (v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(v);
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? bits : BigInt.asIntN(64, bits);
}

/** An int64 as the nearest number (exact up to 2**53; INT64_MAX reads as 2**63). */
function int64ToNumber(v: Int64 | undefined): number {
  return Number(int64Value(v));
}

function size(r: Reader, v: Int64 | undefined, what: string): number {
  const n = int64ToNumber(v);
  if (!Number.isSafeInteger(n) || n < 0) bad(r, `${what} is ${n}, expected a non-negative integer`);
  return n;
}

function dataTypeName(n: number): string {
  const name = modelProtoType().root.lookupEnum('onnx.TensorProto.DataType').valuesById[n];
  return name ? `${n} (${name})` : String(n);
}

function dataType(r: Reader, n: number | undefined, what: string): OnnxDataType {
  const t = DATA_TYPE_BY_NUMBER.get(n ?? 0);
  if (!t) bad(r, `${what} has data type ${dataTypeName(n ?? 0)}, which convzoo does not read`);
  return t;
}

function externalFile(r: Reader, location: string, what: string): { fd: number; size: number } {
  const problem = unsafeLocation(location);
  if (problem) bad(r, `${what}: external data location '${location}' ${problem}`);
  if (r.baseDir === undefined) {
    throw new ConvzooError(
      `readOnnx: ${r.label}: ${what} keeps its data in '${location}'; pass {baseDir} (the model's folder) to read it`,
      'E_ARG',
      'readOnnx',
    );
  }
  const file = path.resolve(r.baseDir, location);
  let entry = r.files.get(file);
  if (!entry) {
    try {
      const fd = openSync(file, 'r');
      entry = { fd, size: fstatSync(fd).size };
    } catch (e) {
      throw ioError('readOnnx', file, e as NodeJS.ErrnoException);
    }
    r.files.set(file, entry);
  }
  return entry;
}

function readExternal(r: Reader, msg: TensorMsg, expectedBytes: number, what: string): Uint8Array {
  const fields = new Map((msg.external_data ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = fields.get('location');
  if (location === undefined) bad(r, `${what}: external data without a location`);
  const number = (key: string, fallback: number): number => {
    const s = fields.get(key);
    if (s === undefined) return fallback;
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) bad(r, `${what}: external data ${key} '${s}' is not a non-negative integer`);
    return Number(s);
  };
  const offset = number('offset', 0);
  const length = number('length', expectedBytes);
  if (length !== expectedBytes) bad(r, `${what}: external data length ${length} does not match its dims (${expectedBytes} bytes)`);
  const file = externalFile(r, location, what);
  if (offset + length > file.size) bad(r, `${what}: external data [${offset}, ${offset + length}) lies beyond the end of '${location}' (${file.size} bytes)`);
  const out = new Uint8Array(length);
  for (let done = 0; done < length; ) {
    const n = readSync(file.fd, out, done, length - done, offset + done);
    if (n === 0) bad(r, `${what}: '${location}' ended early`);
    done += n;
  }
  return out;
}

/** A tensor's values from the typed fields writers use instead of raw_data, as raw little-endian bytes. */
function typedFieldBytes(r: Reader, msg: TensorMsg, type: OnnxDataType, count: number, what: string): Uint8Array {
  const field = type === 'float32' ? 'float_data' : type === 'float64' ? 'double_data' : type === 'int64' ? 'int64_data' : 'int32_data';
  const values = msg[field] ?? [];
  // Checked before allocating: a small hostile file may claim huge dims.
  if (values.length !== count) bad(r, `${what}: ${values.length} values in ${field}, its dims hold ${count}`);
  const out = new Uint8Array(count * ELEMENT_BYTES[type]);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const v = values[i];
    switch (type) {
      case 'float32':
        view.setFloat32(i * 4, v as number, true);
        break;
      case 'float64':
        view.setFloat64(i * 8, v as number, true);
        break;
      case 'int64':
        view.setBigInt64(i * 8, int64Value(v as Int64), true);
        break;
      case 'int32':
        view.setInt32(i * 4, v as number, true);
        break;
      case 'float16':
      case 'bfloat16':
        // 16-bit types keep their bit patterns in int32_data's low half.
        view.setUint16(i * 2, (v as number) & 0xffff, true);
        break;
      default:
        view.setUint8(i, (v as number) & 0xff);
    }
  }
  return out;
}

function readTensor(r: Reader, msg: TensorMsg, what: string): OnnxTensor {
  const name = msg.name ?? '';
  const label = `${what} '${name}'`;
  const type = dataType(r, msg.data_type, label);
  const dims = (msg.dims ?? []).map((d, i) => size(r, d, `${label}: dims[${i}]`));
  const count = elementCount(dims);
  const bytes = count * ELEMENT_BYTES[type];
  if (!Number.isSafeInteger(bytes)) bad(r, `${label}: dims [${dims.join(', ')}] are too large`);
  let raw: Uint8Array;
  if (msg.data_location === DATA_LOCATION.EXTERNAL) {
    raw = readExternal(r, msg, bytes, label);
  } else if (msg.raw_data !== undefined) {
    if (msg.raw_data.byteLength !== bytes)
      bad(r, `${label}: raw_data has ${msg.raw_data.byteLength} bytes, dims [${dims.join(', ')}] of ${type} need ${bytes}`);
    // A copy with its own ArrayBuffer at offset 0: typed-array views of any element size work on it, and
    // it does not keep the whole file's buffer alive.
    raw = new Uint8Array(msg.raw_data);
  } else {
    raw = typedFieldBytes(r, msg, type, count, label);
  }
  return { name, dataType: type, dims, raw };
}

const utf8Decoder = new TextDecoder();

function readAttribute(r: Reader, a: AttributeMsg, what: string): OnnxAttribute {
  switch (a.type) {
    case ATTRIBUTE_TYPE.INT:
      return { type: 'int', value: int64ToNumber(a.i) };
    case ATTRIBUTE_TYPE.INTS:
      return { type: 'ints', value: (a.ints ?? []).map(int64ToNumber) };
    case ATTRIBUTE_TYPE.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case ATTRIBUTE_TYPE.FLOATS:
      return { type: 'floats', value: a.floats ?? [] };
    case ATTRIBUTE_TYPE.STRING:
      return { type: 'string', value: utf8Decoder.decode(a.s ?? new Uint8Array(0)) };
    case ATTRIBUTE_TYPE.TENSOR:
      if (!a.t) bad(r, `${what}: a TENSOR attribute without a tensor`);
      return { type: 'tensor', value: readTensor(r, a.t, `${what}: tensor`) };
    default: {
      const type = a.type ?? 0;
      const name = modelProtoType().root.lookupEnum('onnx.AttributeProto.AttributeType').valuesById[type] ?? String(type);
      return bad(r, `${what} is of type ${name}, which convzoo does not read`);
    }
  }
}

function readNode(r: Reader, n: NodeMsg, index: number): OnnxNode {
  const label = `node ${index} '${n.name ?? ''}' (${n.op_type ?? ''})`;
  if (!n.op_type) bad(r, `node ${index} '${n.name ?? ''}' has no op_type`);
  const seen = new Set<string>();
  const entries = (n.attribute ?? []).map((a): [string, OnnxAttribute] => {
    const key = a.name ?? '';
    if (key === '' || seen.has(key)) bad(r, `${label}: attribute name '${key}' is empty or repeated`);
    seen.add(key);
    return [key, readAttribute(r, a, `${label}: attribute '${key}'`)];
  });
  // fromEntries defines own properties, so a hostile name such as '__proto__' stays a plain key.
  const attributes: Record<string, OnnxAttribute> = Object.fromEntries(entries);
  const node: OnnxNode = { opType: n.op_type, inputs: n.input ?? [], outputs: n.output ?? [], name: n.name ?? '', attributes };
  if (n.domain) node.domain = n.domain;
  return node;
}

/** undefined when `v` is not a tensor with a known rank (only allowed for graph.value_info entries). */
function readValueInfo(r: Reader, v: ValueInfoMsg, what: string): OnnxValueInfo | undefined {
  const label = `${what} '${v.name ?? ''}'`;
  const tensor = v.type?.tensor_type;
  if (!tensor?.shape) return undefined;
  // A dimension with neither a size nor a name has an unknown size: ''.
  const shape = (tensor.shape.dim ?? []).map((d, i) => (d.dim_value !== undefined ? size(r, d.dim_value, `${label}: shape[${i}]`) : (d.dim_param ?? '')));
  return { name: v.name ?? '', dataType: dataType(r, tensor.elem_type, label), shape };
}

function readIo(r: Reader, list: ValueInfoMsg[] | undefined, what: string): OnnxValueInfo[] {
  return (list ?? []).map((v) => readValueInfo(r, v, what) ?? bad(r, `${what} '${v.name ?? ''}' is not a tensor of known rank`));
}

function readGraph(r: Reader, g: GraphMsg): OnnxGraph {
  if (g.sparse_initializer?.length) bad(r, 'the graph has sparse initializers, which convzoo does not read');
  const graph: OnnxGraph = {
    name: g.name ?? '',
    nodes: (g.node ?? []).map((n, i) => readNode(r, n, i)),
    initializers: (g.initializer ?? []).map((t) => readTensor(r, t, 'initializer')),
    inputs: readIo(r, g.input, 'graph input'),
    outputs: readIo(r, g.output, 'graph output'),
  };
  // value_info only carries hints; entries convzoo's form cannot hold are left out.
  const valueInfo = (g.value_info ?? []).map((v) => readValueInfo(r, v, 'value info')).filter((v) => v !== undefined);
  if (valueInfo.length) graph.valueInfo = valueInfo;
  return graph;
}

/**
 * Reads an ONNX model from a file or from its bytes. Tensor payloads come back as raw little-endian bytes
 * whatever field the writer used (raw_data, float_data, int32_data, int64_data, double_data, or external
 * data, read from the model's folder or `opts.baseDir`). Each tensor's bytes are a copy with their own
 * ArrayBuffer. Dimensions of unknown size read as ''. Throws a ConvzooError: E_FORMAT when the bytes are
 * not an ONNX model or hold what convzoo's form cannot (graph attributes, string tensors, ...), or when an
 * external data location is absolute or leaves the model's folder; E_NOT_FOUND / E_IO when a file cannot be
 * read.
 */
export function readOnnx(source: string | Uint8Array, opts: ReadOnnxOptions = {}): OnnxModel {
  let bytes: Uint8Array;
  const r: Reader = { label: '<bytes>', baseDir: opts.baseDir, files: new Map() };
  if (typeof source === 'string') {
    try {
      bytes = readFileSync(source);
    } catch (e) {
      throw ioError('readOnnx', source, e as NodeJS.ErrnoException);
    }
    r.label = source;
    r.baseDir ??= path.dirname(path.resolve(source));
  } else {
    check(source instanceof Uint8Array, 'readOnnx', `expected a file path or a Uint8Array, got ${String(source)}`);
    bytes = source;
  }
  let msg: ModelMsg;
  try {
    msg = decodeModelProto(bytes);
  } catch (e) {
    return bad(r, `not an ONNX model (protobuf decoding failed: ${(e as Error).message})`);
  }
  if (!msg.graph) bad(r, 'not an ONNX model (no graph)');
  if (msg.ir_version === undefined) bad(r, 'not an ONNX model (no ir_version)');
  try {
    const model: OnnxModel = {
      irVersion: size(r, msg.ir_version, 'ir_version'),
      opsetImports: (msg.opset_import ?? []).map((o) => ({ domain: o.domain ?? '', version: size(r, o.version, `opset import '${o.domain ?? ''}'`) })),
      producerName: msg.producer_name ?? '',
      producerVersion: msg.producer_version ?? '',
      graph: readGraph(r, msg.graph),
      metadata: Object.fromEntries((msg.metadata_props ?? []).map((e) => [e.key ?? '', e.value ?? ''])),
    };
    if (msg.doc_string !== undefined) model.docString = msg.doc_string;
    return model;
  } finally {
    for (const { fd } of r.files.values()) closeSync(fd);
  }
}
