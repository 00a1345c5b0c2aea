// ONNX serialisation (src/onnx/serialize.ts) against the references: the onnx package's checker
// (python3-onnx, tools/onnx_check.py), onnxruntime running the written files against the same network
// computed with convzoo's ops, the onnx package reading what convzoo writes and writing what convzoo reads
// (the typed-field fallbacks), and a torch.onnx.export file from the bench cache. Also hostile input and
// malformed models.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as cz from '../src/index.js';
import { ConvzooError } from '../src/index.js';
import { attr, type OnnxDataType, type OnnxModel, type OnnxTensor } from '../src/onnx/ir.js';
import { decodeModelProto, encodeModelProto, type TensorMsg } from '../src/onnx/proto.js';
import {
  EXTERNAL_DATA_ALIGNMENT,
  GRAPH_HEADROOM,
  PROTOBUF_LIMIT,
  encodeOnnx,
  needsExternalData,
  onnxPayloadBytes,
  readOnnx,
  writeOnnx,
} from '../src/onnx/serialize.js';
import { onnxCheck, pythonOnnxJson } from './helpers/onnx_check.js';
import { checkLeaks, PY } from './helpers/tv_reference.js';

checkLeaks();

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'convzoo-onnx-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---- a small CNN written out by hand

/** Deterministic values in [-1, 1). */
function randomFloats(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

function floatTensor(name: string, dims: number[], seed: number): OnnxTensor {
  const n = dims.reduce((a, d) => a * d, 1);
  return { name, dataType: 'float32', dims, raw: bytesOf(randomFloats(n, seed)) };
}

function int64Tensor(name: string, values: number[]): OnnxTensor {
  return { name, dataType: 'int64', dims: [values.length], raw: bytesOf(BigInt64Array.from(values.map(BigInt))) };
}

const CLASSES = 10;
const CLASS_BIAS = [0.5, -1.25, 0.1, 2, -3, 0.75, 1, -0.5, 0.25, 4];
const GEMM_ALPHA = 0.5;

/**
 * Conv(3->16, 3x3, pad 1) + Relu + GlobalAveragePool + Flatten + Gemm(alpha 0.5, transB) + Add of a
 * Constant (value_floats) + Reshape to a Constant shape (a tensor attribute): every attribute type on
 * a graph onnxruntime can run, with a symbolic batch dimension. conv.weight (1728 bytes) is the one
 * initializer over the 1 KiB external data threshold.
 */
function smallCnn(): OnnxModel {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'convzoo',
    producerVersion: '0.1.1',
    docString: 'a hand-built test network',
    graph: {
      name: 'small_cnn',
      nodes: [
        {
          opType: 'Conv',
          name: 'conv',
          inputs: ['image', 'conv.weight', 'conv.bias'],
          outputs: ['conv_out'],
          attributes: {
            kernel_shape: attr.ints([3, 3]),
            pads: attr.ints([1, 1, 1, 1]),
            strides: attr.ints([1, 1]),
            dilations: attr.ints([1, 1]),
            group: attr.int(1),
            auto_pad: attr.string('NOTSET'),
          },
        },
        { opType: 'Relu', name: 'relu', inputs: ['conv_out'], outputs: ['relu_out'], attributes: {} },
        { opType: 'GlobalAveragePool', name: 'pool', inputs: ['relu_out'], outputs: ['pool_out'], attributes: {} },
        { opType: 'Flatten', name: 'flatten', inputs: ['pool_out'], outputs: ['flat'], attributes: { axis: attr.int(1) } },
        {
          opType: 'Gemm',
          name: 'fc',
          inputs: ['flat', 'fc.weight', 'fc.bias'],
          outputs: ['fc_out'],
          attributes: { alpha: attr.float(GEMM_ALPHA), beta: attr.float(1), transB: attr.int(1) },
        },
        { opType: 'Constant', name: 'class_bias', inputs: [], outputs: ['class_bias'], attributes: { value_floats: attr.floats(CLASS_BIAS) } },
        { opType: 'Add', name: 'add', inputs: ['fc_out', 'class_bias'], outputs: ['biased'], attributes: {} },
        { opType: 'Constant', name: 'shape', inputs: [], outputs: ['shape'], attributes: { value: attr.tensor(int64Tensor('shape_value', [-1, CLASSES])) } },
        { opType: 'Reshape', name: 'reshape', inputs: ['biased', 'shape'], outputs: ['logits'], attributes: {} },
      ],
      initializers: [
        floatTensor('conv.weight', [16, 3, 3, 3], 1),
        floatTensor('conv.bias', [16], 2),
        floatTensor('fc.weight', [CLASSES, 16], 3),
        floatTensor('fc.bias', [CLASSES], 4),
      ],
      inputs: [{ name: 'image', dataType: 'float32', shape: ['batch', 3, 8, 8] }],
      outputs: [{ name: 'logits', dataType: 'float32', shape: ['batch', CLASSES] }],
      valueInfo: [{ name: 'relu_out', dataType: 'float32', shape: ['batch', 16, 8, 8] }],
    },
    metadata: { id: 'small_cnn', labels: JSON.stringify(['a', 'b']), mean: '0.485,0.456,0.406', 'input size': '8' },
  };
}

const BATCH = 3;
const IMAGE = randomFloats(BATCH * 3 * 8 * 8, 99);

function initializer(m: OnnxModel, name: string): cz.Tensor {
  const t = m.graph.initializers.find((i) => i.name === name);
  if (!t) throw new Error(`no initializer ${name}`);
  return cz.tensor(new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength)), t.dims);
}

/** The small CNN's logits computed with convzoo's ops. */
function convzooLogits(m: OnnxModel): Float32Array {
  return cz.tidy(() => {
    const x = cz.tensor(IMAGE, [BATCH, 3, 8, 8]);
    const features = cz.F.conv2d(x, initializer(m, 'conv.weight'), initializer(m, 'conv.bias'), { padding: 1 }).relu().mean([2, 3]);
    const logits = cz.F.linear(features, initializer(m, 'fc.weight'))
      .mul(GEMM_ALPHA)
      .add(initializer(m, 'fc.bias'))
      .add(cz.tensor(new Float32Array(CLASS_BIAS)));
    return logits.data() as Float32Array;
  });
}

async function ortLogits(file: string): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const out = await session.run({ image: new ort.Tensor('float32', IMAGE, [BATCH, 3, 8, 8]) });
    return { data: out.logits.data as Float32Array, dims: out.logits.dims };
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

/** What reading gives back: the model with float attributes rounded to float32, as protobuf stores them. */
function asStored(m: OnnxModel): OnnxModel {
  const copy = structuredClone(m);
  for (const n of copy.graph.nodes) {
    for (const a of Object.values(n.attributes)) {
      if (a.type === 'float') a.value = Math.fround(a.value);
      if (a.type === 'floats') a.value = a.value.map(Math.fround);
    }
  }
  return copy;
}

function expectError(fn: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a ConvzooError').toBeInstanceOf(ConvzooError);
  expect((caught as ConvzooError).code).toBe(code);
  expect((caught as ConvzooError).message).toMatch(message);
}

// ---- tests

describe('writeOnnx: checker, onnxruntime, convzoo', () => {
  test('the small CNN passes the onnx checker and onnxruntime matches convzoo within 1e-5', async () => {
    const model = smallCnn();
    const file = join(dir, 'small.onnx');
    const written = await writeOnnx(file, model);
    expect(written).toEqual({ path: file, bytes: statSync(file).size });
    expect(existsSync(`${file}.data`)).toBe(false);

    const verdict = onnxCheck(file);
    expect(verdict.error).toBeUndefined();
    expect(verdict).toMatchObject({ ok: true, irVersion: 8, opset: 17, externalData: false });
    // Inference's own shape: Reshape's -1 gets a fresh symbol rather than 'batch'.
    expect(verdict.inferredOutputShapes).toEqual({ logits: [expect.any(String), CLASSES] });

    const { data, dims } = await ortLogits(file);
    expect(dims).toEqual([BATCH, CLASSES]);
    const expected = convzooLogits(model);
    expect(maxAbsDiff(data, expected)).toBeLessThan(1e-5);
    // Not a vacuous match: the logits differ between images and classes.
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(0.1);
  });

  test('the checker catches a broken graph (the reference can fail)', async () => {
    const model = smallCnn();
    model.graph.outputs[0].shape = ['batch', CLASSES + 1]; // the graph computes 10 classes
    const file = join(dir, 'broken.onnx');
    await writeOnnx(file, model);
    const verdict = onnxCheck(file);
    expect(verdict.ok).toBe(false);
    expect(verdict.error).toMatch(/\(10\) vs \(11\)/);
  });

  test('the onnx package reads back what convzoo wrote: names, attributes, metadata, opset, tensor values', async () => {
    const model = smallCnn();
    model.graph.nodes[4].attributes.extremes = attr.ints([2 ** 63, -(2 ** 63), -1, 0, 2 ** 53 - 1]);
    const file = join(dir, 'python_reads.onnx');
    await writeOnnx(file, model);
    const seen = pythonOnnxJson<Record<string, unknown>>(
      `from onnx import numpy_helper, helper
m = onnx.load(sys.argv[1])
g = m.graph
print(json.dumps({
  'ir': m.ir_version, 'opset': [[o.domain, o.version] for o in m.opset_import], 'producer': [m.producer_name, m.producer_version],
  'doc': m.doc_string, 'metadata': [[p.key, p.value] for p in m.metadata_props], 'graph': g.name,
  'nodes': [[n.op_type, n.name, list(n.input), list(n.output)] for n in g.node],
  'attributes': {n.name: {a.name: str(helper.get_attribute_value(a)) if a.type != onnx.AttributeProto.TENSOR else None for a in n.attribute} for n in g.node},
  'extremes': [str(v) for v in next(a.ints for a in g.node[4].attribute if a.name == 'extremes')],
  'initializers': {t.name: [list(t.dims), numpy_helper.to_array(t).tobytes().hex()] for t in g.initializer},
  'shape_value': numpy_helper.to_array(g.node[7].attribute[0].t).tolist(),
  'inputs': [[v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]] for v in g.input],
}))`,
      [file],
    );
    expect(seen.ir).toBe(8);
    expect(seen.opset).toEqual([['', 17]]);
    expect(seen.producer).toEqual(['convzoo', '0.1.1']);
    expect(seen.doc).toBe('a hand-built test network');
    expect(seen.metadata).toEqual(Object.entries(model.metadata));
    expect(seen.graph).toBe('small_cnn');
    expect(seen.nodes).toEqual(model.graph.nodes.map((n) => [n.opType, n.name, n.inputs, n.outputs]));
    const attrs = seen.attributes as Record<string, Record<string, string | null>>;
    expect(attrs.conv).toEqual({ kernel_shape: '[3, 3]', pads: '[1, 1, 1, 1]', strides: '[1, 1]', dilations: '[1, 1]', group: '1', auto_pad: "b'NOTSET'" });
    expect(attrs.fc).toMatchObject({ alpha: '0.5', beta: '1.0', transB: '1' });
    expect(seen.extremes).toEqual(['9223372036854775807', '-9223372036854775808', '-1', '0', '9007199254740991']);
    for (const t of model.graph.initializers) {
      expect((seen.initializers as Record<string, unknown>)[t.name]).toEqual([t.dims, Buffer.from(t.raw).toString('hex')]);
    }
    expect(seen.shape_value).toEqual([-1, CLASSES]);
    expect(seen.inputs).toEqual([['image', 1, ['batch', 3, 8, 8]]]);
  });
});

describe('readOnnx', () => {
  /** The small CNN plus tensors of every element type, int64 extremes and a custom-domain node. */
  function everyField(): OnnxModel {
    const m = smallCnn();
    const typed = (name: string, dataType: OnnxDataType, dims: number[], view: ArrayBufferView): OnnxTensor => ({ name, dataType, dims, raw: bytesOf(view) });
    m.graph.initializers.push(
      typed('f64', 'float64', [2, 2], Float64Array.from([1.5, -2, Math.PI, 1e300])),
      typed('f16', 'float16', [3], Uint16Array.from([0x3c00, 0xc000, 0x7bff])),
      typed('bf16', 'bfloat16', [2], Uint16Array.from([0x3f80, 0xbf80])),
      typed('i64', 'int64', [4], BigInt64Array.from([2n ** 63n - 1n, -(2n ** 63n), -1n, 42n])),
      typed('i32', 'int32', [2, 1], Int32Array.from([-7, 2 ** 31 - 1])),
      typed('i8', 'int8', [3], Int8Array.from([-128, 0, 127])),
      typed('u8', 'uint8', [3], Uint8Array.from([0, 1, 255])),
      typed('flags', 'bool', [2], Uint8Array.from([1, 0])),
      typed('empty', 'float32', [0, 4], new Float32Array(0)),
      typed('scalar', 'float32', [], Float32Array.from([3.25])),
    );
    m.graph.nodes.push({
      opType: 'Custom',
      name: 'custom',
      domain: 'com.example',
      inputs: ['image', ''],
      outputs: ['custom_out'],
      attributes: {
        big: attr.ints([2 ** 63, -(2 ** 63), 2 ** 53 - 1]),
        tiny: attr.float(0.1),
        names: attr.string('ünïcode ✓'),
        t: attr.tensor(typed('t', 'int8', [1], Int8Array.from([-3]))),
      },
    });
    m.opsetImports.push({ domain: 'com.example', version: 1 });
    m.graph.valueInfo?.push({ name: 'pool_out', dataType: 'float32', shape: ['batch', 16, '', 1] });
    return m;
  }

  test('round-trips every field: names, attributes of each type, dims, raw bytes, metadata, opsets', () => {
    const model = everyField();
    const back = readOnnx(encodeOnnx(model).model);
    expect(back).toEqual(asStored(model));
    // Float attributes are float32 in ONNX: 0.1 comes back as float32's 0.1.
    expect(back.graph.nodes.at(-1)?.attributes.tiny).toEqual({ type: 'float', value: Math.fround(0.1) });
    // Each tensor owns its bytes (offset 0), so typed views of any element size work.
    for (const t of back.graph.initializers) expect(t.raw.byteOffset).toBe(0);
    // Metadata keeps its order.
    expect(Object.keys(back.metadata)).toEqual(Object.keys(model.metadata));
  });

  test('int64 extremes are written as exact 64-bit values', () => {
    const msg = decodeModelProto(encodeOnnx(everyField()).model);
    const big = msg.graph?.node?.at(-1)?.attribute?.find((a) => a.name === 'big')?.ints ?? [];
    const exact = big.map((v) => (typeof v === 'number' ? BigInt(v) : BigInt.asIntN(64, (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0))));
    expect(exact).toEqual([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n - 1n]);
  });

  test("tensors the onnx package writes in float_data, int32_data, int64_data and double_data read as onnx's own bytes", () => {
    const file = join(dir, 'typed_fields.onnx');
    const expected = pythonOnnxJson<Record<string, { dims: number[]; hex: string; field: string }>>(
      `import struct
import numpy as np
from onnx import helper, numpy_helper, TensorProto as T
specs = [('f32', T.FLOAT, [2, 3], [0.5, -1.0, 3.25, 1e-8, -0.0, 7.0]), ('f64', T.DOUBLE, [2], [3.141592653589793, -1e300]),
         ('i64', T.INT64, [3], [9223372036854775807, -9223372036854775808, -2]), ('i32', T.INT32, [2], [-2147483648, 5]),
         ('i8', T.INT8, [3], [-128, -1, 127]), ('u8', T.UINT8, [2], [0, 255]), ('b', T.BOOL, [3], [True, False, True]),
         ('f16', T.FLOAT16, [3], [1.0, -2.5, 65504.0]), ('bf16', T.BFLOAT16, [2], [1.0, -3.0])]
tensors = [helper.make_tensor(name, dtype, dims, vals) for name, dtype, dims, vals in specs]
out = {}
for t in tensors:
    fields = [f.name for f, _ in t.ListFields() if f.name.endswith('_data')]
    if t.data_type == T.BFLOAT16:  # numpy has no bfloat16: the bit patterns, as stored
        raw = struct.pack('<%dH' % len(t.int32_data), *[v & 0xffff for v in t.int32_data])
    else:
        values = numpy_helper.to_array(t)
        raw = values.astype(values.dtype.newbyteorder('<')).tobytes()
    out[t.name] = {'dims': list(t.dims), 'hex': raw.hex(), 'field': fields[0]}
node = helper.make_node('Identity', ['x'], ['y'])
graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info('x', T.FLOAT, [1])], [helper.make_tensor_value_info('y', T.FLOAT, [1])], tensors)
onnx.save(helper.make_model(graph), sys.argv[1])
print(json.dumps(out))`,
      [file],
    );
    // The onnx package did use the typed fields, not raw_data.
    expect(Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, v.field]))).toEqual({
      f32: 'float_data',
      f64: 'double_data',
      i64: 'int64_data',
      i32: 'int32_data',
      i8: 'int32_data',
      u8: 'int32_data',
      b: 'int32_data',
      f16: 'int32_data',
      bf16: 'int32_data',
    });
    const model = readOnnx(file);
    const got = Object.fromEntries(model.graph.initializers.map((t) => [t.name, { dims: t.dims, hex: Buffer.from(t.raw).toString('hex') }]));
    expect(got).toEqual(Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, { dims: v.dims, hex: v.hex }])));
  });

  // A file made by torch.onnx.export (torchvision's mobilenet_v3_small, opset 17, dynamic batch), written by
  // bench/torch_models.py with Debian's python3: the bench's cache (bench/.cache/onnx, or CONVZOO_ONNX_CACHE)
  // when it holds one of these small ones, else exported here (a few seconds).
  const cache = process.env.CONVZOO_ONNX_CACHE ?? new URL('../bench/.cache/onnx', import.meta.url).pathname;
  const cached = ['mobilenet_v1_0_25', 'resnet18', 'mobilenet_v3_small', 'mobilenet_v2'].map((id) => join(cache, `${id}.onnx`)).find((f) => existsSync(f));
  test('a torch.onnx.export file reads as the onnx package reads it', async () => {
    let file = cached;
    if (!file) {
      const out = join(dir, 'torch_export');
      execFileSync(PY, [new URL('../bench/torch_models.py', import.meta.url).pathname, 'export', out, 'mobilenet_v3_small'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 300_000,
      });
      file = join(out, 'mobilenet_v3_small.onnx');
    }
    const torchFile = file;
    const reference = pythonOnnxJson<{ inputs: string[]; initializers: [string, number[], string][]; ops: string[]; opset: number }>(
      `import hashlib
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
inits = {t.name for t in m.graph.initializer}
print(json.dumps({'inputs': [v.name for v in m.graph.input if v.name not in inits],
  'initializers': [[t.name, list(t.dims), hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest()] for t in m.graph.initializer],
  'ops': [n.op_type for n in m.graph.node], 'opset': m.opset_import[0].version}))`,
      [torchFile],
    );
    const model = readOnnx(torchFile);
    expect(model.graph.inputs.map((v) => v.name)).toEqual(['input']);
    expect(reference.inputs).toEqual(['input']);
    expect(model.graph.inputs[0].shape).toEqual(['batch', 3, 224, 224]);
    expect(model.graph.initializers.length).toBeGreaterThan(0);
    expect(model.graph.initializers.map((t) => [t.name, t.dims, createHash('sha256').update(t.raw).digest('hex')])).toEqual(reference.initializers);
    expect(model.graph.nodes.map((n) => n.opType)).toEqual(reference.ops);
    expect(model.opsetImports[0].version).toBe(reference.opset);

    // Written back, it still checks and computes exactly the same logits in onnxruntime.
    const copy = join(dir, 'torch_copy.onnx');
    await writeOnnx(copy, model);
    expect(onnxCheck(copy)).toMatchObject({ ok: true });
    const image = randomFloats(3 * 224 * 224, 5);
    const run = async (f: string) => {
      const s = await ort.InferenceSession.create(f, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      try {
        return (await s.run({ input: new ort.Tensor('float32', image, [1, 3, 224, 224]) })).logits.data as Float32Array;
      } finally {
        await s.release();
      }
    };
    expect(await run(copy)).toEqual(await run(torchFile));
  }, 300_000);
});

describe('external data', () => {
  test('forced on a small model: the .data file, the checker, onnxruntime and readOnnx agree', async () => {
    const model = smallCnn();
    const file = join(dir, 'external.onnx');
    const written = await writeOnnx(file, model, { externalData: true });
    expect(written.externalDataPath).toBe(`${file}.data`);
    expect(written.externalDataBytes).toBe(statSync(`${file}.data`).size);
    expect(written.bytes).toBe(statSync(file).size);

    // conv.weight (1728 bytes) is the one initializer over the 1 KiB threshold.
    const msg = decodeModelProto(readFileSync(file));
    const external = (msg.graph?.initializer ?? []).filter((t) => t.data_location === 1);
    expect(external.map((t) => t.name)).toEqual(['conv.weight']);
    expect(external[0].raw_data).toBeUndefined();
    expect(external[0].external_data).toEqual([
      { key: 'location', value: 'external.onnx.data' },
      { key: 'offset', value: '0' },
      { key: 'length', value: '1728' },
    ]);
    expect(new Uint8Array(readFileSync(`${file}.data`))).toEqual(model.graph.initializers[0].raw);

    expect(onnxCheck(file)).toMatchObject({ ok: true, externalData: true, inferredOutputShapes: { logits: [expect.any(String), CLASSES] } });
    const inline = join(dir, 'inline.onnx');
    await writeOnnx(inline, model, { externalData: false });
    const fromExternal = await ortLogits(file);
    expect(fromExternal.data).toEqual((await ortLogits(inline)).data);
    expect(maxAbsDiff(fromExternal.data, convzooLogits(model))).toBeLessThan(1e-5);
    expect(readOnnx(file)).toEqual(asStored(model));
  });

  test('encodeOnnx puts every initializer over the threshold at an aligned offset of one blob', () => {
    const model = smallCnn();
    const { model: bytes, externalData } = encodeOnnx(model, { externalData: { location: 'weights.bin', threshold: 1 } });
    expect(externalData).toBeInstanceOf(Uint8Array);
    const msg = decodeModelProto(bytes);
    const inits = msg.graph?.initializer ?? [];
    expect(inits.every((t) => t.data_location === 1)).toBe(true);
    for (const [i, t] of inits.entries()) {
      const entry = Object.fromEntries((t.external_data ?? []).map((e) => [e.key, e.value]));
      const offset = Number(entry.offset);
      expect(entry.location).toBe('weights.bin');
      expect(offset % EXTERNAL_DATA_ALIGNMENT).toBe(0);
      expect(externalData?.subarray(offset, offset + Number(entry.length))).toEqual(model.graph.initializers[i].raw);
    }
    // From bytes, the data's folder has to be named.
    expectError(() => readOnnx(bytes), 'E_ARG', /keeps its data in 'weights\.bin'; pass \{baseDir\}/);
    const sub = join(dir, 'blob');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'weights.bin'), externalData as Uint8Array);
    expect(readOnnx(bytes, { baseDir: sub })).toEqual(asStored(model));
  });

  test("'auto' goes external only past protobuf's 2 GB (decided from the payload size, before encoding)", async () => {
    expect(PROTOBUF_LIMIT).toBe(2 ** 31 - 1);
    expect(needsExternalData(1_000_000_000)).toBe(false);
    expect(needsExternalData(PROTOBUF_LIMIT - GRAPH_HEADROOM)).toBe(false);
    expect(needsExternalData(PROTOBUF_LIMIT - GRAPH_HEADROOM + 1)).toBe(true);
    expect(needsExternalData(3 * 2 ** 30)).toBe(true);
    expect(needsExternalData(5000, 4096)).toBe(true);
    const model = smallCnn();
    // 4 initializers plus the Constant's 16-byte int64 tensor.
    expect(onnxPayloadBytes(model)).toBe((16 * 27 + 16 + CLASSES * 16 + CLASSES) * 4 + 16);
    const file = join(dir, 'auto.onnx');
    expect((await writeOnnx(file, model)).externalDataPath).toBeUndefined();
    expect(existsSync(`${file}.data`)).toBe(false);
  });
});

describe('hostile and malformed input', () => {
  test('random bytes, truncated files, empty and text files are E_FORMAT errors naming the problem', async () => {
    let seed = 7;
    for (let k = 0; k < 50; k++) {
      const junk = new Uint8Array(1 + ((k * 997) % 4096));
      for (let i = 0; i < junk.length; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        junk[i] = seed >>> 24;
      }
      expectError(() => readOnnx(junk), 'E_FORMAT', /^readOnnx: <bytes>: not an ONNX model/);
    }
    // 100k nested groups of an unknown field: bounded, not a stack overflow.
    const nested = new Uint8Array(200_000).map((_, i) => (i % 2 ? 0x06 : 0x9b));
    expectError(() => readOnnx(nested), 'E_FORMAT', /not an ONNX model \(protobuf decoding failed: maximum nesting depth exceeded\)/);
    const whole = encodeOnnx(smallCnn()).model;
    for (const cut of [1, 100, whole.length >> 1, whole.length - 1]) {
      expectError(() => readOnnx(whole.subarray(0, cut)), 'E_FORMAT', /not an ONNX model \(protobuf decoding failed: index out of range/);
    }
    const truncated = join(dir, 'truncated.onnx');
    writeFileSync(truncated, whole.subarray(0, whole.length >> 1));
    expectError(() => readOnnx(truncated), 'E_FORMAT', new RegExp(`^readOnnx: ${truncated}: not an ONNX model`));
    const empty = join(dir, 'empty.onnx');
    writeFileSync(empty, '');
    expectError(() => readOnnx(empty), 'E_FORMAT', /not an ONNX model \(no graph\)/);
    const text = join(dir, 'text.onnx');
    writeFileSync(text, '{"this": "is json"}\n');
    expectError(() => readOnnx(text), 'E_FORMAT', /not an ONNX model/);
    expectError(() => readOnnx(join(dir, 'missing.onnx')), 'E_NOT_FOUND', /missing\.onnx: no such file/);
  });

  /** A copy of the external-data small CNN whose conv.weight entry is changed by `edit`. */
  async function tampered(name: string, edit: (t: TensorMsg) => void): Promise<string> {
    const sub = join(dir, name);
    mkdirSync(sub, { recursive: true });
    const file = join(sub, 'model.onnx');
    await writeOnnx(file, smallCnn(), { externalData: true });
    const msg = decodeModelProto(readFileSync(file));
    const conv = msg.graph?.initializer?.find((t) => t.name === 'conv.weight') as TensorMsg;
    edit(conv);
    writeFileSync(file, encodeModelProto(msg));
    return file;
  }

  const setEntry = (t: TensorMsg, key: string, value: string) => {
    const e = t.external_data?.find((x) => x.key === key);
    if (e) e.value = value;
  };

  test('external data locations that are absolute or leave the folder are refused before opening', async () => {
    writeFileSync(join(dir, 'x'), new Uint8Array(4096));
    const regexpEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const cases: [string, string][] = [
      ['../x', "leaves the model's folder"],
      ['sub/../../x', "leaves the model's folder"],
      ['..\\x', "leaves the model's folder"],
      ['/etc/passwd', 'is an absolute path'],
      ['C:\\Windows\\win.ini', 'is an absolute path'],
    ];
    for (const [i, [location, why]] of cases.entries()) {
      const file = await tampered(`hostile${i}`, (t) => setEntry(t, 'location', location));
      expectError(() => readOnnx(file), 'E_FORMAT', new RegExp(`initializer 'conv\\.weight': external data location '${regexpEscape(location)}' ${why}`));
    }
  });

  test('external data that does not fit its file or its dims is an E_FORMAT error', async () => {
    const beyond = await tampered('beyond', (t) => setEntry(t, 'offset', '4096'));
    expectError(() => readOnnx(beyond), 'E_FORMAT', /conv\.weight': external data \[4096, 5824\) lies beyond the end of 'model\.onnx\.data' \(1728 bytes\)/);
    const short = await tampered('short', (t) => setEntry(t, 'length', '100'));
    expectError(() => readOnnx(short), 'E_FORMAT', /external data length 100 does not match its dims \(1728 bytes\)/);
    const notNumber = await tampered('nan', (t) => setEntry(t, 'offset', '-5'));
    expectError(() => readOnnx(notNumber), 'E_FORMAT', /external data offset '-5' is not a non-negative integer/);
    const missing = await tampered('missing', (t) => setEntry(t, 'location', 'nowhere.data'));
    expectError(() => readOnnx(missing), 'E_NOT_FOUND', /nowhere\.data: no such file/);
  });

  test('tensors whose bytes do not match their dims, and types convzoo does not read, are E_FORMAT errors', () => {
    const msg = decodeModelProto(encodeOnnx(smallCnn()).model);
    const conv = msg.graph?.initializer?.[0] as TensorMsg;
    conv.dims = [16, 3, 3, 4];
    expectError(
      () => readOnnx(encodeModelProto(msg)),
      'E_FORMAT',
      /initializer 'conv\.weight': raw_data has 1728 bytes, dims \[16, 3, 3, 4\] of float32 need 2304/,
    );
    conv.dims = [2 ** 40, 2 ** 20];
    conv.raw_data = undefined;
    expectError(() => readOnnx(encodeModelProto(msg)), 'E_FORMAT', /initializer 'conv\.weight': dims \[1099511627776, 1048576\] are too large/);
    conv.dims = [100_000_000];
    expectError(() => readOnnx(encodeModelProto(msg)), 'E_FORMAT', /initializer 'conv\.weight': 0 values in float_data, its dims hold 100000000/);
    conv.data_type = 8;
    expectError(() => readOnnx(encodeModelProto(msg)), 'E_FORMAT', /initializer 'conv\.weight' has data type 8 \(STRING\), which convzoo does not read/);
    const withGraphAttr = decodeModelProto(encodeOnnx(smallCnn()).model);
    const attribute = withGraphAttr.graph?.node?.[0].attribute?.[0];
    if (attribute) attribute.type = 5;
    expectError(
      () => readOnnx(encodeModelProto(withGraphAttr)),
      'E_FORMAT',
      /node 0 'conv' \(Conv\): attribute 'kernel_shape' is of type GRAPH, which convzoo does not read/,
    );
  });
});

describe('malformed models fail at encode, naming the value', () => {
  const cases: [string, (m: OnnxModel) => void, RegExp][] = [
    ['NaN dims', (m) => (m.graph.initializers[1].dims = [Number.NaN]), /initializer 'conv\.bias': dims\[0\] is NaN, expected a non-negative integer/],
    ['negative dims', (m) => (m.graph.initializers[2].dims = [-10, 16]), /initializer 'fc\.weight': dims\[0\] is -10/],
    ['unknown dataType', (m) => (m.graph.initializers[3].dataType = 'float8' as OnnxDataType), /initializer 'fc\.bias': unknown dataType 'float8'/],
    [
      'raw length',
      (m) => (m.graph.initializers[0].raw = new Uint8Array(100)),
      /initializer 'conv\.weight': raw has 100 bytes, dims \[16, 3, 3, 3\] of float32 need 1728/,
    ],
    [
      'tensor attribute',
      (m) => {
        const a = m.graph.nodes[7].attributes.value;
        if (a.type === 'tensor') a.value.raw = new Uint8Array(3);
      },
      /node 7 'shape' \(Constant\): attribute 'value': tensor 'shape_value': raw has 3 bytes/,
    ],
    [
      'fractional int attribute',
      (m) => (m.graph.nodes[3].attributes.axis = attr.int(1.5)),
      /node 3 'flatten' \(Flatten\): attribute 'axis': expected a 64-bit integer, got 1\.5/,
    ],
    ['shape entry', (m) => (m.graph.inputs[0].shape[1] = Number.NaN), /graph input 'image': shape\[1\] is NaN/],
    ['metadata value', (m) => (m.metadata.id = 5 as unknown as string), /metadata 'id': expected a string, got number/],
  ];
  test.each(cases)('%s', async (_, spoil, message) => {
    const model = smallCnn();
    spoil(model);
    expectError(() => encodeOnnx(model), 'E_ARG', new RegExp(`^encodeOnnx: ${message.source}`));
    // writeOnnx checks before touching the disk: an existing file stays as it was, no temporary is left.
    const sub = join(dir, `spoiled-${_.replace(/\W/g, '_')}`);
    mkdirSync(sub, { recursive: true });
    const file = join(sub, 'model.onnx');
    writeFileSync(file, 'previous');
    await expect(writeOnnx(file, model, { externalData: true })).rejects.toThrow(message);
    expect(readFileSync(file, 'utf8')).toBe('previous');
    expect(readdirSync(sub)).toEqual(['model.onnx']);
  });

  test('an external data location outside the folder is refused at encode', () => {
    expectError(
      () => encodeOnnx(smallCnn(), { externalData: { location: '../w.bin' } }),
      'E_ARG',
      /external data location '\.\.\/w\.bin' leaves the model's folder/,
    );
  });

  test('a write that fails leaves no temporary file and says why', async () => {
    const sub = join(dir, 'fails');
    mkdirSync(join(sub, 'model.onnx'), { recursive: true }); // a folder where the file should go
    let caught: unknown;
    await writeOnnx(join(sub, 'model.onnx'), smallCnn()).catch((e) => {
      caught = e;
    });
    expect(caught).toBeInstanceOf(ConvzooError);
    expect((caught as ConvzooError).code).toBe('E_IO');
    expect((caught as ConvzooError).message).toMatch(/^writeOnnx: .*model\.onnx: /);
    expect(readdirSync(sub)).toEqual(['model.onnx']);
    await expect(writeOnnx(join(dir, 'no', 'such', 'folder.onnx'), smallCnn())).rejects.toThrow(/writeOnnx: .*folder\.onnx/);
  });
});
