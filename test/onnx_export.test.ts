// exportOnnx on one model of every family: the file passes ONNX's own checker with full shape inference
// (Debian's python3-onnx), and onnxruntime-node gives logits within 1e-4 (relative to the largest logit)
// of convzoo's eval forward, at batch 1 and, from the same dynamic-batch file, batch 3. Batch norm running
// statistics are set from a random batch first, so folding them into the convolutions is exercised.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import * as cz from '../src/index.js';
import { readOnnx } from '../src/onnx/serialize.js';
import { onnxCheck } from './helpers/onnx_check.js';
import { disposeModel } from './helpers/tv_reference.js';
import { calibrateBatchNorms, FAMILY_CASES, relError } from './helpers/family_cases.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'convzoo-onnx-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runOrt(session: ort.InferenceSession, x: cz.Tensor): Promise<{ data: Float32Array; dims: number[] }> {
  const out = await session.run({ input: new ort.Tensor('float32', x.data() as Float32Array, x.shape) });
  return { data: out.logits.data as Float32Array, dims: Array.from(out.logits.dims) };
}

describe('exportOnnx: every family, checked by ONNX and run by onnxruntime', () => {
  test.each(FAMILY_CASES)(
    '%s',
    async (id, inputSize) => {
      const model = cz.buildModel(id, { numClasses: 10 });
      const size = inputSize ?? model.meta!.inputSize[1];
      calibrateBatchNorms(model, [3, size, size]);
      model.train(); // export must trace the eval-mode graph and give the mode back
      const file = join(dir, `${id}.onnx`);
      const r = await cz.exportOnnx(model, file, { inputSize, batch: 'dynamic' });
      expect(model.training).toBe(true);
      expect(r.inputShape[0]).toBe('batch');
      expect(r.outputShape).toEqual(['batch', 10]);
      const checked = onnxCheck(file);
      expect(checked.error ?? '').toBe('');
      expect(checked.ok).toBe(true);

      model.eval();
      const [c, h, w] = r.inputShape.slice(1) as number[];
      const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
      try {
        for (const batch of [1, 3]) {
          const x = cz.randn([batch, c, h, w]);
          const want = cz.noGrad(() => model.forward(x));
          const got = await runOrt(session, x);
          expect(got.dims).toEqual([batch, 10]);
          expect(relError(got.data, want.data() as Float32Array)).toBeLessThan(1e-4);
          x.dispose();
          want.dispose();
        }
      } finally {
        await session.release();
        disposeModel(model);
      }
      // vgg11_bn writes 530 MB and checks it: ~30 s on an idle machine, over 120 s beside a training run.
    },
    300_000,
  );
});

describe('exportOnnx: the file', () => {
  test('metadata_props carry the id, preprocessing, input size, labels and version', async () => {
    const model = cz.buildModel('resnet20', { numClasses: 3 });
    model.classes = ['cat', 'dog', 'bird'];
    const file = join(dir, 'meta.onnx');
    await cz.exportOnnx(model, file, { metadata: { author: 'test' } });
    const m = readOnnx(file);
    expect(m.metadata['convzoo.id']).toBe('resnet20');
    expect(JSON.parse(m.metadata['convzoo.labels'])).toEqual(['cat', 'dog', 'bird']);
    expect(JSON.parse(m.metadata['convzoo.input_size'])).toEqual([3, 32, 32]);
    expect(JSON.parse(m.metadata['convzoo.mean'])).toEqual(model.meta!.mean);
    expect(JSON.parse(m.metadata['convzoo.transform']).cropSize).toBe(32);
    expect(m.metadata['convzoo.version']).toMatch(/^\d+\.\d+\.\d+/);
    expect(m.metadata.author).toBe('test');
    expect(m.opsetImports).toEqual([{ domain: '', version: 17 }]);
    // Parameters keep their state-dict names where they are not folded.
    expect(m.graph.initializers.map((t) => t.name)).toContain('fc.weight');
    expect(m.graph.nodes.some((n) => n.opType === 'BatchNormalization')).toBe(false);
    disposeModel(model);
  });

  test('a fixed batch, opset 13 and unfolded batch norms', async () => {
    const model = cz.buildModel('resnet20');
    const file = join(dir, 'fixed.onnx');
    const r = await cz.exportOnnx(model, file, { batch: 4, opset: 13, foldBatchNorm: false });
    expect(r.inputShape).toEqual([4, 3, 32, 32]);
    expect(onnxCheck(file).ok).toBe(true);
    const m = readOnnx(file);
    expect(m.graph.nodes.filter((n) => n.opType === 'BatchNormalization').length).toBe(19);
    disposeModel(model);
  });

  test('weights in external data when asked', async () => {
    const model = cz.buildModel('resnet20');
    const file = join(dir, 'external.onnx');
    const r = await cz.exportOnnx(model, file, { externalData: true });
    expect(r.externalDataPath).toBeDefined();
    expect(existsSync(r.externalDataPath!)).toBe(true);
    expect(statSync(file).size).toBeLessThan(statSync(r.externalDataPath!).size);
    expect(onnxCheck(file).ok).toBe(true);
    const session = await ort.InferenceSession.create(file);
    const x = cz.randn([1, 3, 32, 32]);
    const want = cz.noGrad(() => model.eval().forward(x));
    expect(relError((await runOrt(session, x)).data, want.data() as Float32Array)).toBeLessThan(1e-4);
    await session.release();
    disposeModel(model);
  });

  test('bad options are refused before anything is written', async () => {
    const model = cz.buildModel('resnet20');
    const file = join(dir, 'bad.onnx');
    await expect(cz.exportOnnx(model, file, { opset: 12 })).rejects.toThrow(/expected opset to be an integer from 13 to 18, got 12/);
    await expect(cz.exportOnnx(model, file, { batch: 0 })).rejects.toThrow(/expected batch to be an integer from 1 to 4096/);
    await expect(cz.exportOnnx(model, file, { inputSize: [1, 32, 32] })).rejects.toThrow(/inputSize has 1 channels but the model takes 3/);
    await expect(cz.exportOnnx(model, file, { metadata: { 'convzoo.id': 'x' } })).rejects.toThrow(/reserved/);
    expect(existsSync(file)).toBe(false);
    disposeModel(model);
  });
});

describe('convzoo export', () => {
  const cli = join(__dirname, '..', 'dist', 'cli', 'main.js');
  test('writes a checked file from a checkpoint-free id and says what it wrote', () => {
    const file = join(dir, 'cli.onnx');
    const stdout = execFileSync(process.execPath, [cli, 'export', 'mobilenet_v3_small', '--out', file, '--input-size', '96', '--dynamic-batch', '--json'], {
      encoding: 'utf8',
    });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r).toMatchObject({ id: 'mobilenet_v3_small', opset: 17, inputShape: ['batch', 3, 96, 96], outputShape: ['batch', 1000] });
    expect(onnxCheck(file).ok).toBe(true);
  });
  test('without --out it says so', () => {
    let message = '';
    try {
      execFileSync(process.execPath, [cli, 'export', 'resnet20'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      message = String((e as { stderr: string }).stderr);
    }
    expect(message).toMatch(/give the file to write with --out/);
  });
});
