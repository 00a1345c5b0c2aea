// The in-memory form of an ONNX model that the exporter builds and the serialiser writes: plain data,
// close to onnx.proto's messages (ModelProto, GraphProto, NodeProto, TensorProto) but typed for TypeScript.
// Tensor payloads are raw little-endian bytes, as TensorProto.raw_data stores them.

/** Element types convzoo writes (TensorProto.DataType names in lower case). */
export type OnnxDataType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/** TensorProto.DataType numbers, from onnx.proto. */
export const ONNX_DATA_TYPE: Record<OnnxDataType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: number[];
  /** Row-major little-endian bytes: dims' product times the element size. */
  raw: Uint8Array;
}

export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor };

/** Attribute constructors: `attr.ints([1, 1])`. */
export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value: [...value] }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value: [...value] }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  tensor: (value: OnnxTensor): OnnxAttribute => ({ type: 'tensor', value }),
};

export interface OnnxNode {
  opType: string;
  /** Value names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  name: string;
  /** '' (the default ONNX domain) unless given. */
  domain?: string;
  attributes: Record<string, OnnxAttribute>;
}

export interface OnnxValueInfo {
  name: string;
  dataType: OnnxDataType;
  /** A number is a fixed dimension, a string a symbolic one ('batch'); '' an unknown one. */
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Shapes of intermediate values (optional; the checker infers them). */
  valueInfo?: OnnxValueInfo[];
}

export interface OnnxModel {
  /** ModelProto.ir_version: 8 goes with opset 17 and 18. */
  irVersion: number;
  opsetImports: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: OnnxGraph;
  /** ModelProto.metadata_props, in insertion order. */
  metadata: Record<string, string>;
}
