// ONNX's protobuf schema for protobufjs: the messages of onnx.proto (IR version 8) that convzoo writes or
// reads, with onnx.proto's field numbers, types and labels. Messages and fields convzoo neither writes nor
// reads (FunctionProto, TrainingInfoProto, subgraph and type-proto attributes, string tensors, ...) are left
// out: protobuf skips unknown fields, so files that carry them still decode, and the reader reports the
// parts it cannot represent from the fields kept here (AttributeProto.type, TensorProto.data_type, ...).
// The schema is text in a TypeScript module so that it ships inside dist/ with the code that parses it.
import protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto2";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    SPARSE_TENSOR = 11;
    TYPE_PROTO = 13;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSORS = 12;
    TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

// ModelProto seen through its metadata only: decoding skips the graph (field 7) by its length.
message ModelMetadataView {
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated SparseTensorProto sparse_initializer = 15;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  enum DataType {
    UNDEFINED = 0;
    FLOAT = 1;
    UINT8 = 2;
    INT8 = 3;
    UINT16 = 4;
    INT16 = 5;
    INT32 = 6;
    INT64 = 7;
    STRING = 8;
    BOOL = 9;
    FLOAT16 = 10;
    DOUBLE = 11;
    UINT32 = 12;
    UINT64 = 13;
    COMPLEX64 = 14;
    COMPLEX128 = 15;
    BFLOAT16 = 16;
  }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  optional DataLocation data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}

// Declared only so that the reader can tell a file with sparse initializers from one without.
message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

/** AttributeProto.AttributeType numbers. */
export const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** TensorProto.DataLocation numbers. */
export const DATA_LOCATION = { DEFAULT: 0, EXTERNAL: 1 } as const;

/**
 * An int64 field's value: a number when written by convzoo, a Long (low/high 32-bit halves) when decoded.
 * protobufjs writes any object with `low`/`high` as those exact 64 bits.
 */
export type Int64 = number | { low: number; high: number; unsigned?: boolean };

// The message shapes, as protobufjs reads and writes them with keepCase (onnx.proto's field names). Fields
// are optional because proto2 fields are: an absent field is simply not written.

export interface StringStringEntryMsg {
  key?: string;
  value?: string;
}

export interface TensorMsg {
  dims?: Int64[];
  data_type?: number;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: Int64[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data?: StringStringEntryMsg[];
  data_location?: number;
  double_data?: number[];
  uint64_data?: Int64[];
}

export interface AttributeMsg {
  name?: string;
  ref_attr_name?: string;
  doc_string?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorMsg;
  floats?: number[];
  ints?: Int64[];
}

export interface DimensionMsg {
  dim_value?: Int64;
  dim_param?: string;
  denotation?: string;
}

export interface TypeMsg {
  tensor_type?: { elem_type?: number; shape?: { dim?: DimensionMsg[] } };
  denotation?: string;
}

export interface ValueInfoMsg {
  name?: string;
  type?: TypeMsg;
  doc_string?: string;
}

export interface NodeMsg {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  attribute?: AttributeMsg[];
  doc_string?: string;
}

export interface GraphMsg {
  node?: NodeMsg[];
  name?: string;
  initializer?: TensorMsg[];
  sparse_initializer?: unknown[];
  doc_string?: string;
  input?: ValueInfoMsg[];
  output?: ValueInfoMsg[];
  value_info?: ValueInfoMsg[];
}

export interface ModelMsg {
  ir_version?: Int64;
  opset_import?: { domain?: string; version?: Int64 }[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphMsg;
  metadata_props?: StringStringEntryMsg[];
}

let schema: protobuf.Root | undefined;
let modelType: protobuf.Type | undefined;

/** onnx.ModelProto's protobufjs type (the schema is parsed on first use). */
export function modelProtoType(): protobuf.Type {
  schema ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  modelType ??= schema.lookupType('onnx.ModelProto');
  return modelType;
}

/** The metadata_props of a ModelProto's bytes, without decoding its graph. Throws protobufjs's error on bad bytes. */
export function decodeModelMetadata(bytes: Uint8Array): StringStringEntryMsg[] {
  modelProtoType();
  const type = schema!.lookupType('onnx.ModelMetadataView');
  const view = type.toObject(type.decode(bytes), { defaults: false }) as { metadata_props?: StringStringEntryMsg[] };
  return view.metadata_props ?? [];
}

/** Encodes a ModelProto. */
export function encodeModelProto(model: ModelMsg): Uint8Array {
  return modelProtoType().encode(model).finish();
}

/**
 * Decodes a ModelProto into plain objects: absent proto2 fields stay absent (no defaults filled in), int64
 * fields stay as Longs so that no bits are lost, bytes stay Uint8Arrays. Throws protobufjs's error on bytes
 * that are not a valid protobuf encoding.
 */
export function decodeModelProto(bytes: Uint8Array): ModelMsg {
  const type = modelProtoType();
  return type.toObject(type.decode(bytes), { defaults: false, arrays: false, oneofs: false }) as ModelMsg;
}
