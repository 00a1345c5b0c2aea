// int8 export: QDQ graphs that ONNX's checker accepts and onnxruntime runs as integer kernels, weights
// quantized per output channel and symmetric, outputs close to float32, calibration from a dataset.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import * as cz from '../src/index.js';
import { onnxCheck } from './helpers/onnx_check.js';
import { disposeModel } from './helpers/tv_reference.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'convzoo-int8-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A resnet20 whose batch norms hold the statistics of a random batch, as a trained one would. */
function resnet20(): cz.ClassifierModel {
  cz.manualSeed(1);
  const model = cz.buildModel('resnet20', { numClasses: 10 });
  const norms = [...model.modules()].filter((m): m is cz.nn.BatchNorm2d => m instanceof cz.nn.BatchNorm2d);
  for (const m of norms) m.momentum = 1;
  const x = cz.randn([16, 3, 32, 32]);
  cz.noGrad(() => model.train().forward(x)).dispose();
  x.dispose();
  for (const m of norms) m.momentum = 0.1;
  return model.eval();
}

function floats(t: cz.OnnxTensor): Float32Array {
  return new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength));
}

describe('int8 export', () => {
  test('a QDQ graph onnxruntime fuses into integer kernels, close to float32', async () => {
    const model = resnet20();
    const calibration = Array.from({ length: 3 }, () => cz.randn([16, 3, 32, 32]));
    const file = join(dir, 'resnet20.int8.onnx');
    const seen: number[] = [];
    await cz.exportOnnx(model, file, { batch: 'dynamic', int8: { calibration, onProgress: (n) => seen.push(n) } });
    expect(seen).toEqual([16, 32, 48]);
    const check = onnxCheck(file);
    expect(check.error ?? '').toBe('');
    expect(check.ok).toBe(true);

    const m = cz.readOnnx(file);
    expect(m.metadata['convzoo.precision']).toBe('int8');
    const ops = m.graph.nodes.map((n) => n.opType);
    // Every ReLU became the range of the quantized value before it.
    expect(ops).not.toContain('Relu');
    expect(ops.filter((o) => o === 'Conv').length).toBe(19);
    // Weights: int8, symmetric per output channel (each channel reaches +-127, or +-63 where this CPU's
    // onnxruntime kernels would saturate full-range weights: x86 without VNNI), zero points 0.
    const bits = cz.cpuHasVnni() === false ? 7 : 8;
    expect(m.metadata['convzoo.int8_weight_bits']).toBe(String(bits));
    const inits = new Map(m.graph.initializers.map((t) => [t.name, t]));
    const wq = [...inits.values()].find((t) => t.name.startsWith('conv1.weight') && t.dataType === 'int8' && t.dims.length === 4)!;
    expect(wq).toBeDefined();
    const q = new Int8Array(wq.raw.buffer.slice(wq.raw.byteOffset, wq.raw.byteOffset + wq.raw.byteLength));
    const per = q.length / wq.dims[0];
    for (let c = 0; c < wq.dims[0]; c++) {
      const peak = Math.max(...Array.from(q.subarray(c * per, (c + 1) * per), Math.abs));
      expect(peak).toBe(bits === 8 ? 127 : 63);
    }
    const scale = floats(inits.get(wq.name.replace('_quantized', '_scale'))!);
    expect(scale.length).toBe(wq.dims[0]);
    // The dequantized weights are the folded float weights to half a step.
    const fp32 = cz.exportOnnxModel(model, { batch: 'dynamic' });
    const wf = floats(fp32.graph.initializers.find((t) => t.name === wq.name.replace('_quantized', ''))!);
    for (let i = 0; i < wf.length; i++) expect(Math.abs(q[i] * scale[Math.floor(i / per)] - wf[i])).toBeLessThanOrEqual(scale[Math.floor(i / per)] / 2 + 1e-7);

    // onnxruntime turns the pairs into integer kernels (its optimised graph shows them).
    const optimized = join(dir, 'resnet20.int8.opt.onnx');
    const s8 = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'extended', optimizedModelFilePath: optimized });
    const fused = cz.readOnnx(optimized).graph.nodes.map((n) => n.opType);
    expect(fused.filter((o) => o === 'QLinearConv').length).toBe(19);
    expect(fused).toContain('QLinearAdd');
    expect(fused).not.toContain('Conv');

    const s32 = await ort.InferenceSession.create(cz.encodeOnnx(fp32).model);
    const x = cz.randn([8, 3, 32, 32]);
    const feed = { input: new ort.Tensor('float32', x.data() as Float32Array, x.shape) };
    const a = (await s8.run(feed)).logits.data as Float32Array;
    const b = (await s32.run(feed)).logits.data as Float32Array;
    let diff = 0;
    let peak = 0;
    for (let i = 0; i < b.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      peak = Math.max(peak, Math.abs(b[i]));
    }
    expect(diff / peak).toBeLessThan(0.08);
    expect(diff / peak).toBeGreaterThan(0); // it did quantize
    await s8.release();
    await s32.release();
    for (const t of [...calibration, x]) t.dispose();
    disposeModel(model);
  });

  test('calibration ranges come from the traced values, names as in the export', async () => {
    const model = resnet20();
    const batch = cz.randn([4, 3, 32, 32]);
    const ranges = await cz.calibrateRanges(model, [batch], { batch: 'dynamic', opset: 17 });
    const input = ranges.get('input')!;
    expect(input.min).toBeCloseTo(Math.min(...(batch.data() as Float32Array)), 6);
    expect(input.max).toBeCloseTo(Math.max(...(batch.data() as Float32Array)), 6);
    const want = cz.noGrad(() => model.forward(batch));
    expect(ranges.get('logits')!.max).toBeCloseTo(Math.max(...(want.data() as Float32Array)), 4);
    const names = new Set(cz.exportOnnxModel(model, { batch: 'dynamic' }).graph.nodes.flatMap((n) => n.outputs));
    for (const name of names) expect(ranges.has(name), name).toBe(true);
    batch.dispose();
    want.dispose();
    disposeModel(model);
  });

  test('no calibration images is an error', async () => {
    const model = resnet20();
    await expect(cz.exportOnnx(model, join(dir, 'none.onnx'), { int8: { calibration: [] } })).rejects.toThrow(/calibration data gave no images/);
    disposeModel(model);
  });
});

describe('convzoo export --int8', () => {
  const cli = join(__dirname, '..', 'dist', 'cli', 'main.js');
  const run = (args: string[]) => execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: 'pipe' });
  const fails = (args: string[]): string => {
    try {
      run(args);
    } catch (e) {
      return String((e as { stderr: string }).stderr);
    }
    return '';
  };

  test('a Fashion-MNIST checkpoint calibrated on its own training images', () => {
    const out = join(dir, 'run');
    run(['train', '--model', 'resnet20', '--epochs', '1', '--subset', '128', '--batch-size', '64', '--out', out, '--json']);
    const file = join(dir, 'ckpt.int8.onnx');
    const r = JSON.parse(
      run(['export', '--checkpoint', join(out, 'last.ckpt'), '--out', file, '--int8', '--calibrate', 'fashion-mnist', '--calibration-images', '40', '--json'])
        .trim()
        .split('\n')
        .pop()!,
    );
    expect(r.inputShape).toEqual([1, 1, 28, 28]);
    expect(onnxCheck(file).ok).toBe(true);
    expect(cz.readOnnx(file).metadata['convzoo.precision']).toBe('int8');
  });

  test('SiLU and squeeze-excitation run as integer kernels too (QLinearSigmoid, QLinearMul): no float op is left between convolutions', async () => {
    cz.manualSeed(2);
    const model = cz.buildModel('efficientnet_b0');
    const norms = [...model.modules()].filter((m): m is cz.nn.BatchNorm2d => m instanceof cz.nn.BatchNorm2d);
    for (const m of norms) m.momentum = 1;
    const x = cz.randn([4, 3, 64, 64]);
    cz.noGrad(() => model.train().forward(x)).dispose();
    model.eval();
    const file = join(dir, 'effnet.int8.onnx');
    await cz.exportOnnx(model, file, { inputSize: 64, int8: { calibration: [x] } });
    const optimized = join(dir, 'effnet.int8.opt.onnx');
    await ort.InferenceSession.create(file, { graphOptimizationLevel: 'extended', optimizedModelFilePath: optimized });
    const ops = cz.readOnnx(optimized).graph.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'QLinearSigmoid').length).toBe(65); // 49 SiLU + 16 squeeze-excitation gates
    expect(ops.filter((o) => o === 'QLinearMul').length).toBe(65);
    expect(ops).not.toContain('Sigmoid');
    expect(ops).not.toContain('Mul');
    expect(ops.filter((o) => o === 'DequantizeLinear').length).toBeLessThanOrEqual(1);
    x.dispose();
    disposeModel(model);
  });

  test("weightBits 8 and 7 set the weights' range (and the metadata); anything else is refused", () => {
    const model = resnet20();
    const fp32 = cz.exportOnnxModel(model, { batch: 1 });
    const ranges = new Map<string, cz.ValueRange>();
    for (const n of fp32.graph.nodes) for (const v of [...n.inputs, ...n.outputs]) ranges.set(v, { min: -4, max: 4 });
    const peak = (bits: 7 | 8) => {
      const q = cz.quantizeOnnxModel(fp32, ranges, { weightBits: bits });
      expect(q.weightBits).toBe(bits);
      expect(q.model.metadata['convzoo.int8_weight_bits']).toBe(String(bits));
      const w = q.model.graph.initializers.find((t) => t.dataType === 'int8' && t.dims.length === 4)!;
      return Math.max(...Array.from(new Int8Array(w.raw.buffer.slice(w.raw.byteOffset, w.raw.byteOffset + w.raw.byteLength)), Math.abs));
    };
    expect(peak(8)).toBe(127);
    expect(peak(7)).toBe(63);
    expect(() => cz.quantizeOnnxModel(fp32, ranges, { weightBits: 6 as 7 })).toThrow(/weightBits must be 7, 8 or 'auto', got 6/);
    disposeModel(model);
  });

  test('refuses what does not fit', () => {
    expect(fails(['export', 'resnet20', '--out', join(dir, 'x.onnx'), '--int8'])).toMatch(/--int8 needs calibration images/);
    expect(fails(['export', 'resnet20', '--out', join(dir, 'x.onnx'), '--calibrate', 'fashion-mnist'])).toMatch(/--calibrate goes with --int8/);
    expect(fails(['export', 'resnet20', '--out', join(dir, 'x.onnx'), '--int8', '--calibrate', 'fashion-mnist', '--calibration-images', '8'])).toMatch(
      /fashion-mnist has 1-channel images but the model takes 3 channels/,
    );
  });
});
